/** Raw TCP clients on 127.0.0.1: connect, read until close, one-shot exchanges, response parsing. */
import net, { type AddressInfo, type Server, type Socket } from 'node:net';

/** The port of anything listening (net.Server, ws server, the proxy). */
export function port(s: { address(): AddressInfo | string | null | object }): number {
  return (s.address() as AddressInfo).port;
}

/** A port that was free a moment ago (bind 127.0.0.1:0, read it, close). Prefer port 0 where a listener takes it. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv: Server = net.createServer();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0 }, () => {
      const p = port(srv);
      srv.close(() => resolve(p));
    });
  });
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

/** Resolves once the socket has closed (a no-op if it already has). */
export function closed(s: Socket): Promise<void> {
  if (s.destroyed && s.closed) return Promise.resolve();
  return new Promise((r) => s.once('close', () => r()));
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

export interface ParsedResponse {
  status: number;
  /** Lower-cased names; the last value of a repeated header. */
  headers: Map<string, string>;
  body: string;
}

/** Parse the first response in `text`: status and lower-cased headers. */
export function parseResponse(text: string): ParsedResponse {
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

/** The RFC 6455 example key; its accept value is `EXAMPLE_ACCEPT`. */
export const EXAMPLE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
export const EXAMPLE_ACCEPT = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';

/** A valid client handshake head for `path`; `extra` is whole header lines, each ending in CRLF. */
export function upgradeHead(path = '/', extra = '', key = EXAMPLE_KEY): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`
  );
}

/**
 * Connect, send a handshake and resolve once the whole 101 head is read; the socket is paused,
 * any tunnel bytes that came with the head unshifted. Rejects with the reply if it is not a 101.
 */
export async function openTunnel(p: number, head: string = upgradeHead()): Promise<Socket> {
  const s = await connect(p);
  s.write(head);
  await new Promise<void>((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      s.removeListener('data', onData);
      s.removeListener('close', onClose);
      s.pause();
      if (!/^HTTP\/1\.1 101 /.test(got.subarray(0, 13).toString('latin1'))) {
        s.destroy();
        reject(new Error(`not a 101: ${got.toString('latin1')}`));
        return;
      }
      const rest = got.subarray(end + 4);
      if (rest.length > 0) s.unshift(rest);
      resolve();
    };
    const onClose = (): void => reject(new Error(`closed before a 101 head: ${got.toString('latin1')}`));
    s.on('data', onData);
    s.once('close', onClose);
  });
  return s;
}
