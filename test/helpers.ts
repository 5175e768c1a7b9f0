/**
 * Test peers on 127.0.0.1:0: raw TCP backends that record every byte, `ws`
 * servers, the proxy itself, and a raw client that reads one HTTP response.
 */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { createProxy, type Proxy, type ProxyOptions } from '../src/index.js';

export function port(s: Server | WebSocketServer | Proxy): number {
  return (s.address() as AddressInfo).port;
}

export async function startProxy(opts: ProxyOptions): Promise<Proxy> {
  const proxy = createProxy(opts);
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  return proxy;
}

/** A `ws` echo server that says which backend it is on 'whoami'. */
export async function wsEcho(name = 'ws'): Promise<WebSocketServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => {
      if (!isBinary && String(data) === 'whoami') ws.send(name);
      else ws.send(data, { binary: isBinary });
    });
  });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  return wss;
}

export function closeWss(wss: WebSocketServer): Promise<void> {
  for (const c of wss.clients) c.terminate();
  return new Promise((r) => wss.close(() => r()));
}

/** A raw TCP backend: records every byte each connection sends, answers with `respond`. */
export interface RawBackend {
  server: Server;
  port: number;
  /** Bytes received, one entry per connection, in accept order. */
  received: Buffer[];
  sockets: Socket[];
  close(): Promise<void>;
}

export async function rawBackend(respond: (sock: Socket, data: Buffer, conn: number) => void): Promise<RawBackend> {
  const received: Buffer[] = [];
  const sockets: Socket[] = [];
  const server = net.createServer((sock) => {
    const i = received.length;
    received.push(Buffer.alloc(0));
    sockets.push(sock);
    sock.on('error', () => {});
    sock.on('data', (d: Buffer) => {
      received[i] = Buffer.concat([received[i]!, d]);
      respond(sock, received[i]!, i);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    server,
    port: port(server),
    received,
    sockets,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** Answer a complete request head once with a fixed response (Connection: close semantics). */
export function respondOnce(response: string | Buffer): (sock: Socket, data: Buffer) => void {
  return (sock, data) => {
    if (data.includes('\r\n\r\n') && !(sock as Socket & { answered?: boolean }).answered) {
      (sock as Socket & { answered?: boolean }).answered = true;
      sock.end(response);
    }
  };
}

export function connect(p: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port: p, allowHalfOpen: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything the peer sends until it closes (or `ms` pass). */
export function readAll(s: Socket, ms = 5000): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = (): void => {
      clearTimeout(t);
      resolve(Buffer.concat(chunks));
    };
    const t = setTimeout(done, ms);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', done);
    s.on('close', done);
    s.on('error', () => {});
  });
}

/** Send raw bytes on a fresh connection and collect the reply until the proxy closes. */
export async function rawExchange(p: number, data: string | Buffer, ms = 5000): Promise<string> {
  const s = await connect(p);
  const reply = readAll(s, ms);
  s.write(data);
  const out = await reply;
  s.destroy();
  return out.toString('latin1');
}

/** Parse the first response in `text`: status and lower-cased headers. */
export function parseResponse(text: string): { status: number; headers: Map<string, string>; body: string } {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const lines = head.split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
  const headers = new Map<string, string>();
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':');
    if (c > 0) headers.set(l.slice(0, c).toLowerCase(), l.slice(c + 1).trim());
  }
  return { status, headers, body: end < 0 ? '' : text.slice(end + 4) };
}

/** A valid client handshake head for `path`. */
export function upgradeHead(path = '/', extra = '', key = 'dGhlIHNhbXBsZSBub25jZQ=='): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
  );
}

export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Wait until `cond()` holds (polling), or fail after `ms`. */
export async function waitFor(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(10);
  }
}

/** Open file descriptors of this process (Linux). */
export async function fdCount(): Promise<number> {
  const { readdirSync } = await import('node:fs');
  return readdirSync('/proc/self/fd').length;
}
