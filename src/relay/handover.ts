/**
 * The only place that reaches into Node's socket internals: the fd of a TCP or
 * pipe handle, and stopping libuv from reading so that the native engine is the
 * only reader from then on. Nothing here is in @types/node; each use checks.
 */
import type { Server, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';

/** Node's stream handle, as far as the hand-over needs it. */
interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop?: () => number;
}

function handleOf(s: Socket): StreamHandle | null {
  const h = (s as unknown as { _handle?: StreamHandle | null })._handle;
  return h ?? null;
}

/** The socket's fd, or -1 when the engine cannot take it (TLS: JS must decrypt; destroyed; no fd). */
export function fdOf(s: Socket): number {
  if (s instanceof TLSSocket || s.destroyed) return -1;
  const fd = handleOf(s)?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1;
}

/** A listening server's fd, or -1 (not listening, or a handle without one). */
export function serverFdOf(s: Server): number {
  const fd = (s as unknown as { _handle?: StreamHandle | null })._handle?.fd;
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0 ? fd : -1;
}

/** Stops libuv reading into JS; returns what JS had already buffered (or null). */
export function stopReading(s: Socket): Buffer | null {
  // The engine owns the socket now: a leftover 'data' listener would also get
  // the bytes read below (read() emits 'data').
  s.removeAllListeners('data');
  s.pause();
  const h = handleOf(s);
  const stop = (): void => {
    if (h?.readStop) {
      h.reading = false;
      h.readStop();
    }
  };
  stop();
  // read() may restart the handle (Socket._read). No I/O runs until we return
  // to the event loop, so stopping again right after is race-free.
  let out: Buffer | null = null;
  if (s.readableLength > 0) {
    const chunk: unknown = s.read();
    if (Buffer.isBuffer(chunk)) out = chunk;
    else if (typeof chunk === 'string') out = Buffer.from(chunk);
  }
  stop();
  return out;
}

/** True while a socket holds no byte of the tunnel in JS (nothing queued either way). */
export function emptyInJs(s: Socket): boolean {
  return s.writableLength === 0 && s.readableLength === 0;
}
