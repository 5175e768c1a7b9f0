// The native splice relay (src/relay/native.ts + src/native/) over real
// loopback sockets. Skips cleanly when the addon is not built.
import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { loadNativeRelay, type NativeMode, type NativeRelay } from '../src/relay/native.js';
import type { Relay, Tunnel, TunnelStats } from '../src/relay/types.js';

const probe = loadNativeRelay();

interface Pair {
  /** The test's client end (the browser). */
  client: net.Socket;
  /** The test's upstream end (the backend server's socket). */
  server: net.Socket;
  tunnel: Tunnel;
  ended: Promise<TunnelStats>;
}

interface PairOptions {
  idleTimeoutMs?: number;
  toUpstream?: Buffer | null;
  toClient?: Buffer | null;
  /** Runs before relay.start with the proxy-side sockets (e.g. to let bytes buffer in JS). */
  before?: (proxyClient: net.Socket, proxyUpstream: net.Socket, client: net.Socket, server: net.Socket) => Promise<void>;
}

/** Two listeners (client-facing, upstream) and a queue of accepted sockets for each. */
class Harness {
  private readonly front = net.createServer({ allowHalfOpen: true });
  private readonly back = net.createServer({ allowHalfOpen: true });
  private readonly frontQ: net.Socket[] = [];
  private readonly backQ: net.Socket[] = [];
  private frontW: ((s: net.Socket) => void)[] = [];
  private backW: ((s: net.Socket) => void)[] = [];

  async listen(): Promise<void> {
    this.front.on('connection', (s) => this.push(s, this.frontQ, this.frontW));
    this.back.on('connection', (s) => this.push(s, this.backQ, this.backW));
    this.front.listen(0, '127.0.0.1');
    this.back.listen(0, '127.0.0.1');
    await Promise.all([once(this.front, 'listening'), once(this.back, 'listening')]);
  }

  private push(s: net.Socket, q: net.Socket[], w: ((s: net.Socket) => void)[]): void {
    s.on('error', () => {});
    const waiter = w.shift();
    if (waiter) waiter(s);
    else q.push(s);
  }

  private next(q: net.Socket[], w: ((s: net.Socket) => void)[]): Promise<net.Socket> {
    const s = q.shift();
    if (s) return Promise.resolve(s);
    return new Promise((resolve) => w.push(resolve));
  }

  private port(srv: net.Server): number {
    return (srv.address() as net.AddressInfo).port;
  }

  /** client -> [front] proxyClient ==relay== proxyUpstream -> [back] server */
  async pair(relay: Relay, opts: PairOptions = {}): Promise<Pair> {
    const client = net.connect({ port: this.port(this.front), host: '127.0.0.1', allowHalfOpen: true });
    client.on('error', () => {});
    const proxyClient = await this.next(this.frontQ, this.frontW);
    const proxyUpstream = net.connect({ port: this.port(this.back), host: '127.0.0.1', allowHalfOpen: true });
    await once(proxyUpstream, 'connect');
    const server = await this.next(this.backQ, this.backW);
    if (opts.before) await opts.before(proxyClient, proxyUpstream, client, server);
    let resolveEnd!: (s: TunnelStats) => void;
    let calls = 0;
    const ended = new Promise<TunnelStats>((r) => (resolveEnd = r));
    const tunnel = relay.start(
      proxyClient,
      proxyUpstream,
      opts.toUpstream ?? null,
      opts.toClient ?? null,
      { idleTimeoutMs: opts.idleTimeoutMs ?? 0 },
      (stats) => {
        calls++;
        if (calls > 1) throw new Error('onEnd called twice');
        resolveEnd(stats);
      },
    );
    return { client, server, tunnel, ended };
  }

  async close(): Promise<void> {
    this.front.close();
    this.back.close();
    await Promise.all([once(this.front, 'close'), once(this.back, 'close')]);
  }
}

/** Collects everything a socket receives until 'end'. */
function collect(s: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve, reject) => {
    s.once('end', () => resolve(Buffer.concat(chunks)));
    s.once('close', () => resolve(Buffer.concat(chunks)));
    s.once('error', reject);
  });
}

/** Resolves with the first `n` bytes received (and leaves the socket flowing). */
function readN(s: net.Socket, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= n) {
        s.off('data', onData);
        s.off('error', reject);
        resolve(Buffer.concat(chunks));
      }
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

function closed(s: net.Socket): Promise<void> {
  if (s.closed) return Promise.resolve();
  return new Promise((resolve) => s.once('close', () => resolve()));
}

/** The peer went away: FIN ('end'), reset ('error') or closed. */
function gone(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => resolve();
    s.once('end', done);
    s.once('error', done);
    s.once('close', done);
    s.resume();
  });
}

async function waitFor(cond: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

function fds(): { total: number; pipes: number } {
  let total = 0;
  let pipes = 0;
  for (const name of readdirSync('/proc/self/fd')) {
    let target = '';
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue; // the fd readdir itself used
    }
    total++;
    if (target.startsWith('pipe:')) pipes++;
  }
  return { total, pipes };
}

/** Sends `total` bytes of fresh random data in 1 MiB chunks with backpressure; resolves with the sha256. */
async function pump(s: net.Socket, total: number): Promise<string> {
  const h = createHash('sha256');
  const CH = 1 << 20;
  for (let sent = 0; sent < total; sent += CH) {
    const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(CH, total - sent)));
    h.update(chunk);
    if (!s.write(chunk)) await once(s, 'drain');
  }
  return h.digest('hex');
}

/** Hashes what a socket receives until 'end'. */
function sink(s: net.Socket): Promise<{ bytes: number; sha: string }> {
  const h = createHash('sha256');
  let bytes = 0;
  s.on('data', (c: Buffer) => {
    bytes += c.length;
    h.update(c);
  });
  return new Promise((resolve, reject) => {
    s.once('end', () => resolve({ bytes, sha: h.digest('hex') }));
    s.once('error', reject);
  });
}

const h = new Harness();
const relays = new Map<NativeMode, NativeRelay>();
const relayOf = (m: NativeMode): NativeRelay => relays.get(m)!;
const MiB = 1 << 20;

/** The loader, and what the relay hands to its fallback. */
function loadingCases(): void {
  t.test('loads, kind splice', async (t) => {
    t.equal(probe.relay!.kind, 'splice');
    t.match(probe.reason, /loaded/);
  });

  t.test('WSPLICE_NATIVE=0: the loader returns null and one line of reason', async (t) => {
    // A fresh process (the addon is loaded once per process), with this file's loaders.
    const mod = fileURLToPath(new URL('../src/relay/native.ts', import.meta.url));
    const code = `import(${JSON.stringify(mod)}).then((m) => { const r = m.loadNativeRelay(); console.log(JSON.stringify({ relay: r.relay, reason: r.reason })); });`;
    const r = spawnSync(process.execPath, [...process.execArgv, '--input-type=module', '-e', code], {
      env: { ...process.env, WSPLICE_NATIVE: '0' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    t.same(JSON.parse(line), { relay: null, reason: 'native relay disabled by WSPLICE_NATIVE=0' }, r.stderr);
  });

  t.test('sockets it cannot splice (TLS) go to the fallback relay', async (t) => {
    let handed: [net.Socket, net.Socket] | null = null;
    const fallback: Relay = {
      kind: 'js',
      start(c, u, _up, _down, _o, onEnd) {
        handed = [c, u];
        setImmediate(() => onEnd({ bytesUp: 0, bytesDown: 0, durationMs: 0, reason: 'shutdown' }));
        return { relay: 'js', bytesUp: 0, bytesDown: 0, close() {}, goAway() {} };
      },
    };
    const relay = loadNativeRelay({ fallback }).relay!;
    const p = await h.pair(relay, {
      before: async (proxyClient) => {
        // Only the type matters to the relay: a TLSSocket is ciphertext JS must decrypt.
        Object.setPrototypeOf(proxyClient, TLSSocket.prototype);
      },
    });
    t.equal((await p.ended).reason, 'shutdown');
    t.ok(handed, 'the fallback got the tunnel');
    t.equal(relay.engineStats().active, 0);
    p.client.destroy();
    p.server.destroy();
    handed![0].destroy();
    handed![1].destroy();
  });
}

/** Echo and half-close, each mode. */
function halfCloseCases(): void {
  for (const mode of ['adaptive', 'splice', 'copy'] as const) {
    t.test(`${mode}: echo both ways, half-close client first`, async (t) => {
      const relay = relayOf(mode);
      const p = await h.pair(relay);
      // Upstream echoes, and ends when the client has.
      p.server.on('data', (c: Buffer) => p.server.write(c));
      p.server.on('end', () => p.server.end());
      const got = collect(p.client);
      for (let i = 0; i < 50; i++) {
        const msg = Buffer.from(`message ${i};`);
        p.client.write(msg);
        t.same(await readN(p.client, 0 + msg.length).then((b) => b.toString()), msg.toString());
      }
      p.client.end();
      await got;
      const stats = await p.ended;
      t.equal(stats.reason, 'client-closed');
      t.equal(stats.bytesUp, stats.bytesDown);
      t.ok(stats.bytesUp > 0);
      t.equal(p.tunnel.bytesUp, stats.bytesUp);
      p.client.destroy();
      p.server.destroy();
    });

    t.test(`${mode}: half-close upstream first; client keeps sending after`, async (t) => {
      const p = await h.pair(relayOf(mode));
      const atClient = collect(p.client);
      p.server.end('bye from upstream');
      t.equal((await atClient).toString(), 'bye from upstream', 'client got data then FIN');
      // The other direction still flows after the half-close.
      const atServer = collect(p.server);
      p.client.end('late client bytes');
      t.equal((await atServer).toString(), 'late client bytes');
      const stats = await p.ended;
      t.equal(stats.reason, 'upstream-closed');
      t.equal(stats.bytesDown, 'bye from upstream'.length);
      t.equal(stats.bytesUp, 'late client bytes'.length);
    });
  }
}

/** What JS held at the hand-over arrives first, in order. */
function handOverCases(): void {
  t.test('early data and JS-buffered bytes are written first, in order; no FIN at hand-over', async (t) => {
    const p = await h.pair(relayOf('adaptive'), {
      toUpstream: Buffer.from('[early-up]'),
      toClient: Buffer.from('[early-down]'),
      before: async (proxyClient, proxyUpstream, client, server) => {
        // Bytes that JS has read but nobody consumed (no 'data' listener).
        client.write('[buffered-up]');
        server.write('[buffered-down]');
        // And something still in a JS write buffer (like the 101 head).
        proxyClient.cork();
        proxyClient.write('[head]');
        process.nextTick(() => proxyClient.uncork());
        await waitFor(() => proxyClient.readableLength > 0 && proxyUpstream.readableLength > 0, 'JS-buffered bytes');
      },
    });
    let clientEnded = false;
    p.client.on('end', () => (clientEnded = true));
    const down = readN(p.client, '[head][early-down][buffered-down][late-down]'.length);
    const up = readN(p.server, '[early-up][buffered-up][late-up]'.length);
    await new Promise((r) => setTimeout(r, 20)); // the hand-over has happened by now
    p.client.write('[late-up]');
    p.server.write('[late-down]');
    t.equal((await down).toString(), '[head][early-down][buffered-down][late-down]');
    t.equal((await up).toString(), '[early-up][buffered-up][late-up]');
    t.notOk(clientEnded, 'client saw no FIN from the hand-over');
    t.equal(p.tunnel.bytesUp, '[early-up][buffered-up][late-up]'.length);
    p.client.end();
    p.server.end();
    const stats = await p.ended;
    t.equal(stats.bytesUp, '[early-up][buffered-up][late-up]'.length);
    t.equal(stats.bytesDown, '[early-down][buffered-down][late-down]'.length, 'head bytes are not tunnel bytes');
  });
}

/** Bulk, checksummed, each mode and concurrently. */
function bulkCases(): void {
  for (const [mode, size] of [
    ['adaptive', 256 * MiB],
    ['splice', 256 * MiB],
    ['copy', 64 * MiB],
  ] as const) {
    t.test(`${mode}: checksummed bulk ${size / MiB} MiB each way at once`, { timeout: 60_000 }, async (t) => {
      const p = await h.pair(relayOf(mode));
      const atServer = sink(p.server);
      const atClient = sink(p.client);
      const [upSha, downSha] = await Promise.all([pump(p.client, size), pump(p.server, size)]);
      p.client.end();
      p.server.end();
      const [s, c] = await Promise.all([atServer, atClient]);
      t.equal(s.bytes, size, 'upstream got every byte');
      t.equal(s.sha, upSha, 'upstream bytes intact and in order');
      t.equal(c.bytes, size, 'client got every byte');
      t.equal(c.sha, downSha, 'client bytes intact and in order');
      const stats = await p.ended;
      t.equal(stats.bytesUp, size);
      t.equal(stats.bytesDown, size);
      t.match(stats.reason, /^(client|upstream)-closed$/);
    });
  }

  for (const mode of ['adaptive', 'splice', 'copy'] as const) {
    t.test(`${mode}: backpressure: a stalled reader, then everything arrives intact`, { timeout: 30_000 }, async (t) => {
      const p = await h.pair(relayOf(mode));
      p.server.pause(); // the upstream reads nothing for now
      const size = 32 * MiB;
      const sent = pump(p.client, size);
      // The kernel buffers, the relay's pipe and the JS write queue fill up; then the writer blocks.
      await waitFor(() => p.client.writableNeedDrain && p.tunnel.bytesUp < size, 'backpressure on the client');
      const got = sink(p.server);
      p.server.resume();
      const sha = await sent;
      p.client.end();
      const r = await got;
      t.equal(r.bytes, size);
      t.equal(r.sha, sha);
      p.server.end();
      t.equal((await p.ended).bytesUp, size);
    });
  }

  t.test('8 concurrent bulk tunnels share the relay thread, all intact', { timeout: 60_000 }, async (t) => {
    const size = 16 * MiB;
    const pairs = await Promise.all(Array.from({ length: 8 }, (_, i) => h.pair(relayOf(i % 2 ? 'splice' : 'adaptive'))));
    await Promise.all(
      pairs.map(async (p) => {
        const atServer = sink(p.server);
        const atClient = sink(p.client);
        const [up, down] = await Promise.all([pump(p.client, size), pump(p.server, size)]);
        p.client.end();
        p.server.end();
        const [s, c] = await Promise.all([atServer, atClient]);
        t.same([s.bytes, s.sha, c.bytes, c.sha], [size, up, size, down]);
        await p.ended;
      }),
    );
  });
}

/** Other address families: IPv6 and Unix sockets. */
function addressCases(): void {
  for (const mode of ['splice', 'copy'] as const) {
    t.test(`${mode}: IPv6 client, Unix-socket upstream, 16 MiB each way`, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'wsplice-'));
      const path = join(dir, 'up.sock');
      const back = net.createServer({ allowHalfOpen: true });
      const front = net.createServer({ allowHalfOpen: true });
      back.listen(path);
      front.listen(0, '::1');
      await Promise.all([once(back, 'listening'), once(front, 'listening')]);
      const client = net.connect({ port: (front.address() as net.AddressInfo).port, host: '::1', allowHalfOpen: true });
      const [proxyClient] = (await once(front, 'connection')) as [net.Socket];
      const proxyUpstream = net.connect({ path, allowHalfOpen: true });
      const [server] = (await once(back, 'connection')) as [net.Socket];
      await once(proxyUpstream, 'connect');
      const ended = new Promise<TunnelStats>((resolve) =>
        relayOf(mode).start(proxyClient, proxyUpstream, null, null, { idleTimeoutMs: 0 }, resolve),
      );
      const size = 16 * MiB;
      const atServer = sink(server);
      const atClient = sink(client);
      const [up, down] = await Promise.all([pump(client, size), pump(server, size)]);
      t.equal(relayOf(mode).engineStats().active, 1, 'spliced natively, not handed to the fallback');
      client.end();
      server.end();
      const [sv, cl] = await Promise.all([atServer, atClient]);
      t.same([sv.bytes, sv.sha, cl.bytes, cl.sha], [size, up, size, down]);
      const stats = await ended;
      t.equal(stats.bytesUp, size);
      client.destroy();
      server.destroy();
      back.close();
      front.close();
      rmSync(dir, { recursive: true, force: true });
    });
  }
}

/** Resets are relayed as resets. */
function resetCases(): void {
  t.test('RST from the client mid-stream', async (t) => {
    const p = await h.pair(relayOf('splice'));
    const first = readN(p.server, 1000);
    p.client.write(Buffer.alloc(1000, 1));
    await first;
    p.server.resume();
    const serverReset = once(p.server, 'error');
    p.client.resetAndDestroy();
    const stats = await p.ended;
    t.equal(stats.reason, 'client-error');
    const [err] = (await serverReset) as [NodeJS.ErrnoException];
    t.equal(err.code, 'ECONNRESET', 'the reset is relayed as a reset');
    p.server.destroy();
  });

  t.test('RST from the upstream during a bulk download', async (t) => {
    const p = await h.pair(relayOf('adaptive'));
    let got = 0;
    p.client.on('data', (c: Buffer) => (got += c.length));
    // The client has unread data when the relayed RST lands; libuv then reports
    // the POLLHUP after a partial read as EOF instead of reading the error, so
    // the JS side sees 'end' or ECONNRESET (the kernel got an RST either way).
    const clientGone = new Promise<string>((resolve) => {
      p.client.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      p.client.once('end', () => resolve('end'));
    });
    const chunk = Buffer.alloc(256 * 1024, 7);
    let stop = false;
    void (async () => {
      while (!stop && !p.server.destroyed) {
        if (!p.server.write(chunk)) await Promise.race([once(p.server, 'drain'), once(p.server, 'close')]);
      }
    })().catch(() => {});
    await waitFor(() => got > 4 * MiB, '4 MiB downstream');
    stop = true;
    p.server.resetAndDestroy();
    const stats = await p.ended;
    t.equal(stats.reason, 'upstream-error');
    t.match(await clientGone, /^(ECONNRESET|end)$/, 'the client connection is gone');
    t.ok(stats.bytesDown >= 4 * MiB);
    p.client.destroy();
  });
}

/** Ends the proxy asks for: idle timeout, close(). */
function closeCases(): void {
  t.test('idle timeout is enforced natively', async (t) => {
    const p = await h.pair(relayOf('adaptive'), { idleTimeoutMs: 150 });
    p.server.on('data', (c: Buffer) => p.server.write(c));
    const atClient = collect(p.client);
    const atServer = collect(p.server);
    p.client.write('ping');
    const stats = await p.ended;
    t.equal(stats.reason, 'idle-timeout');
    t.equal((await atClient).toString(), 'ping', 'client got the echo, then a FIN');
    t.equal((await atServer).toString(), 'ping', 'upstream got a FIN');
    p.client.destroy();
    p.server.destroy();
  });

  t.test('close() during traffic ends the tunnel with that reason', async (t) => {
    const p = await h.pair(relayOf('adaptive'));
    let got = 0;
    p.server.on('data', (c: Buffer) => (got += c.length));
    const ends = Promise.all([closed(p.client), closed(p.server)]);
    p.client.on('end', () => p.client.destroy());
    p.server.on('end', () => p.server.destroy());
    const chunk = Buffer.alloc(64 * 1024, 3);
    let stop = false;
    void (async () => {
      while (!stop && p.client.writable) {
        if (!p.client.write(chunk)) await Promise.race([once(p.client, 'drain'), once(p.client, 'close')]);
      }
    })().catch(() => {});
    await waitFor(() => got > 8 * MiB, '8 MiB upstream');
    p.tunnel.close('shutdown');
    p.tunnel.close('shutdown'); // idempotent
    const stats = await p.ended;
    stop = true;
    t.equal(stats.reason, 'shutdown');
    t.ok(stats.bytesUp >= 8 * MiB);
    await ends;
    t.pass('both peers closed');
  });

  t.test('close() before the hand-over finished', async (t) => {
    const p = await h.pair(relayOf('adaptive'), { toClient: Buffer.from('x') });
    p.tunnel.close('shutdown'); // synchronously after start: still flushing in JS
    const stats = await p.ended;
    t.equal(stats.reason, 'shutdown');
    await Promise.all([gone(p.client), gone(p.server)]);
    p.client.destroy();
    p.server.destroy();
  });
}

/** A thousand tunnels: every end reported once, no fd left. */
function scaleCases(): void {
  t.test('1,000 tunnels that end the instant they are handed over: every onEnd arrives, once', { timeout: 60_000 }, async (t) => {
    // Both peers have sent FIN before start(): the relay thread ends each tunnel
    // as soon as it registers it, racing the JS thread that is still in open().
    const relay = relayOf('adaptive');
    const pairs: Pair[] = [];
    for (let i = 0; i < 1000; i++) {
      pairs.push(
        await h.pair(relay, {
          before: async (_pc, _pu, client, server) => {
            client.end();
            server.end();
          },
        }),
      );
    }
    const stats = await Promise.all(pairs.map((p) => p.ended));
    t.equal(stats.length, 1000);
    t.equal(stats.filter((s) => s.reason === 'client-closed' || s.reason === 'upstream-closed').length, 1000);
    t.equal(relay.engineStats().active, 0);
    for (const p of pairs) {
      p.client.destroy();
      p.server.destroy();
    }
  });

  t.test('1,000 concurrent native tunnels: no leaked fds or pipes', { timeout: 60_000 }, async (t) => {
    const relay = relayOf('splice'); // splice mode: every used direction owns a pipe
    const before = fds();
    const pairs: Pair[] = [];
    for (let i = 0; i < 1000; i++) pairs.push(await h.pair(relay));
    // Every tunnel carries bytes both ways (so its pipes exist).
    await Promise.all(
      pairs.map(async (p, i) => {
        const a = readN(p.server, 5);
        const b = readN(p.client, 5);
        p.client.write('c' + String(i % 10000).padStart(4, '0'));
        p.server.write('s' + String(i % 10000).padStart(4, '0'));
        t.equal((await a).toString(), 'c' + String(i % 10000).padStart(4, '0'));
        t.equal((await b).toString(), 's' + String(i % 10000).padStart(4, '0'));
      }),
    );
    t.equal(relay.engineStats().active, 1000, '1000 live native tunnels');
    // (Root is not bound by fs.pipe-user-pages-soft; others may get copy mode for some.)
    if (process.getuid?.() === 0) t.equal(relay.engineStats().pipeFds, 4000, 'two pipes each');
    // Half end naturally (FIN both ways), half by close().
    const ends = pairs.map(async (p, i) => {
      p.client.resume();
      p.server.resume();
      if (i % 2 === 0) {
        p.client.end();
        p.server.end();
      } else {
        p.tunnel.close('shutdown');
      }
      const s = await p.ended;
      p.client.destroy();
      p.server.destroy();
      await Promise.all([closed(p.client), closed(p.server)]);
      return s.reason;
    });
    const reasons = await Promise.all(ends);
    t.equal(reasons.filter((r) => r === 'shutdown').length, 500);
    t.equal(reasons.filter((r) => r === 'client-closed' || r === 'upstream-closed').length, 500);
    const st = relay.engineStats();
    t.equal(st.active, 0, 'no native tunnel left');
    t.equal(st.pipeFds, 0, 'native holds no pipe');
    t.equal(st.closeErrors, 0, 'no close/epoll_ctl error');
    const after = fds();
    t.equal(after.total, before.total, `fds back to ${before.total}`);
    t.equal(after.pipes, before.pipes, 'no pipe fd leaked');
  });
}

// Last: the cases use the classes above.
if (probe.relay === null) {
  t.plan(0, `native relay not available: ${probe.reason}`);
} else {
  for (const mode of ['adaptive', 'splice', 'copy'] as const) {
    const r = loadNativeRelay({ mode }).relay;
    if (r === null) throw new Error('addon loaded once but not twice');
    relays.set(mode, r);
  }
  t.before(() => h.listen());
  t.teardown(() => h.close());
  for (const cases of [loadingCases, halfCloseCases, handOverCases, bulkCases, addressCases, resetCases, closeCases, scaleCases]) cases();
}
