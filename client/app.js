// The stock ticker page: the DOM and the STOMP connection. The rules it
// follows (symbols, quotes, formatting, backoff, storage) are in ticker.js.
//
// Connection: one @stomp/stompjs Client per attempt, with stompjs's own
// reconnect off (reconnectDelay 0) so that the backoff, its countdown and the
// Online/Offline button are ours. Every CONNECTED subscribes every symbol
// again; the bridge sends the last known price at once.
import * as T from './ticker.js';

const $ = (id) => document.getElementById(id);
const els = {
  status: $('status'),
  detail: $('status-detail'),
  toggle: $('toggle'),
  form: $('add'),
  input: $('symbol'),
  msg: $('form-msg'),
  rows: $('rows'),
  table: $('quotes'),
  empty: $('empty'),
  endpoint: $('endpoint'),
};

const SVG_NS = 'http://www.w3.org/2000/svg';
const SPARK_W = 100;
const SPARK_H = 24;
const STABLE_MS = 10000; // a connection up this long resets the backoff

const st = {
  symbols: [], // in the order shown
  rows: new Map(), // symbol -> row state
  wantOnline: true,
  client: null, // the current attempt's Client, or null
  subs: new Map(), // symbol -> subscription on the current client
  attempt: 0, // reconnect attempts since the last stable connection
  retryTimer: 0,
  retryAt: 0,
  connectedAt: 0,
  conn: 'connecting', // connecting | online | waiting | offline | failed
  lastError: '',
  storageOk: true,
  netDown: navigator.onLine === false, // the browser's own idea of its network
};

// ---- connection state, shown at all times

const STATUS_TEXT = {
  connecting: 'Connecting\u2026',
  online: 'Online',
  waiting: 'Reconnecting',
  offline: 'Offline',
  failed: 'Unavailable',
};

function setConn(conn) {
  st.conn = conn;
  document.body.dataset.conn = conn;
  if (els.status.textContent !== STATUS_TEXT[conn]) els.status.textContent = STATUS_TEXT[conn];
  els.toggle.textContent = st.wantOnline ? 'Go offline' : 'Go online';
  els.toggle.setAttribute('aria-pressed', String(!st.wantOnline));
  renderDetail();
}

function renderDetail() {
  let text = '';
  if (st.conn === 'waiting') {
    const s = Math.max(0, Math.ceil((st.retryAt - Date.now()) / 1000));
    text = `in ${s} s (attempt ${st.attempt})`;
    if (st.lastError) text = `${st.lastError}; ${text}`;
  } else if (st.conn === 'connecting' && st.lastError) {
    text = st.lastError;
  } else if (st.conn === 'failed') {
    text = st.lastError;
  } else if (st.conn === 'online' && !st.storageOk) {
    text = 'symbols are not saved (storage unavailable)';
  }
  if (st.netDown && st.conn !== 'offline') text = text ? `no network; ${text}` : 'the browser reports no network';
  if (els.detail.textContent !== text) els.detail.textContent = text;
}

// ---- STOMP

function connect() {
  clearTimeout(st.retryTimer);
  st.retryTimer = 0;
  const Client = globalThis.StompJs?.Client;
  if (!Client) {
    st.lastError = 'the STOMP library (vendor/stomp.umd.min.js) did not load';
    setConn('failed');
    return;
  }
  const client = new Client({
    brokerURL: T.endpointUrl(location),
    // no login: stompgate logs page sessions in as its default_login
    connectHeaders: {},
    reconnectDelay: 0,
    connectionTimeout: 10000,
    heartbeatIncoming: 10000,
    heartbeatOutgoing: 10000,
    // a lost heart-beat closes at once rather than waiting on a dead socket
    discardWebsocketOnCommFailure: true,
  });
  st.client = client;
  st.subs.clear();
  client.onConnect = () => {
    if (st.client !== client) return;
    st.connectedAt = Date.now();
    st.lastError = '';
    setConn('online');
    for (const symbol of st.symbols) subscribe(symbol);
  };
  client.onStompError = (frame) => {
    if (st.client !== client) return;
    st.lastError = `server: ${frame.headers.message || 'error'}`;
    renderDetail();
  };
  client.onWebSocketClose = () => {
    if (st.client !== client) return; // an attempt we already gave up on
    st.client = null;
    st.subs.clear();
    client.deactivate(); // stompjs keeps an un-reconnected client "active"
    if (st.wantOnline) scheduleRetry();
    else setConn('offline');
  };
  setConn('connecting');
  client.activate();
}

function scheduleRetry() {
  if (st.connectedAt && Date.now() - st.connectedAt >= STABLE_MS) st.attempt = 0;
  if (st.connectedAt && !st.lastError) st.lastError = 'connection lost';
  if (!st.connectedAt && !st.lastError) st.lastError = 'cannot reach the server';
  st.connectedAt = 0;
  const delay = T.backoffDelay(st.attempt);
  st.attempt += 1;
  st.retryAt = Date.now() + delay;
  st.retryTimer = setTimeout(connect, delay);
  setConn('waiting');
}

function goOffline() {
  st.wantOnline = false;
  clearTimeout(st.retryTimer);
  st.retryTimer = 0;
  const client = st.client;
  st.client = null;
  st.subs.clear();
  st.connectedAt = 0;
  st.lastError = '';
  setConn('offline');
  if (client) client.deactivate(); // DISCONNECT, then the socket closes
}

function goOnline() {
  st.wantOnline = true;
  st.attempt = 0;
  st.lastError = '';
  connect();
}

function subscribe(symbol) {
  const client = st.client;
  if (!client?.connected || st.subs.has(symbol)) return;
  st.subs.set(
    symbol,
    client.subscribe(T.destinationOf(symbol), (message) => {
      if (st.client === client) onQuote(message);
    }),
  );
}

function unsubscribe(symbol) {
  const sub = st.subs.get(symbol);
  st.subs.delete(symbol);
  if (sub && st.client?.connected) sub.unsubscribe();
}

function onQuote(message) {
  const q = T.parseQuote(message.headers.destination, message.body);
  const row = q && st.rows.get(q.symbol);
  if (row) updateRow(row, q);
}

// ---- rows

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function makeRow(symbol) {
  const tr = el('tr');
  tr.dataset.symbol = symbol;
  const th = el('th', 'sym', symbol);
  th.scope = 'row';
  const price = el('td', 'price num');
  const arrow = el('span', 'arrow');
  arrow.setAttribute('aria-hidden', 'true');
  const value = el('span', 'value', 'Retrieving\u2026');
  price.append(arrow, value);
  const change = el('td', 'change num');
  const spark = el('td', 'spark');
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${SPARK_W} ${SPARK_H}`);
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `${symbol}: no prices yet`);
  const line = document.createElementNS(SVG_NS, 'polyline');
  svg.append(line);
  spark.append(svg);
  const age = el('td', 'age');
  const rm = el('td', 'rm');
  const button = el('button', 'remove', 'Remove');
  button.type = 'button';
  button.setAttribute('aria-label', `Remove ${symbol}`);
  button.addEventListener('click', () => removeSymbol(symbol));
  rm.append(button);
  tr.append(th, price, change, spark, age, rm);
  return {
    symbol, tr, arrow, value, change, svg, line, age, button,
    first: null, last: null, prices: [], lastAt: 0, ts: null,
  };
}

function updateRow(r, q) {
  const dir = T.direction(r.last, q.price);
  if (r.first === null) r.first = q.price;
  r.last = q.price;
  r.prices.push(q.price);
  if (r.prices.length > T.HISTORY) r.prices.shift();
  r.lastAt = Date.now();
  r.ts = q.ts;
  r.value.textContent = T.formatPrice(q.price);
  r.tr.dataset.price = String(q.price);
  if (dir !== 'same') {
    r.tr.classList.toggle('up', dir === 'up');
    r.tr.classList.toggle('down', dir === 'down');
    r.arrow.textContent = dir === 'up' ? '\u25b2' : '\u25bc';
    // restart the highlight
    r.tr.classList.remove('flash');
    void r.tr.offsetWidth;
    r.tr.classList.add('flash');
  }
  const ch = T.formatChange(r.first, q.price);
  r.change.textContent = ch.text;
  r.change.classList.toggle('pos', ch.sign > 0);
  r.change.classList.toggle('neg', ch.sign < 0);
  r.line.setAttribute('points', T.sparklinePoints(r.prices, SPARK_W, SPARK_H, 2));
  r.svg.setAttribute(
    'aria-label',
    `${r.symbol}: last ${r.prices.length} prices, ` +
      `low ${T.formatPrice(Math.min(...r.prices))}, high ${T.formatPrice(Math.max(...r.prices))}`,
  );
  if (q.ts) r.age.title = `quote time ${new Date(q.ts).toLocaleTimeString()}`;
  renderAge(r, Date.now());
}

function renderAge(r, now) {
  const text = r.lastAt ? T.formatAge(now - r.lastAt) : '';
  if (r.age.textContent !== text) r.age.textContent = text;
  const stale = st.conn !== 'online' || (r.lastAt ? now - r.lastAt > T.STALE_MS : false);
  r.tr.classList.toggle('stale', Boolean(r.lastAt) && stale);
}

function renderEmpty() {
  const none = st.symbols.length === 0;
  els.empty.hidden = !none;
  els.table.hidden = none;
}

function save() {
  st.storageOk = T.saveSymbols(globalThis.localStorage, st.symbols);
  renderDetail();
}

function addSymbol(symbol) {
  st.symbols.push(symbol);
  const row = makeRow(symbol);
  st.rows.set(symbol, row);
  els.rows.append(row.tr);
  renderEmpty();
  subscribe(symbol);
}

function removeSymbol(symbol) {
  const i = st.symbols.indexOf(symbol);
  if (i < 0) return;
  const row = st.rows.get(symbol);
  const hadFocus = row.tr.contains(document.activeElement);
  unsubscribe(symbol);
  st.symbols.splice(i, 1);
  st.rows.delete(symbol);
  row.tr.remove();
  save();
  renderEmpty();
  showMsg(`${symbol} removed.`, 'info');
  if (hadFocus) {
    // keep the keyboard where it was: the next row's button, else the form
    const next = st.rows.get(st.symbols[i] ?? st.symbols[i - 1]);
    (next ? next.button : els.input).focus();
  }
}

function showMsg(text, kind) {
  els.msg.textContent = text;
  els.msg.className = `form-msg ${kind}`;
  els.input.setAttribute('aria-invalid', String(kind === 'error'));
}

// ---- wiring

els.form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const res = T.checkSymbol(els.input.value, st.symbols);
  if (!res.ok) {
    showMsg(res.error, 'error');
    els.input.focus();
    els.input.select();
    return;
  }
  addSymbol(res.symbol);
  save();
  showMsg(`${res.symbol} added.`, 'info');
  els.input.value = '';
  els.input.focus();
});

els.input.addEventListener('input', () => {
  if (els.msg.classList.contains('error')) showMsg('', 'info');
});

els.toggle.addEventListener('click', () => (st.wantOnline ? goOffline() : goOnline()));

// The browser's own network events: say so, and retry at once when it is back
// (a socket that died meanwhile is found by the heart-beats).
window.addEventListener('online', () => {
  st.netDown = false;
  renderDetail();
  if (st.wantOnline && st.conn === 'waiting') {
    st.attempt = 0;
    connect();
  }
});
window.addEventListener('offline', () => {
  st.netDown = true;
  renderDetail();
});

// Leaving the page: say DISCONNECT rather than drop the socket.
window.addEventListener('pagehide', () => st.client?.deactivate());

setInterval(() => {
  const now = Date.now();
  for (const r of st.rows.values()) renderAge(r, now);
  renderDetail();
}, 1000);

els.endpoint.textContent = T.endpointUrl(location);
for (const symbol of T.loadSymbols(globalThis.localStorage)) addSymbol(symbol);
renderEmpty();
connect();
