// Drain: at the close() deadline a WebSocket tunnel ends with a Close frame 1001 ("going away") to
// both the client and the backend, each written at a frame boundary of its direction; a direction
// in the middle of a frame is finished first (bounded), and only then closed. Independent peers:
// the `ws` client and server, a raw client for the mid-frame cases, Chromium for the browser's view.
import { once } from 'node:events';
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import t from 'tap';
import WebSocket, { WebSocketServer } from 'ws';
import { createProxy, type TunnelCloseEvent } from '../src/index.js';
import { FrameCursor } from '../src/relay/frames.js';
import { loadNativeRelay } from '../src/relay/native.js';
import type { TunnelStats } from '../src/relay/types.js';
import { cdp, chromiumSkip, launchChromium, pageResult } from './support/chromium.js';
import { closeWss, openTunnel, port, rawBackend, respond101, upgradeHead, waitFor } from './support/index.js';

/** A `ws` server that records each connection's close code and the messages it got. */
async function recordingServer(t: { teardown: (f: () => unknown) => void }): Promise<{ wss: WebSocketServer; codes: number[]; messages: Buffer[] }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const codes: number[] = [];
  const messages: Buffer[] = [];
  wss.on('connection', (ws) => {
    ws.on('message', (m) => messages.push(m as Buffer));
    ws.on('close', (code) => codes.push(code));
  });
  t.teardown(() => closeWss(wss));
  return { wss, codes, messages };
}

/** A masked client frame: FIN + opcode, then the payload masked with a fixed key. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const key = Buffer.from([1, 2, 3, 4]);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 255]);
  const body = Buffer.from(payload.map((b, i) => b ^ key[i % 4]!));
  return Buffer.concat([head, key, body]);
}

/** The server frames a raw client read (unmasked), as [opcode, payload] pairs. */
function serverFrames(buf: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  let i = 0;
  while (i + 2 <= buf.length) {
    let len = buf[i + 1]! & 0x7f;
    let h = 2;
    if (len === 126) { len = buf.readUInt16BE(i + 2); h = 4; }
    if (i + h + len > buf.length) break;
    out.push([buf[i]! & 0x0f, buf.subarray(i + h, i + h + len)]);
    i += h + len;
  }
  return out;
}

t.test('FrameCursor finds boundaries across chunks, for every length form, masked or not', async (t) => {
  const frames = [clientFrame(1, Buffer.alloc(5, 1)), clientFrame(2, Buffer.alloc(300, 2)), Buffer.from([0x82, 0x00]), Buffer.from([0x81, 0x03, 0x61, 0x62, 0x63])];
  const big = Buffer.alloc(2 + 8 + 70_000);
  big[0] = 0x82; big[1] = 127; big.writeUInt32BE(70_000, 6);
  frames.push(big);
  const all = Buffer.concat(frames);
  const ends = new Set<number>();
  let at = 0;
  for (const f of frames) ends.add((at += f.length));
  for (const step of [1, 3, 7, 1000, all.length]) {
    const c = new FrameCursor();
    const seen: number[] = [];
    for (let off = 0; off < all.length; off += step) {
      const chunk = all.subarray(off, Math.min(off + step, all.length));
      c.advance(chunk, 0, false);
      if (c.atBoundary) seen.push(off + chunk.length);
    }
    t.ok(seen.every((s) => ends.has(s)), `step ${step}: every boundary seen is a real one`);
    t.ok(c.atBoundary, `step ${step}: at a boundary after the last frame`);
  }
  const c = new FrameCursor();
  t.equal(c.advance(all, 0, true), 0, 'stopAtBoundary at a boundary stops at once');
  c.advance(all.subarray(0, 3), 0, false);
  t.equal(c.advance(all, 3, true), frames[0]!.length, 'and otherwise at the end of the current frame');
});

// The same on the native relay: the engine follows the frames of WebSocket tunnels and writes the Closes.
for (const relay of ['js', 'splice'] as const) {
  t.test(`at the drain deadline a ws client and a ws server both get Close 1001 (${relay} relay)`, async (t) => {
    const { wss, codes } = await recordingServer(t);
    const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } }, relay, timeouts: { drainMs: 200 } });
    await proxy.listen({ host: '127.0.0.1', port: 0 });
    const closes: TunnelCloseEvent[] = [];
    proxy.on('tunnelClose', (e) => closes.push(e));
    const clients = await Promise.all([0, 1, 2].map(async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${port(proxy)}/`);
      await once(ws, 'open');
      ws.send('hello'); // some traffic both ways before the drain
      return ws;
    }));
    await waitFor(() => wss.clients.size === 3, 5000, 'three server sides');
    const clientCodes = clients.map((ws) => new Promise<number>((r) => ws.once('close', (code) => r(code))));
    await proxy.close();
    t.same(await Promise.all(clientCodes), [1001, 1001, 1001], 'each client saw Close 1001');
    await waitFor(() => codes.length === 3, 5000, 'the server sides closed');
    t.same(codes, [1001, 1001, 1001], 'each server side saw Close 1001');
    t.same(closes.map((c) => c.reason), ['shutdown', 'shutdown', 'shutdown']);
  });

  t.test(`a client in the middle of a frame: the frame is finished, then the Close; the client gets its Close too (${relay} relay)`, async (t) => {
    const { wss, codes, messages } = await recordingServer(t);
    const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } }, relay, timeouts: { drainMs: 100 } });
    await proxy.listen({ host: '127.0.0.1', port: 0 });
    const s: Socket = await openTunnel(port(proxy), upgradeHead('/'));
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    s.resume();
    const frame = clientFrame(2, Buffer.alloc(1000, 7));
    s.write(frame.subarray(0, 500)); // half a frame: the upstream direction is mid-frame at the deadline
    await waitFor(() => wss.clients.size === 1, 5000, 'the server side');
    const closing = proxy.close();
    // The client sees its Close (its direction was at a boundary) while the upstream one still waits.
    await waitFor(() => serverFrames(Buffer.concat(got)).some(([op]) => op === 8), 5000, 'a Close frame to the client');
    const close = serverFrames(Buffer.concat(got)).find(([op]) => op === 8)!;
    t.equal(close[1].readUInt16BE(0), 1001, 'Close 1001 to the client');
    t.same(messages, [], 'the half frame has not been delivered as a message');
    s.write(frame.subarray(500)); // the rest of the frame: then the proxy closes that direction too
    await closing;
    await waitFor(() => codes.length === 1, 5000, 'the server side closed');
    t.equal(messages.length, 1, 'the frame that was in flight reached the server whole');
    t.equal(messages[0]!.length, 1000);
    t.same(codes, [1001], 'then the server got Close 1001, not a cut frame');
    s.destroy();
  });

  t.test(`a frame that never finishes: after the bounded wait the tunnel is closed without a Close (${relay} relay)`, async (t) => {
    const { wss, codes, messages } = await recordingServer(t);
    const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${port(wss)}`] } }, relay, timeouts: { drainMs: 100 } });
    await proxy.listen({ host: '127.0.0.1', port: 0 });
    const s = await openTunnel(port(proxy), upgradeHead('/'));
    s.resume();
    s.write(clientFrame(2, Buffer.alloc(1000, 7)).subarray(0, 10));
    await waitFor(() => wss.clients.size === 1, 5000, 'the server side');
    await proxy.close();
    await waitFor(() => codes.length === 1, 5000, 'the server side closed');
    t.same(messages, [], 'nothing delivered');
    t.not(codes[0], 1001, 'no Close was written into the middle of a frame');
    s.destroy();
  });
  t.test(`a non-WebSocket upgrade tunnel gets a FIN at the deadline and no Close frame (${relay} relay)`, async (t) => {
    // A backend that switches to its own protocol and echoes; it records what reached it and whether it saw a FIN.
    const upstreamGot: Buffer[] = [];
    let upstreamEnded = false;
    const backend = await rawBackend(respond101({
      head: () => 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo-proto\r\nConnection: Upgrade\r\n\r\n',
      tunnel: (sock) => {
        sock.on('data', (d: Buffer) => (upstreamGot.push(d), sock.write(d)));
        sock.on('end', () => (upstreamEnded = true));
      },
    }));
    t.teardown(() => backend.close());
    const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } }, tunnelProtocols: ['echo-proto'], relay, timeouts: { drainMs: 100 } });
    await proxy.listen({ host: '127.0.0.1', port: 0 });
    const closes: TunnelCloseEvent[] = [];
    proxy.on('tunnelClose', (e) => closes.push(e));
    const s = await openTunnel(port(proxy), 'GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo-proto\r\n\r\n');
    const clientGot: Buffer[] = [];
    let clientEnded = false;
    s.on('data', (d: Buffer) => clientGot.push(d));
    s.on('end', () => (clientEnded = true));
    s.on('error', () => {});
    s.resume();
    s.write('ping');
    await waitFor(() => Buffer.concat(clientGot).toString() === 'ping', 5000, 'the echo');
    await proxy.close();
    await waitFor(() => clientEnded && upstreamEnded, 5000, 'a FIN to both sides');
    t.equal(Buffer.concat(clientGot).toString('latin1'), 'ping', 'the client got the echo and nothing more (no Close frame)');
    t.equal(Buffer.concat(upstreamGot).toString('latin1'), 'ping', 'the backend got the bytes and nothing more (no Close frame)');
    t.same(closes.map((c) => c.reason), ['shutdown']);
    s.destroy();
  });
}

t.test("Chromium's onclose sees code 1001 when the proxy drains", { skip: chromiumSkip }, async (t) => {
  const page = `<!doctype html><html><body><pre id="result">pending</pre><script>
    const ws = new WebSocket('ws://' + location.host + '/ws');
    ws.onopen = () => ws.send('hi');
    ws.onclose = (e) => { window.__result = JSON.stringify({ code: e.code, wasClean: e.wasClean }); document.getElementById('result').textContent = window.__result; };
  </script></body></html>`;
  const server = http.createServer((_req, res) => res.end(page));
  const wss = new WebSocketServer({ server, path: '/ws' });
  const serverCodes: number[] = [];
  wss.on('connection', (ws) => ws.on('close', (code) => serverCodes.push(code)));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const proxy = createProxy({ upstreams: { b: { servers: [`127.0.0.1:${(server.address() as AddressInfo).port}`] } }, relay: 'js', timeouts: { drainMs: 100 } });
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(async () => {
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  let opened = false;
  proxy.on('tunnel', () => (opened = true));
  const { endpoint } = await launchChromium(t);
  const browser = await cdp(endpoint);
  t.teardown(() => browser.close());
  const result = pageResult(browser, `http://127.0.0.1:${port(proxy)}/`);
  await waitFor(() => opened && wss.clients.size === 1, 20_000, 'the page\'s WebSocket open');
  await proxy.close();
  const { out } = await result;
  t.equal(out.code, 1001, 'onclose: 1001 going away');
  await waitFor(() => serverCodes.length === 1, 5000, 'the server side closed');
  t.same(serverCodes, [1001]);
});

/** A socket pair through two listeners: `client` -> proxyClient, proxyUpstream -> `server`. */
async function socketPairs(t: { teardown: (f: () => unknown) => void }): Promise<{ client: Socket; proxyClient: Socket; proxyUpstream: Socket; server: Socket }> {
  const front = net.createServer({ allowHalfOpen: true });
  const back = net.createServer({ allowHalfOpen: true });
  front.listen(0, '127.0.0.1');
  back.listen(0, '127.0.0.1');
  await Promise.all([once(front, 'listening'), once(back, 'listening')]);
  t.teardown(() => { front.close(); back.close(); });
  const accepted = (srv: net.Server): Promise<Socket> => new Promise((r) => srv.once('connection', r));
  const a = accepted(front);
  const client = net.connect({ port: port(front), host: '127.0.0.1', allowHalfOpen: true });
  const proxyClient = await a;
  const b = accepted(back);
  const proxyUpstream = net.connect({ port: port(back), host: '127.0.0.1', allowHalfOpen: true });
  const server = await b;
  for (const s of [client, proxyClient, proxyUpstream, server]) s.on('error', () => {});
  return { client, proxyClient, proxyUpstream, server };
}

/** A client frame with a 64-bit length (masked with a zero key: the payload reads as sent). */
function bigClientFrame(len: number): Buffer {
  const f = Buffer.alloc(14 + len, 5);
  f[0] = 0x82; f[1] = 0x80 | 127; f.fill(0, 2, 14); f.writeUInt32BE(len, 6);
  return f;
}

/** An unmasked server frame with a 16-bit length. */
function serverFrame(len: number): Buffer {
  const f = Buffer.alloc(4 + len, 9);
  f[0] = 0x82; f[1] = 126; f.writeUInt16BE(len, 2);
  return f;
}

const native = loadNativeRelay({ mode: 'splice', fallback: null }).relay;
t.test('the native engine in splice mode: small frames copied, a large payload spliced by its length; Close 1001 at each boundary, a cut frame finished first', { skip: native === null ? 'native relay not built' : false }, async (t) => {
  const { client, proxyClient, proxyUpstream, server } = await socketPairs(t);
  let ended!: (s: TunnelStats) => void;
  const end = new Promise<TunnelStats>((r) => (ended = r));
  const tunnel = native!.start(proxyClient, proxyUpstream, null, null, { idleTimeoutMs: 0, websocket: true }, (s) => ended(s));
  const toServer: Buffer[] = [];
  const toClient: Buffer[] = [];
  server.on('data', (d: Buffer) => toServer.push(d));
  client.on('data', (d: Buffer) => toClient.push(d));
  const big = bigClientFrame(600_000); // large: spliced by its length once the copy pump saw it start
  const before = Buffer.concat([clientFrame(2, Buffer.alloc(300, 1)), clientFrame(1, Buffer.from('hello')), big.subarray(0, 400_000)]);
  client.write(before);
  const down = Buffer.concat([serverFrame(1000), serverFrame(5), serverFrame(40_000)]);
  server.write(down);
  const size = (bs: Buffer[]): number => bs.reduce((n, b) => n + b.length, 0);
  await waitFor(() => size(toServer) === before.length && size(toClient) === down.length, 5000, 'the frames through the engine');
  tunnel.goAway();
  const clientEnd = once(client, 'end');
  await waitFor(() => size(toClient) === down.length + 4, 5000, 'the Close to the client');
  t.same(Buffer.concat(toClient).subarray(down.length), Buffer.from([0x88, 0x02, 0x03, 0xe9]), 'Close 1001, unmasked, right after the last whole frame');
  await clientEnd;
  t.equal(size(toServer), before.length, 'the upstream direction is mid-frame: nothing more yet');
  client.write(Buffer.concat([big.subarray(400_000), clientFrame(1, Buffer.from('after the boundary'))]));
  const serverEnd = once(server, 'end');
  await waitFor(() => size(toServer) === before.length + big.length - 400_000 + 8, 5000, 'the rest of the frame, then the Close');
  const got = Buffer.concat(toServer);
  t.same(got.subarray(0, before.length + big.length - 400_000), Buffer.concat([before, big.subarray(400_000)]), 'every frame whole, nothing past the boundary');
  const close = got.subarray(got.length - 8);
  t.equal(close[0], 0x88);
  t.equal(close[1], 0x82, 'masked, as a client must');
  t.equal(((close[6]! ^ close[2]!) << 8) | (close[7]! ^ close[3]!), 1001);
  await serverEnd;
  client.end();
  server.end();
  t.equal((await end).reason, 'shutdown');
});
