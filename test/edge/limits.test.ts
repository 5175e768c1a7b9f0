/**
 * Per-client limits: the bucket's arithmetic against a clock the test sets,
 * the capped table's bound, then the limits through real sockets: requests
 * per second (plain and upgrade) answered 429/503 with Retry-After, then let
 * through again once the bucket drains; connections per client.
 */
import net from 'node:net';
import t, { type Test } from 'tap';
import WebSocket from 'ws';
import { createProxy, type WspliceProxy, type RefusedEvent } from '../../src/index.js';
import { Bucket, take } from '../../src/limits/bucket.js';
import { ClientLimiter } from '../../src/limits/limiter.js';
import { resolveClientLimits } from '../../src/limits/options.js';
import { CappedTable } from '../../src/limits/table.js';
import { exchange, proxyAwareBackend, waitFor } from './fixtures/peers.js';

t.test('bucket: rate and burst as nginx limit_req nodelay counts them', async (t) => {
  const r = { rate: 2, burst: 1 };
  const b = new Bucket();
  let now = 1_000;
  t.equal(take(b, r, now), 0, 'first');
  t.equal(take(b, r, now), 0, 'second: the burst');
  t.ok(take(b, r, now) > 0, 'third at once: refused');
  now += 499;
  t.ok(take(b, r, now) > 0, 'not drained yet');
  now += 1;
  t.equal(take(b, r, now), 0, 'after 1/rate s one more fits');
  const strict = new Bucket();
  t.equal(take(strict, { rate: 1, burst: 0 }, 1_000), 0);
  t.equal(take(strict, { rate: 1, burst: 0 }, 1_500), 1, 'burst 0: Retry-After 1 s');
  t.equal(take(strict, { rate: 1, burst: 0 }, 2_000), 0, 'exactly at the rate');
  const slow = new Bucket();
  take(slow, { rate: 0.1, burst: 0 }, 1_000);
  t.equal(take(slow, { rate: 0.1, burst: 0 }, 1_000), 10, 'Retry-After says when (0.1/s: 10 s)');
});

t.test('capped table: bounded, least recently used evicted first', async (t) => {
  const table = new CappedTable<number>(3);
  for (let i = 0; i < 1000; i++) table.touch(`k${i}`, () => i);
  t.equal(table.size, 3);
  t.equal(table.evictions, 997);
  table.touch('k997', () => -1);
  table.touch('new', () => 0);
  t.equal(table.get('k997'), 997, 'touched: kept');
  t.equal(table.get('k998'), undefined, 'oldest: evicted');
});

t.test('options', async (t) => {
  t.equal(resolveClientLimits(undefined), null);
  t.equal(resolveClientLimits({}), null, 'nothing limited');
  t.match(resolveClientLimits({ requestRate: { rate: 5, burst: 2, key: '$http_x_api_key' } }), { requestRate: { rate: 5, burst: 2, key: { kind: 'header', name: 'x-api-key' } }, status: 503 });
  t.throws(() => resolveClientLimits({ status: 500 }), /clientLimits.status: must be 429 or 503/);
  t.throws(() => resolveClientLimits({ requestRate: { rate: 0 } }), /requestRate.rate/);
  t.throws(() => resolveClientLimits({ requestRate: { rate: 1, key: '$cookie_x' } }), /key/);
  t.throws(() => resolveClientLimits({ maxConections: 1 }), /unknown option/);
});

t.test('limiter: a full count table refuses new clients instead of forgetting open connections', async (t) => {
  const l = new ClientLimiter(resolveClientLimits({ maxConnections: 1, maxClients: 2 })!);
  // Sockets that never connect: remoteAddress is read from the handle, so give each a fixed one.
  const socks = ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((a) => {
    const s = new net.Socket();
    Object.defineProperty(s, 'remoteAddress', { value: a });
    return s;
  });
  t.equal(l.admitConnection(socks[0]!), null);
  t.equal(l.admitConnection(socks[1]!), null);
  t.match(l.admitConnection(socks[2]!), { status: 503, reason: /too many clients/ });
  t.match(l.admitConnection(socks[0]!), { reason: /more than 1 connections from 10\.0\.0\.1/ });
  socks[0]!.destroy();
  await waitFor(() => l.stats().tracked === 1);
  t.equal(l.admitConnection(socks[2]!), null, 'a slot freed by a close');
  for (const s of socks) s.destroy();
});

async function setup(t: Test, clientLimits: Record<string, unknown>) {
  const backend = await proxyAwareBackend();
  const proxy: WspliceProxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, clientLimits, timeouts: { drainMs: 500 } });
  const refused: RefusedEvent[] = [];
  proxy.on('refused', (e) => refused.push(e));
  const addr = (await proxy.listen({ host: '127.0.0.1', port: 0 })) as net.AddressInfo;
  t.teardown(async () => {
    await proxy.close();
    await backend.close();
  });
  return { backend, port: addr.port, refused };
}

const GET = 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n';

t.test('requests per second: 429 with Retry-After, upgrades too, then recovery', async (t) => {
  // 0.5/s, burst 1: two pass at once, the third is refused; 2 s later one passes again.
  const { backend, port, refused } = await setup(t, { requestRate: { rate: 0.5, burst: 1 }, status: 429 });
  const a = await exchange(port, [GET]);
  const b = await exchange(port, [GET]);
  const c = await exchange(port, [GET]);
  t.match(a.data.toString(), /^HTTP\/1.1 200/);
  t.match(b.data.toString(), /^HTTP\/1.1 200/);
  t.match(c.data.toString(), /^HTTP\/1.1 429 Too Many Requests\r\n[^]*Retry-After: [12]\r\n/);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  const status = await new Promise<number>((resolve) => {
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => resolve(101));
    ws.on('error', () => {});
  });
  ws.terminate();
  t.equal(status, 429, 'an upgrade is limited like a request');
  t.equal(backend.seen.length, 2, 'refused ones never reach the backend');
  t.match(refused.at(-1), { code: 'WSPLICE_CLIENT_LIMIT', status: 429 });
  // Recovery: poll (bounded) until the bucket lets one through again.
  let ok = false;
  for (let i = 0; i < 40 && !ok; i++) {
    await new Promise((r) => setTimeout(r, 100));
    ok = /^HTTP\/1.1 200/.test((await exchange(port, [GET])).data.toString());
  }
  t.ok(ok, 'a request passes again once the bucket drained');
});

t.test('connections per client: the second concurrent connection gets 503, a close frees the slot', async (t) => {
  const { port, refused } = await setup(t, { maxConnections: 1 });
  const first = net.connect({ host: '127.0.0.1', port });
  await new Promise((r) => first.once('connect', r));
  // The first connection is counted once the proxy has it (accept is asynchronous).
  let second: { data: Buffer; closed: boolean } = { data: Buffer.alloc(0), closed: false };
  for (let i = 0; i < 50; i++) {
    second = await exchange(port, [GET]);
    if (second.data.toString().startsWith('HTTP/1.1 503')) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.match(second.data.toString(), /^HTTP\/1.1 503 Service Unavailable\r\n[^]*Retry-After: 1\r\n/);
  t.match(refused.at(-1), { code: 'WSPLICE_CLIENT_LIMIT', reason: /more than 1 connections/ });
  first.destroy();
  let ok = false;
  for (let i = 0; i < 50 && !ok; i++) {
    ok = /^HTTP\/1.1 200/.test((await exchange(port, [GET])).data.toString());
    if (!ok) await new Promise((r) => setTimeout(r, 20));
  }
  t.ok(ok, 'after the close a new connection is served');
});
