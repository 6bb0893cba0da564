// The web UI: an auction list, an auction room and a create form, over the same REST API and
// WebSocket protocol as every other client. Plain modules, no build step. Each view returns a
// cleanup function that closes its socket and clears its timers, so leaving a view leaks nothing.
import { config } from './config.js';

const main = document.getElementById('main');
const userInput = document.getElementById('user');
const params = new URLSearchParams(location.search);
userInput.value = params.get('user') || localStorage.getItem('auction.user') || '';
userInput.addEventListener('change', () => localStorage.setItem('auction.user', userInput.value.trim()));
if (params.get('user')) localStorage.setItem('auction.user', params.get('user'));
const user = () => userInput.value.trim();
// The close code of a connection whose bidder token expired (docs/protocol.md).
const TOKEN_EXPIRED_CLOSE = 4001;
const EXPIRED = 'Your session expired: open the page with a new ?token= (auctionctl token) to bid again.';

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
};

// An amount as the protocol writes it (digits, and up to two decimals) in cents; null if it is not one.
function cents(text) {
  const m = /^(\d+)(?:\.(\d{1,2}))?$/.exec(String(text ?? '').trim());
  return m ? Number(m[1]) * 100 + Number((m[2] || '').padEnd(2, '0')) : null;
}
const money = (c) => `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;

function compact(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

async function api(path, options = {}) {
  const response = await fetch(`${config.api}${path}`, {
    ...options,
    headers: {
      'content-type': 'application/json',
      ...(config.admin && options.method && options.method !== 'GET' ? { authorization: `Bearer ${config.admin}` } : {}),
      ...(options.headers || {}),
    },
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error?.message || `${response.status} ${response.statusText}`);
  return body;
}

// --- the list -------------------------------------------------------------------------------
function listView() {
  const status = el('p', { class: 'label' }, 'loading…');
  const tbody = el('tbody');
  main.replaceChildren(
    el('h1', {}, 'Auctions'),
    el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'Title'), el('th', {}, 'Status'), el('th', {}, 'Current bid'), el('th', {}, 'Time left'))), tbody),
    status,
  );
  let auctions = [];
  let offset = 0; // server time minus local time
  const render = () => {
    const now = Date.now() + offset;
    tbody.replaceChildren(...auctions.map((a) => {
      const left = a.status === 'scheduled' ? `starts in ${compact(Date.parse(a.start_time) - now)}`
        : a.status === 'active' ? compact(Date.parse(a.end_time) - now) : '—';
      return el('tr', { class: 'auction', 'data-id': a.auction_id, onclick: () => { location.hash = `#/auction/${a.auction_id}`; } },
        el('td', {}, el('a', { href: `#/auction/${a.auction_id}` }, a.title)),
        el('td', {}, a.status),
        el('td', {}, a.current_bid ?? `from ${a.starting_bid}`),
        el('td', { class: 'left' }, left));
    }));
  };
  const load = async () => {
    try {
      const body = await api('/api/v1/auctions?limit=100');
      auctions = body.auctions;
      if (auctions[0]) offset = Date.parse(auctions[0].server_time) - Date.now();
      status.textContent = auctions.length ? '' : 'No auctions yet.';
      render();
    } catch (e) {
      status.textContent = `Cannot load auctions: ${e.message}`;
    }
  };
  load();
  const refresh = setInterval(load, 3000);
  const tick = setInterval(render, 1000);
  return () => { clearInterval(refresh); clearInterval(tick); };
}

// --- the room -------------------------------------------------------------------------------
function roomView(id) {
  const title = el('h1', {}, 'Auction');
  const state = el('span', { class: 'state' }, 'connecting…');
  const price = el('div', { class: 'price', id: 'current' }, '—');
  const bidder = el('div', { id: 'bidder' }, '—');
  const yourMax = el('div', { id: 'your-max', class: 'you' });
  const reserve = el('div', { id: 'reserve' }, '—');
  const buyNow = el('div', { id: 'buy-now' }, '—');
  const minNext = el('div', { id: 'min-next' }, '—');
  const countdown = el('div', { class: 'countdown', id: 'countdown' }, '—');
  const statusText = el('div', { id: 'status' }, '—');
  const history = el('ol', { class: 'history', id: 'history' });
  const amount = el('input', { id: 'amount', inputmode: 'decimal', placeholder: 'amount', size: '10' });
  // A proxy bid: the service bids for you, one increment at a time, up to this max.
  const maxInput = el('input', { id: 'max', inputmode: 'decimal', placeholder: 'bid up to', size: '10', 'aria-label': 'bid up to (your max)' });
  const outcome = el('p', { id: 'outcome', role: 'status' });
  const cell = (label, value) => el('div', {}, el('div', { class: 'label' }, label), value);
  // Shown only for an auction with a reserve, and while buy-it-now is available.
  const reserveCell = cell('Reserve', reserve);
  const buyNowCell = cell('Buy it now', buyNow);
  main.replaceChildren(
    title,
    el('p', {}, state),
    el('div', { class: 'card grid' }, cell('Current bid', price), cell('Highest bidder', el('div', {}, bidder, yourMax)), cell('Minimum next bid', minNext), cell('Closes', countdown), cell('Status', statusText), reserveCell, buyNowCell),
    el('div', { class: 'card' },
      el('form', { class: 'bid', onsubmit: (e) => { e.preventDefault(); bid(amount.value.trim()); } },
        amount, maxInput, el('button', { type: 'submit', id: 'bid' }, 'Bid'),
        el('button', { type: 'button', class: 'secondary', id: 'bid-min', onclick: () => bid(null) }, 'Bid the minimum')),
      outcome),
    el('div', { class: 'card' }, el('h2', {}, 'Bids'), history),
  );

  let room = null;
  let socket = null;
  let closed = false;
  let expired = false;
  let attempt = 0;
  let retry = null;
  let offset = 0;
  let extendedAt = 0;
  let counter = 0;
  const pending = new Map();

  api(`/api/v1/auctions/${encodeURIComponent(id)}`).then((a) => { title.textContent = a.title; }).catch(() => {});

  const show = () => {
    if (!room) return;
    price.textContent = room.current_bid ?? 'no bids yet';
    const mine = room.highest_bidder && room.highest_bidder === user();
    bidder.textContent = room.highest_bidder ? (mine ? `${room.highest_bidder} (you)` : room.highest_bidder) : '—';
    bidder.className = mine ? 'you' : '';
    yourMax.textContent = mine && room.your_max ? `your max ${room.your_max}` : '';
    reserveCell.hidden = room.reserve_met !== true && room.reserve_met !== false;
    reserve.textContent = room.reserve_met ? 'Reserve met' : 'Reserve not met';
    reserve.className = room.reserve_met ? 'ok' : 'bad';
    buyNowCell.hidden = !room.buy_now_price;
    buyNow.textContent = room.buy_now_price || '';
    minNext.textContent = room.min_next_bid;
    statusText.textContent = room.status;
    history.replaceChildren(...room.recent.map((b) => el('li', {}, `${b.amount} by ${b.bidder} at ${new Date(b.placed_at).toLocaleTimeString()}`)));
    tick();
  };
  const tick = () => {
    if (!room) return;
    const now = Date.now() + offset;
    const end = Date.parse(room.end_time);
    if (room.status === 'ended') {
      const who = room.winner === user() ? 'you' : room.winner;
      countdown.textContent = room.winner && room.bought_now ? `ended: ${who} bought it at the buy-it-now price, ${room.final_price}`
        : room.winner ? `ended: ${room.winner} won at ${room.final_price}`
          : room.reserve_met === false ? 'ended: no sale (reserve not met)' : 'ended';
    } else if (room.status === 'cancelled') {
      countdown.textContent = 'cancelled';
    } else {
      countdown.textContent = end > now ? `in ${compact(end - now)}` : 'closed';
    }
    const extended = Date.now() - extendedAt < 5000;
    countdown.classList.toggle('extended', extended);
    if (extended) countdown.textContent += ` (extended to ${new Date(end).toLocaleTimeString()})`;
  };
  const timer = setInterval(tick, 250);

  const say = (text, ok) => { outcome.textContent = text; outcome.className = ok ? 'ok' : 'bad'; };

  // Bids `value` (or the minimum), up to the max in "bid up to" when one is typed.
  function bid(value) {
    if (!room) return;
    if (expired) return say(EXPIRED, false);
    let chosen = value || room.min_next_bid;
    const maxText = maxInput.value.trim();
    let max = null;
    if (maxText) {
      const maxCents = cents(maxText);
      if (maxCents === null) return say(`Bid up to: "${maxText}" is not an amount (such as 150 or 150.50).`, false);
      const chosenCents = cents(chosen);
      if (chosenCents === null) return say(`"${chosen}" is not an amount (such as 150 or 150.50).`, false);
      if (maxCents < chosenCents) {
        if (value) return say(`Your max ${money(maxCents)} is below your bid of ${money(chosenCents)}.`, false);
        if (room.highest_bidder !== user()) return say(`Your max ${money(maxCents)} is below the minimum bid of ${chosen}.`, false);
        // The leader raising a max still below the minimum next bid: the bid is the max itself.
        chosen = money(maxCents);
      }
      max = money(maxCents);
    }
    const bidId = `web-${Date.now().toString(36)}-${++counter}`;
    const frame = { type: 'place_bid', amount: chosen, bid_id: bidId, ...(max ? { max_amount: max } : {}) };
    pending.set(bidId, frame);
    maxInput.value = '';
    say(max ? `Bidding ${chosen}, up to ${max}…` : `Bidding ${chosen}…`, true);
    send(frame);
  }
  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  }

  function onFrame(frame) {
    if (frame.type === 'snapshot') {
      offset = Date.parse(frame.server_time) - Date.now();
      room = { ...frame, recent: frame.recent_bids.slice() };
      return show();
    }
    if (!room) return;
    if (frame.seq !== undefined && !['bid_accepted'].includes(frame.type)) {
      const sameChange = frame.type === 'auction_extended' && frame.seq === room.seq;
      if (frame.seq <= room.seq && !sameChange) return;
      if (frame.seq > room.seq + 1) return send({ type: 'sync' });
      room.seq = frame.seq;
    }
    const me = user();
    switch (frame.type) {
      case 'bid_placed':
        // A price a max placed says so: yours held, or another's beat your bid or took your lead.
        if (frame.bidder === me && frame.placed_by && frame.placed_by !== me) {
          say(`Your max held against ${frame.placed_by}'s bid: you lead at ${frame.amount}.`, true);
        } else if (frame.bidder !== me && frame.placed_by === me) {
          say(`Outbid by a proxy: ${frame.bidder}'s max beat your bid; now ${frame.amount}.`, false);
        } else if (frame.bidder !== me && room.highest_bidder === me) {
          say(frame.auto ? `Outbid by a proxy: ${frame.bidder}'s max took the lead at ${frame.amount}.`
            : `Outbid: ${frame.bidder} leads at ${frame.amount}.`, false);
        }
        if (frame.bidder !== me) room.your_max = null;
        if (frame.reserve_met === true || frame.reserve_met === false) room.reserve_met = frame.reserve_met;
        // Buy-it-now lasts while there is no bid, or, with a reserve, until it is met.
        if (room.reserve_met !== false) room.buy_now_price = null;
        room.current_bid = frame.amount;
        room.highest_bidder = frame.bidder;
        if (frame.min_next_bid) room.min_next_bid = frame.min_next_bid;
        room.end_time = frame.end_time;
        room.bid_count = frame.bid_count;
        room.status = 'active';
        room.recent.unshift({ bidder: frame.bidder, amount: frame.amount, placed_at: frame.placed_at });
        room.recent = room.recent.slice(0, 20);
        break;
      case 'auction_extended':
        room.end_time = frame.end_time;
        extendedAt = Date.now();
        break;
      case 'auction_started': room.status = 'active'; break;
      case 'auction_ended':
        room.status = 'ended';
        room.winner = frame.winner;
        room.final_price = frame.final_price;
        room.bought_now = frame.bought_now === true;
        room.buy_now_price = null;
        if (frame.reserve_met === true || frame.reserve_met === false) room.reserve_met = frame.reserve_met;
        break;
      case 'auction_cancelled': room.status = 'cancelled'; break;
      case 'bid_accepted':
        pending.delete(frame.bid_id);
        if (frame.min_next_bid && cents(frame.min_next_bid) > cents(room.min_next_bid)) room.min_next_bid = frame.min_next_bid;
        if (frame.bought_now) {
          say(`Bought it now at ${frame.amount}.`, true);
        } else if (frame.leading === false) {
          say(`Outbid by a proxy: a standing max beat your bid of ${frame.amount} at once${frame.current_bid ? `; now ${frame.current_bid}` : ''}.`, false);
        } else if (frame.your_max) {
          // The answer may overtake the frames before it: the max is yours if this bid's change
          // is still to come, or you lead now.
          if (frame.seq > room.seq || room.highest_bidder === me) room.your_max = frame.your_max;
          say(`Accepted: you lead at ${frame.amount}, up to your max ${frame.your_max}.`, true);
        } else {
          say(`Accepted: your bid of ${frame.amount} leads.`, true);
        }
        break;
      case 'bid_rejected':
        pending.delete(frame.bid_id);
        if (frame.min_next_bid) room.min_next_bid = frame.min_next_bid;
        say(`Not accepted: ${frame.message}.`, false);
        break;
      case 'error': say(`Error: ${frame.message}`, false); break;
      default: break;
    }
    show();
  }

  function connect() {
    if (closed) return;
    if (!user()) { state.textContent = 'enter your name above to bid'; state.className = 'state down'; }
    const name = user() || 'guest';
    const token = config.token ? `&token=${encodeURIComponent(config.token)}` : '';
    socket = new WebSocket(`${config.ws}/ws/auction/${encodeURIComponent(id)}?user_id=${encodeURIComponent(name)}${token}`);
    socket.onopen = () => {
      attempt = 0;
      state.textContent = `live as ${name}`;
      state.className = 'state live';
      // Unanswered bids are resent with their ids: the server answers a retry with the first outcome.
      for (const frame of pending.values()) send(frame);
    };
    socket.onmessage = (event) => { try { onFrame(JSON.parse(event.data)); } catch { /* not ours */ } };
    socket.onclose = (event) => {
      if (closed) return;
      // The server closes at the bidder token's expiry; the same token would be refused, so
      // the page stops here and says what to do rather than retrying for ever.
      if (event.code === TOKEN_EXPIRED_CLOSE) {
        expired = true;
        pending.clear();
        state.textContent = 'session expired';
        state.className = 'state down expired';
        return say(EXPIRED, false);
      }
      attempt += 1;
      const delay = Math.min(5000, 250 * 2 ** Math.min(attempt, 5));
      state.textContent = `reconnecting in ${Math.round(delay / 100) / 10}s…`;
      state.className = 'state down';
      retry = setTimeout(connect, delay);
    };
  }
  connect();
  const onUser = () => { if (socket) socket.close(); };
  userInput.addEventListener('change', onUser);

  return () => {
    closed = true;
    clearInterval(timer);
    clearTimeout(retry);
    userInput.removeEventListener('change', onUser);
    if (socket) socket.close();
  };
}

// --- create ---------------------------------------------------------------------------------
function createView() {
  const outcome = el('p', { id: 'create-outcome' });
  const title = el('input', { name: 'title', placeholder: 'Brass lamp', maxlength: '200' });
  const starting = el('input', { name: 'starting_bid', placeholder: '100.00', inputmode: 'decimal' });
  const minutes = el('input', { name: 'minutes', value: '10', inputmode: 'numeric', size: '4' });
  // A submission that got no good answer is sent again as it was, with the same Idempotency-Key,
  // while the form is unchanged: if the first one did create the auction, the service answers
  // with it rather than making a second. Changed inputs are a new request with a new key.
  let pending = null;
  const submit = async (e) => {
    e.preventDefault();
    const inputs = JSON.stringify([title.value, starting.value.trim(), minutes.value]);
    if (!pending || pending.inputs !== inputs) {
      const now = new Date();
      const end = new Date(now.getTime() + Number(minutes.value) * 60000);
      const key = Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
      const body = JSON.stringify({ title: title.value, start_time: now.toISOString(), end_time: end.toISOString(), starting_bid: starting.value.trim() });
      pending = { inputs, key, body };
    }
    try {
      const auction = await api('/api/v1/auctions', {
        method: 'POST',
        headers: { 'idempotency-key': pending.key },
        body: pending.body,
      });
      pending = null;
      location.hash = `#/auction/${auction.auction_id}`;
    } catch (err) {
      outcome.textContent = err.message;
      outcome.className = 'bad';
    }
  };
  main.replaceChildren(
    el('h1', {}, 'New auction'),
    el('form', { class: 'card grid', onsubmit: submit },
      el('label', {}, el('div', { class: 'label' }, 'Title'), title),
      el('label', {}, el('div', { class: 'label' }, 'Starting bid'), starting),
      el('label', {}, el('div', { class: 'label' }, 'Runs for (minutes)'), minutes),
      el('div', {}, el('button', { type: 'submit' }, 'Create'))),
    outcome,
  );
  return () => {};
}

// --- routing --------------------------------------------------------------------------------
let cleanup = () => {};
function route() {
  cleanup();
  const room = location.hash.match(/^#\/auction\/([A-Za-z0-9_.@-]{1,64})$/);
  if (room) cleanup = roomView(room[1]);
  else if (location.hash === '#/new') cleanup = createView();
  else cleanup = listView();
}
window.addEventListener('hashchange', route);
route();
