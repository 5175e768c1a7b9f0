/**
 * Upstreams a test controls byte for byte: a raw TCP backend that records everything each
 * connection sends, responders for it (a fixed answer, a valid 101 then a tunnel), and a
 * node:http backend that reports each request it got.
 */
import http from 'node:http';
import net, { type Server, type Socket } from 'node:net';
import { acceptFor } from '../../src/index.js';
import { port } from './net.js';

/** Called on every chunk: `data` is everything this connection has sent so far; `conn` its accept index. */
export type Responder = (sock: Socket, data: Buffer, conn: number) => void;

export interface RawBackend {
  server: Server;
  /** The TCP port (0 for a unix-socket backend). */
  port: number;
  /** The unix socket path, for a backend made with one. */
  path?: string;
  /** Bytes received, one entry per connection, in accept order. */
  received: Buffer[];
  sockets: Socket[];
  close(): Promise<void>;
}

export async function rawBackend(respond: Responder, unixPath?: string): Promise<RawBackend> {
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
  if (unixPath !== undefined) await new Promise<void>((r) => server.listen(unixPath, () => r()));
  else await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    server,
    port: unixPath !== undefined ? 0 : port(server),
    ...(unixPath !== undefined ? { path: unixPath } : {}),
    received,
    sockets,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/**
 * A responder that runs `fn` when a socket's bytes hold a request head they did not before
 * (keep-alive: each request in turn); `before` is how many heads the socket had sent until then
 * (0 the first time), `head` the newest head's text, `conn` the socket's accept index. Bodies are
 * not read: for GETs.
 */
export function eachHead(fn: (sock: Socket, before: number, head: string, conn: number) => void): Responder {
  const answered = new WeakMap<Socket, number>();
  return (sock, data, conn) => {
    const parts = data.toString('latin1').split('\r\n\r\n');
    const heads = parts.length - 1;
    const done = answered.get(sock) ?? 0;
    if (heads === done) return;
    answered.set(sock, heads);
    fn(sock, done, parts[heads - 1]!, conn);
  };
}

/** Runs `fn` once per socket, the first time its bytes hold a complete head. */
function oncePerHead(fn: (sock: Socket, data: Buffer, headEnd: number) => void): Responder {
  const answered = new WeakSet<Socket>();
  return (sock, data) => {
    if (answered.has(sock)) return;
    const end = data.indexOf('\r\n\r\n');
    if (end < 0) return;
    answered.add(sock);
    fn(sock, data, end + 4);
  };
}

/** Answer a complete request head once with a fixed response, then end (Connection: close semantics). */
export function respondOnce(response: string | Buffer): Responder {
  return oncePerHead((sock) => sock.end(response));
}

/** Answer each connection's head with 200 and `name` as the body, then end: tells which backend served. */
export function namedBackend(name: string): Promise<RawBackend> {
  return rawBackend(respondOnce(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(name)}\r\n\r\n${name}`));
}

/** The Sec-WebSocket-Key of a request head, or undefined. */
export function requestKey(head: string | Buffer): string | undefined {
  const text = typeof head === 'string' ? head : head.toString('latin1');
  return /\r\nsec-websocket-key:[ \t]*(\S+)/i.exec(text)?.[1];
}

/** A valid 101 head for `key`; `extra` is whole header lines, each ending in CRLF. */
export function switchingProtocols(key: string, extra = ''): string {
  return (
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${acceptFor(key)}\r\n${extra}\r\n`
  );
}

export interface Upgrade101 {
  /** Header lines added to the 101 (each ending in CRLF), or the whole head built from the key. */
  head?: string | ((key: string) => string);
  /** Bytes written right behind the 101, in a separate write (tunnel bytes from the backend). */
  after?: string | Buffer;
  /**
   * Takes over the socket after the 101: the backend stops recording, `tunnel` gets the socket,
   * and any bytes that came behind the request head are emitted to it as 'data'.
   */
  tunnel?: (sock: Socket) => void;
}

/** A responder that answers the first head of each connection with a 101 for its key. */
export function respond101(o: Upgrade101 = {}): Responder {
  return oncePerHead((sock, data, headEnd) => {
    const key = requestKey(data.subarray(0, headEnd)) ?? '';
    const head = typeof o.head === 'function' ? o.head(key) : switchingProtocols(key, o.head ?? '');
    sock.write(head);
    if (o.after !== undefined) sock.write(o.after);
    if (!o.tunnel) return;
    sock.removeAllListeners('data');
    o.tunnel(sock);
    const rest = data.subarray(headEnd);
    if (rest.length > 0) sock.emit('data', rest);
  });
}

/** A raw backend that completes every handshake and echoes the tunnel's bytes back unchanged. */
export function echo101(): Promise<RawBackend> {
  return rawBackend(respond101({ tunnel: (sock) => sock.pipe(sock) }));
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

export interface HttpBackend {
  server: http.Server;
  port: number;
  /** Every request, in arrival order, once its body has ended. */
  seen: SeenRequest[];
  close(): Promise<void>;
}

/**
 * A node:http backend that records each request. Default answer: 200 with
 * "METHOD URL BODY"; `handler` may answer instead (return true when it did).
 */
export async function httpBackend(
  handler?: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => boolean,
): Promise<HttpBackend> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body });
      if (handler?.(req, res, body)) return;
      const out = `${req.method} ${req.url} ${body}`;
      res.writeHead(200, { 'Content-Length': Buffer.byteLength(out), 'Keep-Alive': 'timeout=5', 'X-Backend': 'b1' });
      res.end(req.method === 'HEAD' ? undefined : out);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    server,
    port: port(server),
    seen,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

export interface HttpReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request with node:http (an independent client); resolves with the whole reply. */
export function httpGet(p: number, path: string, opts: http.RequestOptions = {}, body?: string): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: p, path, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}
