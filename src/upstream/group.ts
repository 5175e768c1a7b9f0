/**
 * An upstream group (nginx `upstream NAME { server ...; }`): its backends in
 * two tiers (primaries, then backups used only when every primary is down or
 * full), the balancing method over each tier, sticky cookies, and the
 * bookkeeping every method reads: open connections, passive failures
 * (max_fails / fail_timeout) and active health-check verdicts.
 *
 * Contract with the connection: every non-null `pick()` is matched by exactly
 * one `release()` when that upstream connection is over (exchange done,
 * failed, or tunnel closed), so least_conn and max_conns count what is open.
 */
import { Backend, type BackendOptions, type BackendState } from './backend.js';
import { balancerFactory, type BalanceConfig, type Balancer, type BalancerFactory } from './balance/index.js';
import type { PickContext } from './context.js';
import { DEFAULT_RETRY, type RetryPolicy } from './retry.js';
import { Sticky, type StickyConfig } from './sticky.js';

export { Backend, parseAddress, type BackendAddress, type BackendOptions, type BackendState } from './backend.js';

export interface GroupOptions {
  balance?: BalanceConfig;
  sticky?: StickyConfig | null;
  retry?: RetryPolicy;
}

/** One backend as `proxy.upstreams()` reports it. */
export interface BackendSnapshot {
  address: string;
  state: BackendState;
  backup: boolean;
  weight: number;
  active: number;
  maxConns: number;
  picked: number;
  failures: number;
  healthy: boolean;
  lastError: string | null;
}

export interface GroupSnapshot {
  name: string;
  balance: BalanceConfig['method'];
  backends: BackendSnapshot[];
}

/** A transition of one backend, for the `upstreamState` event. */
export interface BackendTransition {
  upstream: string;
  backend: string;
  healthy: boolean;
  reason: string;
}

const NO_CONTEXT: PickContext = { remoteAddress: '', head: null };

export class UpstreamGroup {
  readonly name: string;
  /** Every backend, primaries first. Replaced as a whole when DNS changes the set. */
  backends: Backend[];
  readonly balance: BalanceConfig;
  readonly sticky: Sticky | null;
  /** When a failed attempt goes on to the next backend (proxy_next_upstream). */
  readonly retry: RetryPolicy;
  /** Called on every health transition (set by the proxy). */
  onTransition: ((t: BackendTransition) => void) | null = null;
  private readonly maxFails: number;
  private readonly failTimeoutMs: number;
  private readonly factory: BalancerFactory;
  private primary!: Balancer;
  private backup: Balancer | null = null;
  /** Picks refused because every backend was down or full. */
  refusals = 0;

  constructor(name: string, backends: BackendOptions[], maxFails = 1, failTimeoutMs = 10_000, opts: GroupOptions = {}) {
    if (backends.length === 0) throw new Error(`upstream ${name}: no backends`);
    this.name = name;
    this.maxFails = maxFails;
    this.failTimeoutMs = failTimeoutMs;
    this.balance = opts.balance ?? { method: 'round_robin' };
    this.factory = balancerFactory(this.balance);
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.backends = [];
    this.sticky = opts.sticky ? new Sticky(opts.sticky, []) : null;
    this.setBackends(backends.map((b) => new Backend(b, maxFails, failTimeoutMs)));
  }

  /** Make a Backend with this group's defaults (for DNS updates). */
  makeBackend(o: BackendOptions): Backend {
    return new Backend(o, this.maxFails, this.failTimeoutMs);
  }

  /** Replace the backend set (balancers and sticky tokens are rebuilt; kept Backend objects keep their counters). */
  setBackends(list: Backend[]): void {
    const primaries = list.filter((b) => !b.backup);
    const backups = list.filter((b) => b.backup);
    this.backends = [...primaries, ...backups];
    this.primary = this.factory(primaries);
    this.backup = backups.length > 0 ? this.factory(backups) : null;
    this.sticky?.setBackends(this.backends);
  }

  /**
   * The backend for this request, counted as open until release(); null when
   * every backend is down or full (the caller answers 503). Backends in
   * `tried` (this request's earlier attempts) are passed over.
   */
  pick(ctx: PickContext = NO_CONTEXT, now = Date.now(), tried: readonly Backend[] = []): Backend | null {
    // Tried backends are taken out for this one synchronous call only.
    for (const b of tried) b.skip = true;
    let b = this.sticky?.find(ctx, now) ?? null;
    if (b === null) {
      b = this.primary.pick(ctx, now, false) ?? this.backup?.pick(ctx, now, false) ?? null;
      // Every candidate failed passively: try them anyway rather than refuse (nginx does the same).
      b ??= this.primary.pick(ctx, now, true) ?? this.backup?.pick(ctx, now, true) ?? null;
    }
    for (const t of tried) t.skip = false;
    if (b === null) {
      this.refusals++;
      return null;
    }
    b.active++;
    b.picked++;
    return b;
  }

  /** The upstream connection a pick() opened is over. */
  release(b: Backend): void {
    if (b.active > 0) b.active--;
  }

  /** The Set-Cookie line(s) for a response served by `b`, or '' (no sticky, or the client has the cookie). */
  stickyHeader(b: Backend, ctx: PickContext): string {
    return this.sticky === null ? '' : this.sticky.header(b, ctx);
  }

  /** Count a failure (connect error, timeout, bad handshake) against `b`. */
  fail(b: Backend, now = Date.now(), reason?: string): void {
    b.failures++;
    if (reason !== undefined) b.lastError = reason;
    if (++b.fails >= b.maxFails && b.maxFails > 0) {
      b.downUntil = now + b.failTimeoutMs;
      b.fails = 0;
      b.cameBack(b.downUntil); // slow start begins when the failure timeout ends
    }
  }

  succeed(b: Backend): void {
    b.fails = 0;
  }

  /** An active health check's verdict changed. */
  setHealthy(b: Backend, healthy: boolean, reason: string, now = Date.now()): void {
    if (b.healthy === healthy) return;
    b.healthy = healthy;
    if (healthy) {
      b.fails = 0;
      b.downUntil = 0;
      b.cameBack(now);
    } else {
      b.lastError = reason;
    }
    this.onTransition?.({ upstream: this.name, backend: b.label, healthy, reason });
  }

  snapshot(now = Date.now()): GroupSnapshot {
    return {
      name: this.name,
      balance: this.balance.method,
      backends: this.backends.map((b) => ({
        address: b.label,
        state: b.state(now),
        backup: b.backup,
        weight: b.weight,
        active: b.active,
        maxConns: b.maxConns,
        picked: b.picked,
        failures: b.failures,
        healthy: b.healthy,
        lastError: b.lastError,
      })),
    };
  }
}
