/**
 * The proxy: listeners, accept, and the registry of live connections for
 * graceful close. Everything per connection lives in connection.ts.
 */
import { EventEmitter } from 'node:events';
import net, { type AddressInfo, type Server, type Socket } from 'node:net';
import { Connection } from './connection.js';
import type { ProxyContext, ReportedClient } from './context.js';
import { channels } from './diagnostics.js';
import { ConfigError, ERRORS, UpstreamError, WspliceError, type ErrorCode } from './errors.js';
import { ParserPool, TYPE_REQUEST, TYPE_RESPONSE } from './http1/llhttp.js';
import { resolveOptions, type ProxyOptions, type ResolvedOptions } from './options.js';
import { selectRelay } from './relay/index.js';
import type { Relay, RelayKind, TunnelMove, TunnelStats } from './relay/types.js';
import { Router } from './router.js';
import { UpstreamGroup, type Backend } from './upstream/group.js';
import { UpstreamPool } from './upstream/pool.js';
import { RetiredSockets } from './upstream/retire.js';
import { ClientLimiter } from './limits/limiter.js';
import { listenerFront, type FrontRefusal, type ListenerEdgeOptions, type ListenerFront } from './tls/listener.js';
import type { ReloadResult } from './tls/terminator.js';
import type { ExchangeEvent, ExchangeOutcome } from './observe/record.js';
import { UpstreamTls } from './tls/upstream.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { quiet, type EmbedCallback, type EmbedHost } from './embed/host.js';
import { TargetGroups, type EmbedOptions } from './embed/target.js';
import { proxyUpgrade, type WsResult } from './embed/ws.js';
import { proxyRequest, type WebResult } from './embed/web.js';

export interface TunnelEvent {
  id: number;
  remoteAddress: string;
  backend: string;
  relay: RelayKind;
}

/** A tunnel moved to another relay ('auto': from 'js' to 'splice'). */
export interface RelayMovedEvent extends TunnelMove {
  id: number;
  backend: string;
}

export interface TunnelCloseEvent extends TunnelStats {
  id: number;
  backend: string;
}

/** Where a refused or failed request came from and went ('-' when its head was not read). */
export interface RequestContext {
  remoteAddress: string;
  remotePort: number;
  listener: string;
  method: string;
  host: string;
  path: string;
  requestId: string;
}

export interface RefusedEvent extends RequestContext {
  id: number;
  status: number;
  code: string;
  reason: string;
}

export interface UpstreamErrorEvent extends RequestContext {
  id: number;
  backend: string;
  status: number;
  code: string;
  reason: string;
}

/** A client connection accepted or closed (`connection` / `connectionClose`). */
export interface ConnectionEvent {
  id: number;
  /** The listener's address as `HOST:PORT`, `[v6]:PORT` or `unix:/path` ('' for handleConnection). */
  listener: string;
  remoteAddress: string;
  remotePort: number;
}

/** A configuration reload's result (`reload`). */
export interface ReloadEvent {
  ok: boolean;
  /** The configuration generation now in force (1 at start, +1 per successful reload). */
  generation: number;
  /** Why the new options were refused (ok false). */
  error?: string;
}

export interface ProxyStats {
  /** Client connections open now. */
  connections: number;
  /** Tunnels open now. */
  tunnels: number;
  tunnelsTotal: number;
  bytesUp: number;
  bytesDown: number;
  refused: number;
  upstreamErrors: number;
  /** Finished upstream connections waiting now for their backend to close. */
  retiredWaiting: number;
  /** Finished upstream connections the proxy closed itself (the backend kept them open past timeouts.retireMs, or limits.maxRetired was reached). */
  retiredClosed: number;
  /** Plain requests that took an idle pooled upstream connection. */
  upstreamReused: number;
  /** Reused connections that closed before any response byte; the request went out again on a new one. */
  upstreamRaces: number;
  /** Idle pooled upstream connections now. */
  upstreamIdle: number;
}

export interface ProxyEvents {
  connection: [ConnectionEvent];
  connectionClose: [ConnectionEvent];
  /** One per request/response exchange, when it ends: what an access log line says. */
  exchange: [ExchangeEvent];
  reload: [ReloadEvent];
  tunnel: [TunnelEvent];
  tunnelClose: [TunnelCloseEvent];
  relayMoved: [RelayMovedEvent];
  refused: [RefusedEvent];
  upstreamError: [UpstreamErrorEvent];
  listening: [AddressInfo | string];
  /** A TLS listener re-read its certificates (reloadCertificates() or a file change). */
  tlsReload: [ReloadResult];
  close: [];
  error: [Error];
}

export type ListenTarget = number | string | ({ host?: string; port?: number; path?: string } & ListenerEdgeOptions);

export class WspliceProxy extends EventEmitter<ProxyEvents> {
  readonly options: ResolvedOptions;
  readonly groups: ReadonlyMap<string, UpstreamGroup>;
  readonly relayKind: 'js' | 'splice';
  /** Why this relay was chosen (e.g. why the native one was not). */
  readonly relayNote: string;
  private readonly ctx: ProxyContext;
  private readonly servers: Server[] = [];
  private readonly fronts: ListenerFront[] = [];
  private readonly live = new Set<Connection>();
  private readonly counters: ProxyStats = {
    connections: 0, tunnels: 0, tunnelsTotal: 0, bytesUp: 0, bytesDown: 0, refused: 0, upstreamErrors: 0, retiredWaiting: 0, retiredClosed: 0, upstreamReused: 0, upstreamRaces: 0, upstreamIdle: 0,
  };
  private closing: Promise<void> | null = null;
  private readonly embed: EmbedHost;
  /** 1 at start, +1 per successful reload. */
  generation = 1;

  constructor(input: ProxyOptions) {
    super();
    const options = resolveOptions(input);
    this.options = options;
    const groups = new Map<string, UpstreamGroup>();
    for (const [name, u] of options.upstreams) groups.set(name, new UpstreamGroup(name, u.backends, u.maxFails, u.failTimeoutMs));
    this.groups = groups;
    let relay: Relay;
    try {
      const r = selectRelay(options.relay);
      relay = r.relay;
      this.relayNote = r.note;
    } catch (err) {
      throw new ConfigError('relay', (err as Error).message);
    }
    this.relayKind = relay.kind;
    const limits = {
      maxHeadBytes: options.limits.maxHeadBytes,
      maxHeaders: options.limits.maxHeaders,
      maxUriBytes: options.limits.maxUriBytes,
    };
    this.ctx = {
      options,
      router: new Router(options.routes, groups),
      requestParsers: new ParserPool(TYPE_REQUEST, limits, options.limits.maxParsers),
      responseParsers: new ParserPool(TYPE_RESPONSE, { ...limits, maxHeaders: Math.max(limits.maxHeaders, 200) }, options.limits.maxParsers),
      relay,
      limiter: options.clientLimits !== null ? new ClientLimiter(options.clientLimits) : null,
      upstreamTls: upstreamTlsOf(options),
      retired: new RetiredSockets(options.timeouts.retireMs, options.limits.maxRetired),
      pools: poolsOf(options),
      draining: false,
      ...this.reporters(relay),
    };
    this.handleConnection = this.handleConnection.bind(this);
    this.embed = this.embedHost(options, groups);
    this.ws = this.ws.bind(this);
    this.web = this.web.bind(this);
  }

  /** What proxy.ws and proxy.web need of the proxy (src/embed/). */
  private embedHost(options: ResolvedOptions, groups: ReadonlyMap<string, UpstreamGroup>): EmbedHost {
    const max = options.limits.maxConnections;
    const accepting = (): boolean => !this.ctx.draining && !(max > 0 && this.live.size >= max);
    return {
      ctx: this.ctx,
      targets: new TargetGroups(options, groups),
      accepting,
      adopt: (c: Connection) => {
        this.live.add(c);
        this.counters.connections++;
        if (channels.connection.hasSubscribers) channels.connection.publish({ id: c.id, remoteAddress: c.remoteAddress });
        return true;
      },
    };
  }

  /**
   * Proxy an upgrade an http.Server already parsed (its 'upgrade' event): the same checks,
   * routing, 101 validation and relays as a listener. Resolves once the tunnel is open (or the
   * upstream's non-101 answer was relayed); rejects with the refusal or upstream failure after its
   * answer was written. Never throws; an unawaited rejection is not an unhandled one.
   */
  ws(req: IncomingMessage, socket: Duplex, head?: Buffer, options?: EmbedOptions): Promise<WsResult>;
  ws(req: IncomingMessage, socket: Duplex, head: Buffer | undefined, options: EmbedOptions | undefined, callback: EmbedCallback<Duplex>): void;
  ws(req: IncomingMessage, socket: Duplex, head: Buffer | undefined, callback: EmbedCallback<Duplex>): void;
  ws(req: IncomingMessage, socket: Duplex, head?: Buffer, options?: EmbedOptions | EmbedCallback<Duplex>, callback?: EmbedCallback<Duplex>): Promise<WsResult> | void {
    const cb = typeof options === 'function' ? options : callback;
    const p = quiet(proxyUpgrade(this.embed, req, socket, head, typeof options === 'function' ? undefined : options));
    if (cb === undefined) return p;
    p.then(() => {}, (err: Error) => cb(err, req, socket));
  }

  /**
   * Proxy a plain request an http.Server parsed (its 'request' event) to the route's upstream or
   * `options.target`: the listener's checks and forwarding rules, bodies streamed both ways.
   * Failures answer as a listener does (4xx, 502, 504) and reject; with a callback, the callback
   * answers instead (http-proxy's error handler). Never throws.
   */
  web(req: IncomingMessage, res: ServerResponse, options?: EmbedOptions): Promise<WebResult>;
  web(req: IncomingMessage, res: ServerResponse, options: EmbedOptions | undefined, callback: EmbedCallback<ServerResponse>): void;
  web(req: IncomingMessage, res: ServerResponse, callback: EmbedCallback<ServerResponse>): void;
  web(req: IncomingMessage, res: ServerResponse, options?: EmbedOptions | EmbedCallback<ServerResponse>, callback?: EmbedCallback<ServerResponse>): Promise<WebResult> | void {
    const cb = typeof options === 'function' ? options : callback;
    const p = quiet(proxyRequest(this.embed, req, res, typeof options === 'function' ? undefined : options, cb === undefined));
    if (cb === undefined) return p;
    p.then(() => {}, (err: Error) => cb(err, req, res));
  }

  /** How connections report: counters, events, and diagnostics_channel messages. */
  private reporters(relay: Relay): Omit<ProxyContext, 'options' | 'router' | 'requestParsers' | 'responseParsers' | 'relay' | 'limiter' | 'upstreamTls' | 'retired' | 'pools' | 'draining'> {
    const emitWhenHeard = this.emitWhenHeard.bind(this);
    const self = this;
    return {
      tunnelOpened(c: Connection, backend: Backend, kind: RelayKind) {
        self.counters.tunnels++;
        self.counters.tunnelsTotal++;
        const ev: TunnelEvent = { id: c.id, remoteAddress: c.remoteAddress, backend: backend.label, relay: kind };
        if (channels.tunnelOpen.hasSubscribers) channels.tunnelOpen.publish(ev);
        if (self.listenerCount('tunnel') > 0) self.emit('tunnel', ev);
      },
      tunnelMoved(c: Connection, backend: Backend, move: TunnelMove) {
        const ev: RelayMovedEvent = { id: c.id, backend: backend.label, ...move };
        if (channels.relayMoved.hasSubscribers) channels.relayMoved.publish(ev);
        if (self.listenerCount('relayMoved') > 0) self.emit('relayMoved', ev);
      },
      tunnelClosed(c: Connection, backend: Backend, stats: TunnelStats) {
        self.counters.tunnels--;
        self.counters.bytesUp += stats.bytesUp;
        self.counters.bytesDown += stats.bytesDown;
        const ev: TunnelCloseEvent = { id: c.id, backend: backend.label, ...stats, relay: stats.relay ?? relay.kind };
        if (channels.tunnelClose.hasSubscribers) channels.tunnelClose.publish(ev);
        if (self.listenerCount('tunnelClose') > 0) self.emit('tunnelClose', ev);
      },
      refused(c: ReportedClient, err: WspliceError) {
        self.counters.refused++;
        c.rec.code = err.code;
        if (err.status > 0) c.rec.status = err.status;
        const ev: RefusedEvent = { id: c.id, ...requestContext(c), status: err.status, code: err.code, reason: err.message };
        if (channels.refused.hasSubscribers) channels.refused.publish(ev);
        if (self.listenerCount('refused') > 0) self.emit('refused', ev);
      },
      upstreamFailed(c: ReportedClient, err: UpstreamError) {
        self.counters.upstreamErrors++;
        const ev: UpstreamErrorEvent = { id: c.id, ...requestContext(c), backend: err.backend, status: err.status, code: err.code, reason: err.message };
        if (channels.upstreamError.hasSubscribers) channels.upstreamError.publish(ev);
        if (self.listenerCount('upstreamError') > 0) self.emit('upstreamError', ev);
      },
      failed(c: Connection, code: ErrorCode, reason: string, status: number, backend: Backend | null) {
        c.rec.code = code;
        if (status > 0) c.rec.status = status;
        const event = ERRORS[code].event;
        if (event === 'refused') this.refused(c, new WspliceError(code, reason, status));
        else if (event === 'upstreamError') this.upstreamFailed(c, new UpstreamError(code, backend?.label ?? '-', reason));
      },
      connectionClosed(c: Connection) {
        if (!self.live.delete(c)) return;
        self.counters.connections--;
        emitWhenHeard(channels.connectionClose, 'connectionClose', () => connectionEvent(c));
      },
      exchangeEnded(c: Connection, outcome: ExchangeOutcome) {
        if (!emitWhenHeard(channels.exchange, 'exchange', () => c.rec.end(c, outcome))) c.rec.open = false;
      },
    };
  }

  /** Publish and emit an event built only when someone listens; false when nobody does. */
  private emitWhenHeard<K extends 'connection' | 'connectionClose' | 'exchange'>(
    channel: { hasSubscribers: boolean; publish(m: unknown): void }, name: K, build: () => ProxyEvents[K][0] | null,
  ): boolean {
    if (!channel.hasSubscribers && this.listenerCount(name) === 0) return false;
    const ev = build();
    if (ev === null) return true;
    if (channel.hasSubscribers) channel.publish(ev);
    (this.emit as (n: K, e: ProxyEvents[K][0]) => boolean)(name, ev);
    return true;
  }

  /** Listening and not draining: what a readiness probe asks. */
  get ready(): boolean {
    return !this.ctx.draining && this.servers.some((s) => s.listening);
  }

  /**
   * Take over a client socket accepted elsewhere (an app's own net.Server).
   * The socket should have been created with allowHalfOpen so a FIN is relayed.
   */
  handleConnection(socket: Socket, listener = ''): void {
    const max = this.options.limits.maxConnections;
    if (this.ctx.draining || (max > 0 && this.live.size >= max)) {
      // Over the limit: closed at once, before a byte is read (nginx does the same past worker_connections).
      socket.destroy();
      if (!this.ctx.draining) this.counters.refused++;
      return;
    }
    const c = new Connection(this.ctx, socket, listener);
    this.live.add(c);
    this.counters.connections++;
    this.emitWhenHeard(channels.connection, 'connection', () => connectionEvent(c));
  }

  /**
   * Start a listener. A bare port binds every interface, as Node's `server.listen(port)` does;
   * `{ host, port }` binds one address; a string is a unix socket path.
   */
  listen(target: ListenTarget = 0): Promise<AddressInfo | string> {
    let front: ListenerFront | null;
    let label = ''; // the address, once listening: connections carry it for logs and metrics
    const accept = (s: Socket): void => this.handleConnection(s, label);
    try {
      front = typeof target === 'object' ? this.frontFor(target, accept) : null;
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, front?.onConnection ?? accept);
    this.servers.push(server);
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.servers.splice(this.servers.indexOf(server), 1);
        reject(err);
      };
      server.once('error', onError);
      const done = (): void => {
        server.removeListener('error', onError);
        server.on('error', (err) => {
          if (this.listenerCount('error') > 0) this.emit('error', err);
        });
        const addr = server.address() as AddressInfo | string;
        label = typeof addr === 'string' ? `unix:${addr}` : addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
        this.emit('listening', addr);
        resolve(addr);
      };
      if (typeof target === 'number') server.listen(target, done);
      else if (typeof target === 'string') server.listen(target, done);
      else if (target.path !== undefined) server.listen(target.path, done);
      else server.listen(target.port ?? 0, target.host, done);
    });
  }

  /** PROXY header, TLS and per-client limits in front of a listener (src/tls/listener.ts). */
  private frontFor(target: ListenerEdgeOptions, accept: (s: Socket) => void): ListenerFront | null {
    const shared = { realIpFrom: this.options.realIpFrom, limiter: this.ctx.limiter, headTimeoutMs: this.options.timeouts.headMs };
    const front = listenerFront(target, shared, {
      accept,
      refused: (code: FrontRefusal, status: number, reason: string, remoteAddress: string) => {
        this.counters.refused++;
        const ev: RefusedEvent = { id: 0, remoteAddress, remotePort: 0, listener: '', method: '-', host: '-', path: '-', requestId: '-', status, code, reason };
        if (channels.refused.hasSubscribers) channels.refused.publish(ev);
        if (this.listenerCount('refused') > 0) this.emit('refused', ev);
      },
    });
    if (front !== null) {
      this.fronts.push(front);
      front.tls?.on('reload', (r) => this.emit('tlsReload', r));
    }
    return front;
  }

  /** Re-read every TLS listener's certificates (SIGHUP); a listener whose new files are bad keeps its old ones. */
  reloadCertificates(): ReloadResult[] {
    return this.fronts.flatMap((f) => (f.tls !== null ? [f.tls.reload()] : []));
  }

  /** The first listener's address (null before listen). */
  address(): AddressInfo | string | null {
    return this.servers[0]?.address() ?? null;
  }

  /** Every listener's address. */
  addresses(): Array<AddressInfo | string> {
    return this.servers.map((s) => s.address()).filter((a): a is AddressInfo | string => a !== null);
  }

  stats(): ProxyStats {
    const r = this.ctx.retired;
    const pooled = { upstreamReused: 0, upstreamRaces: 0, upstreamIdle: 0 };
    for (const p of this.ctx.pools.values()) {
      pooled.upstreamReused += p.reused;
      pooled.upstreamRaces += p.races;
      pooled.upstreamIdle += p.size;
    }
    return { ...this.counters, retiredWaiting: r.size, retiredClosed: r.closedByProxy, ...pooled };
  }

  /**
   * Graceful close: stop accepting, close idle keep-alive connections, let
   * exchanges and tunnels finish for up to `timeouts.drainMs`, then end them.
   */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.ctx.draining = true;
    this.closing = (async () => {
      // net.Server#close calls back only once every connection is gone: wait for it last.
      const stopped = Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const c of this.live) c.drain();
      const deadline = Date.now() + this.options.timeouts.drainMs;
      while (this.live.size > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 25));
        for (const c of this.live) c.drain(); // connections that finished their exchange since
      }
      for (const f of this.fronts) f.close(); // handshakes still in progress
      // WebSocket tunnels end with Close 1001 at a frame boundary (a bounded wait), the rest now.
      for (const c of this.live) c.destroy(true);
      while (this.live.size > 0) await new Promise((r) => setTimeout(r, 5));
      this.ctx.retired.closeAll();
      for (const p of this.ctx.pools.values()) p.closeAll();
      await stopped;
      this.emit('close');
    })();
    return this.closing;
  }
}

/** A keep-alive pool per upstream group with `keepalive`; not with sendProxy (a PROXY header names one client). */
function poolsOf(options: ResolvedOptions): Map<string, UpstreamPool> {
  const out = new Map<string, UpstreamPool>();
  for (const [name, u] of options.upstreams) if (u.keepalive !== null && u.sendProxy === null) out.set(name, new UpstreamPool(u.keepalive));
  return out;
}

/** A TLS client context per upstream group with `tls`; a bad file is a ConfigError naming the group. */
function upstreamTlsOf(options: ResolvedOptions): Map<string, UpstreamTls> {
  const out = new Map<string, UpstreamTls>();
  for (const [name, u] of options.upstreams) {
    if (u.tls === null) continue;
    try {
      out.set(name, new UpstreamTls(u.tls));
    } catch (err) {
      throw new ConfigError(`upstreams.${name}.tls`, (err as Error).message);
    }
  }
  return out;
}

function connectionEvent(c: Connection): ConnectionEvent {
  return { id: c.id, listener: c.listener, remoteAddress: c.remoteAddress, remotePort: c.client.remotePort ?? 0 };
}

function requestContext(c: ReportedClient): RequestContext {
  const r = c.rec;
  return {
    remoteAddress: c.remoteAddress,
    remotePort: c.client.remotePort ?? 0,
    listener: c.listener,
    method: r.method,
    host: r.host,
    path: r.path,
    requestId: `${c.id}-${r.seq}`,
  };
}
