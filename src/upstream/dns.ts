/**
 * Upstream host names resolved at start and again on an interval (nginx
 * `server NAME resolve`): every address a name resolves to is a backend with
 * the server's options. A failed or empty resolution keeps the last good set
 * (and says so in `status()`); backends whose address stays keep their
 * counters and open connections.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Backend, BackendOptions } from './backend.js';
import type { UpstreamGroup } from './group.js';

/** Resolves a name to its addresses (all families). */
export type Resolver = (host: string) => Promise<string[]>;

export const systemResolver: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

export interface NameStatus {
  host: string;
  addresses: string[];
  /** The last resolution's error, while the last good set is kept; null after a good one. */
  lastError: string | null;
  resolvedAt: number;
}

interface Entry {
  /** The configured server: its address names the host to resolve. */
  template: BackendOptions & { address: { kind: 'tcp'; host: string; port: number } };
  status: NameStatus;
}

export class DnsRefresher {
  private readonly entries: Entry[];
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Called after the group's backend set changed. */
  onChange: (() => void) | null = null;

  constructor(
    private readonly group: UpstreamGroup,
    templates: BackendOptions[],
    private readonly intervalMs: number,
    private readonly resolve: Resolver = systemResolver,
  ) {
    this.entries = templates.map((t) => {
      if (t.address.kind !== 'tcp' || isIP(t.address.host) !== 0) throw new Error('resolve needs a host name');
      return { template: t as Entry['template'], status: { host: t.address.host, addresses: [], lastError: null, resolvedAt: 0 } };
    });
  }

  /** Resolve now, then every interval. Resolves once the first round is done (failures included). */
  async start(): Promise<void> {
    await this.refresh();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  status(): NameStatus[] {
    return this.entries.map((e) => ({ ...e.status, addresses: [...e.status.addresses] }));
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.refresh().then(() => this.schedule()), this.intervalMs);
    this.timer.unref();
  }

  /** One round over every name. */
  async refresh(): Promise<void> {
    let changed = false;
    for (const e of this.entries) {
      try {
        const found = [...new Set(await this.resolve(e.status.host))].sort();
        if (found.length === 0) throw new Error('no addresses');
        e.status.lastError = null;
        e.status.resolvedAt = Date.now();
        if (found.join() !== e.status.addresses.join()) {
          e.status.addresses = found;
          changed = true;
        }
      } catch (err) {
        const code = (err as { code?: string }).code;
        e.status.lastError = `${code ?? (err as Error).message}; keeping ${e.status.addresses.length} address(es) from the last good resolution`;
      }
    }
    if (changed && !this.stopped) this.apply();
  }

  /** Rebuild the group: resolved names expand to their addresses, everything else stays. */
  private apply(): void {
    const old = new Map<string, Backend>();
    for (const b of this.group.backends) old.set(`${b.hostname ?? ''}|${b.label}|${b.backup}`, b);
    const next: Backend[] = [];
    const resolvedNames = new Set(this.entries.filter((e) => e.status.addresses.length > 0).map((e) => e.status.host));
    for (const b of this.group.backends) {
      // Backends of a resolved name are replaced below; the name itself stands in until its first resolution.
      const name = b.hostname ?? (b.address.kind === 'tcp' ? b.address.host : '');
      if (!resolvedNames.has(name)) next.push(b);
    }
    for (const e of this.entries) {
      if (e.status.addresses.length === 0) continue;
      for (const ip of e.status.addresses) {
        const o: BackendOptions = { ...e.template, address: { kind: 'tcp', host: ip, port: e.template.address.port }, hostname: e.status.host };
        const made = this.group.makeBackend(o);
        next.push(old.get(`${e.status.host}|${made.label}|${made.backup}`) ?? made);
      }
    }
    this.group.setBackends(next);
    this.onChange?.();
  }
}
