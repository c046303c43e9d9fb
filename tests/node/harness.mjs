// Starts the real bin/stompgate against the private broker that make test
// started (SG_BROKER_DIR/broker.env), on a free port, for node's test runner.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export function brokerEnv() {
  const dir = process.env.SG_BROKER_DIR;
  if (!dir) throw new Error('SG_BROKER_DIR is not set: run through make test');
  const env = {};
  for (const line of readFileSync(join(dir, 'broker.env'), 'utf8').split('\n')) {
    const m = line.match(/^([A-Z_]+)=(.*)$/);
    if (m) env[m[1]] = m[2].replace(/^['"]|['"]$/g, '');
  }
  return env;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.on('connect', () => { c.destroy(); resolve(true); });
    c.on('error', () => resolve(false));
  });
}

export async function startGateway(extra = {}) {
  const b = brokerEnv();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sg-node-'));
  const cfg = {
    listen: `127.0.0.1:${port}`,
    broker: `127.0.0.1:${b.BROKER_AMQP_PORT}`,
    broker_user: b.BROKER_USER,
    broker_password: b.BROKER_PASSWORD,
    workers: 1,
    log_level: 'debug',
    client_dir: join(repo, 'client'),
    ...extra,
  };
  const conf = join(dir, 'stompgate.conf');
  writeFileSync(conf, Object.entries(cfg).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  const bin = join(process.env.SG_BIN_DIR || join(repo, 'bin'), 'stompgate');
  const proc = spawn(bin, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const deadline = Date.now() + 10000;
  while (!(await portOpen(port))) {
    if (proc.exitCode !== null) throw new Error(`stompgate exited ${proc.exitCode}:\n${log}`);
    if (Date.now() > deadline) throw new Error(`stompgate did not listen:\n${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    user: b.BROKER_USER,
    password: b.BROKER_PASSWORD,
    log: () => log,
    async stop() {
      let res = { code: proc.exitCode, sig: null };
      if (proc.exitCode === null) {
        const done = new Promise((r) => proc.on('exit', (code, sig) => r({ code, sig })));
        proc.kill('SIGTERM');
        res = await done;
      }
      rmSync(dir, { recursive: true, force: true });
      if (res.sig && res.sig !== 'SIGTERM') throw new Error(`stompgate died by ${res.sig}:\n${log}`);
      return res.code;
    },
  };
}
