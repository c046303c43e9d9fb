// What stompgate sends with the ticker page's files: Content-Type, the
// security headers, and the caching headers with their 304s. Plain HTTP from
// node against the real bin/stompgate (no browser needed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { cpSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repo, sharedBroker, startStack } from './stack.mjs';

const CLIENT = join(repo, 'client');
const EXPECTED_CSP = {
  'default-src': ["'none'"],
  'script-src': ["'self'"],
  'style-src': ["'self'"],
  'img-src': ["'self'"],
  'connect-src': ["'self'"],
  'base-uri': ["'none'"],
  'form-action': ["'none'"],
  'frame-ancestors': ["'none'"],
};

let broker, real, copy, site;

before(async () => {
  broker = await sharedBroker();
  real = await startStack(broker, { stockd: false });
  // a copy of the client whose files the tests may change
  site = mkdtempSync(join(tmpdir(), 'sg-browser-site-'));
  cpSync(CLIENT, site, { recursive: true });
  copy = await startStack(broker, { stockd: false, gateway: { client_dir: site } });
});

after(async () => {
  const errors = [];
  for (const s of [real, copy]) await s?.stop().catch((e) => errors.push(e));
  await broker?.close().catch((e) => errors.push(e));
  rmSync(site, { recursive: true, force: true });
  if (errors.length) throw errors[0];
});

function get(stack, path, headers = {}, method = 'GET') {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: stack.port, path, method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end();
  });
}

function parseCsp(value) {
  const out = {};
  for (const part of value.split(';')) {
    const [name, ...sources] = part.trim().split(/\s+/);
    if (name) out[name] = sources;
  }
  return out;
}

const FILES = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/index.html', 'index.html', 'text/html; charset=utf-8'],
  ['/app.js', 'app.js', 'application/javascript'],
  ['/ticker.js', 'ticker.js', 'application/javascript'],
  ['/style.css', 'style.css', 'text/css; charset=utf-8'],
  ['/favicon.svg', 'favicon.svg', 'image/svg+xml'],
  ['/vendor/stomp.umd.min.js', 'vendor/stomp.umd.min.js', 'application/javascript'],
];

for (const [path, file, type] of FILES) {
  test(`GET ${path}: ${type}, security and caching headers`, async () => {
    const r = await get(real, path);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], type);
    assert.deepEqual(r.body, readFileSync(join(CLIENT, file)));
    assert.equal(Number(r.headers['content-length']), r.body.length);
    assert.equal(r.headers['x-frame-options'], 'DENY');
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.equal(r.headers['referrer-policy'], 'no-referrer');
    assert.deepEqual(parseCsp(r.headers['content-security-policy']), EXPECTED_CSP);
    assert.equal(r.headers['cache-control'], 'no-cache');
    assert.match(r.headers.etag, /^"[0-9a-f]+-[0-9a-f]+"$/);
    assert.match(r.headers['last-modified'], /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/);
    assert.ok(Math.abs(Date.parse(r.headers.date) - Date.now()) < 60000, 'a Date header');
  });
}

test('the page uses only its own files: relative URLs, no inline script or style (what the CSP allows)', () => {
  const html = readFileSync(join(CLIENT, 'index.html'), 'utf8');
  const urls = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1]);
  assert.deepEqual(urls.sort(), ['app.js', 'favicon.svg', 'style.css', 'vendor/stomp.umd.min.js']);
  assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)[^>]*>/, 'every script has a src');
  assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, 'no inline style or handler');
  for (const f of ['app.js', 'ticker.js']) {
    const js = readFileSync(join(CLIENT, f), 'utf8');
    assert.doesNotMatch(js, /https?:\/\/(?!www\.w3\.org\/2000\/svg)|\beval\(|new Function|innerHTML|setAttribute\('style'/, f);
  }
});

test('make copies the @stomp/stompjs browser bundle unchanged into client/vendor', () => {
  const npm = readFileSync(join(repo, 'node_modules/@stomp/stompjs/bundles/stomp.umd.min.js'));
  assert.deepEqual(readFileSync(join(CLIENT, 'vendor/stomp.umd.min.js')), npm);
  assert.match(readFileSync(join(CLIENT, 'vendor/stompjs-LICENSE.txt'), 'utf8'), /Apache License/);
});

test('the page\'s WebSocket endpoint /ws answers a plain GET with 426', async () => {
  const r = await get(real, '/ws');
  assert.equal(r.status, 426);
});

test('If-None-Match with the current ETag: 304 without a body, for GET and HEAD', async () => {
  const first = await get(real, '/');
  for (const method of ['GET', 'HEAD']) {
    const r = await get(real, '/', { 'If-None-Match': first.headers.etag }, method);
    assert.equal(r.status, 304, method);
    assert.equal(r.body.length, 0);
    assert.equal(r.headers['content-length'], undefined);
    assert.equal(r.headers.etag, first.headers.etag);
    assert.equal(r.headers['last-modified'], first.headers['last-modified']);
    assert.equal(r.headers['cache-control'], 'no-cache');
    assert.equal(r.headers['x-frame-options'], 'DENY');
  }
});

test('If-None-Match: lists, weak tags and * match; another tag or a malformed value gets the file', async () => {
  const { headers: { etag } } = await get(real, '/app.js');
  const cases = [
    [`"nope", ${etag}`, 304],
    [`W/${etag}`, 304],
    ['*', 304],
    ['"nope"', 200],
    [etag.slice(1, -1), 200], // not quoted
    [`${etag.slice(0, -1)}x"`, 200],
    ['"', 200],
  ];
  for (const [value, status] of cases) {
    const r = await get(real, '/app.js', { 'If-None-Match': value });
    assert.equal(r.status, status, value);
    if (status === 200) assert.deepEqual(r.body, readFileSync(join(CLIENT, 'app.js')), value);
  }
});

test('If-Modified-Since: not modified since that date is 304; older, invalid, or overruled by If-None-Match is 200', async () => {
  const { headers } = await get(real, '/style.css');
  const lm = headers['last-modified'];
  const t = Date.parse(lm);
  const cases = [
    [{ 'If-Modified-Since': lm }, 304],
    [{ 'If-Modified-Since': new Date(t + 3600e3).toUTCString() }, 304],
    [{ 'If-Modified-Since': new Date(t - 1000).toUTCString() }, 200],
    [{ 'If-Modified-Since': 'yesterday' }, 200],
    [{ 'If-Modified-Since': `${lm} extra` }, 200],
    // If-None-Match decides alone when present (RFC 9110 13.2.2)
    [{ 'If-None-Match': '"other"', 'If-Modified-Since': lm }, 200],
  ];
  for (const [h, status] of cases) {
    const r = await get(real, '/style.css', h);
    assert.equal(r.status, status, JSON.stringify(h));
  }
});

test('a changed file gets a new ETag and Last-Modified, and the old validators get the new file', async () => {
  const before = await get(copy, '/');
  const page = join(site, 'index.html');
  writeFileSync(page, readFileSync(page, 'utf8').replace('Stock ticker', 'Stock ticker (changed)'));
  const later = new Date(Date.parse(before.headers['last-modified']) + 5000);
  utimesSync(page, later, later);
  const r = await get(copy, '/', { 'If-None-Match': before.headers.etag });
  assert.equal(r.status, 200);
  assert.match(r.body.toString(), /Stock ticker \(changed\)/);
  assert.notEqual(r.headers.etag, before.headers.etag);
  assert.equal(r.headers['last-modified'], later.toUTCString());
  const r2 = await get(copy, '/', { 'If-Modified-Since': before.headers['last-modified'] });
  assert.equal(r2.status, 200);
  assert.equal((await get(copy, '/', { 'If-None-Match': r.headers.etag })).status, 304);
});
