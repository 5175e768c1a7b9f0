/**
 * Options: the public shape, the defaults (nginx's where nginx has one), and
 * validation that names the offending field. The same shape is the CLI's JSON
 * config file, plus `listen`.
 */
import { ConfigError } from './errors.js';
import { isSafeValue, isToken, type ForwardPolicy } from './http1/serialize.js';
import { defaultMaxParsers } from './http1/llhttp.js';
import { isValidHost } from './http1/semantics.js';
import { parseAddress, type BackendOptions } from './upstream/group.js';

export interface UpstreamServerConfig {
  /** `host:port`, `[v6]:port` or `unix:/path`. */
  address: string;
  /** Relative share of connections (nginx `weight=`), default 1. */
  weight?: number;
}

export interface UpstreamConfig {
  servers: Array<string | UpstreamServerConfig>;
  /** Failures before a backend is skipped for `failTimeoutMs` (nginx max_fails), default 1; 0 never skips. */
  maxFails?: number;
  /** How long a failed backend is skipped (nginx fail_timeout), default 10 000 ms. */
  failTimeoutMs?: number;
}

export interface RouteConfig {
  /** Path prefix (`location /ws`), or the exact path with `exact: true` (`location = /ws`). */
  path: string;
  exact?: boolean;
  /** Name of an entry in `upstreams`. */
  upstream: string;
  /** Virtual server names this route answers for (nginx server_name); omitted = any host. */
  hosts?: string[];
}

export interface ForwardingConfig {
  /** Host sent upstream: omitted/null keeps the client's (`$host`), a string replaces it. */
  host?: string | null;
  /** Append X-Forwarded-For and set X-Forwarded-Proto / -Host (default true). */
  xForwarded?: boolean;
  /** Set X-Real-IP to the client address (default false). */
  xRealIp?: boolean;
  /** Headers set on every forwarded request, replacing the client's. */
  setHeaders?: Record<string, string>;
  /** Header names removed from every forwarded request. */
  removeHeaders?: string[];
  /** X-Forwarded-Proto value: 'https' when TLS is terminated in front of wsplice (default 'http'). */
  proto?: 'http' | 'https';
}

export interface TimeoutConfig {
  /** Whole client request head, not per byte (408). Default 60 000. */
  headMs?: number;
  /** Idle client connection between requests. Default 75 000 (nginx keepalive_timeout). */
  keepAliveMs?: number;
  /** Upstream connect (504). Default 60 000 (proxy_connect_timeout). */
  connectMs?: number;
  /** Upstream response head, and each read of a plain response (504). Default 60 000 (proxy_read_timeout). */
  responseMs?: number;
  /** Tunnel with no byte either way. Default 60 000; 0 disables. */
  idleMs?: number;
  /** How long close() waits for tunnels and exchanges before ending them. Default 10 000. */
  drainMs?: number;
}

export interface LimitConfig {
  /** Request head bytes (431). Default 16 384. */
  maxHeadBytes?: number;
  /** Header fields in a head (431). Default 100. */
  maxHeaders?: number;
  /** Request target bytes (414). Default 8 192. */
  maxUriBytes?: number;
  /** Bytes a client may pipeline behind an upgrade before the 101 (then the connection is closed). Default 65 536. */
  maxEarlyDataBytes?: number;
  /** Client connections open at once, tunnels included (nginx worker_connections); past it new ones are closed at accept. 0 = no limit. Default 0. */
  maxConnections?: number;
  /**
   * Heads parsed at once, per direction (request heads in progress and plain requests' bodies;
   * response heads). Each parser holds max(maxHeadBytes, 16 KiB) of wasm memory; past the cap a
   * request is answered 503. 0 = derived: a 1 GiB parser heap, 32,768 each way at the default maxHeadBytes.
   */
  maxParsers?: number;
}

export interface ProxyOptions {
  upstreams: Record<string, UpstreamConfig>;
  /** Routes; omitted = every path to the only (or first) upstream. */
  routes?: RouteConfig[];
  forwarding?: ForwardingConfig;
  timeouts?: TimeoutConfig;
  limits?: LimitConfig;
  /** Upgrade tokens other than websocket that may be tunnelled (generic upgrades); default none. */
  tunnelProtocols?: string[];
  /** Tunnel relay: 'auto' (splice when the native addon loaded), 'js' or 'splice'. Default 'auto'. */
  relay?: 'auto' | 'js' | 'splice';
}

/** Options after defaults and validation. */
export interface ResolvedOptions {
  upstreams: Map<string, { backends: BackendOptions[]; maxFails: number; failTimeoutMs: number }>;
  routes: Array<{ path: string; exact: boolean; upstream: string; hosts: string[] | null }>;
  forward: ForwardPolicy;
  proto: 'http' | 'https';
  timeouts: Required<TimeoutConfig>;
  limits: Required<LimitConfig>;
  tunnelProtocols: Set<string>;
  relay: 'auto' | 'js' | 'splice';
}

export const DEFAULT_TIMEOUTS: Readonly<Required<TimeoutConfig>> = {
  headMs: 60_000, keepAliveMs: 75_000, connectMs: 60_000, responseMs: 60_000, idleMs: 60_000, drainMs: 10_000,
};

export const DEFAULT_LIMITS: Readonly<Required<LimitConfig>> = {
  maxHeadBytes: 16 * 1024, maxHeaders: 100, maxUriBytes: 8 * 1024, maxEarlyDataBytes: 64 * 1024, maxConnections: 0, maxParsers: 0,
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(o: Record<string, unknown>, field: string, allowed: readonly string[]): void {
  for (const k of Object.keys(o)) {
    if (!allowed.includes(k)) throw new ConfigError(field ? `${field}.${k}` : k, `unknown option (expected one of ${allowed.join(', ')})`);
  }
}

function nonNegInt(v: unknown, field: string, def: number, min = 0): number {
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) throw new ConfigError(field, `must be an integer >= ${min}`);
  return v;
}

function resolveUpstream(name: string, u: unknown): { backends: BackendOptions[]; maxFails: number; failTimeoutMs: number } {
  const f = `upstreams.${name}`;
  if (!isObject(u)) throw new ConfigError(f, 'must be an object with servers');
  checkKeys(u, f, ['servers', 'maxFails', 'failTimeoutMs']);
  if (!Array.isArray(u.servers) || u.servers.length === 0) throw new ConfigError(`${f}.servers`, 'must be a non-empty array');
  const backends = u.servers.map((s: unknown, i: number): BackendOptions => {
    const sf = `${f}.servers[${i}]`;
    const o: Record<string, unknown> = typeof s === 'string' ? { address: s } : isObject(s) ? s : {};
    if (typeof s !== 'string') checkKeys(o, sf, ['address', 'weight']);
    if (typeof o.address !== 'string') throw new ConfigError(sf, 'must be "host:port", "[v6]:port", "unix:/path" or {address, weight}');
    const address = parseAddress(o.address);
    if (address === null) throw new ConfigError(sf, `invalid address "${o.address}" (expected host:port, [v6]:port or unix:/path)`);
    return { address, weight: nonNegInt(o.weight, `${sf}.weight`, 1, 1) };
  });
  return {
    backends,
    maxFails: nonNegInt(u.maxFails, `${f}.maxFails`, 1),
    failTimeoutMs: nonNegInt(u.failTimeoutMs, `${f}.failTimeoutMs`, 10_000),
  };
}

/** Apply defaults and validate. Throws ConfigError naming the field. */
export function resolveOptions(input: unknown): ResolvedOptions {
  if (!isObject(input)) throw new ConfigError('', 'options must be an object');
  checkKeys(input, '', ['upstreams', 'routes', 'forwarding', 'timeouts', 'limits', 'tunnelProtocols', 'relay', 'listen']);
  if (!isObject(input.upstreams) || Object.keys(input.upstreams).length === 0) {
    throw new ConfigError('upstreams', 'must name at least one upstream group');
  }
  const upstreams = new Map<string, ReturnType<typeof resolveUpstream>>();
  for (const [name, u] of Object.entries(input.upstreams)) upstreams.set(name, resolveUpstream(name, u));

  let routes: ResolvedOptions['routes'];
  if (input.routes === undefined) {
    routes = [{ path: '/', exact: false, upstream: upstreams.keys().next().value as string, hosts: null }];
  } else {
    if (!Array.isArray(input.routes) || input.routes.length === 0) throw new ConfigError('routes', 'must be a non-empty array');
    routes = input.routes.map((r: unknown, i: number) => {
      const f = `routes[${i}]`;
      if (!isObject(r)) throw new ConfigError(f, 'must be an object');
      checkKeys(r, f, ['path', 'exact', 'upstream', 'hosts']);
      if (typeof r.path !== 'string' || !r.path.startsWith('/')) throw new ConfigError(`${f}.path`, 'must be a string starting with /');
      if (typeof r.upstream !== 'string' || !upstreams.has(r.upstream)) {
        throw new ConfigError(`${f}.upstream`, `must name an upstream (one of ${[...upstreams.keys()].join(', ')})`);
      }
      if (r.exact !== undefined && typeof r.exact !== 'boolean') throw new ConfigError(`${f}.exact`, 'must be a boolean');
      let hosts: string[] | null = null;
      if (r.hosts !== undefined) {
        if (!Array.isArray(r.hosts) || r.hosts.some((h) => typeof h !== 'string' || !isValidHost(h))) {
          throw new ConfigError(`${f}.hosts`, 'must be an array of host names');
        }
        hosts = (r.hosts as string[]).map((h) => h.toLowerCase());
      }
      return { path: r.path, exact: r.exact === true, upstream: r.upstream, hosts };
    });
  }

  const fw = input.forwarding ?? {};
  if (!isObject(fw)) throw new ConfigError('forwarding', 'must be an object');
  checkKeys(fw, 'forwarding', ['host', 'xForwarded', 'xRealIp', 'setHeaders', 'removeHeaders', 'proto']);
  if (fw.host !== undefined && fw.host !== null && (typeof fw.host !== 'string' || !isValidHost(fw.host))) {
    throw new ConfigError('forwarding.host', 'must be a host[:port] or null');
  }
  for (const k of ['xForwarded', 'xRealIp'] as const) {
    if (fw[k] !== undefined && typeof fw[k] !== 'boolean') throw new ConfigError(`forwarding.${k}`, 'must be a boolean');
  }
  const set: Array<[string, string]> = [];
  if (fw.setHeaders !== undefined) {
    if (!isObject(fw.setHeaders)) throw new ConfigError('forwarding.setHeaders', 'must be an object of name: value');
    for (const [name, value] of Object.entries(fw.setHeaders)) {
      const f = `forwarding.setHeaders.${name}`;
      if (!isToken(name)) throw new ConfigError(f, 'invalid header name');
      if (typeof value !== 'string' || !isSafeValue(value)) throw new ConfigError(f, 'value must be a string without CR, LF or NUL');
      const k = name.toLowerCase();
      if (['host', 'connection', 'upgrade', 'content-length', 'transfer-encoding'].includes(k)) {
        throw new ConfigError(f, 'this header is managed by the proxy');
      }
      set.push([name, value]);
    }
  }
  const remove = new Set<string>();
  if (fw.removeHeaders !== undefined) {
    if (!Array.isArray(fw.removeHeaders)) throw new ConfigError('forwarding.removeHeaders', 'must be an array of names');
    fw.removeHeaders.forEach((n: unknown, i: number) => {
      if (typeof n !== 'string' || !isToken(n)) throw new ConfigError(`forwarding.removeHeaders[${i}]`, 'invalid header name');
      const k = n.toLowerCase();
      if (['host', 'content-length', 'transfer-encoding'].includes(k)) {
        throw new ConfigError(`forwarding.removeHeaders[${i}]`, 'this header is managed by the proxy');
      }
      remove.add(k);
    });
  }
  if (fw.proto !== undefined && fw.proto !== 'http' && fw.proto !== 'https') throw new ConfigError('forwarding.proto', 'must be "http" or "https"');

  const to = input.timeouts ?? {};
  if (!isObject(to)) throw new ConfigError('timeouts', 'must be an object');
  checkKeys(to, 'timeouts', Object.keys(DEFAULT_TIMEOUTS));
  const timeouts = { ...DEFAULT_TIMEOUTS };
  for (const k of Object.keys(DEFAULT_TIMEOUTS) as Array<keyof TimeoutConfig>) {
    timeouts[k] = nonNegInt(to[k], `timeouts.${k}`, DEFAULT_TIMEOUTS[k]);
  }
  const li = input.limits ?? {};
  if (!isObject(li)) throw new ConfigError('limits', 'must be an object');
  checkKeys(li, 'limits', Object.keys(DEFAULT_LIMITS));
  const limits = { ...DEFAULT_LIMITS };
  for (const k of Object.keys(DEFAULT_LIMITS) as Array<keyof LimitConfig>) {
    limits[k] = nonNegInt(li[k], `limits.${k}`, DEFAULT_LIMITS[k], k === 'maxConnections' || k === 'maxParsers' ? 0 : 1);
  }
  if (limits.maxHeadBytes < 1024) throw new ConfigError('limits.maxHeadBytes', 'must be at least 1024');
  if (limits.maxParsers === 0) limits.maxParsers = defaultMaxParsers(limits.maxHeadBytes);

  const tunnelProtocols = new Set<string>();
  if (input.tunnelProtocols !== undefined) {
    if (!Array.isArray(input.tunnelProtocols)) throw new ConfigError('tunnelProtocols', 'must be an array of tokens');
    input.tunnelProtocols.forEach((p: unknown, i: number) => {
      if (typeof p !== 'string' || !isToken(p.replace('/', ''))) throw new ConfigError(`tunnelProtocols[${i}]`, 'must be an Upgrade token');
      tunnelProtocols.add(p.toLowerCase());
    });
  }
  const relay = input.relay ?? 'auto';
  if (relay !== 'auto' && relay !== 'js' && relay !== 'splice') throw new ConfigError('relay', 'must be "auto", "js" or "splice"');

  return {
    upstreams,
    routes,
    forward: {
      host: (fw.host as string | null | undefined) ?? null,
      xForwarded: fw.xForwarded !== false,
      xRealIp: fw.xRealIp === true,
      remove,
      set,
      setKeys: new Set(set.map(([n]) => n.toLowerCase())),
    },
    proto: (fw.proto as 'http' | 'https' | undefined) ?? 'http',
    timeouts,
    limits,
    tunnelProtocols,
    relay,
  };
}
