// Where the services are. Defaults suit the page served by the bidding service (same host; the
// auction service on port 8081, or where the node was told with WEB_API_URL). Any static server
// works too: pass ?api=URL&ws=URL once and the page remembers them.
const params = new URLSearchParams(location.search);
const remember = (key, fallback) => {
  const given = params.get(key);
  if (given) localStorage.setItem(`auction.${key}`, given);
  return given || localStorage.getItem(`auction.${key}`) || fallback;
};
// The REST API as the bidding node that served this page was told (WEB_API_URL), which the node
// writes into this line; null when it was not, or from a static server. A path is on this page's
// own origin: '/' when a proxy serves the page, the WebSocket and the API on one origin.
const served = null;
const servedApi = served === null ? null : new URL(served, location.href).href.replace(/\/$/, '');
const wsScheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const host = location.hostname || 'localhost';

// Tokens, when the services require them: ?token= (the bidder's, from `auctionctl token`) and
// ?admin= (the operator's, for the create form); remembered like the URLs.
export const config = {
  token: remember('token', ''),
  admin: remember('admin', ''),
  api: remember('api', servedApi ?? `${location.protocol === 'file:' ? 'http:' : location.protocol}//${host}:8081`),
  ws: remember('ws', location.host && location.protocol !== 'file:' ? `${wsScheme}//${location.host}` : `ws://${host}:8080`),
};
