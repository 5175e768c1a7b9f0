/**
 * The balancing methods, one row each: the name in the configuration, what
 * it needs, and the factory that builds it over one tier of a group.
 */
import { compileKey } from '../key.js';
import { ConsistentHash, IpHash, WeightedHash } from './hash.js';
import { LeastConn } from './least-conn.js';
import { Random } from './random.js';
import { RoundRobin } from './round-robin.js';
import type { BalancerFactory } from './types.js';

export type BalanceConfig =
  | { method: 'round_robin' }
  | { method: 'least_conn' }
  | { method: 'ip_hash' }
  | { method: 'hash'; key: string; consistent: boolean }
  | { method: 'random'; two: boolean };

export interface MethodRow {
  /** nginx lets `backup` servers be used only with these methods. */
  allowsBackup: boolean;
  make(cfg: BalanceConfig): BalancerFactory;
}

export const METHODS: Record<BalanceConfig['method'], MethodRow> = {
  round_robin: { allowsBackup: true, make: () => (list) => new RoundRobin(list) },
  least_conn: { allowsBackup: true, make: () => (list) => new LeastConn(list) },
  ip_hash: { allowsBackup: false, make: () => (list) => new IpHash(list) },
  hash: {
    allowsBackup: false,
    make: (cfg) => {
      const c = cfg as Extract<BalanceConfig, { method: 'hash' }>;
      const key = compileKey(c.key);
      return c.consistent ? (list) => new ConsistentHash(list, key) : (list) => new WeightedHash(list, key);
    },
  },
  random: {
    allowsBackup: false,
    make: (cfg) => (list) => new Random(list, (cfg as Extract<BalanceConfig, { method: 'random' }>).two),
  },
};

export function balancerFactory(cfg: BalanceConfig): BalancerFactory {
  return METHODS[cfg.method].make(cfg);
}

export type { Balancer, BalancerFactory } from './types.js';
