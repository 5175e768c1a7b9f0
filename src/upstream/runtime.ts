/**
 * The live side of the configured upstreams: one group per `upstreams`
 * entry, with its health checker and DNS refresher started, and one stop()
 * for all of them (close()).
 */
import type { ResolvedUpstream } from '../options.js';
import { DnsRefresher, type NameStatus } from './dns.js';
import { UpstreamGroup, type BackendTransition, type GroupSnapshot } from './group.js';
import { HealthChecker } from './health.js';

export interface UpstreamSnapshot extends GroupSnapshot {
  /** Host names resolved for `resolve` servers, with the last error while an old set is kept. */
  names: NameStatus[];
}

export interface UpstreamRuntime {
  groups: ReadonlyMap<string, UpstreamGroup>;
  /** The retry policy per group name. */
  config: ReadonlyMap<string, ResolvedUpstream>;
  snapshot(): UpstreamSnapshot[];
  stop(): void;
}

export function startUpstreams(
  upstreams: ReadonlyMap<string, ResolvedUpstream>,
  onTransition: (t: BackendTransition) => void,
): UpstreamRuntime {
  const groups = new Map<string, UpstreamGroup>();
  const checkers: HealthChecker[] = [];
  const resolvers = new Map<string, DnsRefresher>();
  for (const [name, u] of upstreams) {
    const g = new UpstreamGroup(name, u.backends, u.maxFails, u.failTimeoutMs, { balance: u.balance, sticky: u.sticky, retry: u.retry });
    g.onTransition = onTransition;
    groups.set(name, g);
    const checker = u.healthCheck === null ? null : new HealthChecker(g, u.healthCheck);
    if (checker !== null) {
      checkers.push(checker);
      checker.start();
    }
    if (u.resolve.length > 0) {
      const dns = new DnsRefresher(g, u.resolve, u.resolveIntervalMs);
      dns.onChange = () => checker?.sync();
      resolvers.set(name, dns);
      void dns.start();
    }
  }
  return {
    groups,
    config: upstreams,
    snapshot: () => [...groups.values()].map((g) => ({ ...g.snapshot(), names: resolvers.get(g.name)?.status() ?? [] })),
    stop: () => {
      for (const c of checkers) c.stop();
      for (const r of resolvers.values()) r.stop();
    },
  };
}
