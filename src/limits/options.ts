/**
 * `clientLimits`: per-client limits (nginx limit_conn / limit_req with
 * nodelay), validated into their resolved form. Each error names its field.
 */
import { ConfigError } from '../errors.js';
import type { Rate } from './bucket.js';

export interface ClientLimitsConfig {
  /** Connections open at once per client address, tunnels included (limit_conn). 0 = none. */
  maxConnections?: number;
  /** New connections per second per client address, with a burst. */
  connectionRate?: { rate: number; burst?: number };
  /** Requests (upgrades included) per second per key (limit_req ... nodelay). */
  requestRate?: { rate: number; burst?: number; key?: string };
  /** Status of a refusal: 503 (nginx's default) or 429. */
  status?: 429 | 503;
  /** Entries each table keeps, oldest evicted first (the zone size). Default 65 536. */
  maxClients?: number;
}

export interface ResolvedClientLimits {
  maxConnections: number;
  connectionRate: Rate | null;
  requestRate: (Rate & { key: RequestKey }) | null;
  status: 429 | 503;
  maxClients: number;
}

/** `$remote_addr` (the client, after a trusted PROXY header) or `$http_NAME` (a request header). */
export type RequestKey = { kind: 'address' } | { kind: 'header'; name: string };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(o: Record<string, unknown>, field: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new ConfigError(`${field}.${k}`, `unknown option (expected one of ${allowed.join(', ')})`);
  }
}

function positive(v: unknown, field: string, integer: boolean): number {
  if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new ConfigError(field, integer ? 'must be an integer > 0' : 'must be a number > 0');
  }
  return v;
}

function resolveRate(v: unknown, field: string, withKey: boolean): (Rate & { key: RequestKey }) | null {
  if (v === undefined || v === null) return null;
  if (!isObject(v)) throw new ConfigError(field, 'must be { rate, burst? }');
  checkKeys(v, field, withKey ? ['rate', 'burst', 'key'] : ['rate', 'burst']);
  const rate = positive(v.rate, `${field}.rate`, false);
  let burst = 0;
  if (v.burst !== undefined) {
    if (typeof v.burst !== 'number' || !Number.isInteger(v.burst) || v.burst < 0) throw new ConfigError(`${field}.burst`, 'must be an integer >= 0');
    burst = v.burst;
  }
  let key: RequestKey = { kind: 'address' };
  if (v.key !== undefined && v.key !== '$remote_addr' && v.key !== '$binary_remote_addr') {
    const m = typeof v.key === 'string' ? /^\$http_([a-z0-9_]+)$/i.exec(v.key) : null;
    if (m === null) throw new ConfigError(`${field}.key`, 'must be $remote_addr or $http_NAME');
    key = { kind: 'header', name: m[1]!.toLowerCase().replace(/_/g, '-') };
  }
  return { rate, burst, key };
}

export function resolveClientLimits(v: unknown, field = 'clientLimits'): ResolvedClientLimits | null {
  if (v === undefined || v === null) return null;
  if (!isObject(v)) throw new ConfigError(field, 'must be an object');
  checkKeys(v, field, ['maxConnections', 'connectionRate', 'requestRate', 'status', 'maxClients']);
  let maxConnections = 0;
  if (v.maxConnections !== undefined) {
    if (typeof v.maxConnections !== 'number' || !Number.isInteger(v.maxConnections) || v.maxConnections < 0) {
      throw new ConfigError(`${field}.maxConnections`, 'must be an integer >= 0');
    }
    maxConnections = v.maxConnections;
  }
  const status = v.status ?? 503;
  if (status !== 429 && status !== 503) throw new ConfigError(`${field}.status`, 'must be 429 or 503');
  const maxClients = v.maxClients === undefined ? 65_536 : positive(v.maxClients, `${field}.maxClients`, true);
  const cr = resolveRate(v.connectionRate, `${field}.connectionRate`, false);
  const connectionRate = cr === null ? null : { rate: cr.rate, burst: cr.burst };
  const requestRate = resolveRate(v.requestRate, `${field}.requestRate`, true);
  if (maxConnections === 0 && connectionRate === null && requestRate === null) return null;
  return { maxConnections, connectionRate, requestRate, status, maxClients };
}
