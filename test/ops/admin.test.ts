/**
 * The admin listener: /metrics parsed by an independent Prometheus text parser
 * must count exactly the traffic this test made; /healthz, /readyz, /status.
 */
import { createRequire } from 'node:module';
import http from 'node:http';
import net, { type Socket } from 'node:net';
import t from 'tap';
import WebSocket from 'ws';
import { startAdmin } from '../../src/admin/index.js';
import { createProxy } from '../../src/index.js';
import { closeWss, port, rawBackend, respondOnce, upgradeHead, waitFor, wsEcho } from '../helpers.js';

interface Sample { value?: string; labels?: Record<string, string>; count?: string }
interface Family { name: string; type: string; metrics: Sample[] }
const parseText = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];
/**
 * The parser folds a labelled histogram's series into one sample; read as
 * untyped, each of _bucket, _sum and _count is a family with its labels.
 */
function parsePrometheus(text: string): Family[] {
  return parseText(text.replace(/^# TYPE (\S+) histogram$/gm, '# TYPE $1 untyped'));
}

function sum(families: Family[], name: string, labels: Record<string, string> = {}): number {
  // Untyped series of one name may come as several families: add them all.
  const fams = families.filter((x) => x.name === name);
  if (fams.length === 0) throw new Error(`no metric ${name}`);
  let total = 0;
  for (const m of fams.flatMap((f) => f.metrics)) {
    if (Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)) total += Number(m.value ?? m.count);
  }
  return total;
}

async function get(p: number, path: string): Promise<{ status: number; body: string; type: string }> {
  const res = await fetch(`http://127.0.0.1:${p}${path}`);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') ?? '' };
}

/** A raw client exchange that counts the bytes it wrote and read itself. */
const wire = { up: 0, down: 0 };
function rawClient(p: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s: Socket = net.connect({ host: '127.0.0.1', port: p }, () => s.write(data));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', reject);
    s.on('close', () => {
      wire.up += s.bytesWritten;
      wire.down += s.bytesRead;
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

t.test('/metrics counts what the test did', async (t) => {
  const wss = await wsEcho('a');
  const http = await rawBackend(respondOnce('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello'));
  const rejecting = await rawBackend(respondOnce('HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno\n'));
  const proxy = createProxy({
    upstreams: { ws: { servers: [`127.0.0.1:${port(wss)}`] }, http: { servers: [`127.0.0.1:${http.port}`] }, rej: { servers: [`127.0.0.1:${rejecting.port}`] } },
    routes: [{ path: '/ws', upstream: 'ws' }, { path: '/api', upstream: 'http' }, { path: '/reject', upstream: 'rej' }],
  });
  const addr = await proxy.listen({ host: '127.0.0.1', port: 0 });
  const admin = await startAdmin(proxy, '127.0.0.1:0');
  const ap = (admin.address as net.AddressInfo).port;
  t.teardown(async () => {
    await admin.close();
    await proxy.close();
    await closeWss(wss);
    await http.close();
    await rejecting.close();
  });
  const pp = port(proxy);
  const listener = `127.0.0.1:${(addr as net.AddressInfo).port}`;

  for (let i = 0; i < 3; i++) {
    t.match(await rawClient(pp, 'GET /api/x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200/);
  }
  t.match(await rawClient(pp, 'GET /nowhere HTTP/1.1\r\nHost: a.test\r\n\r\n'), /^HTTP\/1\.1 404/);
  t.match(await rawClient(pp, upgradeHead('/ws').replace('Version: 13', 'Version: 8')), /^HTTP\/1\.1 426/);
  t.match(await rawClient(pp, upgradeHead('/reject')), /^HTTP\/1\.1 400/);
  for (let i = 0; i < 2; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${pp}/ws`);
    await new Promise((r) => ws.once('open', r));
    ws.send('whoami');
    await new Promise((r) => ws.once('message', r));
    ws.close();
    await new Promise((r) => ws.once('close', r));
    const sock = (ws as unknown as { _socket: Socket })._socket;
    wire.up += sock.bytesWritten;
    wire.down += sock.bytesRead;
  }
  await waitFor(() => proxy.stats().connections === 0, 5000, 'every connection closed');

  const res = await get(ap, '/metrics');
  t.equal(res.status, 200);
  t.match(res.type, /^text\/plain; version=0\.0\.4/);
  const m = parsePrometheus(res.body);
  t.equal(sum(m, 'wsplice_connections_total', { listener }), 8, 'eight connections on the listener');
  t.equal(sum(m, 'wsplice_connections_open'), 0);
  t.equal(sum(m, 'wsplice_requests_total', { class: '2xx' }), 3);
  t.equal(sum(m, 'wsplice_requests_total', { class: '4xx' }), 3, '404, 426 and the relayed 400');
  t.equal(sum(m, 'wsplice_requests_total', { class: '1xx' }), 2, 'two 101s');
  t.equal(sum(m, 'wsplice_handshakes_total', { outcome: 'accepted' }), 2);
  t.equal(sum(m, 'wsplice_handshakes_total', { outcome: 'refused', code: 'WSPLICE_WS_VERSION' }), 1);
  t.equal(sum(m, 'wsplice_handshakes_total', { outcome: 'rejected_by_backend', code: '400' }), 1);
  t.equal(sum(m, 'wsplice_tunnels_total'), 2);
  t.equal(sum(m, 'wsplice_tunnels_open'), 0);
  t.equal(sum(m, 'wsplice_tunnel_closes_total'), 2);
  t.equal(sum(m, 'wsplice_bytes_total', { direction: 'up' }), wire.up, 'bytes from clients, as the clients counted them');
  t.equal(sum(m, 'wsplice_bytes_total', { direction: 'down' }), wire.down, 'bytes to clients, as the clients counted them');
  t.equal(sum(m, 'wsplice_upstream_connect_seconds_count', { backend: `127.0.0.1:${http.port}` }), 3, 'one connect observed per request');
  t.equal(sum(m, 'wsplice_upstream_response_head_seconds_count', { backend: `127.0.0.1:${port(wss)}` }), 2);
  t.equal(sum(m, 'wsplice_backend_up', { upstream: 'ws' }), 1);
  t.equal(sum(m, 'wsplice_relay_info', { kind: proxy.relayKind }), 1);
  t.equal(sum(m, 'wsplice_reloads_total'), 0);
  t.ok(m.some((f) => f.name === 'process_cpu_seconds_total'), 'process metrics');
});

t.test('/healthz, /readyz, /status; /readyz is 503 while draining', async (t) => {
  const backend = await rawBackend(() => {}); // never answers: the exchange stays open during the drain
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, timeouts: { drainMs: 10_000 } });
  const admin = await startAdmin(proxy, '127.0.0.1:0');
  const ap = (admin.address as net.AddressInfo).port;
  t.teardown(async () => {
    await admin.close();
    await backend.close();
  });
  t.equal((await get(ap, '/healthz')).status, 200);
  t.equal((await get(ap, '/readyz')).status, 503, 'not ready before listening');
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  t.equal((await get(ap, '/readyz')).status, 200, 'ready once listening');
  const status = JSON.parse((await get(ap, '/status')).body) as { ready: boolean; stats: { connections: number }; upstreams: Record<string, Array<{ address: string }>> };
  t.equal(status.ready, true);
  t.same(status.upstreams.b!.map((b) => b.address), [`127.0.0.1:${backend.port}`]);

  const client = net.connect({ host: '127.0.0.1', port: port(proxy) });
  client.on('error', () => {});
  client.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
  await waitFor(() => backend.received.length === 1 && backend.received[0]!.includes('\r\n\r\n'), 5000, 'the request upstream');
  const closed = proxy.close();
  t.equal((await get(ap, '/readyz')).status, 503, 'draining: not ready');
  t.equal((await get(ap, '/healthz')).status, 200, 'still alive while draining');
  t.equal(JSON.parse((await get(ap, '/status')).body).stats.connections, 1, 'the exchange is still open');
  backend.sockets[0]!.end('HTTP/1.1 204 No Content\r\n\r\n');
  await closed;
  client.destroy();
  t.equal((await get(ap, '/nope')).status, 404);
});

t.test('an admin port in use is a clear error', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => blocker.close());
  const proxy = createProxy({ upstreams: { b: { servers: ['127.0.0.1:1'] } } });
  await t.rejects(startAdmin(proxy, `127.0.0.1:${(blocker.address() as net.AddressInfo).port}`), /admin listener 127\.0\.0\.1:\d+: address already in use \(EADDRINUSE\)/);
  await t.rejects(startAdmin(proxy, "nonsense:port:x"), /admin listen: expects/);
});

t.test('wsplice_backend_up follows the active health checks and the configuration (0: unhealthy or down)', async (t) => {
  let status = 200;
  const flaky = http.createServer((_req, res) => { res.writeHead(status); res.end(); });
  const steady = http.createServer((_req, res) => res.end('ok'));
  await Promise.all([flaky, steady].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))));
  const [fa, sa] = [flaky, steady].map((s) => `127.0.0.1:${port(s)}`);
  const proxy = createProxy({
    upstreams: {
      u: { servers: [fa!, sa!, { address: '127.0.0.1:1', down: true }], healthCheck: { path: '/health', intervalMs: 20, timeoutMs: 1000, rise: 1, fall: 1 } },
    },
  });
  const admin = await startAdmin(proxy, '127.0.0.1:0');
  const ap = (admin.address as net.AddressInfo).port;
  t.teardown(async () => {
    await admin.close();
    await proxy.close();
    for (const s of [flaky, steady]) { s.closeAllConnections(); s.close(); }
  });
  const up = async (backend: string): Promise<number> => sum(parsePrometheus((await get(ap, '/metrics')).body), 'wsplice_backend_up', { upstream: 'u', backend });
  t.equal(await up(fa!), 1, 'a healthy backend: 1');
  t.equal(await up('127.0.0.1:1'), 0, 'a backend down by configuration: 0');
  const out = new Promise<void>((r) => proxy.on('upstreamState', (e) => { if (e.backend === fa && !e.healthy) r(); }));
  status = 500;
  await out;
  t.equal(await up(fa!), 0, 'the health check took it out: 0');
  t.equal(await up(sa!), 1, 'the other stays 1');
  const back = new Promise<void>((r) => proxy.on('upstreamState', (e) => { if (e.backend === fa && e.healthy) r(); }));
  status = 200;
  await back;
  t.equal(await up(fa!), 1, 'back after rise: 1');
});
