// The web UI in headless Chromium against the real stack: list, room, a bid, another browser
// context seeing it live, the extension in the countdown, a too-low bid's reason, a screenshot,
// and no console errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const API = process.env.AUCTION_API_URL || 'http://localhost:8081';
const WEB = process.env.AUCTION_WEB_URL || 'http://localhost:8080';
const OUT = process.env.BROWSER_TEST_OUT || 'target/browser-test';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

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
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
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
    await alice.goto(`${WEB}/?user=alice`);
    await alice.getByText(auction.title).click();
    await alice.waitForSelector('#min-next:has-text("10.00")');
    await alice.waitForSelector('.state.live');

    const bob = await (await browser.newContext()).newPage();
    track(bob, 'bob');
    await bob.goto(`${WEB}/?user=bob#/auction/${auction.auction_id}`);
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
