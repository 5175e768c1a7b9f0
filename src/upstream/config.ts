/**
 * The balancing parts of an `upstreams.NAME` block (balance, sticky,
 * healthCheck, nextUpstream): their JSON shape and validation, used as rows
 * by options.ts. Errors are ConfigErrors naming the field and the reason
 * (nginx's where nginx refuses the same thing).
 */
import { ConfigError } from '../errors.js';
import { isToken } from '../http1/serialize.js';
import type { BackendOptions } from './backend.js';
import { METHODS, type BalanceConfig } from './balance/index.js';
import { DEFAULT_HEALTH, type HealthCheckConfig } from './health.js';
import { compileKey } from './key.js';
import type { StickyConfig } from './sticky.js';

export type BalanceInput =
  | 'round_robin' | 'least_conn' | 'ip_hash' | 'random'
  | { method: 'hash'; key: string; consistent?: boolean }
  | { method: 'random'; two?: boolean; leastConn?: boolean }
  | { method: 'round_robin' | 'least_conn' | 'ip_hash' };

export interface HealthCheckInput {
  type?: 'tcp' | 'http' | 'websocket';
  intervalMs?: number;
  timeoutMs?: number;
  rise?: number;
  fall?: number;
  jitterMs?: number;
  method?: string;
  path?: string;
  host?: string;
  /** Accepted status range, inclusive; default [200, 399]. */
  status?: [number, number];
  /** Regular expression the body must match. */
  body?: string;
}

/** What the upstream code adds to a resolved `upstreams.NAME` (options.ts has the rest). */
export interface UpstreamBalancing {
  balance: BalanceConfig;
  sticky: StickyConfig | null;
  healthCheck: HealthCheckConfig | null;
  /** Servers whose host names are resolved (their templates), and how often. */
  resolve: BackendOptions[];
  resolveIntervalMs: number;
}

export const DEFAULT_BALANCE: BalanceConfig = { method: 'round_robin' };

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(o: Record<string, unknown>, field: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new ConfigError(`${field}.${k}`, `unknown option (expected one of ${allowed.join(', ')})`);
  }
}

function int(v: unknown, field: string, def: number, min = 0): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ConfigError(field, `must be an integer >= ${min}`);
  return v;
}

function bool(v: unknown, field: string): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') throw new ConfigError(field, 'must be a boolean');
  return v;
}

function str(v: unknown, field: string, ok: (s: string) => boolean, what: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !ok(v)) throw new ConfigError(field, `must be ${what}`);
  return v;
}

/** A cookie attribute value: visible ASCII without `;` or `,`. */
const ATTR = /^[\x21-\x2b\x2d-\x3a\x3c-\x7e]+$/;

/**
 * What no single field can say about a group's servers: a backup with a
 * method that has no second tier, slow start under a hash, no primary left,
 * `resolve` on an address.
 */
export function serverProblems(f: string, servers: readonly BackendOptions[], balance: BalanceConfig, report: (field: string, reason: string) => void): void {
  const backupAt = servers.findIndex((b) => b.backup === true);
  if (backupAt >= 0 && !METHODS[balance.method].allowsBackup) {
    report(`${f}.servers[${backupAt}].backup`, `a backup server cannot be used with the ${balance.method} balancing method (a hash or random pick has no second tier to fall back on)`);
  }
  const slowAt = servers.findIndex((b) => (b.slowStartMs ?? 0) > 0);
  if (slowAt >= 0 && (balance.method === 'hash' || balance.method === 'ip_hash')) {
    report(`${f}.servers[${slowAt}].slowStartMs`, `slow start cannot be used with the ${balance.method} balancing method (a hash pick does not follow weights as they ramp)`);
  }
  // As nginx: backups alone are no group; primaries all down with a backup up is a maintenance setup.
  if (servers.every((b) => b.backup === true)) report(`${f}.servers`, 'needs at least one primary server (backups are used only when the primaries are down or full)');
  else if (servers.every((b) => b.down === true)) report(`${f}.servers`, 'every server is marked down: nothing could ever be picked');
  servers.forEach((b, i) => {
    const a = b.address;
    if (b.resolve === true && (a.kind !== 'tcp' || /^[\d.]+$|:/.test(a.host))) {
      report(`${f}.servers[${i}].resolve`, 'needs a host name, not an IP address or a unix path');
    }
  });
}

export function resolveBalance(v: unknown, f: string): BalanceConfig {
  if (v === undefined) return { method: 'round_robin' };
  const o: Record<string, unknown> = typeof v === 'string' ? { method: v } : isObject(v) ? v : {};
  const method = o.method;
  if (typeof method !== 'string' || !(method in METHODS)) {
    throw new ConfigError(f, `must be one of ${Object.keys(METHODS).join(', ')} (or { method, ... })`);
  }
  if (method === 'hash') {
    checkKeys(o, f, ['method', 'key', 'consistent']);
    if (typeof o.key !== 'string' || o.key === '') throw new ConfigError(`${f}.key`, 'must be a key such as "$remote_addr" or "$cookie_sid$arg_room"');
    try {
      compileKey(o.key);
    } catch (err) {
      throw new ConfigError(`${f}.key`, (err as Error).message);
    }
    return { method, key: o.key, consistent: bool(o.consistent, `${f}.consistent`) };
  }
  if (method === 'random') {
    checkKeys(o, f, ['method', 'two', 'leastConn']);
    const two = bool(o.two, `${f}.two`);
    if (bool(o.leastConn, `${f}.leastConn`) && !two) throw new ConfigError(`${f}.leastConn`, 'needs two: true (random two least_conn)');
    return { method, two };
  }
  checkKeys(o, f, ['method']);
  return { method: method as 'round_robin' | 'least_conn' | 'ip_hash' };
}

export function resolveSticky(v: unknown, f: string): StickyConfig {
  if (!isObject(v)) throw new ConfigError(f, 'must be an object with cookie');
  checkKeys(v, f, ['cookie', 'expiresMs', 'domain', 'path', 'httpOnly', 'secure', 'sameSite', 'nocache', 'secret']);
  const out: StickyConfig = { cookie: str(v.cookie, `${f}.cookie`, isToken, 'a cookie name (a token)') ?? '' };
  if (out.cookie === '') throw new ConfigError(`${f}.cookie`, 'is required (the cookie name)');
  if (v.expiresMs !== undefined) out.expiresMs = int(v.expiresMs, `${f}.expiresMs`, 0, 1000);
  const domain = str(v.domain, `${f}.domain`, (s) => ATTR.test(s), 'a domain without ; , or spaces');
  if (domain !== undefined) out.domain = domain;
  out.path = str(v.path, `${f}.path`, (s) => s.startsWith('/') && ATTR.test(s), 'a path starting with / without ; , or spaces') ?? '/';
  out.httpOnly = bool(v.httpOnly, `${f}.httpOnly`);
  out.secure = bool(v.secure, `${f}.secure`);
  out.nocache = bool(v.nocache, `${f}.nocache`);
  if (v.sameSite !== undefined) {
    const ss = typeof v.sameSite === 'string' ? v.sameSite.toLowerCase() : '';
    if (ss !== 'strict' && ss !== 'lax' && ss !== 'none') throw new ConfigError(`${f}.sameSite`, 'must be "strict", "lax" or "none"');
    if (ss === 'none' && !out.secure) throw new ConfigError(`${f}.sameSite`, 'SameSite=None needs secure: true (browsers drop it otherwise)');
    out.sameSite = ss;
  }
  const secret = str(v.secret, `${f}.secret`, (s) => s.length >= 16, 'a string of at least 16 characters');
  if (secret !== undefined) out.secret = secret;
  return out;
}

export function resolveHealth(v: unknown, f: string): HealthCheckConfig {
  if (!isObject(v)) throw new ConfigError(f, 'must be an object');
  checkKeys(v, f, ['type', 'intervalMs', 'timeoutMs', 'rise', 'fall', 'jitterMs', 'method', 'path', 'host', 'status', 'body']);
  const type = v.type ?? 'http';
  if (type !== 'tcp' && type !== 'http' && type !== 'websocket') throw new ConfigError(`${f}.type`, 'must be "tcp", "http" or "websocket"');
  const d = DEFAULT_HEALTH;
  const status = v.status ?? d.status;
  if (!Array.isArray(status) || status.length !== 2 || !status.every((n) => Number.isInteger(n) && n >= 100 && n <= 599) || status[0] > status[1]) {
    throw new ConfigError(`${f}.status`, 'must be [min, max], statuses 100..599, min <= max');
  }
  let body: RegExp | null = null;
  if (v.body !== undefined) {
    if (typeof v.body !== 'string') throw new ConfigError(`${f}.body`, 'must be a regular expression (a string)');
    try {
      body = new RegExp(v.body);
    } catch (err) {
      throw new ConfigError(`${f}.body`, (err as Error).message);
    }
  }
  const out: HealthCheckConfig = {
    type,
    intervalMs: int(v.intervalMs, `${f}.intervalMs`, d.intervalMs, 10),
    timeoutMs: int(v.timeoutMs, `${f}.timeoutMs`, d.timeoutMs, 1),
    rise: int(v.rise, `${f}.rise`, d.rise, 1),
    fall: int(v.fall, `${f}.fall`, d.fall, 1),
    jitterMs: int(v.jitterMs, `${f}.jitterMs`, d.jitterMs),
    method: str(v.method, `${f}.method`, isToken, 'a method token') ?? d.method,
    path: str(v.path, `${f}.path`, (s) => s.startsWith('/') && !/[\s\0]/.test(s), 'a path starting with /, no spaces') ?? d.path,
    host: str(v.host, `${f}.host`, (s) => /^[A-Za-z0-9.\-:[\]]+$/.test(s), 'a host[:port]') ?? null,
    status: [status[0] as number, status[1] as number],
    body,
  };
  if (type === 'websocket' && (v.method !== undefined || v.status !== undefined || v.body !== undefined)) {
    throw new ConfigError(f, 'a websocket check is a GET upgrade judged by its 101: method, status and body do not apply');
  }
  return out;
}
