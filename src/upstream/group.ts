/**
 * An upstream group: nginx's `upstream backend { server ...; }`, balanced
 * by smooth weighted round-robin (nginx's algorithm: the order interleaves
 * weights evenly, e.g. 5:1:1 -> a a b a c a a, rather than a a a a a b c).
 * A backend that fails is skipped for `failTimeoutMs` after `maxFails` failures
 * (nginx's max_fails / fail_timeout), unless every backend is down.
 */

export type BackendAddress =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string };

export interface BackendOptions {
  address: BackendAddress;
  weight: number;
}

export class Backend {
  readonly address: BackendAddress;
  readonly weight: number;
  /** host:port, [v6]:port or unix:/path, for logs and errors. */
  readonly label: string;
  currentWeight = 0;
  fails = 0;
  downUntil = 0;
  /** Counters, for stats and tests. */
  picked = 0;
  failures = 0;

  constructor(o: BackendOptions) {
    this.address = o.address;
    this.weight = o.weight;
    const a = o.address;
    this.label = a.kind === 'unix' ? `unix:${a.path}` : a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
  }
}

export class UpstreamGroup {
  readonly name: string;
  readonly backends: Backend[];
  private readonly maxFails: number;
  private readonly failTimeoutMs: number;

  constructor(name: string, backends: BackendOptions[], maxFails = 1, failTimeoutMs = 10_000) {
    if (backends.length === 0) throw new Error(`upstream ${name}: no backends`);
    this.name = name;
    this.backends = backends.map((b) => new Backend(b));
    this.maxFails = maxFails;
    this.failTimeoutMs = failTimeoutMs;
  }

  /** Next backend by smooth weighted round-robin among those not marked down. */
  pick(now = Date.now()): Backend {
    let best: Backend | null = null;
    let total = 0;
    const list = this.backends;
    for (let pass = 0; pass < 2 && best === null; pass++) {
      // Pass 0 skips backends marked down; pass 1 (all down) uses them all, as nginx does.
      for (let i = 0; i < list.length; i++) {
        const b = list[i]!;
        if (pass === 0 && b.downUntil > now) continue;
        b.currentWeight += b.weight;
        total += b.weight;
        if (best === null || b.currentWeight > best.currentWeight) best = b;
      }
    }
    best!.currentWeight -= total;
    best!.picked++;
    return best!;
  }

  /** Count a failure (connect error, timeout, bad handshake) against `b`. */
  fail(b: Backend, now = Date.now()): void {
    b.failures++;
    if (++b.fails >= this.maxFails && this.maxFails > 0) {
      b.downUntil = now + this.failTimeoutMs;
      b.fails = 0;
    }
  }

  succeed(b: Backend): void {
    b.fails = 0;
  }
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
