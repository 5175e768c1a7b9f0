// Parser exhaustion: each head in progress holds a region of wasm memory of
// max(maxHeadBytes, 16 KiB), each plain exchange two (request and response).
// Past 2 GiB of wasm memory llhttp's pointers read as negative in JS; past the
// 4 GiB wasm32 address space malloc fails. Neither may crash the proxy: the
// parsers are capped by limits.maxParsers (per direction) and a request past the
// cap, or past the memory, is answered 503 before anything reaches a backend.
// The proxy runs in a child process so that a crash is seen, not suffered.
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { forkProxy, type ChildProxy } from './fixtures/child.js';
import { RecordingBackend, statusesOf, until } from './fixtures/harness.js';

const OK_CLOSE = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';
const MIB = 1024 * 1024;

interface Client {
  sock: net.Socket;
  text: () => string;
  closed: Promise<void>;
}

async function open(port: number, first: string): Promise<Client> {
  const sock = net.connect({ host: '127.0.0.1', port });
  await once(sock, 'connect');
  const chunks: Buffer[] = [];
  sock.on('data', (b) => chunks.push(b));
  sock.on('error', () => {});
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  sock.write(first);
  return { sock, text: () => Buffer.concat(chunks).toString('latin1'), closed };
}

async function setup(limits: Record<string, number>): Promise<{ p: ChildProxy; backend: RecordingBackend }> {
  const backend = await new RecordingBackend((_h, c) => c.socket.end(OK_CLOSE)).listen();
  const p = await forkProxy({
    upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } },
    relay: 'js',
    limits,
    timeouts: { headMs: 20_000, responseMs: 10_000 },
  });
  return { p, backend };
}

// Both proxies start at once: forking one with the TypeScript loader is the slow part.
const [capped, huge] = await Promise.all([setup({ maxHeadBytes: 64 * MIB }), setup({ maxHeadBytes: 64 * MIB, maxParsers: 100 })]);
t.teardown(async () => {
  for (const w of [capped, huge]) {
    await w.p.close();
    await w.backend.close();
  }
});

/** Wait until the proxy has taken or refused a parser for `n` partial heads. */
async function settledHeads(p: ChildProxy, n: number): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    const m = await p.measure();
    if (m === null) return false;
    if (m.parsers.requests + m.stats.refused >= n) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

t.test('default cap: 64 MiB maxHeadBytes gives 8 parsers each way; 20 partial heads: 8 are served, 12 get 503, no crash', async (t) => {
  const { p, backend } = capped;
  const clients: Client[] = [];
  for (let i = 0; i < 20; i++) clients.push(await open(p.port, `GET /c${i} HTTP/1.1\r\n`));
  t.ok(await settledHeads(p, 20), 'the proxy took or refused every partial head');
  t.same(p.fatal, [], 'no uncaught error in the proxy');
  const m = await p.measure();
  t.equal(m?.parsers.requests, 8, '8 request parsers in use (1 GiB / 2 / 64 MiB)');
  const refused = clients.filter((c) => c.text().startsWith('HTTP/1.1 503 '));
  t.equal(refused.length, 12, '12 answered 503');
  t.ok(refused.every((c) => /limits\.maxParsers/.test(c.text())), 'the 503 says why');
  for (const c of clients) if (!c.sock.destroyed) c.sock.write('Host: a.test\r\nConnection: close\r\n\r\n');
  await Promise.all(clients.map((c) => Promise.race([c.closed, new Promise((r) => setTimeout(r, 8000))])));
  const statuses = clients.map((c) => statusesOf(c.text()));
  t.equal(statuses.filter((s) => s.length === 1 && s[0] === 200).length, 8, 'the 8 that held a parser got their 200');
  t.equal(statuses.filter((s) => s.length === 1 && s[0] === 503).length, 12, 'the others exactly one 503');
  t.equal(backend.conns.length, 8, 'refused requests never reached the backend');
  t.same(p.fatal, [], 'no uncaught error in the proxy');
  t.equal(p.exitCode(), null, 'the proxy is still running');
});

t.test('past 2 GiB and up to the 4 GiB wasm limit: 40 heads of 64 MiB regions, every answer a 200 or a clean 503', async (t) => {
  const { p, backend } = huge;
  const clients: Client[] = [];
  for (let i = 0; i < 40; i++) clients.push(await open(p.port, `GET /c${i} HTTP/1.1\r\n`));
  // 40 x 64 MiB = 2.5 GiB of request regions: the upper ones have addresses past 2^31.
  t.ok(await settledHeads(p, 40), 'the proxy took every partial head');
  t.same(p.fatal, [], 'no uncaught error in the proxy (negative pointers)');
  const m = await p.measure();
  t.equal(m?.parsers.requests, 40, 'all 40 request parsers live, past 2 GiB of wasm memory');
  for (const c of clients) if (!c.sock.destroyed) c.sock.write('Host: a.test\r\nConnection: close\r\n\r\n');
  // Each plain exchange needs a response parser too: 40 more regions do not fit in 4 GiB.
  await Promise.all(clients.map((c) => Promise.race([c.closed, new Promise((r) => setTimeout(r, 8000))])));
  const statuses = clients.map((c) => statusesOf(c.text()));
  const ok = statuses.filter((s) => s.length === 1 && s[0] === 200).length;
  const unavailable = statuses.filter((s) => s.length === 1 && s[0] === 503).length;
  t.equal(ok + unavailable, 40, `every client got exactly one 200 or 503 (${ok} + ${unavailable})`);
  t.ok(ok >= 8 && unavailable >= 1, 'some were served, and the wasm memory ran out for the others without a crash');
  t.equal(backend.conns.length, ok, 'a 503 never opened a backend connection');
  t.same(p.fatal, [], 'no uncaught error in the proxy');
  // The pooled parsers are reused: the proxy still serves.
  const after = await open(p.port, 'GET /after HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
  await Promise.race([after.closed, new Promise((r) => setTimeout(r, 8000))]);
  t.same(statusesOf(after.text()), [200], 'a request afterwards is served');
  t.ok(await until(() => p.fatal.length === 0 && p.exitCode() === null, 10), 'the proxy is still running');
});
