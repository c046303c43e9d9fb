// Interop: the real @stomp/stompjs client (node + ws) against the real
// stompgate and RabbitMQ.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@stomp/stompjs';
import WebSocket from 'ws';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { startGateway, brokerEnv } from './harness.mjs';

let gw;
before(async () => { gw = await startGateway(); });
after(async () => { assert.equal(await gw.stop(), 0, 'stompgate exits 0 on SIGTERM'); });

function makeClient(extra = {}) {
  return new Client({
    webSocketFactory: () => new WebSocket(gw.url, ['v12.stomp', 'v11.stomp', 'v10.stomp']),
    connectHeaders: { login: gw.user, passcode: gw.password },
    reconnectDelay: 0,
    heartbeatIncoming: 0,
    heartbeatOutgoing: 0,
    ...extra,
  });
}

function connected(client) {
  return new Promise((resolve, reject) => {
    client.onConnect = (frame) => resolve(frame);
    client.onStompError = (frame) => reject(new Error(frame.headers.message));
    client.onWebSocketError = (e) => reject(e);
    client.activate();
  });
}

function withTimeout(p, ms, what) {
  return Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms))]);
}

test('stompjs connects with STOMP 1.2 and disconnects cleanly', async () => {
  const client = makeClient();
  const frame = await withTimeout(connected(client), 5000, 'CONNECTED');
  assert.equal(frame.headers.version, '1.2');
  assert.match(frame.headers.session, /^[0-9a-f-]{36}$/);
  assert.match(frame.headers.server, /^stompgate\//);
  let closeCode = null;
  client.onWebSocketClose = (ev) => { closeCode = ev.code; };
  await client.deactivate();
  assert.equal(client.connected, false);
  assert.equal(closeCode, 1000, 'clean WebSocket close');
});

test('stompjs with wrong credentials gets ERROR access refused', async () => {
  const client = makeClient({ connectHeaders: { login: gw.user, passcode: 'wrong' } });
  await assert.rejects(withTimeout(connected(client), 5000, 'ERROR'), /access refused/);
  await client.deactivate();
});

test('stompjs publishes and subscribes through stompgate (topic, queue with receipt)', async () => {
  const sub = makeClient();
  const pub = makeClient();
  await withTimeout(Promise.all([connected(sub), connected(pub)]), 5000, 'connect');
  const got = [];
  const two = new Promise((resolve) => {
    sub.subscribe('/topic/node.interop', (m) => { got.push(['topic', m.body, m.headers]); if (got.length === 2) resolve(); });
    sub.subscribe('/queue/node-interop-q', (m) => { got.push(['queue', m.body, m.headers]); if (got.length === 2) resolve(); });
  });
  // let the subscriptions reach the broker: a receipt on a later frame proves ordering
  const ready = new Promise((resolve) => sub.watchForReceipt('sub-ready', resolve));
  sub.subscribe('/topic/node.sync', () => {}, { receipt: 'sub-ready' });
  await withTimeout(ready, 5000, 'subscription receipt');
  const receipt = new Promise((resolve) => pub.watchForReceipt('q1', resolve));
  pub.publish({ destination: '/queue/node-interop-q', body: 'to the queue', headers: { receipt: 'q1', 'x-custom': 'yes' } });
  await withTimeout(receipt, 5000, 'RECEIPT after broker confirm');
  pub.publish({ destination: '/topic/node.interop', body: 'to the topic', headers: { 'content-type': 'text/plain' } });
  await withTimeout(two, 5000, 'two messages');
  const byKind = Object.fromEntries(got.map(([k, body, h]) => [k, { body, h }]));
  assert.equal(byKind.topic.body, 'to the topic');
  assert.equal(byKind.topic.h.destination, '/topic/node.interop');
  assert.equal(byKind.topic.h['content-type'], 'text/plain');
  assert.equal(byKind.queue.body, 'to the queue');
  assert.equal(byKind.queue.h['x-custom'], 'yes');
  await Promise.all([sub.deactivate(), pub.deactivate()]);
});

test('stompjs splits a 100 KiB frame into 8 KiB WebSocket messages and it arrives whole', async () => {
  const sub = makeClient();
  const pub = makeClient({ splitLargeFrames: true, maxWebSocketChunkSize: 8 * 1024 });
  await withTimeout(Promise.all([connected(sub), connected(pub)]), 5000, 'connect');
  const body = 'x'.repeat(100 * 1024 - 7) + 'the-end';
  const got = new Promise((resolve) => sub.subscribe('/topic/node.big', (m) => resolve(m.body)));
  const ready = new Promise((resolve) => sub.watchForReceipt('big-ready', resolve));
  sub.subscribe('/topic/node.unused', () => {}, { receipt: 'big-ready' });
  await withTimeout(ready, 5000, 'receipt');
  pub.publish({ destination: '/topic/node.big', body });
  const received = await withTimeout(got, 5000, 'big message');
  assert.equal(received.length, body.length);
  assert.equal(received, body);
  await Promise.all([sub.deactivate(), pub.deactivate()]);
});

// A STOMP ERROR frame (or a dropped socket) rejects: a test fails with the server's message
// instead of waiting for its timeout.
function failures(client) {
  return new Promise((_, reject) => {
    client.onStompError = (frame) => reject(new Error(`ERROR: ${frame.headers.message}`));
    client.onWebSocketClose = (ev) => reject(new Error(`WebSocket closed ${ev.code}`));
  });
}

// The durable queues these tests declare are removed over AMQP (amqp-tools).
function deleteQueue(destination) {
  const name = destination.replace(/^\/queue\//, '');
  try {
    execFileSync('amqp-delete-queue', [`--url=${brokerEnv().BROKER_URL}`, `--queue=${name}`],
      { stdio: 'ignore', timeout: 10000 });
  } catch {
    // cleanup only: a failure here must not hide the test's own result
  }
}

async function closeAll(...clients) {
  for (const c of clients) c.onWebSocketClose = () => {};
  await Promise.all(clients.map((c) => c.deactivate()));
}

test('stompjs publishes with a receipt to a /queue nobody declared yet, then a subscriber gets it', async () => {
  const q = `/queue/node-sendfirst-${randomUUID()}`;
  const pub = makeClient();
  const sub = makeClient();
  try {
    await withTimeout(Promise.all([connected(pub), connected(sub)]), 5000, 'connect');
    const pubFailed = failures(pub);
    const subFailed = failures(sub);
    const receipt = new Promise((resolve) => pub.watchForReceipt('sf-1', resolve));
    pub.publish({ destination: q, body: 'stored for later', headers: { receipt: 'sf-1' } });
    await withTimeout(Promise.race([receipt, pubFailed]), 5000, 'RECEIPT for the SEND');
    const got = new Promise((resolve) => sub.subscribe(q, (m) => resolve(m)));
    const m = await withTimeout(Promise.race([got, subFailed]), 5000, 'stored message');
    assert.equal(m.body, 'stored for later');
    assert.equal(m.headers.destination, q);
  } finally {
    await closeAll(pub, sub);
    deleteQueue(q);
  }
});

test('stompjs NACK redelivers with redelivered:true, then ACK settles it', async () => {
  const q = `/queue/node-nack-${randomUUID()}`;
  const c = makeClient();
  try {
    await withTimeout(connected(c), 5000, 'connect');
    const failed = failures(c);
    const seen = [];
    let settled;
    const done = new Promise((resolve) => { settled = resolve; });
    const ready = new Promise((resolve) => c.watchForReceipt('nack-sub', resolve));
    c.subscribe(q, (m) => {
      seen.push({ body: m.body, redelivered: m.headers.redelivered });
      if (seen.length === 1) m.nack();
      else { m.ack(); settled(); }
    }, { ack: 'client-individual', receipt: 'nack-sub' });
    await withTimeout(Promise.race([ready, failed]), 5000, 'subscription receipt');
    const sent = new Promise((resolve) => c.watchForReceipt('nack-pub', resolve));
    c.publish({ destination: q, body: 'nack me', headers: { receipt: 'nack-pub' } });
    await withTimeout(Promise.race([sent, failed]), 5000, 'RECEIPT for the SEND');
    await withTimeout(Promise.race([done, failed]), 5000, 'redelivery');
    await new Promise((r) => setTimeout(r, 500)); // acknowledged: nothing more comes
    assert.deepEqual(seen, [
      { body: 'nack me', redelivered: 'false' },
      { body: 'nack me', redelivered: 'true' },
    ]);
  } finally {
    await closeAll(c);
    deleteQueue(q);
  }
});
