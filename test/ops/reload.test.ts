/**
 * proxy.reload(): 100 tunnels carry checksummed traffic across a reload that
 * replaces their backend; no byte is lost, they stay on the backend they
 * started with, and new connections follow the new options. Invalid options
 * change nothing and say why, every problem at once.
 */
import http from 'node:http';
import type { Socket } from 'node:net';
import t from 'tap';
import type WebSocket from 'ws';
import { createRequire } from 'node:module';
import { ConfigErrors, createProxy, ProxyMetrics, type ReloadEvent } from '../../src/index.js';
import { checksummedStream, closeWss, httpBackend, httpGet, openWs, port, waitFor, whoami, wsEcho } from '../support/index.js';

interface Family { name: string; metrics: Array<{ value?: string; labels?: Record<string, string> }> }
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => Family[];

function sample(families: Family[], name: string, labels: Record<string, string> = {}): number {
  const m = families.find((f) => f.name === name)?.metrics.find((x) => Object.entries(labels).every(([k, v]) => x.labels?.[k] === v));
  if (m === undefined) throw new Error(`no ${name} ${JSON.stringify(labels)}`);
  return Number(m.value);
}

const TUNNELS = 100;
const MESSAGES = 20;

t.test('reload under load: no byte lost, old tunnels keep their backend, new ones follow the new options', async (t) => {
  const a = await wsEcho('a');
  const b = await wsEcho('b');
  const proxy = createProxy({ upstreams: { app: { servers: [`127.0.0.1:${port(a)}`] } }, timeouts: { idleMs: 30_000 } });
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  const clients: WebSocket[] = [];
  t.teardown(async () => {
    for (const c of clients) c.terminate();
    await proxy.close();
    await closeWss(a);
    await closeWss(b);
  });
  const url = `ws://127.0.0.1:${port(proxy)}/`;
  for (let i = 0; i < TUNNELS; i++) clients.push(await openWs(url));
  for (const c of clients) t.equal(await whoami(c), 'a');
  const events: ReloadEvent[] = [];
  proxy.on('reload', (e) => events.push(e));
  t.equal(proxy.generation, 1);
  const metrics = new ProxyMetrics(proxy, { processMetrics: false });
  t.teardown(() => metrics.detach());

  let reloaded!: () => void;
  const mid = new Promise<void>((r) => (reloaded = r));
  const streams = clients.map((c) => checksummedStream(c, MESSAGES, mid));
  // Half of every stream is in flight: swap the backend, and the idle timeout with it.
  proxy.reload({ upstreams: { app: { servers: [`127.0.0.1:${port(b)}`] } }, timeouts: { idleMs: 5_000 } });
  reloaded();
  const results = await Promise.all(streams);
  let intact = 0;
  for (const [sent, got] of results) if (sent === got) intact++;
  t.equal(intact, TUNNELS, 'every tunnel echoed exactly what it sent');
  t.equal(proxy.stats().tunnels, TUNNELS, 'no tunnel was closed by the reload');
  for (const c of clients.slice(0, 5)) t.equal(await whoami(c), 'a', 'an old tunnel stays on its backend');
  const fresh = await openWs(url);
  clients.push(fresh);
  t.equal(await whoami(fresh), 'b', 'a new connection goes to the new backend');
  t.equal(proxy.options.timeouts.idleMs, 5_000);
  t.equal(proxy.groups.get('app')?.backends[0]?.label, `127.0.0.1:${port(b)}`);
  t.same(events, [{ ok: true, generation: 2 }]);

  // An invalid configuration changes nothing, and names every problem.
  const bad = { upstreams: { app: { servers: ['not an address'] } }, routes: [{ path: '/', upstream: 'nope' }], timeouts: { idleMs: -1 } };
  const err = t.throws(() => proxy.reload(bad)) as unknown;
  t.ok(err instanceof ConfigErrors, 'every problem at once');
  t.ok((err as ConfigErrors).issues.length >= 2, 'more than one problem reported');
  t.equal(proxy.generation, 2);
  t.equal(events.length, 2);
  t.match(events[1], { ok: false, generation: 2, error: /servers/ });
  t.equal(proxy.options.timeouts.idleMs, 5_000, 'the last good options stay');
  const after = await openWs(url);
  clients.push(after);
  t.equal(await whoami(after), 'b', 'still the last good configuration');
  await waitFor(() => proxy.stats().tunnels === TUNNELS + 2, 5000, 'all tunnels open');
  const families = parsePrometheus(await metrics.text());
  t.equal(sample(families, 'wsplice_reloads_total', { result: 'ok' }), 1, 'one reload counted ok');
  t.equal(sample(families, 'wsplice_reloads_total', { result: 'error' }), 1, 'one counted as an error');
  t.equal(sample(families, 'wsplice_config_generation'), 2);
  for (const c of clients.slice(0, 5)) t.equal(await whoami(c), 'a', 'old tunnels still on their backend after the refused reload');
});

t.test('reload: new connections follow the new routes; a keep-alive one finishes its next exchange on the old ones, then closes', async (t) => {
  const named = (name: string) => httpBackend((_req, res) => (res.end(name), true));
  const one = await named('one');
  const two = await named('two');
  const proxy = createProxy({ upstreams: { one: { servers: [`127.0.0.1:${one.port}`] } } });
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(async () => {
    agent.destroy();
    await proxy.close();
    await one.close();
    await two.close();
  });
  const kept = (path: string) => httpGet(port(proxy), path, { agent });
  const fresh = (path: string) => httpGet(port(proxy), path, { agent: false });
  const first = await kept('/x');
  t.equal(first.body, 'one');
  t.not(first.headers.connection, 'close', 'kept alive');
  proxy.reload({
    upstreams: { one: { servers: [`127.0.0.1:${one.port}`] }, two: { servers: [`127.0.0.1:${two.port}`] } },
    routes: [{ path: '/x', upstream: 'two' }, { path: '/', upstream: 'one' }],
  });
  t.equal((await fresh('/x')).body, 'two', 'a new connection: /x follows the new route');
  t.equal((await fresh('/y')).body, 'one', '/y on the default');
  const old = await kept('/x');
  t.equal(old.body, 'one', 'the old keep-alive connection: its next exchange on the old routes');
  t.equal(old.headers.connection, 'close', '... and then it closes');
  t.equal((await kept('/x')).body, 'two', 'the agent reconnects: the new routes');
});

t.test('reload with keep-alive pools: the old pool idle upstream connections are closed, the new backend gets its own', async (t) => {
  const one = await httpBackend((_req, res) => (res.end('one'), true));
  const two = await httpBackend((_req, res) => (res.end('two'), true));
  const open = new Set<Socket>();
  one.server.on('connection', (s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
  });
  const keepalive = { idle: 4 };
  const proxy = createProxy({ upstreams: { app: { servers: [`127.0.0.1:${one.port}`], keepalive } } });
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => {
    await proxy.close();
    await one.close();
    await two.close();
  });
  for (let i = 0; i < 3; i++) t.equal((await httpGet(port(proxy), '/', { agent: false })).body, 'one');
  await waitFor(() => proxy.stats().upstreamIdle === 1, 5000, 'one idle pooled connection');
  t.equal(open.size, 1);
  proxy.reload({ upstreams: { app: { servers: [`127.0.0.1:${two.port}`], keepalive } } });
  await waitFor(() => open.size === 0, 5000, 'the old backend sees its pooled connection closed');
  for (let i = 0; i < 3; i++) t.equal((await httpGet(port(proxy), '/', { agent: false })).body, 'two');
  t.equal(proxy.stats().upstreamReused, 2, 'the new pool reuses its own connection');
});

t.test('reload after close is refused', async (t) => {
  const proxy = createProxy({ upstreams: { u: { servers: ['127.0.0.1:1'] } } });
  await proxy.close();
  t.throws(() => proxy.reload({ upstreams: { u: { servers: ['127.0.0.1:2'] } } }), /closing/);
  t.equal(proxy.generation, 1);
});
