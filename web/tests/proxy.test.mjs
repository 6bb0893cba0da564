// The room's proxy bids, reserve and buy-it-now in headless Chromium, against a stand-in: the
// page's own files from web/ on a static server of the test's, its WebSocket answered by the test
// (playwright's routeWebSocket) and its REST call too. So it needs no stack: it checks what the
// page sends (max_amount beside the amount, nothing for bad input) and what it says for each
// frame the contract (docs/protocol.md, "Proxy bids, reserve and buy-it-now") lets a server send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WEB_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };

// Serves web/ as it is in the checkout.
async function staticServer() {
  const server = http.createServer(async (request, response) => {
    const name = new URL(request.url, 'http://x').pathname.replace(/^\/$/, '/index.html');
    try {
      const body = await readFile(path.join(WEB_DIR, path.basename(name)));
      response.writeHead(200, { 'content-type': `${TYPES[path.extname(name)] || 'text/plain'}; charset=utf-8` });
      response.end(body);
    } catch {
      response.writeHead(404);
      response.end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

const NOW = Date.now();
const iso = (ms) => new Date(ms).toISOString();
const snapshot = (extra = {}) => ({
  type: 'snapshot', auction_id: 'lamp', status: 'active', start_time: iso(NOW - 60000), end_time: iso(NOW + 600000),
  starting_bid: '100.00', current_bid: null, highest_bidder: null, min_next_bid: '100.00', bid_count: 0, seq: 1,
  server_time: iso(NOW), recent_bids: [], ...extra,
});
const placed = (seq, bidder, amount, minNext, extra = {}) => ({
  type: 'bid_placed', auction_id: 'lamp', bid_id: `b${seq}`, amount, bidder, seq, end_time: iso(NOW + 600000),
  bid_count: seq - 1, placed_at: iso(NOW), min_next_bid: minNext, ...extra,
});
const accepted = (bidId, seq, amount, extra = {}) => ({
  type: 'bid_accepted', auction_id: 'lamp', bid_id: bidId, amount, seq, end_time: iso(NOW + 600000), ...extra,
});

// Opens the room of "lamp" as `user`, its WebSocket answered by the returned stand-in: `sent` holds
// every frame the page sent, `push(frame)` sends one to the page.
async function room(browser, web, user, first) {
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(5000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(`${e}`));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.route(/\/api\/v1\/auctions\/lamp$/, (route) => route.fulfill({ json: { auction_id: 'lamp', title: 'Brass lamp' } }));
  const sent = [];
  let socket = null;
  await page.routeWebSocket(/\/ws\/auction\/lamp/, (ws) => {
    socket = ws;
    ws.onMessage((text) => {
      const frame = JSON.parse(text);
      if (frame.type !== 'ping') sent.push(frame);
    });
    ws.send(JSON.stringify(first));
  });
  await page.goto(`${web.url}/?user=${user}#/auction/lamp`);
  await page.waitForSelector('.state.live');
  await page.waitForSelector('h1:has-text("Brass lamp")');
  return { page, sent, errors, push: (frame) => socket.send(JSON.stringify(frame)) };
}

// Waits (5 s at most) for the page to have sent `count` frames.
async function sentFrames(r, count) {
  const deadline = Date.now() + 5000;
  while (r.sent.length < count) {
    assert.ok(Date.now() < deadline, `the page sent ${r.sent.length} frames, not ${count}: ${JSON.stringify(r.sent)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return r.sent[count - 1];
}

test('a max goes out as max_amount, shows while it leads, and a proxy outbids it in words', { timeout: 60000 }, async () => {
  const web = await staticServer();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const r = await room(browser, web, 'alice', snapshot({ reserve_met: false, buy_now_price: '500.00' }));
    const { page } = r;
    await page.waitForSelector('#reserve:has-text("Reserve not met")');
    await page.waitForSelector('#buy-now:has-text("500.00")');

    // Bid the minimum, up to 150.00.
    await page.fill('#max', '150');
    await page.click('#bid-min');
    const first = await sentFrames(r, 1);
    assert.deepEqual({ ...first, bid_id: undefined }, { type: 'place_bid', amount: '100.00', max_amount: '150.00', bid_id: undefined });
    await page.waitForSelector('#outcome:has-text("Bidding 100.00, up to 150.00")');
    assert.equal(await page.inputValue('#max'), '', 'the max field is cleared once sent');
    r.push(accepted(first.bid_id, 2, '100.00', { your_max: '150.00', current_bid: '100.00', min_next_bid: '102.50' }));
    r.push(placed(2, 'alice', '100.00', '102.50', { reserve_met: false }));
    await page.waitForSelector('#outcome.ok:has-text("Accepted: you lead at 100.00, up to your max 150.00.")');
    await page.waitForSelector('#your-max:has-text("your max 150.00")');
    await page.waitForSelector('#buy-now:has-text("500.00")');

    // Bob's bid is answered by alice's max.
    r.push(placed(3, 'alice', '130.00', '132.50', { auto: true, placed_by: 'bob', reserve_met: false }));
    await page.waitForSelector('#outcome.ok:has-text("Your max held against bob\'s bid: you lead at 130.00.")');
    await page.waitForSelector('#your-max:has-text("your max 150.00")');

    // Carol's max passes alice's and meets the reserve: buy it now goes, and alice's max.
    r.push(placed(4, 'carol', '152.50', '155.00', { auto: true, reserve_met: true }));
    await page.waitForSelector('#outcome.bad:has-text("Outbid by a proxy: carol\'s max took the lead at 152.50.")');
    await page.waitForSelector('#reserve:has-text("Reserve met")');
    assert.equal(await page.textContent('#your-max'), '');
    assert.equal(await page.isVisible('#buy-now'), false, 'buy it now is gone once the reserve is met');

    // A typed amount with a max; a standing max beats it at once.
    await page.fill('#amount', '155');
    await page.fill('#max', '160.5');
    await page.click('#bid');
    const second = await sentFrames(r, 2);
    assert.deepEqual([second.amount, second.max_amount], ['155', '160.50']);
    r.push(accepted(second.bid_id, 5, '155', { leading: false, current_bid: '162.50', min_next_bid: '165.00' }));
    await page.waitForSelector('#outcome.bad:has-text("Outbid by a proxy: a standing max beat your bid of 155 at once; now 162.50.")');
    await page.waitForSelector('#min-next:has-text("165.00")');
    r.push(placed(5, 'carol', '162.50', '165.00', { auto: true, placed_by: 'alice', reserve_met: true }));
    await page.waitForSelector('#outcome.bad:has-text("Outbid by a proxy: carol\'s max beat your bid; now 162.50.")');
    assert.deepEqual(r.errors, [], 'console errors');
  } finally {
    await browser.close();
    web.close();
  }
});

test('a bad max is refused in words and nothing is sent', { timeout: 60000 }, async () => {
  const web = await staticServer();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const r = await room(browser, web, 'alice', snapshot());
    const { page } = r;
    assert.equal(await page.isVisible('#reserve'), false, 'no reserve: nothing said of one');
    assert.equal(await page.isVisible('#buy-now'), false);
    for (const [amount, max, words] of [
      ['', 'lots', 'Bid up to: "lots" is not an amount (such as 150 or 150.50).'],
      ['', '1.001', 'Bid up to: "1.001" is not an amount'],
      ['120', '110', 'Your max 110.00 is below your bid of 120.00.'],
      ['', '90', 'Your max 90.00 is below the minimum bid of 100.00.'],
      ['abc', '150', '"abc" is not an amount'],
    ]) {
      await page.fill('#amount', amount);
      await page.fill('#max', max);
      await page.click('#bid');
      await page.waitForSelector(`#outcome.bad:has-text(${JSON.stringify(words)})`);
    }
    assert.deepEqual(r.sent, [], 'a refused bid is never sent');
    // The leader may raise a max that is below the minimum next bid: the bid is the max itself.
    r.push(placed(2, 'alice', '100.00', '102.50'));
    await page.waitForSelector('#bidder:has-text("alice (you)")');
    await page.fill('#amount', '');
    await page.fill('#max', '101');
    await page.click('#bid-min');
    const raise = await sentFrames(r, 1);
    assert.deepEqual([raise.amount, raise.max_amount], ['101.00', '101.00']);
    assert.deepEqual(r.errors, [], 'console errors');
  } finally {
    await browser.close();
    web.close();
  }
});

test('an auction ended below its reserve is no sale; a buy-it-now says so', { timeout: 60000 }, async () => {
  const web = await staticServer();
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
  try {
    const unsold = await room(browser, web, 'alice', snapshot({ reserve_met: false }));
    unsold.push(placed(2, 'alice', '120.00', '122.50', { reserve_met: false }));
    unsold.push({ type: 'auction_ended', auction_id: 'lamp', winner: null, final_price: null, seq: 3, reserve_met: false });
    await unsold.page.waitForSelector('#countdown:has-text("ended: no sale (reserve not met)")');

    const bought = await room(browser, web, 'alice', snapshot({ buy_now_price: '500.00' }));
    await bought.page.fill('#max', '500');
    await bought.page.click('#bid-min');
    const frame = await sentFrames(bought, 1);
    bought.push(accepted(frame.bid_id, 2, '500.00', { bought_now: true }));
    await bought.page.waitForSelector('#outcome.ok:has-text("Bought it now at 500.00.")');
    bought.push(placed(2, 'alice', '500.00', '510.00'));
    bought.push({ type: 'auction_ended', auction_id: 'lamp', winner: 'alice', final_price: '500.00', seq: 3, bought_now: true });
    await bought.page.waitForSelector('#countdown:has-text("ended: you bought it at the buy-it-now price, 500.00")');

    const watcher = await room(browser, web, 'dave', snapshot({ buy_now_price: '500.00' }));
    watcher.push(placed(2, 'bob', '500.00', '510.00'));
    watcher.push({ type: 'auction_ended', auction_id: 'lamp', winner: 'bob', final_price: '500.00', seq: 3, bought_now: true });
    await watcher.page.waitForSelector('#countdown:has-text("ended: bob bought it at the buy-it-now price, 500.00")');
    for (const r of [unsold, bought, watcher]) assert.deepEqual(r.errors, [], 'console errors');
  } finally {
    await browser.close();
    web.close();
  }
});
