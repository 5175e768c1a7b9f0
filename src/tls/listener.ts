/**
 * A listener's first steps, before any HTTP: the PROXY header (when the
 * listener takes one), the TLS handshake (when it terminates TLS), then the
 * per-client connection limits; only then is the socket an HTTP connection.
 * A socket refused on the way is closed and counted; nothing of it reaches
 * a backend. A listener with none of these hands sockets straight on.
 */
import type { Socket } from 'node:net';
import { ConfigError } from '../errors.js';
import type { ClientLimiter } from '../limits/limiter.js';
import { clientAddress } from '../proxy-protocol/peer.js';
import { readProxyHeader } from '../proxy-protocol/read.js';
import type { TrustList } from '../proxy-protocol/trust.js';
import { resolveListenerTls, type ListenerTlsConfig } from './options.js';
import { TlsTerminator } from './terminator.js';

export type FrontRefusal = 'WSPLICE_PROXY_PROTOCOL' | 'WSPLICE_TLS_HANDSHAKE' | 'WSPLICE_CLIENT_LIMIT';

export interface FrontOptions {
  /** Read a PROXY header first, from these sources only (null: no header expected). */
  proxyProtocol: TrustList | null;
  tls: TlsTerminator | null;
  limiter: ClientLimiter | null;
  /** The PROXY header and the TLS handshake must be done within this (the head timeout). */
  headTimeoutMs: number;
}

export interface FrontHooks {
  /** The socket is ready for HTTP (plain or TLS, client address known). */
  accept(socket: Socket): void;
  refused(code: FrontRefusal, status: number, reason: string, remoteAddress: string): void;
}

export class ListenerFront {
  /** The net.Server connection listener. */
  readonly onConnection: (socket: Socket) => void;
  readonly tls: TlsTerminator | null;
  /** Sockets still in their PROXY header or TLS handshake. */
  private readonly inPreamble = new Set<Socket>();

  constructor(
    private readonly opts: FrontOptions,
    private readonly hooks: FrontHooks,
  ) {
    this.afterProxy = this.afterProxy.bind(this);
    this.onHeader = this.onHeader.bind(this);
    this.ready = this.ready.bind(this);
    this.tls = opts.tls;
    opts.tls?.setHooks({
      secure: this.ready,
      // The terminator closes the socket itself: once TLS owns it, the raw socket must not be touched.
      failed: (_raw, reason, remoteAddress) => this.hooks.refused('WSPLICE_TLS_HANDSHAKE', 0, reason, remoteAddress),
      settled: (raw) => this.inPreamble.delete(raw),
    });
    this.onConnection = opts.proxyProtocol !== null ? this.readHeader.bind(this) : this.afterProxy;
  }

  /** Whether this front does anything (else the listener hands sockets to HTTP directly). */
  static needed(o: FrontOptions): boolean {
    return o.proxyProtocol !== null || o.tls !== null || o.limiter !== null;
  }

  get pending(): number {
    return this.inPreamble.size;
  }

  /** The proxy is closing: sockets that are not HTTP connections yet go now. */
  /** Replaced by a reload: sockets in their preamble finish here; certificate files are no longer watched. */
  retire(): void {
    this.opts.tls?.unwatch();
  }

  /** No socket is in its PROXY header or TLS handshake here. */
  idle(): boolean {
    return this.inPreamble.size === 0;
  }

  close(): void {
    for (const s of this.inPreamble) s.destroy();
    this.inPreamble.clear();
    this.opts.tls?.close();
  }

  private readHeader(socket: Socket): void {
    this.inPreamble.add(socket);
    readProxyHeader(socket, { trusted: this.opts.proxyProtocol!, timeoutMs: this.opts.headTimeoutMs }, this.onHeader);
  }

  private onHeader(socket: Socket, reason: string | null): void {
    if (reason !== null) {
      this.inPreamble.delete(socket);
      this.refuse(socket, 'WSPLICE_PROXY_PROTOCOL', 0, reason);
      return;
    }
    this.afterProxy(socket);
  }

  private afterProxy(socket: Socket): void {
    if (this.opts.tls !== null) {
      this.inPreamble.add(socket);
      this.opts.tls.handshake(socket);
      return;
    }
    this.inPreamble.delete(socket);
    this.ready(socket);
  }

  /** Plain, or TLS established: the last gate is the per-client limit. */
  private ready(socket: Socket): void {
    const limiter = this.opts.limiter;
    if (limiter !== null) {
      const refusal = limiter.admitConnection(socket);
      if (refusal !== null) {
        this.hooks.refused('WSPLICE_CLIENT_LIMIT', refusal.status, refusal.reason, clientAddress(socket));
        refusal.answer(socket);
        return;
      }
    }
    this.hooks.accept(socket);
    // A socket whose PROXY header was read is paused, its next bytes unshifted.
    if (socket.isPaused()) socket.resume();
  }

  private refuse(socket: Socket, code: FrontRefusal, status: number, reason: string): void {
    this.hooks.refused(code, status, reason, socket.remoteAddress ?? '');
    socket.destroy();
  }
}

/** What a listener may add to its address: TLS termination and a PROXY header. */
export interface ListenerEdgeOptions {
  /** Terminate TLS here (nginx `listen ... ssl` with the server's ssl_* directives). */
  tls?: ListenerTlsConfig;
  /** Expect a PROXY protocol header first (nginx `listen ... proxy_protocol`); only from `realIpFrom`. */
  proxyProtocol?: boolean;
}

/**
 * The front for a listener, or null when it needs none. Throws ConfigError
 * for bad TLS options or unreadable files, and for a PROXY listener with no
 * trusted source.
 */
export function listenerFront(
  target: ListenerEdgeOptions,
  shared: { realIpFrom: TrustList; limiter: ClientLimiter | null; headTimeoutMs: number },
  hooks: FrontHooks,
  field = 'listen',
): ListenerFront | null {
  let terminator: TlsTerminator | null = null;
  if (target.tls !== undefined) {
    const resolved = resolveListenerTls(target.tls, `${field}.tls`);
    try {
      terminator = new TlsTerminator(resolved, shared.headTimeoutMs);
    } catch (err) {
      throw new ConfigError(`${field}.tls`, (err as Error).message);
    }
  }
  if (target.proxyProtocol !== undefined && typeof target.proxyProtocol !== 'boolean') {
    throw new ConfigError(`${field}.proxyProtocol`, 'must be a boolean');
  }
  if (target.proxyProtocol === true && shared.realIpFrom.size === 0) {
    throw new ConfigError('realIpFrom', 'a listener with proxyProtocol needs the addresses allowed to send it (set_real_ip_from)');
  }
  const o: FrontOptions = {
    proxyProtocol: target.proxyProtocol === true ? shared.realIpFrom : null,
    tls: terminator,
    limiter: shared.limiter,
    headTimeoutMs: shared.headTimeoutMs,
  };
  return ListenerFront.needed(o) ? new ListenerFront(o, hooks) : null;
}
