// The real stack for the browser tests: a RabbitMQ node (the one make test
// started, in $SG_BROKER_DIR, or a private one from scripts/broker.sh),
// bin/stockd and bin/stompgate on free ports, and Debian's Chromium driven by
// playwright-core. Nothing here is mocked.
import { spawn, execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { repo, freePort } from '../node/harness.mjs';

export { repo, freePort };

const run = promisify(execFile);
const SCALE = Math.max(Number(process.env.SG_TIMEOUT_SCALE) || 1, 0.1);
const BIN = process.env.SG_BIN_DIR ? join(repo, process.env.SG_BIN_DIR) : join(repo, 'bin');
const BROKER_SH = join(repo, 'scripts', 'broker.sh');
export const OUTPUT_DIR = join(repo, 'build', 'test-output');

// ms times $SG_TIMEOUT_SCALE (slow builds: ASan)
export function scaled(ms) {
  return Math.round(ms * SCALE);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls fn() (sync or async) until it returns a truthy value; that value, or an
// Error naming what after ms.
export async function waitFor(fn, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms: ${what}${last ? ` (last error: ${last.message})` : ''}`);
    }
    await sleep(50);
  }
}

function readEnv(dir) {
  const env = {};
  for (const line of readFileSync(join(dir, 'broker.env'), 'utf8').split('\n')) {
    const m = line.match(/^([A-Z_]+)=(.*)$/);
    if (m) env[m[1]] = m[2].replace(/^['"]|['"]$/g, '');
  }
  return env;
}

class Broker {
  constructor(dir, owned) {
    this.dir = dir;
    this.owned = owned;
    this.env = readEnv(dir);
    this.amqpPort = Number(this.env.BROKER_AMQP_PORT);
    this.base = Number(this.env.BROKER_PORT_BASE);
    this.user = this.env.BROKER_USER;
    this.password = this.env.BROKER_PASSWORD;
  }

  async stop() {
    await run('bash', [BROKER_SH, 'stop', this.dir], { timeout: 120000 });
  }

  // The same node again (same directory, ports and users), ~8 s.
  async start() {
    await run('bash', [BROKER_SH, 'start', this.dir, String(this.base)], { timeout: 180000 });
    this.env = readEnv(this.dir);
  }

  async close() {
    if (!this.owned) return;
    try {
      await this.stop();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

// A RabbitMQ node of the caller's own on a free port base (stop it with close()).
export async function ownBroker() {
  const dir = mkdtempSync(join(tmpdir(), 'sg-browser-broker.'));
  let last;
  for (let i = 0; i < 3; i++) { // a free base can be taken between the check and the bind
    const { stdout } = await run('bash', [BROKER_SH, 'freebase']);
    try {
      await run('bash', [BROKER_SH, 'start', dir, stdout.trim()], { timeout: 180000 });
      return new Broker(dir, true);
    } catch (e) {
      last = e;
    }
  }
  rmSync(dir, { recursive: true, force: true });
  throw last;
}

// make test's node ($SG_BROKER_DIR), else one of our own.
export async function sharedBroker() {
  const dir = process.env.SG_BROKER_DIR;
  return dir ? new Broker(dir, false) : ownBroker();
}

function portOpen(port) {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.on('connect', () => { c.destroy(); resolve(true); });
    c.on('error', () => resolve(false));
  });
}

const SANITIZER_RE = /ERROR: (Address|Leak|Thread|Memory)Sanitizer|:\d+:\d+: runtime error: |UndefinedBehaviorSanitizer/;

// One daemon (stompgate or stockd) with its config file; start() can be called
// again after stop(), with the same config and port.
class Daemon {
  constructor(name, cfg, dir) {
    this.name = name;
    this.cfg = cfg;
    this.conf = join(dir, `${name}.conf`);
    this.logText = '';
    this.proc = null;
  }

  log() {
    return this.logText;
  }

  async start(ready) {
    writeFileSync(this.conf, Object.entries(this.cfg).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
    const from = this.logText.length;
    const proc = spawn(join(BIN, this.name), ['-c', this.conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const add = (d) => { this.logText += d; };
    proc.stdout.on('data', add);
    proc.stderr.on('data', add);
    proc.exited = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
    await waitFor(async () => {
      if (proc.exitCode !== null) throw new Error(`${this.name} exited ${proc.exitCode}:\n${this.logText}`);
      return ready(this.logText.slice(from));
    }, scaled(15000), `${this.name} ready`).catch((e) => {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      throw new Error(`${e.message}\n${this.logText}`);
    });
  }

  // SIGTERM, 10 s, SIGKILL. Throws if it died by a signal nobody sent, needed
  // SIGKILL, or logged a sanitizer report.
  async stop() {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    let res;
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), scaled(10000));
      res = await proc.exited;
      clearTimeout(t);
    } else {
      res = await proc.exited;
    }
    if (res.sig && res.sig !== 'SIGTERM') throw new Error(`${this.name} ended by ${res.sig}:\n${this.tail()}`);
    if (res.code) throw new Error(`${this.name} exited ${res.code}:\n${this.tail()}`);
    if (SANITIZER_RE.test(this.logText)) throw new Error(`${this.name} sanitizer report:\n${this.tail()}`);
  }

  tail(n = 60) {
    return this.logText.split('\n').slice(-n).join('\n');
  }
}

// stockd and stompgate on broker, with queue names of their own (the broker may
// be shared with other runs). The page logs in as stompgate's default_login.
// gateway: config overrides; stockd: overrides, or false for no stockd.
export async function startStack(broker, { gateway = {}, stockd = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sg-browser-'));
  const id = randomUUID().slice(0, 8);
  const work = `stocks.work.browser-${id}`;
  const results = `stocks.result.browser-${id}`;
  const common = {
    broker: `127.0.0.1:${broker.amqpPort}`,
    broker_user: broker.user,
    broker_password: broker.password,
    log_level: 'info',
  };
  const sd = new Daemon('stockd', { ...common, work_queue: work, result_queue: results, ...stockd }, dir);
  const port = await freePort();
  const gw = new Daemon('stompgate', {
    ...common,
    listen: `127.0.0.1:${port}`,
    workers: 1,
    client_dir: join(repo, 'client'),
    default_login: broker.user,
    default_passcode: broker.password,
    quote_work_queue: work,
    quote_results_queue: results,
    ...gateway,
  }, dir);
  const stack = {
    dir, port, broker, stockd: sd, gateway: gw,
    url: `http://127.0.0.1:${port}/`,
    startGateway: () => gw.start(() => portOpen(port)),
    startStockd: () => sd.start((log) => /\bready\b/.test(log)),
    async metrics() {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const out = {};
      for (const m of text.matchAll(/^stompgate_(\w+) (-?\d+)$/gm)) out[m[1]] = Number(m[2]);
      return out;
    },
    async stop() {
      const errors = [];
      for (const d of [gw, sd]) await d.stop().catch((e) => errors.push(e));
      rmSync(dir, { recursive: true, force: true });
      if (errors.length) throw errors[0];
    },
  };
  try {
    if (stockd !== false) await stack.startStockd();
    await stack.startGateway();
  } catch (e) {
    await stack.stop().catch(() => {});
    throw e;
  }
  return stack;
}

// The flags the project runs Chromium with (playwright adds --headless and
// --no-sandbox for headless: true and chromiumSandbox: false; they are named
// here too so the list is the whole story).
export const CHROMIUM_FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// Debian's Chromium with a fresh profile. Every page of the context records
// CSP violations (window.__cspViolations), and the returned object collects
// console errors, page errors and dialogs, which the tests expect none of.
// ignoreHTTPSErrors: accept the test's self-signed certificate (https and wss).
export async function launchBrowser({ viewport = { width: 1024, height: 720 }, ignoreHTTPSErrors = false } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'sg-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.SG_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    chromiumSandbox: false,
    args: CHROMIUM_FLAGS,
    viewport,
    ignoreHTTPSErrors,
    timeout: scaled(30000),
  });
  const problems = [];
  await ctx.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__cspViolations.push({ directive: e.effectiveDirective, uri: e.blockedURI });
    });
  });
  const watch = (page) => {
    page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('dialog', (d) => { problems.push(`dialog: ${d.type()} ${d.message()}`); d.dismiss(); });
  };
  ctx.pages().forEach(watch);
  ctx.on('page', watch);
  return {
    ctx,
    problems,
    page: async () => ctx.pages()[0] || ctx.newPage(),
    async close() {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function outputPath(name) {
  mkdirSync(OUTPUT_DIR, { recursive: true });
  return join(OUTPUT_DIR, name);
}
