// proxy.handOver / proxy.takeOver between two proxies in this process: the listener and live
// native tunnels move from one to the other mid-stream, SHA-256 both ways, no close on the way;
// the old proxy holds no descriptor of them afterwards and the new one serves the old address.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createProxy } from '../../src/index.js';
import { loadNativeRelay } from '../../src/relay/native.js';
import { closeWss, openFds, port, waitFor } from '../support/index.js';
import { gate, stream, streamingServer } from '../support/streams.js';

const native = loadNativeRelay();
const skip = native.relay === null ? `native relay: ${native.reason}` : false;

function dir(t: { teardown(f: () => unknown): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'wsplice-handover-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A streaming backend behind proxy `a` (listening) and an idle proxy `b` to take over; both closed at the end. */
async function twoProxies(t: { teardown(f: () => unknown): void }, messages: number, size: number) {
  const g = gate();
  const srv = await streamingServer(messages, size, g.wait);
  t.teardown(() => closeWss(srv.wss));
  const opts = { relay: 'splice' as const, upstreams: { b: { servers: [`127.0.0.1:${srv.port}`] } } };
  const a = createProxy(opts);
  const b = createProxy(opts);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await a.listen({ host: '127.0.0.1', port: 0 });
  return { g, srv, a, b, addr: `127.0.0.1:${port(a)}` };
}

t.test('tunnels and the listener move to another proxy mid-stream: SHA-256 both ways', { skip }, async (t) => {
  const N = 20;
  const { g, srv, a, b, addr } = await twoProxies(t, 16, 16 * 1024);
  const aCloses: string[] = [];
  a.on('tunnelClose', (e) => aCloses.push(e.reason));
  const clients = Array.from({ length: N }, (_, i) => new WebSocket(`ws://${addr}/t${i}`, { perMessageDeflate: false }));
  // Listening from the first byte: the backend starts streaming as soon as it accepts.
  const streams = clients.map((ws) => stream(ws, 16, 16 * 1024, g.wait));
  await waitFor(() => srv.streams.size === N && a.stats().tunnels === N, 5000, 'tunnels open');
  const before = openFds();
  const path = join(dir(t), 'h.sock');
  const taking = b.takeOver(path);
  await waitFor(async () => (await import('node:fs')).existsSync(path), 5000, 'the take-over socket');
  const given = await a.handOver(path);
  const taken = await taking;
  t.equal(given.moved, N, 'every tunnel moved');
  t.equal(given.refused, 0);
  t.equal(taken.tunnels, N);
  t.equal(taken.listeners, 1);
  t.equal(taken.pausesMs.length, N, 'one pause per tunnel');
  t.equal(a.stats().tunnels, 0, 'none left in the old proxy');
  t.equal(b.stats().tunnels, N, 'all in the new one');
  t.same(aCloses, Array(N).fill('moved'), "the old proxy's tunnels ended as moved");
  t.equal(a.address(), null, 'the old proxy no longer listens');
  t.equal(port(b), Number(addr.split(':')[1]), 'the new proxy serves the same address');
  const after = openFds();
  // This process holds both proxies: the sockets moved within it, so the count is the same, and
  // nothing is left over (the channel and the copies of the old side are closed).
  t.ok(after.sockets <= before.sockets + 1, `sockets ${before.sockets} -> ${after.sockets}`);
  g.open();
  for (let i = 0; i < N; i++) {
    const server = srv.streams.get(`/t${i}`)!;
    t.equal(await streams[i]!.received, await server.sent, `tunnel ${i}: backend -> client intact`);
    t.equal(await server.received, await streams[i]!.sent, `tunnel ${i}: client -> backend intact`);
  }
  t.same(srv.closes, [], 'the backend saw no close');
  // A new connection to the old address is served by the new proxy.
  const fresh = new WebSocket(`ws://${addr}/fresh`, { perMessageDeflate: false });
  await new Promise((r, j) => (fresh.once('open', r), fresh.once('error', j)));
  t.equal(b.stats().tunnelsTotal, N + 1);
  fresh.terminate();
  for (const ws of clients) ws.close();
});

t.test('a take-over that cannot serve rolls back: the old proxy keeps its listener and every tunnel', { skip }, async (t) => {
  const N = 5;
  const { g, srv, a, b, addr } = await twoProxies(t, 8, 8 * 1024);
  const clients = Array.from({ length: N }, (_, i) => new WebSocket(`ws://${addr}/t${i}`, { perMessageDeflate: false }));
  const streams = clients.map((ws) => stream(ws, 8, 8 * 1024, g.wait));
  await waitFor(() => a.stats().tunnels === N, 5000, 'tunnels open');
  const phases: string[] = [];
  a.on('handover', (e) => phases.push(e.phase));
  const path = join(dir(t), 'h.sock');
  const taking = b.takeOver(path, { listen: async () => { throw new Error('no such certificate'); } });
  taking.catch(() => {});
  await waitFor(async () => (await import('node:fs')).existsSync(path), 5000, 'the take-over socket');
  await t.rejects(a.handOver(path), /no such certificate/, 'the reason the new side gave');
  await t.rejects(taking, /no such certificate/);
  t.same(phases.slice(-1), ['rolled-back']);
  t.equal(a.stats().tunnels, N, 'every tunnel still in the old proxy');
  t.equal(port(a), Number(addr.split(':')[1]), 'still listening');
  g.open();
  for (let i = 0; i < N; i++) {
    const server = srv.streams.get(`/t${i}`)!;
    t.equal(await streams[i]!.received, await server.sent, `tunnel ${i}: backend -> client intact`);
    t.equal(await server.received, await streams[i]!.sent, `tunnel ${i}: client -> backend intact`);
  }
  for (const ws of clients) ws.close();
});

t.test('two hand-overs never overlap', { skip }, async (t) => {
  const a = createProxy({ relay: 'splice', upstreams: { b: { servers: ['127.0.0.1:1'] } } });
  t.teardown(() => a.close());
  const path = join(dir(t), 'quiet.sock');
  const b = createProxy({ relay: 'splice', upstreams: { b: { servers: ['127.0.0.1:1'] } } });
  t.teardown(() => b.close());
  const taking = b.takeOver(path, { timeoutMs: 300 });
  taking.catch(() => {});
  await waitFor(async () => (await import('node:fs')).existsSync(path), 5000, 'the take-over socket');
  const first = a.handOver(path, { timeoutMs: 300 });
  await t.rejects(a.handOver(path), /already under way/, 'a second one while the first runs');
  t.match(await first, { moved: 0, listeners: 0 }, 'the first one ran on (nothing to move)');
  await taking;
});
