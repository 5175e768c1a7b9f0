// Client side of the WebSocket handshake over a raw socket, for the load generator.
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { acceptKey, buildUpgradeRequest } from '../common/ws-frames.js';

// A fixed key: the request bytes are built once per port; the accept value is still checked.
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT_LINE = `sec-websocket-accept: ${acceptKey(KEY).toLowerCase()}`;
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1');
const TIMEOUT_MS = 10_000;
const requests = new Map<number, Buffer>();

export interface OpenTunnel {
  socket: Socket;
  /** Bytes that came after the 101 head (possibly empty). */
  rest: Buffer;
}

function upgradeRequest(port: number): Buffer {
  let req = requests.get(port);
  if (!req) {
    req = buildUpgradeRequest(`127.0.0.1:${port}`, '/websocket', KEY);
    requests.set(port, req);
  }
  return req;
}

/** Connects to 127.0.0.1:port and completes a WebSocket upgrade; rejects on any deviation or after 10 s. */
export function openTunnel(port: number, tls = false): Promise<OpenTunnel> {
  return new Promise((resolve, reject) => {
    const socket: Socket = tls
      ? tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
      : connect({ host: '127.0.0.1', port, noDelay: true });
    if (tls) socket.setNoDelay(true);
    let head: Buffer | null = null;
    const fail = (why: string): void => {
      cleanup();
      socket.destroy();
      reject(new Error(why));
    };
    const onError = (e: Error): void => fail(`upgrade: ${e.message}`);
    const onClose = (): void => fail('upgrade: connection closed before 101');
    const onTimeout = (): void => fail('upgrade: timed out');
    const onData = (chunk: Buffer): void => {
      head = head ? Buffer.concat([head, chunk]) : chunk;
      const end = head.indexOf(HEAD_END);
      if (end < 0) {
        if (head.length > 16384) fail('upgrade: response head too long');
        return;
      }
      const text = head.toString('latin1', 0, end).toLowerCase();
      if (!text.startsWith('http/1.1 101')) return fail(`upgrade: ${text.split('\r\n')[0]}`);
      if (!text.split('\r\n').includes(ACCEPT_LINE)) return fail('upgrade: wrong or missing Sec-WebSocket-Accept');
      cleanup();
      resolve({ socket, rest: head.subarray(end + 4) });
    };
    const cleanup = (): void => {
      socket.setTimeout(0);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      socket.removeListener('timeout', onTimeout);
    };
    socket.setTimeout(TIMEOUT_MS);
    socket.on('timeout', onTimeout);
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.write(upgradeRequest(port));
  });
}

/** Opens `n` tunnels with at most `parallel` handshakes in flight (a burst of SYNs would overflow backlogs). */
export async function openTunnels(port: number, n: number, parallel: number, tls = false): Promise<OpenTunnel[]> {
  const out: OpenTunnel[] = [];
  let next = 0;
  let firstError: Error | null = null;
  const worker = async (): Promise<void> => {
    while (next < n && firstError === null) {
      next++;
      try {
        out.push(await openTunnel(port, tls));
      } catch (e) {
        firstError ??= e as Error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  if (firstError !== null) {
    for (const t of out) t.socket.destroy();
    throw firstError;
  }
  return out;
}
