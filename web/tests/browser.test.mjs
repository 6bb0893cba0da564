// The web UI in headless Chromium against the real stack: list, room, a bid, another browser
// context seeing it live, the extension in the countdown, a too-low bid's reason, a screenshot,
// no console errors; a max set in "bid up to", and a proxy outbidding it; and a room that
// reconnects and resyncs when its bidding node restarts.
// Endpoints named by a link are used only when the user agrees, and never stored; a room whose
// bidder token expires says so and stops.
// Run it through scripts/browser-test.sh, which starts a stack of its own (scripts/with-stack.sh).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import { chromium } from 'playwright-core';

const API = process.env.AUCTION_API_URL || 'http://localhost:8081';
const WEB = process.env.AUCTION_WEB_URL || 'http://localhost:8080';
const OUT = process.env.BROWSER_TEST_OUT || 'target/browser-test';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// What scripts/with-stack.sh gives to start another node of its stack.
const BIN_DIR = process.env.STACK_BIN_DIR;
const ENV_FILE = process.env.STACK_ENV_FILE;

const launch = () => chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

async function createAuction(body) {
  const response = await fetch(`${API}/api/v1/auctions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 201, await response.clone().text());
  return response.json();
}

test('bid in the browser, watch it live, see extensions and refusals', { timeout: 60000 }, async () => {
  const browser = await launch();
  const errors = [];
  const track = (page, who) => {
    page.on('console', (m) => { if (m.type() === 'error') errors.push(`${who}: ${m.text()}`); });
    page.on('pageerror', (e) => errors.push(`${who}: ${e}`));
  };
  try {
    const now = Date.now();
    // Closes in 20 s; a bid within 30 s of the close moves it to a minute after the bid.
    const auction = await createAuction({
      title: `Browser lamp ${now}`,
      start_time: new Date(now - 1000).toISOString(),
      end_time: new Date(now + 20000).toISOString(),
      starting_bid: '10.00',
      extension_window_s: 30,
      extension_s: 60,
    });

    const alice = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
    track(alice, 'alice');
    await alice.goto(`${WEB}/?user=alice&api=${API}`);
    await alice.getByText(auction.title).click();
    await alice.waitForSelector('#min-next:has-text("10.00")');
    await alice.waitForSelector('.state.live');

    const bob = await (await browser.newContext()).newPage();
    track(bob, 'bob');
    await bob.goto(`${WEB}/?user=bob&api=${API}#/auction/${auction.auction_id}`);
    await bob.waitForSelector('.state.live');
    await bob.waitForSelector('#current:has-text("no bids yet")');

    await alice.click('#bid-min');
    await alice.waitForSelector('#outcome:has-text("Accepted: your bid of 10.00 leads")');
    await alice.waitForSelector('#bidder:has-text("alice (you)")');
    // The other context sees it live, with the next minimum.
    await bob.waitForSelector('#current:has-text("10.00")');
    await bob.waitForSelector('#bidder:has-text("alice")');
    await bob.waitForSelector('#min-next:has-text("10.50")');
    // The bid landed in the window: the close moved, and the countdown says so.
    await bob.waitForSelector('#countdown.extended');
    const countdown = await bob.textContent('#countdown');
    assert.match(countdown, /extended to/);
    assert.match(countdown, /^in (5\d|60)s|^in 1m 00s/);

    await bob.fill('#amount', '10.10');
    await bob.click('#bid');
    await bob.waitForSelector('#outcome.bad:has-text("the minimum bid is 10.50")');

    await mkdir(OUT, { recursive: true });
    await alice.screenshot({ path: `${OUT}/room.png`, fullPage: true });
    assert.deepEqual(errors, [], 'console errors');
  } finally {
    await browser.close();
  }
});

// Needs the server side of "Proxy bids, reserve and buy-it-now" (docs/protocol.md).
test('set a max, lead with it, and be outbid by a proxy', { timeout: 60000 }, async () => {
  const browser = await launch();
  try {
    const now = Date.now();
    const auction = await createAuction({
      title: `Proxy lamp ${now}`,
      start_time: new Date(now - 1000).toISOString(),
      end_time: new Date(now + 600000).toISOString(),
      starting_bid: '10.00',
      extension_window_s: 0,
    });
    const page = async (who) => {
      const p = await (await browser.newContext()).newPage();
      p.setDefaultTimeout(10000);
      await p.goto(`${WEB}/?user=${who}&api=${API}#/auction/${auction.auction_id}`);
      await p.waitForSelector('.state.live');
      return p;
    };
    const bob = await page('bob');
    const alice = await page('alice');

    // Bob bids the minimum, up to 30.00: he leads at 10.00 and sees his max.
    await bob.fill('#max', '30');
    await bob.click('#bid-min');
    await bob.waitForSelector('#outcome.ok:has-text("Accepted: you lead at 10.00, up to your max 30.00.")');
    await bob.waitForSelector('#your-max:has-text("your max 30.00")');
    await alice.waitForSelector('#bidder:has-text("bob")');
    assert.equal(await alice.textContent('#your-max'), '', 'a max is shown to its owner only');

    // Alice bids up to 20.00: bob's max answers at once, at 20.50.
    await alice.fill('#max', '20');
    await alice.click('#bid-min');
    await alice.waitForSelector('#outcome.bad:has-text("Outbid by a proxy")');
    await alice.waitForSelector('#current:has-text("20.50")');
    await alice.waitForSelector('#bidder:has-text("bob")');

    // Up to 60.00 passes bob's max: alice leads at 31.00, and bob is told a proxy outbid him.
    await alice.fill('#max', '60');
    await alice.click('#bid-min');
    await alice.waitForSelector('#your-max:has-text("your max 60.00")');
    await alice.waitForSelector('#current:has-text("31.00")');
    await bob.waitForSelector('#outcome.bad:has-text("Outbid by a proxy: alice\'s max took the lead at 31.00.")');
    assert.equal(await bob.textContent('#your-max'), '');
  } finally {
    await browser.close();
  }
});

// A port nothing listens on now.
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// Starts a bidding node of the stack on `port`, with the stack's own environment, and waits (20 s
// at most) until it answers, with `extraEnv` added; `stop()` ends it with SIGTERM and waits for it to exit.
async function startNode(port, extraEnv = {}) {
  assert.ok(BIN_DIR && ENV_FILE, 'STACK_BIN_DIR and STACK_ENV_FILE are unset: run scripts/browser-test.sh');
  const env = { PATH: process.env.PATH };
  for (const line of readFileSync(ENV_FILE, 'utf8').split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) env[line.slice(0, at)] = line.slice(at + 1);
  }
  const instance = `browser-node-${port}-${Date.now()}`;
  const child = spawn(`${BIN_DIR}/bidding-service`, [], {
    env: { ...env, ...extraEnv, SERVER_PORT: String(port), INSTANCE_ID: instance },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  let exited = false;
  const exit = new Promise((resolve) => child.once('exit', () => { exited = true; resolve(); }));
  const deadline = Date.now() + 20000;
  for (;;) {
    assert.ok(!exited, `the bidding node on ${port} stopped:\n${log}`);
    const health = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.text()).catch(() => '');
    if (health.includes(instance)) break;
    assert.ok(Date.now() < deadline, `the bidding node on ${port} never answered:\n${log}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    child,
    async stop() {
      child.kill('SIGTERM');
      const stopped = await Promise.race([exit.then(() => true), new Promise((r) => setTimeout(r, 10000, false))]);
      assert.ok(stopped, `the bidding node on ${port} did not stop within 10 s`);
    },
    kill() { if (!exited) child.kill('SIGKILL'); },
  };
}

test('the room reconnects and resyncs after its bidding node restarts', { timeout: 90000 }, async () => {
  const browser = await launch();
  const nodes = [];
  try {
    const now = Date.now();
    const auction = await createAuction({
      title: `Restart lamp ${now}`,
      start_time: new Date(now - 1000).toISOString(),
      end_time: new Date(now + 600000).toISOString(),
      starting_bid: '10.00',
      extension_window_s: 0,
    });
    const port = await freePort();
    nodes.push(await startNode(port));

    // Carol's room talks to the extra node; Dave's to the stack's own.
    const carol = await (await browser.newContext()).newPage();
    // The link names another node than the one serving the page: the page asks first.
    carol.on('dialog', (d) => d.accept());
    const errors = [];
    carol.on('pageerror', (e) => errors.push(`${e}`));
    carol.on('console', (m) => {
      // While the node is down the page's reconnect attempts fail, and Chromium says so.
      const refused = new RegExp(`^WebSocket connection to 'ws://127\\.0\\.0\\.1:${port}/.*' failed`);
      if (m.type() === 'error' && !refused.test(m.text())) errors.push(m.text());
    });
    await carol.goto(`${WEB}/?user=carol&api=${API}&ws=ws://127.0.0.1:${port}#/auction/${auction.auction_id}`);
    await carol.waitForSelector('.state.live');
    await carol.waitForSelector('#current:has-text("no bids yet")');
    // Set on this very document: still there at the end means the page was never reloaded.
    await carol.evaluate(() => { window.sameDocument = true; });

    await nodes[0].stop();
    await carol.waitForSelector('.state.down');

    // Meanwhile Dave bids on another node.
    const dave = await (await browser.newContext()).newPage();
    await dave.goto(`${WEB}/?user=dave&api=${API}#/auction/${auction.auction_id}`);
    await dave.waitForSelector('.state.live');
    await dave.click('#bid-min');
    await dave.waitForSelector('#outcome:has-text("Accepted: your bid of 10.00 leads")');
    // The node stays down while Dave's bid is placed: Carol's page cannot have seen it live.
    assert.match(await carol.textContent('#current'), /no bids yet/);

    nodes.push(await startNode(port));
    await carol.waitForSelector('.state.live', { timeout: 20000 });
    await carol.waitForSelector('#current:has-text("10.00")');
    await carol.waitForSelector('#bidder:has-text("dave")');
    await carol.waitForSelector('#min-next:has-text("10.50")');
    assert.equal(await carol.evaluate(() => window.sameDocument), true, 'the page was reloaded');
    assert.deepEqual(errors, [], 'console errors');
  } finally {
    for (const node of nodes) node.kill();
    await browser.close();
  }
});

// A bidder token as `auctionctl token` makes it: HS256, `sub` and `exp`.
function mintToken(secret, user, ttlSeconds) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub: user, exp: Math.floor(Date.now() / 1000) + ttlSeconds })}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

// Waits (10 s at most) until `check()` holds.
async function until(what, check) {
  const deadline = Date.now() + 10000;
  while (!check()) {
    assert.ok(Date.now() < deadline, `never: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('the room says the session expired when the bidder token does, and stops', { timeout: 60000 }, async () => {
  const browser = await launch();
  const nodes = [];
  try {
    const now = Date.now();
    const auction = await createAuction({
      title: `Expiry lamp ${now}`,
      start_time: new Date(now - 1000).toISOString(),
      end_time: new Date(now + 600000).toISOString(),
      starting_bid: '10.00',
    });
    // A node of the stack that requires bidder tokens.
    const secret = 'a-browser-test-secret-that-is-long-enough';
    const port = await freePort();
    nodes.push(await startNode(port, { AUTH_SECRET: secret }));
    const page = await (await browser.newContext()).newPage();
    page.setDefaultTimeout(10000);
    page.on('dialog', (d) => d.accept());
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    const token = mintToken(secret, 'frank', 3);
    await page.goto(`${WEB}/?user=frank&token=${token}&api=${API}&ws=ws://127.0.0.1:${port}#/auction/${auction.auction_id}`);
    await page.waitForSelector('.state.live');
    await page.waitForSelector('.state.expired:has-text("session expired")');
    await page.waitForSelector('#outcome.bad:has-text("Your session expired")');
    await page.click('#bid-min');
    await page.waitForSelector('#outcome.bad:has-text("Your session expired")');
    assert.equal(sockets.length, 1, `no reconnect with the expired token: ${sockets}`);
    const state = await (await fetch(`${API}/api/v1/auctions/${auction.auction_id}`)).json();
    assert.equal(state.bid_count, 0);
  } finally {
    for (const node of nodes) node.kill();
    await browser.close();
  }
});

// An HTTP server that records every request it gets: a stranger's endpoint named by a link.
async function stranger() {
  const seen = [];
  const server = http.createServer((request, response) => {
    seen.push(request.url);
    response.writeHead(200, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
    response.end('{"auctions":[]}');
  });
  server.on('upgrade', (request, socket) => { seen.push(request.url); socket.destroy(); });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { host: `127.0.0.1:${server.address().port}`, seen, close: () => server.close() };
}

test('endpoints from a link are used only when the user agrees, and never stored', { timeout: 60000 }, async () => {
  const browser = await launch();
  const evil = await stranger();
  try {
    const now = Date.now();
    const auction = await createAuction({
      title: `Link lamp ${now}`,
      start_time: new Date(now - 1000).toISOString(),
      end_time: new Date(now + 600000).toISOString(),
      starting_bid: '10.00',
    });
    const context = await browser.newContext();
    const link = `${WEB}/?user=eve&token=bidder-token&admin=operator-token&api=http://${evil.host}&ws=ws://${evil.host}`;
    const stored = (page) => page.evaluate(() => [localStorage.getItem('auction.api'), localStorage.getItem('auction.ws')]);

    // Declined: the page asks once per endpoint, naming it, and talks to its own services.
    const declined = await context.newPage();
    declined.setDefaultTimeout(10000);
    const asked = [];
    declined.on('dialog', (d) => { asked.push(d.message()); d.dismiss(); });
    await declined.goto(`${link}#/auction/${auction.auction_id}`);
    await declined.waitForSelector('.state.live');
    await declined.waitForSelector(`h1:has-text("${auction.title}")`);
    assert.equal(asked.length, 2, `${asked}`);
    assert.ok(asked.every((m) => m.includes(evil.host)), `${asked}`);
    assert.deepEqual(evil.seen, [], 'nothing went to the endpoints the user declined');
    assert.deepEqual(await stored(declined), [null, null]);

    // Agreed: used, for this page only; nothing stored.
    const agreed = await context.newPage();
    agreed.on('dialog', (d) => d.accept());
    await agreed.goto(link);
    await until('the agreed API is called', () => evil.seen.length > 0);
    assert.deepEqual(await stored(agreed), [null, null]);

    // A visit without the link afterwards asks nothing and goes to the page's own services.
    await agreed.close();
    const before = evil.seen.length;
    const plain = await context.newPage();
    plain.setDefaultTimeout(10000);
    plain.on('dialog', (d) => { asked.push(d.message()); d.dismiss(); });
    await plain.goto(`${WEB}/#/auction/${auction.auction_id}`);
    await plain.waitForSelector('.state.live');
    assert.equal(asked.length, 2, `${asked}`);
    assert.deepEqual(evil.seen.slice(before), [], 'a plain visit went to the link\'s endpoints');
  } finally {
    evil.close();
    await browser.close();
  }
});
