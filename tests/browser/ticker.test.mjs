// client/ticker.js, the page's rules without the DOM, under node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../client/ticker.js';

test('checkSymbol: upper-cases and trims; the bridge grammar 1-12 of A-Z 0-9 . - ^', () => {
  assert.deepEqual(T.checkSymbol('  aapl ', []), { ok: true, symbol: 'AAPL' });
  for (const good of ['A', 'BRK.B', 'BF-B', '^GSPC', '0700', 'ABCDEFGHIJKL']) {
    assert.deepEqual(T.checkSymbol(good, []), { ok: true, symbol: good }, good);
  }
  for (const bad of ['ABCDEFGHIJKLM', 'A B', 'A/B', 'A*', 'A#', 'Ä', 'A\u0000', '.'.repeat(13), 'A_B']) {
    const r = T.checkSymbol(bad, []);
    assert.equal(r.ok, false, bad);
    assert.match(r.error, /is not a symbol/, bad);
  }
  assert.match(T.checkSymbol('', []).error, /Type a symbol/);
  assert.match(T.checkSymbol(null, []).error, /Type a symbol/);
});

test('checkSymbol: a duplicate, in any case, is refused with a message naming it', () => {
  assert.deepEqual(T.checkSymbol('msft', ['AAPL', 'MSFT']), { ok: false, error: 'MSFT is already in the list.' });
});

test('checkSymbol: at most MAX_SYMBOLS', () => {
  const many = Array.from({ length: T.MAX_SYMBOLS }, (_, i) => `S${i}`);
  assert.match(T.checkSymbol('NEW', many).error, new RegExp(`At most ${T.MAX_SYMBOLS}`));
  assert.equal(T.checkSymbol('NEW', many.slice(1)).ok, true);
});

test('parseQuote: the bridge\'s body, the book\'s {"price"} body, and everything else refused', () => {
  assert.deepEqual(
    T.parseQuote('/queue/stocks.AAPL', '{"symbol":"AAPL","price":149.34,"ts":1764770000123}'),
    { symbol: 'AAPL', price: 149.34, ts: 1764770000123 });
  assert.deepEqual(T.parseQuote('/queue/stocks.BRK.B', '{"price":95}'), { symbol: 'BRK.B', price: 95, ts: null });
  assert.deepEqual(T.parseQuote('/queue/stocks.X', '{"price":"1.5"}'), { symbol: 'X', price: 1.5, ts: null });
  for (const [dest, body] of [
    ['/queue/other.AAPL', '{"price":1}'],
    ['/queue/stocks.', '{"price":1}'],
    ['/queue/stocks.bad sym', '{"price":1}'],
    [undefined, '{"price":1}'],
    ['/queue/stocks.AAPL', 'not json'],
    ['/queue/stocks.AAPL', '149.34'],
    ['/queue/stocks.AAPL', 'null'],
    ['/queue/stocks.AAPL', '{"symbol":"AAPL"}'],
    ['/queue/stocks.AAPL', '{"price":"abc"}'],
    ['/queue/stocks.AAPL', '{"price":null}'],
    ['/queue/stocks.AAPL', '{"price":1e400}'],
  ]) {
    assert.equal(T.parseQuote(dest, body), null, `${dest} ${body}`);
  }
});

test('formatPrice: two decimals, grouped', () => {
  assert.equal(T.formatPrice(149.3), '149.30');
  assert.equal(T.formatPrice(0.005), '0.01');
  assert.equal(T.formatPrice(1234567.891), '1,234,567.89');
  assert.equal(T.formatPrice(95), '95.00');
});

test('direction: up, down, same (and same for the first price)', () => {
  assert.equal(T.direction(null, 10), 'same');
  assert.equal(T.direction(undefined, 10), 'same');
  assert.equal(T.direction(10, 10.01), 'up');
  assert.equal(T.direction(10, 9.99), 'down');
  assert.equal(T.direction(10, 10), 'same');
});

test('formatChange: signed amount and percentage since the first price', () => {
  assert.deepEqual(T.formatChange(100, 101.25), { text: '+1.25 (+1.25%)', sign: 1 });
  assert.deepEqual(T.formatChange(200, 150), { text: '\u221250.00 (\u221225.00%)', sign: -1 });
  assert.deepEqual(T.formatChange(50, 50), { text: '\u00b10.00 (\u00b10.00%)', sign: 0 });
  assert.equal(T.formatChange(50, 50.004).sign, 0, 'less than half a cent is no change');
  assert.equal(T.formatChange(0, 1).text, '+1.00 (+0.00%)', 'no division by zero');
});

test('formatAge', () => {
  assert.equal(T.formatAge(0), 'just now');
  assert.equal(T.formatAge(999), 'just now');
  assert.equal(T.formatAge(1000), '1 s ago');
  assert.equal(T.formatAge(59999), '59 s ago');
  assert.equal(T.formatAge(60000), '1 min ago');
  assert.equal(T.formatAge(3 * 3600e3 + 5), '3 h ago');
  assert.equal(T.formatAge(NaN), 'just now');
});

test('sparklinePoints: lowest at the bottom, highest at the top, evenly spaced; flat and single prices', () => {
  assert.equal(T.sparklinePoints([], 100, 20), '');
  assert.equal(T.sparklinePoints([1, 3, 2], 100, 20, 0), '0,20 50,0 100,10');
  assert.equal(T.sparklinePoints([5, 5], 100, 20, 0), '0,10 100,10');
  assert.equal(T.sparklinePoints([7], 100, 20, 2), '2,10 98,10');
  const pts = T.sparklinePoints(Array.from({ length: 60 }, (_, i) => Math.sin(i)), 100, 24, 2).split(' ');
  assert.equal(pts.length, 60);
  for (const p of pts) {
    const [x, y] = p.split(',').map(Number);
    assert.ok(x >= 2 && x <= 98 && y >= 2 && y <= 22, p);
  }
});

test('backoffDelay: doubles from 500 ms to a 30 s cap, with jitter between half and all of it', () => {
  const lo = () => 0;
  const hi = () => 0.999999;
  assert.equal(T.backoffDelay(0, { rand: lo }), 250);
  assert.equal(T.backoffDelay(0, { rand: hi }), 500);
  assert.equal(T.backoffDelay(3, { rand: hi }), 4000);
  assert.equal(T.backoffDelay(6, { rand: hi }), 30000);
  assert.equal(T.backoffDelay(1000, { rand: hi }), 30000);
  assert.equal(T.backoffDelay(1000, { rand: lo }), 15000);
  for (let a = 0; a < 12; a++) {
    const d = T.backoffDelay(a);
    assert.ok(d >= Math.min(30000, 500 * 2 ** a) / 2 && d <= Math.min(30000, 500 * 2 ** a), `${a}: ${d}`);
  }
});

test('endpointUrl: ws next to an http page, wss next to an https page, same host and port', () => {
  assert.equal(T.endpointUrl({ protocol: 'http:', host: '127.0.0.1:8181' }), 'ws://127.0.0.1:8181/ws');
  assert.equal(T.endpointUrl({ protocol: 'https:', host: 'quotes.example:8443' }), 'wss://quotes.example:8443/ws');
  assert.equal(T.endpointUrl({ protocol: 'https:', host: 'quotes.example' }), 'wss://quotes.example/ws');
});

function memoryStorage(initial) {
  const m = new Map(initial === undefined ? [] : [[T.STORAGE_KEY, initial]]);
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), map: m };
}

test('loadSymbols / saveSymbols: a round trip; what is unreadable is dropped, not trusted', () => {
  const s = memoryStorage();
  assert.deepEqual(T.loadSymbols(s), []);
  assert.equal(T.saveSymbols(s, ['AAPL', 'BRK.B']), true);
  assert.deepEqual(T.loadSymbols(s), ['AAPL', 'BRK.B']);
  assert.deepEqual(T.loadSymbols(memoryStorage('not json')), []);
  assert.deepEqual(T.loadSymbols(memoryStorage('{"a":1}')), []);
  assert.deepEqual(T.loadSymbols(memoryStorage('["msft", "MSFT", 7, "bad sym", "<img>", "GOOG"]')), ['MSFT', 'GOOG']);
  const many = JSON.stringify(Array.from({ length: 80 }, (_, i) => `S${i}`));
  assert.equal(T.loadSymbols(memoryStorage(many)).length, T.MAX_SYMBOLS);
  assert.deepEqual(T.loadSymbols(undefined), []);
  const refusing = { getItem: () => { throw new Error('SecurityError'); }, setItem: () => { throw new Error('QuotaExceededError'); } };
  assert.deepEqual(T.loadSymbols(refusing), []);
  assert.equal(T.saveSymbols(refusing, ['AAPL']), false);
  assert.equal(T.saveSymbols(undefined, ['AAPL']), false);
});
