// The ticker's logic without the DOM or the network: symbol rules, quote
// parsing, formatting, the sparkline, reconnect backoff and what is kept in
// localStorage. app.js wires it to the page; tests/browser/ticker.test.mjs
// runs it under node.

// The bridge's quote destinations: /queue/stocks.SYM, SYM 1-12 of A-Z 0-9 . - ^
// (the server answers anything else with ERROR, which ends the session, so
// nothing else is ever subscribed).
export const DESTINATION_PREFIX = '/queue/stocks.';
export const SYMBOL_RE = /^[A-Z0-9.^-]{1,12}$/;
export const MAX_SYMBOLS = 50; // well under the bridge's max_subscriptions (256)
export const HISTORY = 60; // prices kept per symbol for the sparkline
export const STORAGE_KEY = 'stompgate.ticker.symbols';
export const STALE_MS = 15000; // no price for this long while online: the row is marked stale

// What the user typed, as a symbol: trimmed and upper-cased ("aapl " -> "AAPL").
export function normalizeSymbol(input) {
  return String(input ?? '').trim().toUpperCase();
}

// { ok: true, symbol } or { ok: false, error } with a message for the page.
export function checkSymbol(input, existing) {
  const symbol = normalizeSymbol(input);
  if (!symbol) return { ok: false, error: 'Type a symbol first, e.g. AAPL.' };
  if (!SYMBOL_RE.test(symbol)) {
    return {
      ok: false,
      error: `"${symbol.slice(0, 20)}" is not a symbol: use 1-12 of A-Z, 0-9, ".", "-" or "^".`,
    };
  }
  if (existing.includes(symbol)) return { ok: false, error: `${symbol} is already in the list.` };
  if (existing.length >= MAX_SYMBOLS) {
    return { ok: false, error: `At most ${MAX_SYMBOLS} symbols: remove one first.` };
  }
  return { ok: true, symbol };
}

export function destinationOf(symbol) {
  return DESTINATION_PREFIX + symbol;
}

// A MESSAGE's destination and body as { symbol, price, ts } (ts: ms since the
// epoch, or null when the body has none, as in the book's {"price":..}); null
// for anything that is not a quote for a valid symbol with a finite price.
export function parseQuote(destination, body) {
  if (typeof destination !== 'string' || !destination.startsWith(DESTINATION_PREFIX)) return null;
  const symbol = destination.slice(DESTINATION_PREFIX.length);
  if (!SYMBOL_RE.test(symbol)) return null;
  let data;
  try {
    data = JSON.parse(body);
  } catch {
    return null;
  }
  if (!data || typeof data !== 'object') return null;
  const price = typeof data.price === 'string' ? Number(data.price) : data.price;
  if (typeof price !== 'number' || !Number.isFinite(price)) return null;
  const ts = Number.isFinite(data.ts) ? data.ts : null;
  return { symbol, price, ts };
}

// Prices with two decimals, as the book's page shows them, grouped ("1,234.50").
const priceFormat = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
export function formatPrice(price) {
  return priceFormat.format(price);
}

// 'up', 'down' or 'same' from the previous price to this one ('same' for the first).
export function direction(previous, price) {
  if (previous === undefined || previous === null || price === previous) return 'same';
  return price > previous ? 'up' : 'down';
}

// The change since the first price seen on this page: { text, sign } with
// sign 1, -1 or 0, e.g. { text: '+1.25 (+0.84%)', sign: 1 }.
export function formatChange(first, price) {
  const diff = price - first;
  // below half a cent the change shows as zero
  const sign = Math.abs(diff) < 0.005 ? 0 : Math.sign(diff);
  const pct = first !== 0 ? (diff / Math.abs(first)) * 100 : 0;
  const abs = priceFormat.format(Math.abs(diff));
  const pctText = `${Math.abs(pct).toFixed(2)}%`;
  const mark = sign > 0 ? '+' : sign < 0 ? '\u2212' : '\u00b1';
  return { text: `${mark}${abs} (${mark}${pctText})`, sign };
}

// "just now", "5 s ago", "3 min ago", "2 h ago".
export function formatAge(ms) {
  if (!Number.isFinite(ms) || ms < 1000) return 'just now';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ago`;
  return `${Math.floor(m / 60)} h ago`;
}

// SVG polyline points for prices in a width x height box (pad px inside the
// edges); the lowest price at the bottom. One price is a flat line.
export function sparklinePoints(prices, width, height, pad = 1) {
  if (!prices.length) return '';
  const min = Math.min(...prices);
  const max = Math.max(...prices);
  const span = max - min;
  const n = prices.length;
  const w = width - 2 * pad;
  const h = height - 2 * pad;
  const pts = prices.map((p, i) => {
    const x = pad + (n === 1 ? w : (i * w) / (n - 1));
    const y = pad + (span === 0 ? h / 2 : h - ((p - min) * h) / span);
    return `${round1(x)},${round1(y)}`;
  });
  if (n === 1) pts.unshift(`${pad},${round1(pad + h / 2)}`);
  return pts.join(' ');
}

function round1(v) {
  return Math.round(v * 10) / 10;
}

// Reconnect delay before attempt n (0 = the first retry): exponential from
// base, capped, with jitter in [50 %, 100 %] so that many pages dropped at
// once do not come back in the same instant. rand() returns [0, 1).
export function backoffDelay(attempt, { base = 500, cap = 30000, rand = Math.random } = {}) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 20));
  return Math.round(ceiling * (0.5 + rand() * 0.5));
}

// The WebSocket endpoint next to the page: wss when the page came over https.
export function endpointUrl(location) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws`;
}

// The saved symbols: valid, unique, at most MAX_SYMBOLS, in their order.
// Whatever is unreadable (no storage, bad JSON, a foreign value) gives [].
export function loadSymbols(storage) {
  let raw;
  try {
    raw = storage?.getItem(STORAGE_KEY);
  } catch {
    return [];
  }
  if (!raw) return [];
  let list;
  try {
    list = JSON.parse(raw);
  } catch {
    return [];
  }
  if (!Array.isArray(list)) return [];
  const out = [];
  for (const item of list) {
    if (typeof item !== 'string') continue;
    const s = normalizeSymbol(item);
    if (SYMBOL_RE.test(s) && !out.includes(s) && out.length < MAX_SYMBOLS) out.push(s);
  }
  return out;
}

// true if saved; false when storage is missing or refuses (private mode, quota).
export function saveSymbols(storage, symbols) {
  try {
    storage.setItem(STORAGE_KEY, JSON.stringify(symbols));
    return true;
  } catch {
    return false;
  }
}
