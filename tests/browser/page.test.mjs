// The ticker page in Debian's Chromium against the real stack: RabbitMQ,
// bin/stockd and bin/stompgate (which serves the page and the WebSocket).
// The tests share one browser profile and one stack and run in order: each
// one starts from the page state the previous one left.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sharedBroker, startStack, launchBrowser, waitFor, scaled, sleep, outputPath } from './stack.mjs';

const PRICE_RE = /^\d{1,3}(,\d{3})*\.\d\d$/;

let broker, stack, browser, page, mainResponse;

before(async () => {
  broker = await sharedBroker();
  stack = await startStack(broker);
  browser = await launchBrowser();
  page = await browser.page();
  mainResponse = await page.goto(stack.url);
});

after(async () => {
  const errors = [];
  for (const step of [() => browser?.close(), () => stack?.stop(), () => broker?.close()]) {
    await Promise.resolve().then(step).catch((e) => errors.push(e));
  }
  if (errors.length) throw errors[0];
});

// ---- helpers

const row = (sym) => page.locator(`#rows tr[data-symbol="${sym}"]`);
const priceText = (sym) => row(sym).locator('.value').textContent();
const symbolsShown = () => page.locator('#rows tr').evaluateAll((trs) => trs.map((t) => t.dataset.symbol));
const conn = () => page.evaluate(() => document.body.dataset.conn);
const saved = () => page.evaluate(() => JSON.parse(localStorage.getItem('stompgate.ticker.symbols') || 'null'));

async function add(sym) {
  await page.fill('#symbol', sym);
  await page.press('#symbol', 'Enter');
}

// a numeric price for sym within ms; returns its text
function waitPrice(sym, ms = scaled(5000)) {
  return waitFor(async () => {
    const t = await priceText(sym);
    return PRICE_RE.test(t) && t;
  }, ms, `a numeric price for ${sym}`);
}

// the row's data-price (the exact last price) differs from `from` within ms
function waitPriceChange(sym, from, ms = scaled(15000)) {
  return waitFor(async () => {
    const p = await row(sym).getAttribute('data-price');
    return p !== null && p !== from && p;
  }, ms, `a new price for ${sym} (was ${from})`);
}

function waitConn(state, ms = scaled(15000)) {
  return waitFor(async () => (await conn()) === state, ms, `connection state ${state}`);
}

function assertNoProblems(what) {
  assert.deepEqual(browser.problems, [], `${what}: console errors, page errors or dialogs`);
}

// ---- tests

test('stompgate serves the page at / with its security headers, and it goes Online', async () => {
  assert.equal(mainResponse.status(), 200);
  const h = mainResponse.headers();
  assert.match(h['content-type'], /^text\/html; charset=utf-8$/);
  assert.equal(h['x-frame-options'], 'DENY');
  assert.equal(h['x-content-type-options'], 'nosniff');
  assert.match(h['content-security-policy'], /connect-src 'self'/);
  assert.equal(h['cache-control'], 'no-cache');
  assert.ok(h.etag && h['last-modified'], 'validators for a 304');
  await waitConn('online', scaled(10000));
  assert.equal(await page.textContent('#status'), 'Online');
  assert.equal(await page.textContent('#endpoint'), `ws://127.0.0.1:${stack.port}/ws`);
  assert.equal(await page.isVisible('#empty'), true, 'the empty list says how to start');
  const m = await stack.metrics();
  assert.equal(m.stomp_sessions, 1, 'the page holds one STOMP session');
  assertNoProblems('load');
});

test('add AAPL: a numeric price within 5 s, then it changes; colours, change and sparkline follow', async () => {
  // every price update as the page shows it (a MutationObserver on the row)
  await page.evaluate(() => {
    window.__updates = [];
    new MutationObserver((records) => {
      for (const r of records) {
        const tr = r.target;
        if (tr.dataset.symbol !== 'AAPL') continue;
        window.__updates.push({
          price: Number(tr.dataset.price),
          up: tr.classList.contains('up'),
          down: tr.classList.contains('down'),
          text: tr.querySelector('.value').textContent,
          change: tr.querySelector('.change').textContent,
          points: (tr.querySelector('polyline').getAttribute('points') || '').split(' ').filter(Boolean).length,
        });
      }
    }).observe(document.getElementById('rows'), { subtree: true, attributeFilter: ['data-price'] });
  });
  await add('AAPL');
  assert.deepEqual(await symbolsShown(), ['AAPL']);
  assert.equal(await page.inputValue('#symbol'), '', 'the field is cleared');
  await waitPrice('AAPL');
  const p0 = await row('AAPL').getAttribute('data-price');
  await waitPriceChange('AAPL', p0);
  assert.notEqual(await priceText('AAPL'), 'Retrieving\u2026');
  // a few more updates, then check each one against the one before it
  await waitFor(() => page.evaluate(() => window.__updates.length >= 4), scaled(15000), '4 price updates');
  const ups = await page.evaluate(() => window.__updates);
  const firstPrice = ups[0].price;
  for (const u of ups) assert.equal(u.text.replace(/,/g, ''), u.price.toFixed(2), 'two decimals');
  let seenUp = false, seenDown = false;
  for (let i = 1; i < ups.length; i++) {
    const [a, b] = [ups[i - 1], ups[i]];
    if (b.price > a.price) { assert.ok(b.up && !b.down, `rise ${a.price} -> ${b.price} is green`); seenUp = true; }
    if (b.price < a.price) { assert.ok(b.down && !b.up, `fall ${a.price} -> ${b.price} is red`); seenDown = true; }
    assert.equal(b.points, Math.min(i + 1, 60), 'one sparkline point per price');
    const diff = b.price - firstPrice;
    const sign = Math.abs(diff) < 0.005 ? '\u00b1' : diff > 0 ? '+' : '\u2212';
    assert.ok(b.change.startsWith(`${sign}${Math.abs(diff).toFixed(2)}`), `change since ${firstPrice}: ${b.change}`);
  }
  assert.ok(seenUp || seenDown, 'the price moved');
  assert.match(await row('AAPL').locator('.age').textContent(), /just now|\d+ s ago/);
  assert.deepEqual(await saved(), ['AAPL']);
  assertNoProblems('add');
});

test('a duplicate is refused with a message next to the form, not an alert box', async () => {
  await add('aapl');
  const msg = page.locator('#form-msg');
  assert.equal(await msg.textContent(), 'AAPL is already in the list.');
  assert.match(await msg.getAttribute('class'), /error/);
  assert.equal(await page.getAttribute('#symbol', 'aria-invalid'), 'true');
  assert.deepEqual(await symbolsShown(), ['AAPL']);
  assert.deepEqual(await saved(), ['AAPL']);
  assertNoProblems('duplicate'); // a dialog would be listed here
});

test('invalid symbols are refused in the page and never reach the server', async () => {
  const before = (await stack.metrics()).quote_subscriptions;
  for (const bad of ['BAD SYM', 'TOOLONGSYMBOL', 'A/B', 'AA*', '   ']) {
    await add(bad);
    assert.match(await page.textContent('#form-msg'), /not a symbol|Type a symbol/, bad);
  }
  assert.deepEqual(await symbolsShown(), ['AAPL']);
  assert.equal((await stack.metrics()).quote_subscriptions, before);
  assert.equal(await conn(), 'online', 'no ERROR from the server');
  // typing clears the error
  await page.type('#symbol', 'M');
  assert.equal(await page.textContent('#form-msg'), '');
  await page.fill('#symbol', '');
});

test('remove takes the row away, unsubscribes and forgets the symbol', async () => {
  await add('MSFT');
  await waitPrice('MSFT');
  await waitFor(async () => (await stack.metrics()).quote_subscriptions === 2, scaled(5000), '2 quote subscriptions');
  await page.click('#rows tr[data-symbol="MSFT"] button.remove');
  assert.deepEqual(await symbolsShown(), ['AAPL']);
  assert.deepEqual(await saved(), ['AAPL']);
  assert.equal(await page.textContent('#form-msg'), 'MSFT removed.');
  await waitFor(async () => (await stack.metrics()).quote_subscriptions === 1, scaled(5000), 'UNSUBSCRIBE reached the bridge');
});

test('Offline disconnects from the server; Online reconnects and prices resume', async () => {
  await page.click('#toggle');
  await waitConn('offline', scaled(2000));
  assert.equal(await page.textContent('#status'), 'Offline');
  assert.equal(await page.textContent('#toggle'), 'Go online');
  assert.equal(await page.getAttribute('#toggle', 'aria-pressed'), 'true');
  await waitFor(async () => (await stack.metrics()).stomp_sessions === 0, scaled(5000), 'the session ended');
  const frozen = await row('AAPL').getAttribute('data-price');
  await sleep(scaled(2500)); // stockd moves prices about every second
  assert.equal(await row('AAPL').getAttribute('data-price'), frozen, 'no prices while offline');
  assert.match(await row('AAPL').getAttribute('class'), /stale/, 'the price is marked stale');
  await page.click('#toggle');
  await waitConn('online', scaled(5000));
  assert.equal(await page.textContent('#toggle'), 'Go offline');
  assert.equal((await stack.metrics()).stomp_sessions, 1);
  await waitPriceChange('AAPL', frozen);
  assert.doesNotMatch(await row('AAPL').getAttribute('class'), /stale/);
  assertNoProblems('offline/online');
});

test('a reload restores the symbols from localStorage in their order, revalidating the page (304)', async () => {
  await add('GOOG');
  await add('BRK.B');
  await waitPrice('GOOG');
  const seen = [];
  page.on('response', async (r) => {
    if (new URL(r.url()).pathname === '/') seen.push([await r.request().allHeaders(), await r.allHeaders()]);
  });
  await page.reload();
  assert.deepEqual(await symbolsShown(), ['AAPL', 'GOOG', 'BRK.B']);
  // Chromium reports a revalidated page as its cached 200; what went over the
  // wire shows the 304: the browser sent our ETag back, and the answer had no
  // body (stompgate's 200 always has Content-Length and Content-Type)
  assert.equal(seen.length, 1);
  const [sent, got] = seen[0];
  assert.equal(sent['if-none-match'], mainResponse.headers().etag);
  assert.equal(got.etag, mainResponse.headers().etag);
  assert.equal(got['content-length'], undefined, 'a 304 without a body');
  assert.equal(got['content-type'], undefined);
  await waitConn('online', scaled(10000));
  await Promise.all(['AAPL', 'GOOG', 'BRK.B'].map((s) => waitPrice(s)));
  assertNoProblems('reload');
});

test('usable by keyboard alone: Tab to the field, Enter to add, Tab to Remove, Enter to remove', async () => {
  await page.reload();
  await waitConn('online', scaled(10000));
  await page.evaluate(() => document.activeElement?.blur());
  const focused = () => page.evaluate(() => document.activeElement?.id || document.activeElement?.getAttribute('aria-label') || document.activeElement?.tagName);
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'toggle');
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'symbol');
  await page.keyboard.type('ibm');
  await page.keyboard.press('Enter');
  assert.deepEqual(await symbolsShown(), ['AAPL', 'GOOG', 'BRK.B', 'IBM']);
  assert.equal(await focused(), 'symbol', 'focus stays in the field for the next symbol');
  await page.keyboard.press('Tab');
  assert.equal(await focused(), 'add-btn');
  for (const sym of ['AAPL', 'GOOG', 'BRK.B', 'IBM']) {
    await page.keyboard.press('Tab');
    assert.equal(await focused(), `Remove ${sym}`);
  }
  // a visible focus ring on the focused button
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.equal(outline, 'solid');
  await page.keyboard.press('Shift+Tab'); // back to "Remove BRK.B"
  await page.keyboard.press('Enter');
  assert.deepEqual(await symbolsShown(), ['AAPL', 'GOOG', 'IBM']);
  assert.equal(await focused(), 'Remove IBM', 'focus moves to the next row');
  await page.keyboard.press(' ');
  assert.deepEqual(await symbolsShown(), ['AAPL', 'GOOG']);
  assert.equal(await focused(), 'Remove GOOG', 'the last row removed: focus goes to the one before');
  assertNoProblems('keyboard');
});

test('the CSP allows the page its own WebSocket and nothing else (Chromium enforces connect-src)', async () => {
  assert.deepEqual(await page.evaluate(() => window.__cspViolations), [], 'the page itself needs nothing outside its CSP');
  const other = `ws://127.0.0.1:${stack.broker.amqpPort}/ws`;
  const blocked = await page.evaluate((url) => new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation', (e) => resolve({ directive: e.effectiveDirective, uri: e.blockedURI }), { once: true });
    try { new WebSocket(url); } catch (e) { resolve({ thrown: e.name }); }
    setTimeout(() => resolve(null), 3000);
  }), other);
  assert.ok(blocked, 'a WebSocket to another origin is refused');
  if (!blocked.thrown) assert.equal(blocked.directive, 'connect-src');
  // an inline script is refused too (script-src 'self')
  const inline = await page.evaluate(() => new Promise((resolve) => {
    window.__inlineRan = false;
    document.addEventListener('securitypolicyviolation', (e) => resolve(e.effectiveDirective), { once: true });
    const s = document.createElement('script');
    s.textContent = 'window.__inlineRan = true';
    document.body.append(s);
    setTimeout(() => resolve(null), 1000);
  }));
  assert.equal(inline, 'script-src-elem');
  assert.equal(await page.evaluate(() => window.__inlineRan), false);
  browser.problems.length = 0; // Chromium logs each refusal as a console error
});

test('stompgate restarts: the page shows the lost connection, reconnects with backoff and resubscribes', async () => {
  const before = {};
  for (const s of ['AAPL', 'GOOG']) before[s] = await row(s).getAttribute('data-price');
  await stack.gateway.stop();
  await waitFor(async () => ['waiting', 'connecting'].includes(await conn()), scaled(5000), 'the page notices');
  // "Reconnecting" with a countdown (read together: an attempt may start any moment)
  await waitFor(async () => {
    const [status, detail] = await page.evaluate(() => [document.getElementById('status').textContent,
      document.getElementById('status-detail').textContent]);
    return status === 'Reconnecting' && /in \d+ s \(attempt \d+\)/.test(detail);
  }, scaled(5000), 'Reconnecting in N s (attempt N)');
  await sleep(scaled(1500)); // a failed attempt or two while the server is away
  await stack.startGateway();
  await waitConn('online', scaled(40000)); // the backoff is capped at 30 s
  const m = await stack.metrics();
  assert.equal(m.stomp_sessions, 1);
  await waitFor(async () => (await stack.metrics()).quote_subscriptions === 2, scaled(5000), 'both symbols subscribed again');
  for (const s of ['AAPL', 'GOOG']) await waitPriceChange(s, before[s]);
  // Chromium logs the refused connection attempts; nothing else may be there
  const unexpected = browser.problems.filter((p) => !/WebSocket connection to .* failed/.test(p));
  assert.deepEqual(unexpected, []);
  browser.problems.length = 0;
});

test('readable on a phone: no sideways scrolling at 375 px; screenshots in build/test-output', async () => {
  // a sparkline with some history for the picture
  const points = () => row('AAPL').locator('polyline').evaluate((l) => (l.getAttribute('points') || '').split(' ').length);
  await waitFor(async () => (await points()) >= 8, scaled(15000), '8 AAPL prices');
  await page.screenshot({ path: outputPath('ticker.png'), fullPage: true });
  await page.setViewportSize({ width: 375, height: 740 });
  const fit = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: document.documentElement.clientWidth,
    rows: [...document.querySelectorAll('#rows tr')].map((tr) => tr.getBoundingClientRect().right),
    button: document.querySelector('#rows button.remove').getBoundingClientRect().height,
  }));
  assert.ok(fit.scroll <= fit.width, `page ${fit.scroll} px wide in a ${fit.width} px viewport`);
  for (const right of fit.rows) assert.ok(right <= fit.width, `a row ends at ${right} px`);
  assert.ok(fit.button >= 32, 'buttons big enough for a finger');
  await page.screenshot({ path: outputPath('ticker-phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1024, height: 720 });
});
