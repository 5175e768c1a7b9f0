/**
 * Prometheus metrics for one proxy, through prom-client. Counters move on the
 * proxy's events (one per connection, exchange, tunnel open and tunnel end),
 * never per chunk; gauges that mirror state (backends, relay) are read at scrape.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ExchangeEvent } from '../observe/record.js';
import type { BackendState } from '../upstream/backend.js';
import type { HandoverEndEvent } from '../handover/types.js';
import type { ConnectionEvent, WspliceProxy as Proxy, ReloadEvent, TunnelCloseEvent, TunnelEvent, UpstreamErrorEvent } from '../server.js';

/** Latency buckets in seconds: loopback connects take ~0.1 ms, remote ones tens of ms. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** A hand-over pauses a tunnel for well under a millisecond to a batch's round trip under load. */
const PAUSE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

export interface MetricsOptions {
  /** Registry to fill (default: a new one). */
  registry?: Registry;
  /** Add prom-client's process metrics (CPU, memory, event loop lag, fds). Default true. */
  processMetrics?: boolean;
}

/** Outcome of a WebSocket (or other upgrade) handshake, as counted in wsplice_handshakes_total. */
export function handshakeOutcome(e: ExchangeEvent): { outcome: string; code: string } {
  if (e.outcome === 'tunnel') return { outcome: 'accepted', code: '' };
  if (e.code !== null) return { outcome: e.code.startsWith('WSPLICE_UPSTREAM') ? 'upstream_failed' : 'refused', code: e.code };
  if (e.status > 0) return { outcome: 'rejected_by_backend', code: String(e.status) };
  return { outcome: 'aborted', code: '' };
}

export function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'none';
}

export class ProxyMetrics {
  readonly registry: Registry;
  private readonly proxy: Proxy;
  private readonly detachers: Array<() => void> = [];
  private readonly reloads: Counter;

  constructor(proxy: Proxy, options: MetricsOptions = {}) {
    this.proxy = proxy;
    this.registry = options.registry ?? new Registry();
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
    const m = eventMetrics([this.registry]);
    stateGauges(proxy, [this.registry]);
    this.reloads = m.reloads;
    this.on('connection', (e: ConnectionEvent) => {
      m.connOpen.inc({ listener: e.listener });
      m.connTotal.inc({ listener: e.listener });
    });
    this.on('connectionClose', (e: ConnectionEvent) => m.connOpen.dec({ listener: e.listener }));
    this.on('exchange', (e: ExchangeEvent) => {
      m.requests.inc({ listener: e.listener, class: statusClass(e.status) });
      if (e.kind === 'websocket' || e.kind === 'upgrade') m.handshakes.inc(handshakeOutcome(e));
      if (e.backend !== null && e.connectMs >= 0) m.connect.observe({ backend: e.backend }, e.connectMs / 1000);
      if (e.backend !== null && e.firstByteMs >= 0) m.head.observe({ backend: e.backend }, e.firstByteMs / 1000);
      m.bytes.inc({ direction: 'up' }, e.bytesIn);
      m.bytes.inc({ direction: 'down' }, e.bytesOut);
    });
    this.on('tunnel', (e: TunnelEvent) => {
      m.tunnelsTotal.inc({ relay: e.relay });
      m.backendTunnels.inc({ backend: e.backend });
    });
    this.on('tunnelClose', (e: TunnelCloseEvent) => {
      m.tunnelEnds.inc({ reason: e.reason, relay: e.relay ?? proxy.relayKind });
      m.backendTunnels.dec({ backend: e.backend });
      m.bytes.inc({ direction: 'up' }, e.bytesUp);
      m.bytes.inc({ direction: 'down' }, e.bytesDown);
    });
    this.on('upstreamError', (e: UpstreamErrorEvent) => m.upErrors.inc({ backend: e.backend, code: e.code }));
    this.on('reload', (e: ReloadEvent) => this.countReload(e.ok));
    this.on('handoverEnd', (e: HandoverEndEvent) => countHandover(m, e));
    // Present from the first scrape, so rate() sees the first reload.
    this.reloads.inc({ result: 'ok' }, 0);
    this.reloads.inc({ result: 'error' }, 0);
  }

  /** Count a reload that failed before reaching the proxy (unreadable file, syntax error). */
  countReload(ok: boolean): void {
    this.reloads.inc({ result: ok ? 'ok' : 'error' });
  }

  /** The Prometheus text exposition. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  /** Stop counting (the registry keeps its values). */
  detach(): void {
    for (const d of this.detachers.splice(0)) d();
  }

  private on<K extends 'connection' | 'connectionClose' | 'exchange' | 'tunnel' | 'tunnelClose' | 'upstreamError' | 'reload' | 'handoverEnd'>(
    event: K,
    fn: (e: never) => void,
  ): void {
    const listener = fn as (...args: unknown[]) => void;
    this.proxy.on(event, listener as never);
    this.detachers.push(() => this.proxy.removeListener(event, listener as never));
  }
}

/** The metrics that events move. */
function eventMetrics(registers: Registry[]) {
  return {
    connOpen: new Gauge({ name: 'wsplice_connections_open', help: 'Client connections open now, by listener', labelNames: ['listener'], registers }),
    connTotal: new Counter({ name: 'wsplice_connections_total', help: 'Client connections accepted, by listener', labelNames: ['listener'], registers }),
    requests: new Counter({ name: 'wsplice_requests_total', help: 'Requests answered, by listener and status class (none: no response was sent)', labelNames: ['listener', 'class'], registers }),
    handshakes: new Counter({ name: 'wsplice_handshakes_total', help: 'Upgrade handshakes by outcome (accepted, refused, upstream_failed, rejected_by_backend, aborted) and code', labelNames: ['outcome', 'code'], registers }),
    tunnelsTotal: new Counter({ name: 'wsplice_tunnels_total', help: 'Tunnels opened, by relay', labelNames: ['relay'], registers }),
    tunnelEnds: new Counter({ name: 'wsplice_tunnel_closes_total', help: 'Tunnels ended, by reason and the relay that ended them', labelNames: ['reason', 'relay'], registers }),
    bytes: new Counter({ name: 'wsplice_bytes_total', help: 'Bytes from clients (up) and to clients (down), counted when an exchange or a tunnel ends', labelNames: ['direction'], registers }),
    connect: new Histogram({ name: 'wsplice_upstream_connect_seconds', help: 'Upstream connect time', labelNames: ['backend'], buckets: LATENCY_BUCKETS, registers }),
    head: new Histogram({ name: 'wsplice_upstream_response_head_seconds', help: 'From the request sent upstream to the first response byte', labelNames: ['backend'], buckets: LATENCY_BUCKETS, registers }),
    upErrors: new Counter({ name: 'wsplice_upstream_errors_total', help: 'Upstream failures, by backend and code', labelNames: ['backend', 'code'], registers }),
    backendTunnels: new Gauge({ name: 'wsplice_backend_tunnels_open', help: 'Tunnels open now, by backend', labelNames: ['backend'], registers }),
    reloads: new Counter({ name: 'wsplice_reloads_total', help: 'Configuration reloads, by result (ok, error)', labelNames: ['result'], registers }),
    handovers: new Counter({ name: 'wsplice_handovers_total', help: 'Hand-overs (upgrades) ended, by side (give: the old process, take: the new one) and result (ok, rolled_back)', labelNames: ['side', 'result'], registers }),
    handoverTunnels: new Counter({ name: 'wsplice_handover_tunnels_total', help: 'Tunnels of hand-overs: moved out (give), stayed to drain (give), adopted (take)', labelNames: ['outcome'], registers }),
    pause: new Histogram({ name: 'wsplice_handover_pause_seconds', help: 'How long a hand-over paused each adopted tunnel (out of the old engine to running in the new one)', buckets: PAUSE_BUCKETS, registers }),
  };
}

function countHandover(m: ReturnType<typeof eventMetrics>, e: HandoverEndEvent): void {
  m.handovers.inc({ side: e.side, result: e.ok ? 'ok' : 'rolled_back' });
  if (e.side === 'give') {
    m.handoverTunnels.inc({ outcome: 'moved' }, e.moved);
    if (e.ok) m.handoverTunnels.inc({ outcome: 'stayed' }, e.stayed);
    return;
  }
  m.handoverTunnels.inc({ outcome: 'adopted' }, e.moved);
  for (const ms of e.pausesMs) m.pause.observe(ms / 1000);
}

/** Backend states wsplice_backend_up reports as 1: a full backend is up, only busy. */
const UP_STATES: ReadonlySet<BackendState> = new Set<BackendState>(['up', 'full']);

/** Gauges read from the proxy's state at each scrape. */
function stateGauges(proxy: Proxy, registers: Registry[]): void {
  new Gauge({ name: 'wsplice_tunnels_open', help: 'Tunnels open now', registers, collect() { this.set(proxy.stats().tunnels); } });
  new Gauge({
    name: 'wsplice_backend_up', help: 'Backend up (1; at max_conns counts as up) or out (0): down by configuration, failing its health check, or failed after max_fails; by upstream and backend', labelNames: ['upstream', 'backend'], registers,
    collect() {
      this.reset();
      const now = Date.now();
      for (const [name, g] of proxy.groups) for (const b of g.backends) this.set({ upstream: name, backend: b.label }, UP_STATES.has(b.state(now)) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'wsplice_backend_failures', help: 'Failures counted against a backend since it was configured, by upstream and backend', labelNames: ['upstream', 'backend'], registers,
    collect() {
      this.reset();
      for (const [name, g] of proxy.groups) for (const b of g.backends) this.set({ upstream: name, backend: b.label }, b.failures);
    },
  });
  new Gauge({
    name: 'wsplice_relay_info', help: 'The relay new tunnels start on (value 1)', labelNames: ['kind'], registers,
    collect() {
      this.reset();
      this.set({ kind: proxy.relayKind }, 1);
    },
  });
  new Gauge({ name: 'wsplice_config_generation', help: 'Configuration generation in force (1 at start, +1 per successful reload)', registers, collect() { this.set(proxy.generation); } });
  new Gauge({
    name: 'wsplice_handover_phase', help: 'The phase of the hand-over (upgrade) under way (value 1; none: no series)', labelNames: ['phase'], registers,
    collect() {
      this.reset();
      if (proxy.handoverPhase !== null) this.set({ phase: proxy.handoverPhase }, 1);
    },
  });
  new Gauge({ name: 'wsplice_ready', help: 'Accepting connections (1) or not: before listening, draining (0)', registers, collect() { this.set(proxy.ready ? 1 : 0); } });
}
