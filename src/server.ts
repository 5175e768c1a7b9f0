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
import { resolveOptions, type ProxyOptions, type ResolvedOptions } from './options.js';
import type { SourceMap } from './config/issues.js';
import { nativeRelay, selectRelay } from './relay/index.js';
import type { Relay, RelayKind, TunnelMove, TunnelStats } from './relay/types.js';
import type { Backend, BackendTransition, UpstreamGroup } from './upstream/group.js';
import type { UpstreamSnapshot } from './upstream/runtime.js';
import { buildGeneration, type Generation } from './generation.js';
import type { UpstreamPool } from './upstream/pool.js';
import { RetiredSockets } from './upstream/retire.js';
import { listenerFront, type FrontRefusal, type ListenerEdgeOptions, type ListenerFront } from './tls/listener.js';
import type { ReloadResult } from './tls/terminator.js';
import type { ExchangeEvent, ExchangeOutcome } from './observe/record.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { quiet, type EmbedCallback, type EmbedHost } from './embed/host.js';
import { TargetGroups, type EmbedOptions } from './embed/target.js';
import { proxyUpgrade, type WsResult } from './embed/ws.js';
import { proxyRequest, type WebResult } from './embed/web.js';
import { handoverCalls, handOver, takeOver, type GiveHost, type HandOverOptions, type HandoverEndEvent, type Phase, type HandOverReport, type TakeHost, type TakeOverOptions, type TakeOverReport } from './handover/index.js';
import { trackTunnels } from './handover/track.js';
import { serverFdOf } from './relay/handover.js';
import type { Tunnel } from './relay/types.js';

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
  /** A backend went out or came back by its active health check. */
  upstreamState: [BackendTransition];
  listening: [AddressInfo | string];
  /** A TLS listener re-read its certificates (reloadCertificates() or a file change). */
  tlsReload: [ReloadResult];
  close: [];
  error: [Error];
  /** A hand-over (handOver) entered a phase. */
  handover: [{ phase: Phase }];
  /** A hand-over or take-over ended, well or not: its counts and pauses. */
  handoverEnd: [HandoverEndEvent];
}

/** `fd`: an already listening socket (one a hand-over gave, or inherited). */
export type ListenTarget = number | string | ({ host?: string; port?: number; path?: string; fd?: number } & ListenerEdgeOptions);

/** A listening socket the old process gave (takeOver): `key` is the listen target it was opened for, as JSON. */
export interface GivenListener {
  key: string;
  address: string;
  fd: number;
}

export class WspliceProxy extends EventEmitter<ProxyEvents> {
  readonly relayKind: 'js' | 'splice';
  /** Why this relay was chosen (e.g. why the native one was not). */
  readonly relayNote: string;
  /** 1 at start, +1 per successful reload. */
  generation = 1;
  /** What new connections are accepted under; reload() replaces it, open connections keep theirs. */
  private ctx: ProxyContext;
  private gen: Generation;
  private readonly relay: Relay;
  /** One budget of retired upstream sockets for every generation (its settings are the first configuration's). */
  private readonly retired: RetiredSockets;
  /** Keep-alive pools of earlier generations (their old exchanges may still put a socket back). */
  private readonly oldPools: UpstreamPool[] = [];
  private readonly reporting: Reporters;
  private readonly servers: Server[] = [];
  private readonly bound = new Map<Server, Listener>();
  private readonly fronts: ListenerFront[] = [];
  private readonly live = new Set<Connection>();
  private readonly counters: ProxyStats = {
    connections: 0, tunnels: 0, tunnelsTotal: 0, bytesUp: 0, bytesDown: 0, refused: 0, upstreamErrors: 0, retiredWaiting: 0, retiredClosed: 0, upstreamReused: 0, upstreamRaces: 0, upstreamIdle: 0,
  };
  private closing: Promise<void> | null = null;
  /** Every tunnel open now, adopted ones included (the hand-over walks it). */
  private readonly open = new Set<Tunnel>();
  private readonly adopted = new Set<Tunnel>();
  /** A hand-over under way (two never overlap). */
  private handing = false;
  /** How the last hand-over or take-over ended (null: none yet); /status shows it. */
  lastHandover: HandoverEndEvent | null = null;
  /** The phase of the hand-over under way (null: none). */
  handoverPhase: Phase | null = null;
  /** Listeners a hand-over stopped, with a copy of each socket, until it succeeds. */
  private suspended: Array<ListenTarget & { fd: number }> = [];
  private readonly embed: EmbedHost;
  private targets: TargetGroups;

  constructor(input: ProxyOptions) {
    super();
    const options = resolveOptions(input);
    try {
      const r = selectRelay(options.relay);
      this.relay = trackTunnels(r.relay, this.open);
      this.relayNote = r.note;
    } catch (err) {
      throw new ConfigError('relay', (err as Error).message);
    }
    this.relayKind = this.relay.kind;
    this.onTransition = this.onTransition.bind(this);
    this.gen = buildGeneration(options, null, this.onTransition);
    this.retired = new RetiredSockets(options.timeouts.retireMs, options.limits.maxRetired);
    this.reporting = this.reporters(this.relay);
    this.ctx = this.contextOf(this.gen);
    this.targets = new TargetGroups(options, this.gen.groups);
    this.handleConnection = this.handleConnection.bind(this);
    this.embed = this.embedHost();
    this.ws = this.ws.bind(this);
    this.web = this.web.bind(this);
  }

  /** The options in force for new connections. */
  get options(): ResolvedOptions {
    return this.gen.options;
  }

  /** Every upstream group in force: its balancing method and each backend's state, open connections and last error. */
  upstreams(): UpstreamSnapshot[] {
    return this.gen.upstreams.snapshot();
  }

  /** A health transition: the `upstreamState` event and the diagnostics channel. */
  private onTransition(t: BackendTransition): void {
    if (channels.upstreamState.hasSubscribers) channels.upstreamState.publish(t);
    if (this.listenerCount('upstreamState') > 0) this.emit('upstreamState', t);
  }

  /** The upstream groups new connections are routed to. */
  get groups(): ReadonlyMap<string, UpstreamGroup> {
    return this.gen.groups;
  }

  private contextOf(g: Generation): ProxyContext {
    const { options, router, requestParsers, responseParsers, limiter, upstreamTls, pools } = g;
    const { relay, retired } = this;
    return { options, router, requestParsers, responseParsers, relay, limiter, upstreamTls, retired, pools, draining: false, ...this.reporting };
  }

  /**
   * Swap the configuration for new connections: routes, upstreams, forwarding, limits, timeouts,
   * and every listener's TLS certificates and PROXY/limit front (files re-read). Everything is
   * checked first; on any error nothing changes, a `reload` event says why and the ConfigError
   * (ConfigErrors: every problem) is thrown. Open exchanges and tunnels keep what they started
   * with; a keep-alive connection of the old configuration closes after its next exchange (as
   * nginx's old workers do). The relay stays the one chosen at start.
   */
  reload(input: ProxyOptions, where?: SourceMap): void {
    let gen: Generation;
    let fronts: Map<Listener, ListenerFront | null>;
    try {
      if (this.closing !== null) throw new ConfigError('reload', 'the proxy is closing');
      gen = buildGeneration(resolveOptions(input, where), this.gen, this.onTransition);
      try {
        fronts = this.frontsFor(gen);
      } catch (err) {
        gen.upstreams.stop(); // its health checks and DNS refreshes never start serving
        throw err;
      }
    } catch (err) {
      this.emit('reload', { ok: false, generation: this.generation, error: (err as Error).message });
      throw err;
    }
    const old = this.ctx;
    this.gen.upstreams.stop(); // the old groups keep counting their open tunnels, unchecked
    this.gen = gen;
    this.ctx = this.contextOf(gen);
    this.targets = new TargetGroups(gen.options, gen.groups);
    for (const [l, front] of fronts) this.swapFront(l, front);
    old.draining = true; // its keep-alive connections close after their next exchange
    // Pooled upstream sockets belong to the old backends: closed now, and again at close() for any put back since.
    for (const p of old.pools.values()) p.closeAll();
    this.oldPools.push(...old.pools.values());
    this.generation++;
    this.emit('reload', { ok: true, generation: this.generation });
  }

  /** A new front per listener for `gen` (TLS files read now). Throws ConfigError, naming the listener. */
  private frontsFor(gen: Generation): Map<Listener, ListenerFront | null> {
    const out = new Map<Listener, ListenerFront | null>();
    try {
      for (const l of this.bound.values()) out.set(l, this.makeFront(l, gen));
    } catch (err) {
      for (const f of out.values()) f?.retire();
      throw err;
    }
    return out;
  }

  private swapFront(l: Listener, front: ListenerFront | null): void {
    const old = l.front;
    l.front = front;
    if (front !== null) this.fronts.push(front);
    if (old === null) return;
    old.retire(); // handshakes under way finish on it; it stops watching files
    const i = this.fronts.indexOf(old);
    if (i >= 0 && old.idle()) this.fronts.splice(i, 1);
  }

  /** What proxy.ws and proxy.web need of the proxy (src/embed/): always the generation in force. */
  private embedHost(): EmbedHost {
    const self = this;
    return {
      get ctx() {
        return self.ctx;
      },
      get targets() {
        return self.targets;
      },
      accepting: () => {
        const max = self.options.limits.maxConnections;
        return !self.ctx.draining && !(max > 0 && self.live.size >= max);
      },
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
  private reporters(relay: Relay): Reporters {
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
    const l: Listener = { edge: typeof target === 'object' ? target : {}, front: null, label: '', target };
    try {
      this.swapFront(l, this.makeFront(l, this.gen));
    } catch (err) {
      return Promise.reject(err as Error);
    }
    // The front is looked up per connection: a reload replaces it under the same socket.
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => (l.front !== null ? l.front.onConnection(s) : this.handleConnection(s, l.label)));
    this.servers.push(server);
    this.bound.set(server, l);
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        this.forget(server);
        reject(err);
      };
      server.once('error', onError);
      const done = (): void => {
        server.removeListener('error', onError);
        server.on('error', (err) => {
          if (this.listenerCount('error') > 0) this.emit('error', err);
        });
        const addr = server.address() as AddressInfo | string;
        l.label = typeof addr === 'string' ? `unix:${addr}` : addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
        this.emit('listening', addr);
        resolve(addr);
      };
      if (typeof target === 'number') server.listen(target, done);
      else if (typeof target === 'string') server.listen(target, done);
      else if (target.fd !== undefined) server.listen({ fd: target.fd }, done);
      else if (target.path !== undefined) server.listen(target.path, done);
      else server.listen(target.port ?? 0, target.host, done);
    });
  }

  /**
   * Stop the listener on `address` (as listen() resolved it): no new connections there, the open
   * ones continue. Resolves once it no longer accepts; false when no listener has that address.
   */
  unlisten(address: AddressInfo | string): Promise<boolean> {
    const same = (a: AddressInfo | string | null): boolean =>
      a !== null && (typeof a === 'string' || typeof address === 'string' ? a === address : a.port === address.port && a.address === address.address);
    const server = this.servers.find((s) => same(s.address()));
    if (server === undefined) return Promise.resolve(false);
    this.forget(server);
    server.close(); // its callback waits for the connections; they are the proxy's to drain
    return Promise.resolve(true);
  }

  private forget(server: Server): void {
    const i = this.servers.indexOf(server);
    if (i >= 0) this.servers.splice(i, 1);
    const l = this.bound.get(server);
    this.bound.delete(server);
    if (l !== undefined) this.swapFront(l, null);
  }

  /** PROXY header, TLS and per-client limits in front of a listener (src/tls/listener.ts). */
  private makeFront(l: Listener, gen: Generation): ListenerFront | null {
    const shared = { realIpFrom: gen.options.realIpFrom, limiter: gen.limiter, headTimeoutMs: gen.options.timeouts.headMs };
    const front = listenerFront(l.edge, shared, {
      accept: (s: Socket) => this.handleConnection(s, l.label),
      refused: (code: FrontRefusal, status: number, reason: string, remoteAddress: string) => {
        this.counters.refused++;
        const ev: RefusedEvent = { id: 0, remoteAddress, remotePort: 0, listener: '', method: '-', host: '-', path: '-', requestId: '-', status, code, reason };
        if (channels.refused.hasSubscribers) channels.refused.publish(ev);
        if (this.listenerCount('refused') > 0) this.emit('refused', ev);
      },
    });
    front?.tls?.on('reload', (r) => this.emit('tlsReload', r));
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

  /**
   * Give this proxy's listening sockets and live native tunnels to the process whose
   * `takeOver(socketPath)` waits there (or over a connected channel fd): it serves on the same
   * sockets (no connection refused), the tunnels move without a byte lost, and here they end with
   * reason 'moved'. What cannot move (JS-relay and TLS tunnels, exchanges in flight) stays: a
   * close() then drains it (Close 1001 at the deadline). On any failure before the tunnels
   * move, nothing changed; during, unacknowledged tunnels stay here and listening resumes.
   * Rejects with the reason (a second hand-over while one runs is refused).
   */
  handOver(socketPath: string | number, options: HandOverOptions = {}): Promise<HandOverReport> {
    return this.exclusive(async () => {
      const started = performance.now();
      try {
        const r = await handOver(this.giveHost(options.extraListeners ?? []), socketPath, options);
        this.lastHandover = { side: 'give', ok: true, reason: '', peerPid: r.peerPid, moved: r.moved, stayed: r.stayed, pausesMs: [], ms: r.ms };
        return r;
      } catch (err) {
        const r = (err as { report?: HandOverReport }).report;
        this.lastHandover = { side: 'give', ok: false, reason: (err as Error).message, peerPid: r?.peerPid ?? 0, moved: r?.moved ?? 0, stayed: this.open.size, pausesMs: [], ms: performance.now() - started };
        throw err;
      } finally {
        this.emit('handoverEnd', this.lastHandover!);
      }
    });
  }

  /**
   * Wait at `socketPath` (created here; a connected channel fd also works) for another proxy's
   * handOver(), serve on the listening sockets it gives, then adopt its native tunnels. With
   * `listen`, the caller opens the given sockets itself (e.g. with its own edge options: `proxy.listen({ fd, ...edge })`).
   */
  takeOver(socketPath: string | number, options: TakeOverOptions & { listen?: (given: GivenListener[]) => Promise<void> } = {}): Promise<TakeOverReport> {
    return this.exclusive(async () => {
      const started = performance.now();
      try {
        const r = await takeOver(this.takeHost(options.listen), socketPath, options);
        this.lastHandover = { side: 'take', ok: true, reason: '', peerPid: r.peerPid, moved: r.tunnels, stayed: 0, pausesMs: r.pausesMs, ms: r.ms };
        return r;
      } catch (err) {
        this.lastHandover = { side: 'take', ok: false, reason: (err as Error).message, peerPid: 0, moved: this.adopted.size, stayed: 0, pausesMs: [], ms: performance.now() - started };
        throw err;
      } finally {
        this.emit('handoverEnd', this.lastHandover!);
      }
    });
  }

  private async exclusive<T>(run: () => Promise<T>): Promise<T> {
    if (this.handing) throw new Error('a hand-over is already under way');
    if (this.closing !== null) throw new Error('the proxy is closing');
    this.handing = true;
    try {
      return await run();
    } finally {
      this.handing = false;
    }
  }

  private giveHost(extra: Array<{ key: string; address: string; fd: number }>): GiveHost {
    return {
      listeners: () => [...this.servers.map((srv) => ({ key: listenerKey(this.bound.get(srv)!.target), address: this.bound.get(srv)!.label, fd: serverFdOf(srv) })).filter((l) => l.fd >= 0), ...extra],
      suspend: () => {
        for (const srv of [...this.servers]) {
          const fd = serverFdOf(srv);
          const target = this.bound.get(srv)!.target;
          // A copy of the socket: if the hand-over fails later, this side listens on it again.
          if (fd >= 0) this.suspended.push({ ...(typeof target === 'object' ? target : {}), fd: handoverCalls().dupFd(fd) });
          this.forget(srv);
          srv.close();
        }
      },
      resume: async () => {
        for (const t of this.suspended.splice(0)) await this.listen(t).catch(() => handoverCalls().closeFd(t.fd));
      },
      settle: () => {
        for (const t of this.suspended.splice(0)) handoverCalls().closeFd(t.fd);
      },
      tunnels: () => [...this.open],
      phase: (p) => {
        this.handoverPhase = p === 'done' || p === 'rolled-back' ? null : p;
        this.emit('handover', { phase: p });
      },
    };
  }

  private takeHost(listen?: (given: GivenListener[]) => Promise<void>): TakeHost {
    const native = nativeRelay();
    if (native === null) throw new Error('take-over needs the native relay');
    return {
      relay: native,
      listen: async (list, fds) => {
        const given = list.map((l, i) => ({ ...l, fd: fds[i]! }));
        if (listen !== undefined) await listen(given);
        else for (const g of given) await this.listen({ fd: g.fd });
      },
      adopted: (t) => {
        this.counters.tunnels++;
        this.counters.tunnelsTotal++;
        this.adopted.add(t);
        this.open.add(t);
        return (stats) => {
          this.adopted.delete(t);
          this.open.delete(t);
          this.counters.tunnels--;
          this.counters.bytesUp += stats.bytesUp;
          this.counters.bytesDown += stats.bytesDown;
          if (this.listenerCount('tunnelClose') > 0) this.emit('tunnelClose', { id: 0, backend: '-', ...stats });
        };
      },
    };
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
    this.gen.upstreams.stop();
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
      for (const t of this.adopted) t.goAway();
      while (this.live.size > 0 || this.adopted.size > 0) await new Promise((r) => setTimeout(r, 5));
      this.ctx.retired.closeAll();
      for (const p of this.ctx.pools.values()) p.closeAll();
      for (const p of this.oldPools.splice(0)) p.closeAll();
      await stopped;
      this.emit('close');
    })();
    return this.closing;
  }
}

/**
 * What names a listening socket between two processes: the target it was opened for, as JSON,
 * without the fd a take-over opened it on (a number only valid in the process that had it).
 */
export function listenerKey(target: ListenTarget): string {
  if (typeof target !== 'object') return JSON.stringify(target);
  const { fd: _fd, ...rest } = target;
  return JSON.stringify(rest);
}

/** A listener's edge options and the front built from them for the configuration in force. */
interface Listener {
  readonly edge: ListenerEdgeOptions;
  front: ListenerFront | null;
  /** The address, once listening: connections carry it for logs and metrics. */
  label: string;
  /** What listen() was given (a hand-over names the socket by it). */
  readonly target: ListenTarget;
}

type Reporters = Omit<ProxyContext, 'options' | 'router' | 'requestParsers' | 'responseParsers' | 'relay' | 'limiter' | 'upstreamTls' | 'retired' | 'pools' | 'draining'>;

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
