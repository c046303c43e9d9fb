// The page served over https uses wss to the same host and port, and its
// CSP's connect-src 'self' allows that in Chromium. A self-signed certificate
// made here; the browser is told to accept it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedBroker, startStack, launchBrowser, waitFor, scaled, freePort } from './stack.mjs';

let broker, stack, browser, certDir, tlsPort;

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'sg-browser-tls-'));
  const key = join(certDir, 'key.pem');
  const crt = join(certDir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', crt, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
  { stdio: 'ignore' });
  tlsPort = await freePort();
  broker = await sharedBroker();
  stack = await startStack(broker, { gateway: { tls_listen: `127.0.0.1:${tlsPort}`, tls_cert: crt, tls_key: key } });
  browser = await launchBrowser({ ignoreHTTPSErrors: true });
});

after(async () => {
  const errors = [];
  for (const step of [() => browser?.close(), () => stack?.stop(), () => broker?.close()]) {
    await Promise.resolve().then(step).catch((e) => errors.push(e));
  }
  rmSync(certDir, { recursive: true, force: true });
  if (errors.length) throw errors[0];
});

test('over https the page connects with wss to its own host and port and gets prices', async () => {
  const page = await browser.page();
  const wss = [];
  page.on('websocket', (ws) => wss.push(ws.url()));
  const res = await page.goto(`https://127.0.0.1:${tlsPort}/`);
  assert.equal(res.status(), 200);
  assert.match(res.headers()['content-security-policy'], /connect-src 'self'/);
  assert.equal(await page.textContent('#endpoint'), `wss://127.0.0.1:${tlsPort}/ws`);
  await waitFor(async () => (await page.evaluate(() => document.body.dataset.conn)) === 'online', scaled(10000), 'online');
  assert.deepEqual(wss, [`wss://127.0.0.1:${tlsPort}/ws`]);
  await page.fill('#symbol', 'AAPL');
  await page.press('#symbol', 'Enter');
  await waitFor(async () => /^\d[\d,]*\.\d\d$/.test(await page.locator('#rows tr[data-symbol="AAPL"] .value').textContent()),
    scaled(5000), 'a price over wss');
  assert.deepEqual(await page.evaluate(() => window.__cspViolations), []);
  assert.deepEqual(browser.problems, []);
});
