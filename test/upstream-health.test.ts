// Active health checks: a backend that starts failing its check is taken out before a client meets
// it, comes back after `rise` passes, and every transition is an event (proxy and diagnostics_channel)
// with the state and last error visible in proxy.upstreams().
import diagnostics from 'node:diagnostics_channel';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { WebSocketServer } from 'ws';
import type { BackendTransition } from '../src/index.js';
import { get, names, tally } from './support/named-backends.js';
import { closeWss, port, startProxy, waitFor } from './support/index.js';

interface Switchable {
  address: string;
  /** The status every request (checks included) is answered with. */
  status: number;
  /** Requests other than the health check's. */
  served: number;
  close(): Promise<void>;
}

async function switchable(name: string): Promise<Switchable> {
  const b: Switchable = { address: '', status: 200, served: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    if (req.url !== '/health') b.served++;
    res.writeHead(b.status, { 'content-type': 'text/plain', 'x-backend': name });
    res.end(name);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  b.close = () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); });
  return b;
}

/** The next transition of `backend`, from the proxy's event. */
function nextTransition(proxy: { once(e: 'upstreamState', f: (x: BackendTransition) => void): unknown; on(e: 'upstreamState', f: (x: BackendTransition) => void): unknown; off(e: 'upstreamState', f: (x: BackendTransition) => void): unknown }, backend: string): Promise<BackendTransition> {
  return new Promise((resolve) => {
    const f = (x: BackendTransition): void => {
      if (x.backend !== backend) return;
      proxy.off('upstreamState', f);
      resolve(x);
    };
    proxy.on('upstreamState', f);
  });
}

t.test('http check: a failing backend is out before any client meets it, and back after rise passes', async (t) => {
  const [a, b] = await Promise.all([switchable('A'), switchable('B')]);
  const proxy = await startProxy({
    upstreams: { u: { servers: [a.address, b.address], healthCheck: { path: '/health', intervalMs: 20, timeoutMs: 1000, rise: 2, fall: 2 } } },
  });
  const seen: BackendTransition[] = [];
  const onDiag = (m: unknown): void => { seen.push(m as BackendTransition); };
  diagnostics.subscribe('wsplice:upstream-state', onDiag);
  t.teardown(async () => {
    diagnostics.unsubscribe('wsplice:upstream-state', onDiag);
    await proxy.close();
    await a.close();
    await b.close();
  });
  t.same(tally(await names(port(proxy), 10)), { A: 5, B: 5 }, 'both in rotation while healthy');

  const out = nextTransition(proxy, a.address);
  a.status = 500; // A's checks (and anything else) now fail
  const down = await out;
  t.same({ healthy: down.healthy, upstream: down.upstream }, { healthy: false, upstream: 'u' });
  t.match(down.reason, /status 500/);
  const servedBefore = a.served;
  const after = await names(port(proxy), 20);
  t.same(tally(after), { B: 20 }, 'every request went to B');
  t.equal(a.served, servedBefore, 'no client request reached A once its check failed');
  const snap = proxy.upstreams()[0]!.backends.find((x) => x.address === a.address)!;
  t.equal(snap.state, 'unhealthy');
  t.equal(snap.healthy, false);
  t.match(snap.lastError, /status 500/, 'the last error is visible per backend');

  const back = nextTransition(proxy, a.address);
  a.status = 200;
  t.equal((await back).healthy, true, 'back in after rise passes');
  t.ok(tally(await names(port(proxy), 10)).A! > 0, 'A takes requests again');
  t.equal(proxy.upstreams()[0]!.backends.find((x) => x.address === a.address)!.state, 'up');
  t.same(seen.filter((x) => x.backend === a.address).map((x) => x.healthy), [false, true], 'diagnostics_channel saw both transitions');
});

t.test('tcp check: a backend that stops listening is taken out', async (t) => {
  const [a, b] = await Promise.all([switchable('A'), switchable('B')]);
  const proxy = await startProxy({ upstreams: { u: { servers: [a.address, b.address], healthCheck: { type: 'tcp', intervalMs: 20, fall: 1 } } } });
  t.teardown(async () => { await proxy.close(); await b.close(); });
  const out = nextTransition(proxy, a.address);
  await a.close();
  t.equal((await out).healthy, false);
  const errors: string[] = [];
  proxy.on('upstreamError', (e) => errors.push(e.code));
  t.same(tally(await names(port(proxy), 10)), { B: 10 });
  t.same(errors, [], 'no client connection was even tried on the dead backend');
  t.match(proxy.upstreams()[0]!.backends[0]!.lastError, /ECONNREFUSED|ECONNRESET|connect/);
});

t.test('websocket check: a real upgrade with its accept verified; a backend that refuses upgrades is out', async (t) => {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const plain = await switchable('P'); // answers 200 to the upgrade: not a WebSocket backend
  const proxy = await startProxy({
    upstreams: { u: { servers: [`127.0.0.1:${port(wss)}`, plain.address], healthCheck: { type: 'websocket', intervalMs: 20, fall: 1 } } },
  });
  t.teardown(async () => { await proxy.close(); await closeWss(wss); await plain.close(); });
  await waitFor(() => proxy.upstreams()[0]!.backends[1]!.state === 'unhealthy', 5000, 'the plain backend out');
  t.equal(proxy.upstreams()[0]!.backends[0]!.state, 'up', 'the WebSocket backend passes');
  t.match(proxy.upstreams()[0]!.backends[1]!.lastError, /upgrade|status|101/);
  t.equal((await get(port(proxy))).status, 426, 'plain requests go to the WebSocket backend (ws answers 426)');
});
