/**
 * Reading the PROXY header off a freshly accepted socket, before anything
 * else sees a byte. The bytes after the header are put back (unshift) for
 * whoever reads next: the HTTP connection or the TLS handshake.
 *
 * Refused, and the socket closed by the caller: a source not in the trust
 * list, a malformed or truncated header, a v2 command we do not know, a
 * header not complete within the deadline.
 */
import type { Socket } from 'node:net';
import { parseProxyHeader, V1_MAX, V2_DEFAULT_MAX_PAYLOAD, type ProxyHeader } from './parse.js';
import { setPeer } from './peer.js';
import type { TrustList } from './trust.js';

export interface ProxyReadOptions {
  trusted: TrustList;
  /** The whole header must arrive within this (the listener's head timeout). */
  timeoutMs: number;
  maxV2Payload?: number;
}

/** `reason` is null when the header was read; the socket then carries the real client (peer.ts). */
export type ProxyReadDone = (socket: Socket, reason: string | null, header: ProxyHeader | null) => void;

class HeaderReader {
  private buf: Buffer = Buffer.alloc(0);
  private timer: NodeJS.Timeout | null = null;
  private finished = false;

  constructor(
    private readonly socket: Socket,
    private readonly opts: ProxyReadOptions,
    private readonly done: ProxyReadDone,
  ) {
    this.onData = this.onData.bind(this);
    this.onEnd = this.onEnd.bind(this);
    this.onTimeout = this.onTimeout.bind(this);
  }

  start(): void {
    const s = this.socket;
    if (!this.opts.trusted.has(s.remoteAddress)) {
      this.finish(`PROXY header from an untrusted source ${s.remoteAddress ?? '?'} (not in realIpFrom)`, null);
      return;
    }
    s.on('data', this.onData);
    s.on('end', this.onEnd);
    s.on('close', this.onEnd);
    s.on('error', this.onEnd);
    if (this.opts.timeoutMs > 0) {
      this.timer = setTimeout(this.onTimeout, this.opts.timeoutMs);
      this.timer.unref();
    }
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const r = parseProxyHeader(this.buf, this.opts.maxV2Payload ?? V2_DEFAULT_MAX_PAYLOAD);
    if (r.kind === 'more') {
      // parse() refuses a v1 line past 107 bytes; this bounds what a v2 prefix may hold.
      if (this.buf.length > V1_MAX + 16 + (this.opts.maxV2Payload ?? V2_DEFAULT_MAX_PAYLOAD)) this.finish('PROXY header too long', null);
      return;
    }
    if (r.kind === 'error') {
      this.finish(`PROXY header refused: ${r.reason}`, null);
      return;
    }
    const h = r.header;
    const s = this.socket;
    s.pause();
    if (this.buf.length > h.length) s.unshift(this.buf.subarray(h.length));
    if (h.command === 'proxy' && h.source !== null) setPeer(s, { source: h.source, destination: h.destination });
    this.finish(null, h);
  }

  private onEnd(): void {
    this.finish(this.buf.length === 0 ? 'closed before a PROXY header' : 'PROXY header truncated (connection closed)', null);
  }

  private onTimeout(): void {
    this.finish('PROXY header not received in time', null);
  }

  private finish(reason: string | null, header: ProxyHeader | null): void {
    if (this.finished) return;
    this.finished = true;
    if (this.timer !== null) clearTimeout(this.timer);
    const s = this.socket;
    s.removeListener('data', this.onData);
    s.removeListener('end', this.onEnd);
    s.removeListener('close', this.onEnd);
    s.removeListener('error', this.onEnd);
    this.buf = Buffer.alloc(0);
    this.done(s, reason, header);
  }
}

/**
 * Read the PROXY header, then call `done` once. On success the socket is
 * paused with the bytes after the header unshifted: the next owner resumes it.
 */
export function readProxyHeader(socket: Socket, opts: ProxyReadOptions, done: ProxyReadDone): void {
  new HeaderReader(socket, opts, done).start();
}
