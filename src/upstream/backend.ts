/**
 * One backend of an upstream group and everything the balancers read about it:
 * weight, open connections, administrative and health state, passive failures
 * (nginx max_fails / fail_timeout) and the slow-start ramp.
 */

export type BackendAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string };

export interface BackendOptions {
  address: BackendAddress;
  weight: number;
  /** Used only when every primary backend is down or full (nginx `backup`). */
  backup?: boolean;
  /** Marked down by configuration (nginx `down`): never picked. */
  down?: boolean;
  /** Open connections (tunnels + exchanges) at most; 0 = no limit (nginx `max_conns`). */
  maxConns?: number;
  /** Per-server overrides of the group's max_fails / fail_timeout. */
  maxFails?: number;
  failTimeoutMs?: number;
  /** Weight ramps from near 0 to `weight` over this long after the backend comes back (nginx `slow_start`). */
  slowStartMs?: number;
  /** Resolve the host name again every interval (dns.ts); each address becomes a backend. */
  resolve?: boolean;
  /** The host name this address was resolved from, when it came from DNS. */
  hostname?: string;
}

/** Why a backend is not taking connections, or 'up'. */
export type BackendState = 'up' | 'down' | 'unhealthy' | 'failed' | 'full';

export class Backend {
  readonly address: BackendAddress;
  readonly weight: number;
  readonly backup: boolean;
  readonly maxConns: number;
  readonly maxFails: number;
  readonly failTimeoutMs: number;
  readonly slowStartMs: number;
  readonly hostname: string | null;
  /** host:port, [v6]:port or unix:/path, for logs and errors; also the identity sticky cookies are keyed on. */
  readonly label: string;
  /** Administratively down (configuration). */
  adminDown: boolean;
  /** Set only during one pick() for backends this request already tried. */
  skip = false;
  /** Active health check verdict; true until a check says otherwise. */
  healthy = true;
  /** The last health-check or connect error, for `proxy.upstreams()`. */
  lastError: string | null = null;
  /** Open tunnels and exchanges on this backend. */
  active = 0;
  /** Smooth weighted round-robin state. */
  currentWeight = 0;
  fails = 0;
  downUntil = 0;
  /** When the backend last came back (slow start ramps from here); 0 = never went away. */
  upSince = 0;
  /** Counters, for stats and tests. */
  picked = 0;
  failures = 0;

  constructor(o: BackendOptions, groupMaxFails = 1, groupFailTimeoutMs = 10_000) {
    this.address = o.address;
    this.weight = o.weight;
    this.backup = o.backup === true;
    this.adminDown = o.down === true;
    this.maxConns = o.maxConns ?? 0;
    this.maxFails = o.maxFails ?? groupMaxFails;
    this.failTimeoutMs = o.failTimeoutMs ?? groupFailTimeoutMs;
    this.slowStartMs = o.slowStartMs ?? 0;
    this.hostname = o.hostname ?? null;
    this.label = labelOf(o.address);
  }

  /** Full: at max_conns. */
  get full(): boolean {
    return this.maxConns > 0 && this.active >= this.maxConns;
  }

  /**
   * May take a new connection now. `ignoreFailures` is the last resort when
   * every candidate is passively failed: try them anyway rather than refuse.
   */
  usable(now: number, ignoreFailures: boolean): boolean {
    if (this.adminDown || !this.healthy || this.full || this.skip) return false;
    return ignoreFailures || this.downUntil <= now;
  }

  state(now: number): BackendState {
    if (this.adminDown) return 'down';
    if (!this.healthy) return 'unhealthy';
    if (this.downUntil > now) return 'failed';
    if (this.full) return 'full';
    return 'up';
  }

  /** The weight balancers use: the nominal one, ramped during slow start. */
  effectiveWeight(now: number): number {
    if (this.slowStartMs === 0 || this.upSince === 0) return this.weight;
    const t = now - this.upSince;
    if (t >= this.slowStartMs) {
      this.upSince = 0;
      return this.weight;
    }
    return Math.max(this.weight * (t / this.slowStartMs), this.weight / 100);
  }

  /** Came back (health check passed, failure timeout over): start the slow-start ramp. */
  cameBack(now: number): void {
    if (this.slowStartMs > 0) this.upSince = now;
  }
}

export function labelOf(a: BackendAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Parse `host:port`, `[v6]:port` or `unix:/path`. Returns null when malformed. */
export function parseAddress(s: string): BackendAddress | null {
  if (s.startsWith('unix:')) {
    const path = s.slice(5);
    return path === '' ? null : { kind: 'unix', path };
  }
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]\s]+)):(\d{1,5})$/.exec(s);
  if (m === null) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return { kind: 'tcp', host: m[1] ?? m[2]!, port };
}
