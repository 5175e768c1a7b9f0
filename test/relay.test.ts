/**
 * Tunnel behaviour, run against every relay this machine has: the JS relay
 * always, the native splice relay when its addon is built.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import net, { type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { acceptFor, createProxy } from '../src/index.js';
import { delay, fdCount, openTunnel, rawBackend, readAll, waitFor, type RawBackend } from './support/index.js';

// 'auto' (with the addon built) starts tunnels on a dialled upstream on splice, others on JS, and
// moves long or busy ones of those to splice.
const relays: Array<'js' | 'splice' | 'auto'> = ['js'];
try {
  createProxy({ upstreams: { b: { servers: ['127.0.0.1:1'] } }, relay: 'splice' });
  relays.push('splice', 'auto');
} catch (err) {
  t.comment(`splice relay not tested: ${(err as Error).message}`);
}

t.test('require() loads the library and picks the relay (no top-level await)', async (t) => {
  // The compiled package, as a CommonJS user loads it (npm test builds dist first).
  const entry = fileURLToPath(new URL('../dist/src/index.js', import.meta.url));
  const code = `const m = require(${JSON.stringify(entry)});
    const p = m.createProxy({ upstreams: { b: { servers: ['127.0.0.1:1'] } } });
    console.log(JSON.stringify({ kind: p.relayKind, note: p.relayNote }));`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 30_000 });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim()) as { kind: string; note: string };
  t.equal(out.kind, relays.includes('splice') ? 'splice' : 'js', out.note);
});

/** A backend that completes the handshake, then hands the raw socket to `tunnel`. */
async function tunnelBackend(tunnel: (sock: Socket) => void, unixPath?: string): Promise<RawBackend> {
  return rawBackend((sock, data) => {
    const s = sock as Socket & { upgraded?: boolean };
    if (s.upgraded) return;
    const text = data.toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return;
    s.upgraded = true;
    const key = /sec-websocket-key: (\S+)/i.exec(text)![1]!;
    sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`);
    sock.removeAllListeners('data');
    const rest = data.subarray(Buffer.byteLength(text.slice(0, end + 4), 'latin1'));
    tunnel(sock);
    if (rest.length > 0) sock.emit('data', rest);
  }, unixPath);
}

/**
 * A tunnel backend on a unix socket: the upstream is then a JS socket (the addon dials only
 * plain TCP), so 'auto' starts the tunnel on JS and moves it to splice later.
 */
async function unixTunnelBackend(t: Test, tunnel: (sock: Socket) => void): Promise<{ backend: RawBackend; server: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'wsplice-relay-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'b.sock');
  return { backend: await tunnelBackend(tunnel, path), server: `unix:${path}` };
}

/**
 * One tunnel through `relay`, past auto's byte threshold (256 KiB): the tunnel event names what
 * carries it at its start, relayMoved each move, tunnelClose what carried it at its end. With a
 * TCP backend the addon dials the upstream, so auto starts on splice; with a unix-socket one the
 * upstream is a JS socket, so auto starts on js and moves once.
 */
async function eventsAndMoves(t: Test, relay: 'js' | 'splice' | 'auto', unix: boolean): Promise<void> {
  const echo = (sock: Socket): void => void sock.pipe(sock);
  const { backend, server } = unix ? await unixTunnelBackend(t, echo) : await tcp(echo);
  const proxy = createProxy({ upstreams: { b: { servers: [server] } }, relay });
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => { await proxy.close(); await backend.close(); });
  const opened = new Promise<{ id: number; relay: string }>((r) => proxy.once('tunnel', r));
  const moves: Array<{ id: number; from: string; to: string; bytesUp: number; bytesDown: number }> = [];
  proxy.on('relayMoved', (e) => moves.push(e));
  const ended = new Promise<{ id: number; relay?: string }>((r) => proxy.once('tunnelClose', r));
  const s = await openTunnel((proxy.address() as net.AddressInfo).port);
  let echoed = 0;
  s.on('data', (d: Buffer) => (echoed += d.length));
  s.resume();
  const ev = await opened;
  const moving = relay === 'auto' && unix;
  t.equal(ev.relay, relay === 'js' || moving ? 'js' : 'splice', 'what carries the tunnel at its start');
  for (let i = 0; i < 8; i++) s.write(Buffer.alloc(64 * 1024, i));
  await waitFor(() => echoed === 8 * 64 * 1024, 5000, 'echo of 512 KiB');
  if (moving) await waitFor(() => moves.length === 1, 5000, 'the move');
  s.end();
  const closed = await ended;
  if (moving) {
    t.equal(moves.length, 1, 'one move');
    t.match(moves[0], { id: ev.id, from: 'js', to: 'splice' });
    t.ok(moves[0]!.bytesUp > 0 && moves[0]!.bytesUp <= 8 * 64 * 1024, 'bytes carried before the move');
  } else {
    t.equal(moves.length, 0, 'a tunnel that starts where it ends never moves');
  }
  t.equal(closed.id, ev.id);
  t.equal(closed.relay, relay === 'js' ? 'js' : 'splice');
}

async function tcp(tunnel: (sock: Socket) => void): Promise<{ backend: RawBackend; server: string }> {
  const backend = await tunnelBackend(tunnel);
  return { backend, server: `127.0.0.1:${backend.port}` };
}

for (const relay of relays) {
  t.test(`${relay} relay`, async (t) => {
    t.test('bulk bytes arrive intact both ways (checksummed)', async (t) => {
      const backend = await tunnelBackend((sock) => sock.pipe(sock)); // echo
      const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, relay });
      await proxy.listen({ host: '127.0.0.1', port: 0 });
      t.teardown(async () => { await proxy.close(); await backend.close(); });
      const ended = new Promise<{ relay?: string; bytesUp: number }>((r) => proxy.once('tunnelClose', r));
      const s = await openTunnel((proxy.address() as net.AddressInfo).port);
      const total = 16 * 1024 * 1024;
      const sent = createHash('sha256');
      const got = createHash('sha256');
      let received = 0;
      const done = new Promise<void>((r) => s.on('data', (d: Buffer) => {
        got.update(d);
        received += d.length;
        if (received >= total) r();
      }));
      s.resume();
      const block = Buffer.alloc(64 * 1024);
      for (let off = 0; off < total; off += block.length) {
        for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((off + i) >>> 0, i);
        sent.update(block);
        if (!s.write(Buffer.from(block))) await new Promise((r) => s.once('drain', r));
      }
      await done;
      t.equal(received, total);
      t.equal(got.digest('hex'), sent.digest('hex'));
      s.destroy();
      const stats = await ended;
      t.equal(stats.relay, relay === 'auto' ? 'splice' : relay, 'the relay that carried it to the end');
      t.ok(stats.bytesUp >= total, 'bytes counted across a hand-over too');
    });

    t.test('concurrent tunnels under backpressure each carry their own bytes, counted exactly', async (t) => {
      // The JS relay reads every socket into one shared buffer: a chunk kept by a write that did
      // not complete at once must not be overwritten by another tunnel's next read.
      const backend = await tunnelBackend((sock) => sock.pipe(sock));
      const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, relay });
      await proxy.listen({ host: '127.0.0.1', port: 0 });
      t.teardown(async () => { await proxy.close(); await backend.close(); });
      const port = (proxy.address() as net.AddressInfo).port;
      const tunnels = 4;
      const total = 12 * 1024 * 1024;
      const closes: Array<{ bytesUp: number; bytesDown: number }> = [];
      proxy.on('tunnelClose', (s: { bytesUp: number; bytesDown: number }) => closes.push(s));
      const one = async (id: number): Promise<void> => {
        const s = await openTunnel(port);
        const sent = createHash('sha256');
        const got = createHash('sha256');
        let received = 0;
        let nextPause = 64 * 1024 * (id + 1);
        const done = new Promise<void>((r, j) => {
          s.on('data', (d: Buffer) => {
            got.update(d);
            received += d.length;
            // A reader that stops now and then: the proxy's writes toward it back up and go partial.
            if (received >= nextPause && received < total) {
              nextPause += 4 * 1024 * 1024;
              s.pause();
              setTimeout(() => s.resume(), 300);
            }
            if (received >= total) r();
          });
          s.on('error', j);
        });
        s.resume();
        const block = Buffer.alloc(48 * 1024 + id * 1000);
        for (let off = 0, n = 0; off < total && n < 10_000; n++) {
          const len = Math.min(block.length, total - off);
          for (let i = 0; i + 4 <= len; i += 4) block.writeUInt32LE(((off + i) * (id + 3)) >>> 0, i);
          const part = Buffer.from(block.subarray(0, len));
          sent.update(part);
          off += len;
          if (!s.write(part)) await new Promise((r) => s.once('drain', r));
        }
        await done;
        t.equal(received, total, `tunnel ${id}: every byte back`);
        t.equal(got.digest('hex'), sent.digest('hex'), `tunnel ${id}: the bytes it sent, in order`);
        s.destroy();
      };
      await Promise.all(Array.from({ length: tunnels }, (_, i) => one(i)));
      await waitFor(() => closes.length === tunnels, 10_000);
      t.equal(closes.length, tunnels, 'every tunnel reported its end');
      for (const c of closes) {
        if (relay === 'js') {
          t.equal(c.bytesUp, total, 'bytes up counted exactly');
          t.equal(c.bytesDown, total, 'bytes down counted exactly');
        } else t.ok(c.bytesUp >= total && c.bytesDown >= total, 'bytes counted across a hand-over too');
      }
    });

    t.test('a quiet tunnel on a JS upstream moves relays after its time threshold and keeps working', { skip: relay === 'auto' ? false : 'auto only' }, async (t) => {
      const { backend, server } = await unixTunnelBackend(t, (sock) => sock.pipe(sock));
      const proxy = createProxy({ upstreams: { b: { servers: [server] } }, relay });
      await proxy.listen({ host: '127.0.0.1', port: 0 });
      t.teardown(async () => { await proxy.close(); await backend.close(); });
      const ended = new Promise<{ relay?: string; bytesUp: number; bytesDown: number }>((r) => proxy.once('tunnelClose', r));
      const s = await openTunnel((proxy.address() as net.AddressInfo).port);
      let echoed = '';
      s.on('data', (d: Buffer) => (echoed += d.toString()));
      s.resume();
      s.write('before');
      await waitFor(() => echoed === 'before', 2000, 'first echo');
      await delay(600); // past the 250 ms threshold: handed over
      s.write('after');
      await waitFor(() => echoed === 'beforeafter', 2000, 'echo after the hand-over');
      s.end();
      const stats = await ended;
      t.equal(stats.relay, 'splice');
      t.equal(stats.bytesUp, 11);
      t.equal(stats.bytesDown, 11);
    });

    t.test('the tunnel event names the relay that runs it; a move is an event of its own', async (t) => {
      await eventsAndMoves(t, relay, false);
    });

    t.test('auto on a JS upstream: the tunnel starts on js and one relayMoved takes it to splice', { skip: relay === 'auto' ? false : 'auto only' }, async (t) => {
      await eventsAndMoves(t, relay, true);
    });

    t.test('half-close from the client is relayed as a FIN and the upstream may still answer', async (t) => {
      const backend = await tunnelBackend((sock) => {
        let n = 0;
        sock.on('data', (d: Buffer) => (n += d.length));
        sock.on('end', () => {
          // The client is done sending; the upstream still has something to say.
          sock.end(`got ${n}`);
        });
      });
      const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, relay });
      await proxy.listen({ host: '127.0.0.1', port: 0 });
      t.teardown(async () => { await proxy.close(); await backend.close(); });
      const s = await openTunnel((proxy.address() as net.AddressInfo).port);
      const reply = readAll(s, 3000);
      s.resume();
      s.end('12345');
      t.equal((await reply).toString(), 'got 5');
    });

    t.test('half-close from the upstream is relayed and the client may still send', async (t) => {
      let upstreamGot = '';
      const backend = await tunnelBackend((sock) => {
        sock.end('bye');
        sock.on('data', (d: Buffer) => (upstreamGot += d.toString()));
      });
      const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, relay });
      await proxy.listen({ host: '127.0.0.1', port: 0 });
      t.teardown(async () => { await proxy.close(); await backend.close(); });
      const s = await openTunnel((proxy.address() as net.AddressInfo).port);
      const ended = new Promise<string>((r) => {
        let got = '';
        s.on('data', (d: Buffer) => (got += d.toString()));
        s.on('end', () => r(got));
      });
      s.resume();
      t.equal(await ended, 'bye', 'the upstream\'s FIN reached the client');
      s.end('after-fin');
      await waitFor(() => upstreamGot === 'after-fin', 3000, 'client bytes after the upstream FIN');
      t.equal(upstreamGot, 'after-fin');
    });

    t.test('a reset from the client resets the upstream side', async (t) => {
      let upstreamSaw = '';
      const backend = await tunnelBackend((sock) => {
        sock.on('error', (e: NodeJS.ErrnoException) => (upstreamSaw = e.code ?? 'error'));
        sock.on('close', () => { if (upstreamSaw === '') upstreamSaw = 'close'; });
      });
      const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, relay });
      await proxy.listen({ host: '127.0.0.1', port: 0 });
      t.teardown(async () => { await proxy.close(); await backend.close(); });
      const closed = new Promise<{ reason: string }>((r) => proxy.once('tunnelClose', r));
      const s = await openTunnel((proxy.address() as net.AddressInfo).port);
      s.resetAndDestroy();
      const ev = await closed;
      t.equal(ev.reason, 'client-error');
      await waitFor(() => upstreamSaw !== '', 3000, 'upstream notices');
      t.equal(upstreamSaw, 'ECONNRESET');
    });

    t.test('an upstream reset after its FIN still releases both sockets', async (t) => {
      // The upstream says goodbye (FIN, relayed as client.end()), then vanishes; the
      // client keeps writing, the upstream's kernel answers RST. The proxy must close
      // the client socket it already ended: Node cannot RST a socket after end().
      const backend = await tunnelBackend((sock) => {
        sock.end();
        setTimeout(() => sock.destroy(), 20);
      });
      const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, relay, timeouts: { idleMs: 0 } });
      await proxy.listen({ host: '127.0.0.1', port: 0 });
      t.teardown(async () => { await proxy.close(); await backend.close(); });
      const before = await fdCount();
      const closed = new Promise<{ reason: string }>((r) => proxy.once('tunnelClose', r));
      const s = await openTunnel((proxy.address() as net.AddressInfo).port);
      s.on('error', () => {});
      s.resume();
      await new Promise((r) => s.once('end', r));
      await delay(50);
      for (let i = 0; i < 20 && !s.destroyed; i++) {
        s.write(Buffer.alloc(1024));
        await delay(10);
      }
      const ev = await Promise.race([closed, delay(3000).then(() => null)]);
      t.ok(ev !== null, 'the tunnel ended');
      s.destroy();
      await waitFor(() => proxy.stats().connections === 0, 3000, 'connection released');
      await delay(50);
      t.ok((await fdCount()) <= before, 'no descriptor left behind');
    });

    t.test('an idle tunnel is closed after the idle timeout', async (t) => {
      const backend = await tunnelBackend(() => {});
      const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, relay, timeouts: { idleMs: 300 } });
      await proxy.listen({ host: '127.0.0.1', port: 0 });
      t.teardown(async () => { await proxy.close(); await backend.close(); });
      const closed = new Promise<{ reason: string }>((r) => proxy.once('tunnelClose', r));
      const s = await openTunnel((proxy.address() as net.AddressInfo).port);
      const gone = new Promise<void>((r) => s.on('end', () => r()));
      s.resume();
      t.equal((await closed).reason, 'idle-timeout');
      await gone;
    });

    t.test('traffic keeps a tunnel alive past the idle timeout', async (t) => {
      const backend = await tunnelBackend((sock) => sock.pipe(sock));
      const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, relay, timeouts: { idleMs: 300 } });
      await proxy.listen({ host: '127.0.0.1', port: 0 });
      t.teardown(async () => { await proxy.close(); await backend.close(); });
      const s = await openTunnel((proxy.address() as net.AddressInfo).port);
      let echoed = 0;
      s.on('data', (d: Buffer) => (echoed += d.length));
      s.resume();
      for (let i = 0; i < 10; i++) {
        s.write('x');
        await delay(100); // 1 s of traffic, every 100 ms, against a 300 ms idle timeout
      }
      await waitFor(() => echoed === 10, 2000, 'echoes');
      t.equal(s.destroyed, false, 'still open');
      t.equal(proxy.stats().tunnels, 1);
      s.destroy();
    });

    t.test('a paused reader bounds what the proxy holds (backpressure)', async (t) => {
      let upstream: Socket | null = null;
      const backend = await tunnelBackend((sock) => {
        upstream = sock;
        sock.pause(); // never reads
      });
      const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, relay });
      await proxy.listen({ host: '127.0.0.1', port: 0 });
      t.teardown(async () => { await proxy.close(); await backend.close(); });
      const s = await openTunnel((proxy.address() as net.AddressInfo).port);
      s.resume();
      const chunk = Buffer.alloc(64 * 1024, 1);
      let accepted = 0; // bytes the client's kernel took
      const rssBefore = process.memoryUsage().rss;
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline && accepted < 256 * 1024 * 1024) {
        if (s.write(chunk)) {
          accepted += chunk.length;
          continue;
        }
        accepted += chunk.length;
        const drained = await Promise.race([new Promise((r) => s.once('drain', () => r(true))), delay(300).then(() => false)]);
        if (!drained) break; // the writer is blocked: backpressure reached the client
      }
      t.ok(accepted < 64 * 1024 * 1024, `the client could push only ${(accepted / 1048576).toFixed(1)} MiB into a paused tunnel`);
      const grown = process.memoryUsage().rss - rssBefore;
      t.ok(grown < 64 * 1024 * 1024, `proxy memory grew ${(grown / 1048576).toFixed(1)} MiB, bounded`);
      // Resume the reader: everything the client wrote arrives.
      let got = 0;
      upstream!.on('data', (d: Buffer) => (got += d.length));
      upstream!.resume();
      await waitFor(() => got === accepted + s.writableLength || got === accepted, 10_000, 'all bytes delivered after resume');
      t.ok(got >= accepted - s.writableLength, 'nothing lost');
      s.destroy();
    });

    t.test('many tunnels open and close without leaking file descriptors', async (t) => {
      const backend = await tunnelBackend((sock) => sock.pipe(sock));
      const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, relay });
      await proxy.listen({ host: '127.0.0.1', port: 0 });
      t.teardown(async () => { await proxy.close(); await backend.close(); });
      const port = (proxy.address() as net.AddressInfo).port;
      // Warm up pools (parsers, the native thread) before counting.
      (await openTunnel(port)).destroy();
      await waitFor(() => proxy.stats().tunnels === 0, 3000);
      const before = await fdCount();
      for (let round = 0; round < 4; round++) {
        const socks = await Promise.all(Array.from({ length: 50 }, () => openTunnel(port)));
        await Promise.all(socks.map((s) => new Promise<void>((r) => {
          s.once('data', () => { s.end(); r(); });
          s.resume();
          s.write('ping');
        })));
        for (const s of socks) s.destroy();
      }
      await waitFor(() => proxy.stats().tunnels === 0 && proxy.stats().connections === 0, 5000, 'all tunnels closed');
      await waitFor(() => backend.sockets.every((s) => s.destroyed), 5000, 'backend sockets closed');
      await delay(50);
      const after = await fdCount();
      t.ok(after <= before + 2, `fds before ${before}, after ${after}`);
      t.equal(proxy.stats().tunnelsTotal, 201);
    });
  });
}
