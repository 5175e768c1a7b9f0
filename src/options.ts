/**
 * Options: the public shape, and one table of rows (check, default, nginx
 * equivalent, flag) per section. `resolveOptions` runs the tables, reports
 * every problem at once, then builds the resolved form the proxy runs on.
 * The same shape is the CLI's JSON config file (plus `listen`).
 */
import {
  arrayOf, bool, defaultsOf, either, int, isObject, nullable, object, oneOf, recordOf, str,
  type Check, type FieldRow, type JsonSchema, type Parsed, type Rows,
} from './config/check.js';
import { Issues, type SourceMap } from './config/issues.js';
import { resolveRoutes, ROUTE_ROWS, type ParsedRoute, type ResolvedRoute } from './config/routes.js';
import { forwardPolicy } from './config/forwarding.js';
import { compileMaps, MAPS, type MapConfig } from './config/maps.js';
import { defaultMaxParsers } from './http1/llhttp.js';
import { isSafeValue, isToken, type ForwardPolicy } from './http1/serialize.js';
import { isValidHost } from './http1/semantics.js';
import { RETRY_CONDITIONS, retryPolicy, type RetryCondition, type RetryPolicy } from './upstream/retry.js';
import type { KeepaliveConfig } from './upstream/pool.js';
import { parseAddress, type BackendAddress, type BackendOptions } from './upstream/group.js';
import {
  DEFAULT_BALANCE, resolveBalance, resolveHealth, resolveSticky, serverProblems,
  type BalanceInput, type HealthCheckInput, type UpstreamBalancing,
} from './upstream/config.js';
import type { StickyConfig } from './upstream/sticky.js';
import { ConfigError } from './errors.js';
import { connectionLimit } from './limits/nofile.js';
import { resolveClientLimits, type ClientLimitsConfig, type ResolvedClientLimits } from './limits/options.js';
import { resolveRealIpFrom, TrustList } from './proxy-protocol/trust.js';
import { resolveUpstreamTls, type ResolvedUpstreamTls, type UpstreamTlsConfig } from './tls/options.js';

export interface UpstreamServerConfig {
  /** `host:port`, `[v6]:port` or `unix:/path`. */
  address: string;
  /** Relative share of connections (nginx `weight=`), default 1. */
  weight?: number;
  /** Only when every primary is down or full (nginx `backup`); not with ip_hash, hash or random. */
  backup?: boolean;
  /** Never picked (nginx `down`). */
  down?: boolean;
  /** Open tunnels + exchanges at most (nginx `max_conns`); 0 = no limit. */
  maxConns?: number;
  /** Per-server max_fails / fail_timeout. */
  maxFails?: number;
  failTimeoutMs?: number;
  /** Ramp the weight up over this long after the backend comes back (nginx `slow_start`). */
  slowStartMs?: number;
  /** Resolve the host name at start and every `resolveIntervalMs`; every address is a backend (nginx `resolve`). */
  resolve?: boolean;
}

export interface UpstreamConfig {
  servers: Array<string | UpstreamServerConfig>;
  /** Failures before a backend is skipped for `failTimeoutMs` (nginx max_fails), default 1; 0 never skips. */
  maxFails?: number;
  /** How long a failed backend is skipped (nginx fail_timeout), default 10 000 ms. */
  failTimeoutMs?: number;
  /** TLS to these backends (`proxy_pass https://`); `{}` or true verifies against Node's root store. */
  tls?: UpstreamTlsConfig | boolean;
  /** Send a PROXY protocol header first (HAProxy send-proxy / send-proxy-v2). */
  sendProxy?: 'v1' | 'v2';
  /** When a failed try moves on to the next backend (nginx proxy_next_upstream, _tries, _timeout). */
  nextUpstream?: NextUpstreamConfig;
  /** Idle connections kept per backend for plain requests (nginx keepalive); omitted: Connection: close. */
  keepalive?: { idle: number; timeoutMs?: number; requests?: number };
  /** Balancing method; default round robin (smooth, weighted). */
  balance?: BalanceInput;
  /** Sticky sessions by a cookie the proxy inserts. */
  sticky?: StickyConfig;
  /** Active health checks. */
  healthCheck?: HealthCheckInput;
  /** How often `resolve` servers are resolved again; default 30 000. */
  resolveIntervalMs?: number;
}

export interface NextUpstreamConfig {
  /** Default ["error", "timeout"]; [] turns retries off; "non_idempotent" lets a POST go again. */
  on?: RetryCondition[];
  /** Tries at most, the first included; 0 (default): one per backend. */
  tries?: number;
  /** No new try this long after the first began; 0 (default): no limit. */
  timeoutMs?: number;
}

export interface RouteConfig {
  /** Path prefix (`location /ws`), the exact path with `exact: true` (`location = /ws`), or a regex with `match: 'regex'`. */
  path: string;
  exact?: boolean;
  /** nginx's location forms: prefix (default), exact (`=`), prefix-stop (`^~`), regex (`~`), regex-caseless (`~*`). */
  match?: 'prefix' | 'exact' | 'prefix-stop' | 'regex' | 'regex-caseless';
  /** Name of an entry in `upstreams` (required unless `return` is given). */
  upstream?: string;
  /** Virtual server names this route answers for (nginx server_name: exact, `*.suffix`, `prefix.*`, `~regex`); omitted = the default server. */
  hosts?: string[];
  /** Answer without proxying (nginx `return CODE [TEXT|URL]`; a 301/302/303/307/308 text is the Location). */
  return?: { status: number; text?: string };
  /** allow/deny rules in order, first match wins; a denied client gets 403 (nginx allow/deny); nested routes without their own inherit them. */
  access?: Array<{ allow: string } | { deny: string }>;
  /** Replace the matched part of the normalised path with this (nginx `proxy_pass http://up/URI`); prefix and exact routes only. */
  uri?: string;
  /**
   * Answer the path without its final `/` (`/app` for `/app/`, any query kept) with a 301 to the path with it, over
   * any regex route, unless a route of the request's own path exists (nginx does this for a `/x/` location with proxy_pass).
   */
  slashRedirect?: boolean;
  /** This route's timeouts; each one not given is the enclosing route's, else the global one. */
  timeouts?: Pick<TimeoutConfig, 'connectMs' | 'responseMs' | 'sendMs' | 'idleMs'>;
  /** This route's forwarding; each field not given is the enclosing route's, else the global one (setHeaders and removeHeaders as a whole). */
  forwarding?: Omit<ForwardingConfig, 'proto'>;
  /** This route's nextUpstream fields, over the enclosing routes' and then the upstream's. */
  nextUpstream?: NextUpstreamConfig;
  /** Routes searched when this one matched (nginx locations inside a location); prefix paths must start with this one's. */
  routes?: RouteConfig[];
}

export interface ForwardingConfig {
  /** Host sent upstream: '$host' (the name lower-cased, without port, as nginx), '$http_host' or null (default: as the client sent it), or a fixed value. */
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
  /** Between two writes of a request body to the upstream, until the body is all sent; the response head's limit starts then (504). Default 60 000 (proxy_send_timeout). */
  sendMs?: number;
  /** Tunnel with no byte either way. Default 60 000; 0 disables. */
  idleMs?: number;
  /** How long close() waits for tunnels and exchanges before ending them. Default 10 000. */
  drainMs?: number;
  /** How long a finished upstream connection may take to close on the backend's side before the proxy closes it. Default 1 000; 0 closes at once. */
  retireMs?: number;
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
  /** Finished upstream connections waiting for their backend to close, at most; past it the oldest is closed. Default 512. */
  maxRetired?: number;
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
  /** Addresses and CIDR blocks allowed to send a PROXY header (nginx set_real_ip_from). */
  realIpFrom?: string[];
  /** Per-client limits (nginx limit_conn / limit_req). */
  clientLimits?: ClientLimitsConfig;
  /** Variables from other variables (nginx map), usable in forwarding.setHeaders values. */
  maps?: Record<string, MapConfig>;
}

export interface ResolvedUpstream extends UpstreamBalancing {
  backends: BackendOptions[];
  maxFails: number;
  failTimeoutMs: number;
  tls: ResolvedUpstreamTls | null;
  sendProxy: 'v1' | 'v2' | null;
  retry: RetryPolicy;
  keepalive: KeepaliveConfig | null;
}

/** Options after defaults and validation. */
export interface ResolvedOptions {
  upstreams: Map<string, ResolvedUpstream>;
  routes: ResolvedRoute[];
  forward: ForwardPolicy;
  proto: 'http' | 'https';
  timeouts: Required<TimeoutConfig>;
  limits: Required<LimitConfig>;
  tunnelProtocols: Set<string>;
  relay: 'auto' | 'js' | 'splice';
  realIpFrom: TrustList;
  clientLimits: ResolvedClientLimits | null;
}

// ---- the tables --------------------------------------------------------------------------------

const ms = (def: number, doc: string, nginx?: string, flag?: string): FieldRow<number> & { default: number } => ({
  check: int(0), default: def, doc, ...(nginx !== undefined ? { nginx } : {}), ...(flag !== undefined ? { flag: { name: flag, arg: 'MS' } } : {}),
});

export const TIMEOUT_ROWS = {
  headMs: ms(60_000, 'whole client request head, not per byte (408)', 'client_header_timeout'),
  keepAliveMs: ms(75_000, 'idle client connection between requests', 'keepalive_timeout'),
  connectMs: ms(60_000, 'upstream connect (504)', 'proxy_connect_timeout', '--connect-timeout'),
  responseMs: ms(60_000, 'upstream response head, and each read of a plain response (504)', 'proxy_read_timeout', '--read-timeout'),
  sendMs: ms(60_000, 'between two writes of a request body to the upstream, until it is all sent; then responseMs runs (504)', 'proxy_send_timeout', '--send-timeout'),
  idleMs: ms(60_000, 'tunnel with no byte either way; 0 disables', 'proxy_read_timeout', '--idle-timeout'),
  drainMs: ms(10_000, 'on SIGTERM or close(): how long exchanges and tunnels may finish', 'worker_shutdown_timeout', '--drain-timeout'),
  retireMs: ms(1_000, 'how long a finished upstream connection may take to close on its side; then the proxy closes it'),
} satisfies Rows;

const count = (def: number, min: number, doc: string, nginx?: string): FieldRow<number> & { default: number } => ({
  check: int(min), default: def, doc, ...(nginx !== undefined ? { nginx } : {}),
});

export const LIMIT_ROWS = {
  maxHeadBytes: count(16 * 1024, 1024, 'request head bytes (431)', 'large_client_header_buffers'),
  maxHeaders: count(100, 1, 'header fields in a head (431)'),
  maxUriBytes: count(8 * 1024, 1, 'request target bytes (414)', 'large_client_header_buffers'),
  maxEarlyDataBytes: count(64 * 1024, 1, 'bytes a client may send behind an upgrade head before the 101 (over it: closed)'),
  maxConnections: count(0, -1, 'client connections open at once, tunnels included; 0 = derived from the fd limit (RLIMIT_NOFILE), -1 = no limit', 'worker_connections'),
  maxParsers: count(0, 0, 'heads parsed at once per direction (503 past it); 0 = derived from a 1 GiB parser heap'),
  maxRetired: count(512, 0, 'finished upstream connections waiting for their backend to close; past it the oldest is closed'),
} satisfies Rows;

/** Headers the proxy writes itself: a configuration may not set them (nor remove the framing ones). */
const MANAGED_SET = ['host', 'connection', 'upgrade', 'content-length', 'transfer-encoding'];
const MANAGED_REMOVE = ['host', 'content-length', 'transfer-encoding'];

const headerName = (managed: string[]): Check<string> => ({
  parse(v, field, is) {
    if (typeof v !== 'string' || !isToken(v)) is.error(field, 'invalid header name');
    else if (managed.includes(v.toLowerCase())) is.error(field, 'this header is managed by the proxy');
    else return v;
    return undefined;
  },
  schema: { type: 'string', pattern: "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$" },
});

const setHeaders: Check<Map<string, string>> = {
  parse(v, field, is) {
    const values = recordOf(str(isSafeValue, 'a string without CR, LF or NUL')).parse(v, field, is);
    if (values === undefined) return undefined;
    let ok = true;
    for (const name of values.keys()) ok = headerName(MANAGED_SET).parse(name, `${field}.${name}`, is) !== undefined && ok;
    return ok ? values : undefined;
  },
  schema: { type: 'object', additionalProperties: { type: 'string' } },
};


export const FORWARD_ROWS = {
  host: {
    check: nullable(str((v) => v === '$host' || v === '$http_host' || isValidHost(v), '"$host", "$http_host" or a host[:port]')), default: null,
    doc: 'Host sent upstream: "$host" (the name, lower-cased, without port), "$http_host" (as the client sent it) or a fixed value; null (default) = "$http_host"',
    nginx: 'proxy_set_header Host', flag: { name: '--host-header', arg: 'VALUE' },
  },
  xForwarded: { check: bool, default: true, doc: 'append X-Forwarded-For, set X-Forwarded-Proto / -Host' },
  xRealIp: { check: bool, default: false, doc: 'set X-Real-IP to the client address', nginx: 'proxy_set_header X-Real-IP $remote_addr' },
  setHeaders: { check: setHeaders, default: new Map<string, string>(), doc: "headers set on every forwarded request, replacing the client's", nginx: 'proxy_set_header' },
  removeHeaders: { check: arrayOf(headerName(MANAGED_REMOVE)), default: [] as string[], doc: 'header names removed from every forwarded request', nginx: 'proxy_set_header NAME ""' },
  proto: { check: oneOf('http', 'https'), default: 'http', doc: 'X-Forwarded-Proto value ("https" behind a TLS terminator)' },
} satisfies Rows;

const address: Check<BackendAddress> = {
  parse(v, field, is) {
    const a = typeof v === 'string' ? parseAddress(v) : null;
    if (a !== null) return a;
    is.error(field, typeof v === 'string' ? `invalid address "${v}" (expected host:port, [v6]:port or unix:/path)` : 'must be "host:port", "[v6]:port", "unix:/path" or {address, weight}');
    return undefined;
  },
  schema: { type: 'string', description: 'host:port, [v6]:port or unix:/path' },
};

const SERVER_ROWS = {
  address: { check: address, default: 'required', doc: 'host:port, [v6]:port or unix:/path' },
  weight: { check: int(1), default: 1, doc: 'relative share of connections', nginx: 'server ... weight=' },
  backup: { check: bool, doc: 'used only when every primary is down or full', nginx: 'server ... backup' },
  down: { check: bool, doc: 'never picked', nginx: 'server ... down' },
  maxConns: { check: int(0), doc: 'open tunnels + exchanges at most (all full: 503); 0 = no limit', nginx: 'server ... max_conns=' },
  maxFails: { check: int(0), doc: "this server's max_fails", nginx: 'server ... max_fails=' },
  failTimeoutMs: { check: int(0), doc: "this server's fail_timeout", nginx: 'server ... fail_timeout=' },
  slowStartMs: { check: int(0), doc: 'weight ramps up over this long after the server comes back', nginx: 'server ... slow_start=' },
  resolve: { check: bool, doc: 'resolve the host name now and every resolveIntervalMs; each address a backend', nginx: 'server ... resolve' },
} satisfies Rows;

const server: Check<BackendOptions> = either(
  { parse: (v, f, is) => { const a = address.parse(v, f, is); return a && { address: a, weight: 1 }; }, schema: address.schema },
  (v) => typeof v === 'string',
  object(SERVER_ROWS) as Check<BackendOptions>,
);

/** A validator of the edge modules (src/tls, src/proxy-protocol, src/limits), which throw ConfigError, as a Check. */
function thrown<T>(resolve: (v: unknown, field: string) => T, schema: JsonSchema): Check<T> {
  return {
    parse(v, field, is) {
      try {
        return resolve(v, field);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        is.error(err.field, err.message.startsWith(`${err.field}: `) ? err.message.slice(err.field.length + 2) : err.message);
        return undefined;
      }
    },
    schema,
  };
}

const NEXT_UPSTREAM_ROWS = {
  on: { check: arrayOf(oneOf(...RETRY_CONDITIONS)), default: ['error', 'timeout'] as RetryCondition[], doc: 'failures that move on to the next backend', nginx: 'proxy_next_upstream' },
  tries: { check: int(0), default: 0, doc: 'tries at most, the first included; 0 = one per backend', nginx: 'proxy_next_upstream_tries' },
  timeoutMs: { check: int(0), default: 0, doc: 'no new try this long after the first; 0 = no limit', nginx: 'proxy_next_upstream_timeout' },
} satisfies Rows;

const KEEPALIVE_ROWS = {
  idle: { check: int(1), default: 'required', doc: 'idle connections kept per backend', nginx: 'keepalive' },
  timeoutMs: { check: int(1), default: 60_000, doc: 'how long an idle connection is kept', nginx: 'keepalive_timeout' },
  requests: { check: int(1), default: 1000, doc: 'requests one connection serves at most', nginx: 'keepalive_requests' },
} satisfies Rows;

export const UPSTREAM_ROWS = {
  servers: { check: arrayOf(server, true), default: 'required', doc: 'the backends', nginx: 'server' },
  maxFails: { check: int(0), default: 1, doc: 'failures before a backend is skipped; 0 never skips', nginx: 'max_fails=' },
  failTimeoutMs: { check: int(0), default: 10_000, doc: 'how long a failed backend is skipped', nginx: 'fail_timeout=' },
  tls: {
    check: thrown(resolveUpstreamTls, { anyOf: [{ type: 'boolean' }, { type: 'object' }] }), default: null as ResolvedUpstreamTls | null,
    doc: 'TLS to the backends: verify, ca, serverName, cert, key, sessionReuse, protocols, ciphers',
    nginx: 'proxy_pass https://, proxy_ssl_verify, proxy_ssl_trusted_certificate, proxy_ssl_server_name, proxy_ssl_name, proxy_ssl_certificate(_key), proxy_ssl_session_reuse',
  },
  sendProxy: { check: oneOf('v1', 'v2'), doc: 'send a PROXY protocol header first (HAProxy send-proxy / send-proxy-v2)' },
  nextUpstream: { check: object(NEXT_UPSTREAM_ROWS), doc: 'when a failed try moves on: on (error, timeout, http_502/503/504, non_idempotent), tries, timeoutMs', nginx: 'proxy_next_upstream, proxy_next_upstream_tries, proxy_next_upstream_timeout' },
  keepalive: { check: object(KEEPALIVE_ROWS), doc: 'keep-alive pool for plain requests: idle, timeoutMs, requests', nginx: 'keepalive, keepalive_timeout, keepalive_requests' },
  balance: {
    check: thrown(resolveBalance, { anyOf: [{ type: 'string' }, { type: 'object' }] }), default: DEFAULT_BALANCE,
    doc: 'round_robin, least_conn, ip_hash, random, {method: "hash", key, consistent}, {method: "random", two}',
    nginx: 'least_conn, ip_hash, hash KEY [consistent], random [two [least_conn]]',
  },
  sticky: {
    check: thrown(resolveSticky, { type: 'object' }), default: null as StickyConfig | null,
    doc: 'insert a cookie naming the backend: cookie, expiresMs, domain, path, httpOnly, secure, sameSite, nocache, secret',
    nginx: 'sticky cookie NAME expires= domain= path= httponly secure samesite=',
  },
  healthCheck: {
    check: thrown(resolveHealth, { type: 'object' }), default: null as ReturnType<typeof resolveHealth> | null,
    doc: 'active checks: type tcp|http|websocket, intervalMs, timeoutMs, rise, fall, jitterMs, method, path, host, status [min, max], body',
    nginx: 'health_check interval= fails= passes= uri=; match',
  },
  resolveIntervalMs: { check: int(1000), default: 30_000, doc: 'how often `resolve` servers are resolved again', nginx: 'resolver valid=' },
} satisfies Rows;

export { ROUTE_ROWS };

/** A row table with its defaults dropped: a route's own settings, absent when not given (then inherited). */
function inherited<R extends Rows>(rows: R, keys: ReadonlyArray<keyof R>): { [K in keyof R]: Omit<R[K], 'default'> } {
  return Object.fromEntries(keys.map((k) => [k, { check: rows[k]!.check, doc: rows[k]!.doc, ...(rows[k]!.nginx !== undefined ? { nginx: rows[k]!.nginx } : {}) }])) as { [K in keyof R]: Omit<R[K], 'default'> };
}

const nestedRoutes: Check<ParsedRoute[]> = {
  parse: (v, f, is) => arrayOf(ROUTE).parse(v, f, is),
  schema: { type: 'array', items: { $ref: '#/properties/routes/items' } },
};

export const ROUTE_SETTING_ROWS = {
  timeouts: { check: object(inherited(TIMEOUT_ROWS, ['connectMs', 'responseMs', 'sendMs', 'idleMs'])), doc: "this route's connectMs, responseMs, sendMs, idleMs (each not given: the enclosing route's, else the global)", nginx: 'proxy_connect_timeout, proxy_read_timeout, proxy_send_timeout in a location' },
  forwarding: { check: object(inherited(FORWARD_ROWS, ['host', 'xForwarded', 'xRealIp', 'setHeaders', 'removeHeaders'])), doc: "this route's forwarding fields (each not given: the enclosing route's, else the global; setHeaders and removeHeaders as a whole)", nginx: 'proxy_set_header in a location' },
  nextUpstream: { check: object(inherited(NEXT_UPSTREAM_ROWS, ['on', 'tries', 'timeoutMs'])), doc: "this route's nextUpstream fields, over the enclosing routes' and the upstream's", nginx: 'proxy_next_upstream* in a location' },
  routes: { check: nestedRoutes, doc: 'nested routes, searched when this one matched (prefix paths start with this path)', nginx: 'location inside location' },
} satisfies Rows;

const ROUTE: Check<ParsedRoute> = object({ ...ROUTE_ROWS, ...ROUTE_SETTING_ROWS }) as unknown as Check<ParsedRoute>;

const section = <R extends Rows>(rows: R, doc: string): { check: Check<Parsed<R>>; default: Parsed<R>; doc: string } => ({
  check: object(rows), default: defaultsOf(rows) as Parsed<R>, doc,
});

export const OPTION_ROWS = {
  upstreams: { check: recordOf(object(UPSTREAM_ROWS)), default: new Map(), doc: 'upstream groups by name (at least one unless every route answers with return)', nginx: 'upstream' },
  routes: { check: arrayOf(ROUTE, true), doc: 'routes; omitted = every path to the first upstream', nginx: 'location' },
  forwarding: section(FORWARD_ROWS, 'what the forwarded request head carries'),
  maps: { check: MAPS, default: new Map<string, MapConfig>(), doc: 'variables from other variables: NAME: { source, entries: [[key, value]...] (exact, then ~regex / ~*regex in order), default }', nginx: 'map' },
  timeouts: section(TIMEOUT_ROWS, 'timeouts in milliseconds'),
  limits: section(LIMIT_ROWS, 'size and count limits'),
  tunnelProtocols: {
    check: arrayOf(str((p) => isToken(p.replace('/', '')), 'an Upgrade token')), default: [] as string[],
    doc: 'Upgrade tokens other than websocket that may be tunnelled',
  },
  relay: { check: oneOf('auto', 'js', 'splice'), default: 'auto', doc: 'tunnel relay', flag: { name: '--relay', arg: 'auto|js|splice' } },
  listen: { check: arrayOf(str(() => true, 'HOST:PORT')), doc: 'listen addresses (config files and the CLI only)', nginx: 'listen' },
  realIpFrom: {
    check: thrown(resolveRealIpFrom, { type: 'array', items: { type: 'string' } }), default: new TrustList([]),
    doc: 'addresses and CIDR blocks allowed to send a PROXY header', nginx: 'set_real_ip_from',
  },
  clientLimits: {
    check: thrown(resolveClientLimits, { type: 'object' }), default: null as ResolvedClientLimits | null,
    doc: 'per client: maxConnections, connectionRate, requestRate {rate, burst, key}, status 503|429, maxClients',
    nginx: 'limit_conn, limit_req, limit_conn_status, limit_req_status',
  },
} satisfies Rows;

export const OPTIONS = object(OPTION_ROWS);

export const DEFAULT_TIMEOUTS = defaultsOf(TIMEOUT_ROWS) as Readonly<Required<TimeoutConfig>>;
export const DEFAULT_LIMITS = defaultsOf(LIMIT_ROWS) as Readonly<Required<LimitConfig>>;
const FORWARD_DEFAULTS = defaultsOf(FORWARD_ROWS) as Parsed<typeof FORWARD_ROWS>;

/** The fields of a section that passed their checks. */
function defined<T extends object>(o: T | undefined): Partial<T> {
  return o === undefined ? {} : (Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>);
}

// ---- resolution --------------------------------------------------------------------------------

/** Apply defaults and validate. Throws ConfigErrors (a ConfigError) listing every problem. */
export function resolveOptions(input: unknown, where?: SourceMap): ResolvedOptions {
  const is = new Issues(where);
  if (!isObject(input)) {
    is.error('', 'options must be an object');
    is.throwIfErrors();
  }
  const o = OPTIONS.parse(input, '', is)!;
  const maps = compileMaps(o.maps ?? new Map(), is);
  // A field refused above is reported already; its default stands in so that routes are still checked.
  const fw = { ...FORWARD_DEFAULTS, ...defined(o.forwarding) };
  const forward = forwardPolicy(fw, maps, 'forwarding', is);
  const timeouts = { ...DEFAULT_TIMEOUTS, ...defined(o.timeouts) } as Required<TimeoutConfig>;
  const routes = o.routes === undefined || o.upstreams === undefined ? null : resolveRoutes(o.routes, { forwarding: fw, forward, timeouts, maps, upstreams: o.upstreams }, is);
  if (o.upstreams?.size === 0 && (routes === null || routes.some((r) => r.return === null))) is.error('upstreams', 'must name at least one entry');
  is.throwIfErrors();
  for (const [name, u] of o.upstreams) serverProblems(`upstreams.${name}`, u.servers, u.balance, (f, m) => is.error(f, m));
  is.throwIfErrors();
  const upstreams = new Map<string, ResolvedUpstream>();
  for (const [name, u] of o.upstreams) {
    upstreams.set(name, {
      backends: u.servers, maxFails: u.maxFails, failTimeoutMs: u.failTimeoutMs, tls: u.tls, sendProxy: (u.sendProxy as 'v1' | 'v2' | undefined) ?? null,
      retry: retryPolicy(u.nextUpstream), keepalive: u.keepalive ?? null,
      balance: u.balance, sticky: u.sticky, healthCheck: u.healthCheck,
      resolve: u.servers.filter((b) => b.resolve === true), resolveIntervalMs: u.resolveIntervalMs,
    });
  }
  const first = upstreams.keys().next().value as string;
  is.throwIfErrors();
  return {
    upstreams,
    routes: routes ?? [{ path: '/', match: 'prefix', exact: false, upstream: first, hosts: null, return: null, access: null, uri: null, forward, timeouts, retry: null, routes: [], slashRedirect: false }],
    forward,
    proto: fw.proto as 'http' | 'https',
    timeouts,
    limits: { ...o.limits, maxParsers: o.limits.maxParsers === 0 ? defaultMaxParsers(o.limits.maxHeadBytes) : o.limits.maxParsers, maxConnections: connectionLimit(o.limits.maxConnections, o.limits.maxRetired, upstreams.values()) },
    tunnelProtocols: new Set(o.tunnelProtocols.map((p) => p.toLowerCase())),
    relay: o.relay as 'auto' | 'js' | 'splice',
    realIpFrom: o.realIpFrom,
    clientLimits: o.clientLimits,
  };
}
