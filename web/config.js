// Where the services are. Defaults suit the page served by the bidding service (same host; the
// auction service on port 8081, or where the node was told with WEB_API_URL). A link may name
// others with ?api=URL&ws=URL (a static server, another node); since they would receive the
// bidder and operator tokens, the page uses such an endpoint only when it is one of the defaults
// or on this page's own origin, or when the user agrees when asked. It never stores them: the
// link carries them, and a reload asks again.
const params = new URLSearchParams(location.search);
// The REST API as the bidding node that served this page was told (WEB_API_URL), which the node
// writes into this line; null when it was not, or from a static server. A path is on this page's
// own origin: '/' when a proxy serves the page, the WebSocket and the API on one origin.
const served = null;
const servedApi = served === null ? null : new URL(served, location.href).href.replace(/\/$/, '');
const wsScheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const host = location.hostname || 'localhost';
const defaults = {
  api: servedApi ?? `${location.protocol === 'file:' ? 'http:' : location.protocol}//${host}:8081`,
  ws: location.host && location.protocol !== 'file:' ? `${wsScheme}//${location.host}` : `ws://${host}:8080`,
};
const schemes = { api: ['http:', 'https:'], ws: ['ws:', 'wss:'] };
// Earlier versions of this page stored ?api= and ?ws= for good; a link could plant them there.
localStorage.removeItem('auction.api');
localStorage.removeItem('auction.ws');

// The endpoint `key` ('api' or 'ws') this page talks to: the link's, when it is trusted or the user
// agrees, else the default.
function endpoint(key) {
  const given = params.get(key);
  if (!given) return defaults[key];
  let url;
  try {
    url = new URL(given);
  } catch {
    return defaults[key];
  }
  if (!schemes[key].includes(url.protocol)) return defaults[key];
  const chosen = url.href.replace(/\/$/, '');
  const sameOrigin = url.host === location.host && url.protocol.replace(/^ws/, 'http') === location.protocol;
  if (chosen === defaults[key] || sameOrigin) return chosen;
  const what = key === 'api' ? 'auction API (your operator token, if any)' : 'bidding connection (your bidder token, if any)';
  const agreed = window.confirm(`This link sends your ${what} to ${chosen} instead of ${defaults[key]}. Only agree if you trust it. Use ${chosen}?`);
  return agreed ? chosen : defaults[key];
}

const remember = (key) => {
  const given = params.get(key);
  if (given) localStorage.setItem(`auction.${key}`, given);
  return given || localStorage.getItem(`auction.${key}`) || '';
};

// Tokens, when the services require them: ?token= (the bidder's, from `auctionctl token`) and
// ?admin= (the operator's, for the create form), remembered by the page.
export const config = {
  token: remember('token'),
  admin: remember('admin'),
  api: endpoint('api'),
  ws: endpoint('ws'),
};
