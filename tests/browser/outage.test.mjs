// The page through outages, in Chromium against the real stack: the broker
// restarted (a RabbitMQ node of this file's own, so the shared one is never
// touched), the browser's network gone and back, stockd gone and back, and a
// server that refuses the page's login.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ownBroker, startStack, launchBrowser, waitFor, scaled } from './stack.mjs';

const PRICE_RE = /^\d{1,3}(,\d{3})*\.\d\d$/;
let broker, stack, browser, page;

before(async () => {
  broker = await ownBroker(); // ~8 s
  stack = await startStack(broker);
  browser = await launchBrowser();
  page = await browser.page();
  await page.goto(stack.url);
});

after(async () => {
  const errors = [];
  for (const step of [() => browser?.close(), () => stack?.stop(), () => broker?.close()]) {
    await Promise.resolve().then(step).catch((e) => errors.push(e));
  }
  if (errors.length) throw errors[0];
});

const row = (sym) => page.locator(`#rows tr[data-symbol="${sym}"]`);
const conn = () => page.evaluate(() => document.body.dataset.conn);
const lastPrice = (sym) => row(sym).getAttribute('data-price');

async function add(sym) {
  await page.fill('#symbol', sym);
  await page.press('#symbol', 'Enter');
}

function waitPriceChange(sym, from, ms) {
  return waitFor(async () => {
    const p = await lastPrice(sym);
    return p !== null && p !== from && p;
  }, ms, `a new price for ${sym} (was ${from})`);
}

test('the broker restarts: prices stop, then resume for every symbol, and the page ends Online', async () => {
  await waitFor(async () => (await conn()) === 'online', scaled(10000), 'online');
  await add('AAPL');
  await add('MSFT');
  for (const s of ['AAPL', 'MSFT']) {
    await waitFor(async () => PRICE_RE.test(await row(s).locator('.value').textContent()), scaled(5000), `${s} price`);
  }
  await broker.stop();
  const before = { AAPL: await lastPrice('AAPL'), MSFT: await lastPrice('MSFT') };
  await broker.start(); // same node, same port: the bridge and stockd reconnect to it
  // the bridge's and stockd's backoffs are capped at 10 s or so; the page's at 30 s
  for (const s of ['AAPL', 'MSFT']) await waitPriceChange(s, before[s], scaled(60000));
  await waitFor(async () => (await conn()) === 'online', scaled(40000), 'online after the outage');
  const m = await stack.metrics();
  assert.equal(m.quote_subscriptions, 2);
  assert.equal(m.stomp_sessions, 1);
  for (const s of ['AAPL', 'MSFT']) {
    assert.doesNotMatch(await row(s).getAttribute('class'), /stale/, `${s} is fresh again`);
  }
  browser.problems.length = 0; // refused reconnects, if the session was dropped, are logged
});

test('the browser loses its network: the page says so, and is back Online with prices when it returns', async () => {
  await browser.ctx.setOffline(true);
  try {
    await waitFor(async () => /no network/.test(await page.textContent('#status-detail')), scaled(5000), 'the page says so');
  } finally {
    await browser.ctx.setOffline(false);
  }
  await waitFor(async () => (await page.textContent('#status-detail')) === '', scaled(5000), 'the message goes');
  await waitFor(async () => (await conn()) === 'online', scaled(40000), 'online again');
  const p = await lastPrice('AAPL');
  await waitPriceChange('AAPL', p, scaled(15000));
  browser.problems.length = 0;
});

test('stockd stops: the time since the last update counts up, rows go stale after 15 s, and recover', async () => {
  await stack.stockd.stop();
  const age = () => row('AAPL').locator('.age').textContent();
  const seconds = async () => Number((await age()).match(/^(\d+) s ago$/)?.[1] ?? -1);
  await waitFor(async () => (await seconds()) >= 3, scaled(10000), '"3 s ago"');
  const a = await seconds();
  await waitFor(async () => (await seconds()) > a, scaled(5000), 'the age counting up');
  assert.doesNotMatch(await row('AAPL').getAttribute('class'), /stale/, 'not stale yet');
  await waitFor(async () => /stale/.test(await row('AAPL').getAttribute('class')), scaled(20000), 'stale');
  assert.ok((await seconds()) >= 15, 'stale after 15 s without a price');
  assert.equal(await conn(), 'online', 'the connection itself is fine');
  const p = await lastPrice('AAPL');
  await stack.startStockd();
  await waitPriceChange('AAPL', p, scaled(15000));
  assert.doesNotMatch(await row('AAPL').getAttribute('class'), /stale/);
  assert.match(await age(), /just now|^\d s ago/);
});

test('a server that refuses the login: the page shows the server\'s reason and keeps retrying with backoff', async () => {
  const refusing = await startStack(broker, { stockd: false, gateway: { default_login: '', default_passcode: '' } });
  const p2 = await browser.ctx.newPage();
  try {
    await p2.goto(refusing.url);
    // status and reason read together: an attempt may start any moment
    const shown = () => p2.evaluate(() => [document.getElementById('status').textContent,
      document.getElementById('status-detail').textContent]);
    const attempt = async () => {
      const [status, detail] = await shown();
      const m = status === 'Reconnecting' && detail.match(/^server: access refused; in \d+ s \(attempt (\d+)\)$/);
      return m ? Number(m[1]) : 0;
    };
    const first = await waitFor(attempt, scaled(5000), 'Reconnecting with the server\'s reason');
    await waitFor(async () => (await attempt()) >= first + 2, scaled(15000), 'two more attempts');
    assert.equal((await refusing.metrics()).stomp_sessions, 0);
  } finally {
    await p2.close();
    await refusing.stop();
  }
  browser.problems.length = 0;
});
