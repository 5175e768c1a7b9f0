/**
 * Handlers of the http-level and upstream directives (map, upstream and its
 * server lines, balancing, logs, workers, limits, access to the real client
 * address): each writes its nginx meaning into the build.
 */
import type { Build, MapScope, Scope, UpstreamScope } from './build.js';
import type { Handler } from './directives.js';
import type { Directive } from './parse.js';
import { parseSize, parseTime } from './values.js';

const up = (s: Scope): UpstreamScope => (s as { upstream: UpstreamScope }).upstream;

function count(d: Directive, b: Build, i = 0): number | null {
  const v = d.args[i]!;
  if (/^\d+$/.test(v)) return Number(v);
  b.error(d, `invalid value "${v}" in "${d.name}" directive`);
  return null;
}

export function upstreamBlock(d: Directive, _s: Scope, b: Build): Scope | void {
  const name = d.args[0]!;
  if (b.upstreams.has(name)) return b.error(d, `duplicate upstream "${name}"`);
  const u: UpstreamScope = { name, out: {}, servers: [], at: d };
  b.upstreams.set(name, u);
  return { kind: 'upstream', upstream: u };
}

/** `server ADDR [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N] [backup] [down]`. */
export function upstreamServer(d: Directive, s: Scope, b: Build): void {
  const params: Record<string, unknown> = {};
  for (const p of d.args.slice(1)) {
    const eq = p.indexOf('=');
    const [k, v] = eq > 0 ? [p.slice(0, eq), p.slice(eq + 1)] : [p, ''];
    const n = /^\d+$/.test(v) ? Number(v) : NaN;
    if (k === 'weight' && n >= 1) params.weight = n;
    else if (k === 'max_fails' && n >= 0) params.maxFails = n;
    else if (k === 'fail_timeout' && parseTime(v) !== null) params.failTimeoutMs = parseTime(v);
    else if (k === 'max_conns' && n >= 0) params.maxConns = n;
    else if (k === 'slow_start' && parseTime(v) !== null) params.slowStartMs = parseTime(v);
    else if ((k === 'backup' || k === 'down' || k === 'resolve') && eq < 0) params[k] = true;
    else b.error(d, `invalid parameter "${p}"`);
  }
  up(s).servers.push({ address: d.args[0]!, params, at: d });
}

/** least_conn, ip_hash, hash, random: the balancing method of the group. */
export function balance(d: Directive, s: Scope, b: Build): void {
  const u = up(s);
  // nginx warns and takes the later one.
  if (u.out.balance !== undefined) b.warn(d, 'load balancing method redefined');
  let v: unknown = d.name;
  if (d.name === 'hash') {
    if (d.args[1] !== undefined && d.args[1] !== 'consistent') return b.error(d, `invalid parameter "${d.args[1]}"`);
    v = { method: 'hash', key: d.args[0]!, ...(d.args[1] !== undefined ? { consistent: true } : {}) };
  } else if (d.name === 'random' && d.args.length > 0) {
    if (d.args[0] !== 'two' || (d.args[1] !== undefined && d.args[1] !== 'least_conn')) return b.error(d, `invalid parameter "${d.args.join(' ')}"`);
    v = { method: 'random', two: true, ...(d.args[1] !== undefined ? { leastConn: true } : {}) };
  }
  u.out.balance = v;
  u.out.balanceAt = d;
}

/** keepalive N / keepalive_requests N in an upstream: the group's keep-alive pool. */
export function keepalive(d: Directive, s: Scope, b: Build): void {
  const n = count(d, b);
  if (n !== null) up(s).out[d.name === 'keepalive' ? 'idle' : 'requests'] = { value: n, at: d };
}

/** `sticky cookie NAME [expires=T] [domain=D] [path=P] [httponly] [secure] [samesite=X]`. */
export function sticky(d: Directive, s: Scope, b: Build): void {
  if (d.args[0] !== 'cookie' || d.args[1] === undefined) return b.error(d, 'expected "sticky cookie NAME [expires=] [domain=] [path=] [httponly] [secure] [samesite=]"');
  const o: Record<string, unknown> = { cookie: d.args[1] };
  for (const p of d.args.slice(2)) {
    const eq = p.indexOf('=');
    const [k, v] = eq > 0 ? [p.slice(0, eq), p.slice(eq + 1)] : [p, ''];
    if (k === 'expires' && (v === 'max' || parseTime(v) !== null)) o.expiresMs = v === 'max' ? 315_360_000_000 : parseTime(v);
    else if ((k === 'domain' || k === 'path') && v !== '') o[k] = v;
    else if (k === 'httponly' && eq < 0) o.httpOnly = true;
    else if (k === 'secure' && eq < 0) o.secure = true;
    else if (k === 'samesite' && ['strict', 'lax', 'none'].includes(v.toLowerCase())) o.sameSite = v.toLowerCase();
    else b.error(d, `invalid parameter "${p}"`);
  }
  up(s).out.sticky = { value: o, at: d };
}

/** `map $source $variable { default V; KEY V; ~REGEX V; }`: entries read here, not as directives. */
export function mapBlock(d: Directive, _s: Scope, b: Build): void {
  const [source, variable] = d.args as [string, string];
  if (!source.startsWith('$')) return b.error(d, `invalid variable name "${source}"`);
  if (!variable.startsWith('$')) return b.error(d, `invalid variable name "${variable}"`);
  if (b.maps.some((m) => m.variable === variable.slice(1))) return b.error(d, `duplicate map variable "${variable}"`);
  const m: MapScope = { source: source.slice(1), variable: variable.slice(1), entries: [], at: d };
  for (const e of d.block ?? []) {
    if (e.block !== null || e.args.length !== 1) {
      b.error(e, 'invalid number of the map parameters');
      continue;
    }
    if (m.entries.some((x) => x.key === e.name)) b.warn(e, `duplicate value "${e.name}", value: "${e.args[0]!}", old value: "${m.entries.find((x) => x.key === e.name)!.value}"`);
    else m.entries.push({ key: e.name, value: e.args[0]!, at: e });
  }
  b.maps.push(m);
}

const NGINX_LEVELS: Record<string, string> = { debug: 'debug', info: 'info', notice: 'info', warn: 'warn', error: 'error', crit: 'fatal', alert: 'fatal', emerg: 'fatal' };

/** The one value of a service key; a different one somewhere else is refused (one log per process in wsplice). */
function service(b: Build, key: string, value: string, d: Directive): void {
  const had = b.service[key];
  if (had !== undefined && had.value !== value) return b.notYet(d, `a second "${d.name}" with another value (wsplice has one ${key} per process)`);
  b.service[key] = { value, at: d };
}

export function errorLog(d: Directive, _s: Scope, b: Build): void {
  const target = d.args[0] === '/dev/stderr' ? 'stderr' : d.args[0] === '/dev/stdout' ? 'stdout' : d.args[0]!;
  service(b, 'errorLog', target, d);
  if (d.args[1] === undefined) return;
  const level = NGINX_LEVELS[d.args[1]];
  if (level === undefined) return b.error(d, `invalid log level "${d.args[1]}"`);
  service(b, 'logLevel', level, d);
}

export function accessLog(d: Directive, _s: Scope, b: Build): void {
  const target = d.args[0] === '/dev/stdout' ? 'stdout' : d.args[0] === '/dev/stderr' ? 'stderr' : d.args[0]!;
  if (d.args.length > 1 && target !== 'off') b.warn(d, `access_log format and parameters "${d.args.slice(1).join(' ')}" are ignored: wsplice writes one JSON line per request`);
  service(b, 'accessLog', target, d);
}

/** `worker_processes N|auto`: the `workers` option (--workers wins). */
export function workerProcesses(d: Directive, _s: Scope, b: Build): void {
  if (d.args[0] === 'auto') return b.set('workers', 'auto', d);
  const n = count(d, b);
  if (n !== null) b.set('workers', n, d);
}

/** `pid FILE`: the pid file (--pid-file wins); wsplice writes {"pid": N} there. */
export function pidFile(d: Directive, _s: Scope, b: Build): void {
  b.set('pid', d.args[0]!, d);
}

export function workerConnections(d: Directive, _s: Scope, b: Build): void {
  const n = count(d, b);
  if (n !== null) b.set('limits.maxConnections', n, d);
}

export function keepaliveTimeout(d: Directive, s: Scope, b: Build): void {
  const ms = parseTime(d.args[0]!);
  if (ms === null) return b.error(d, `invalid value "${d.args[0]!}" in "keepalive_timeout" directive`);
  if (s.kind === 'upstream') return void (up(s).out.timeoutMs = { value: ms, at: d });
  if (s.kind !== 'http') return b.notYet(d, '"keepalive_timeout" below http{}');
  if (d.args[1] !== undefined) b.warn(d, 'the second "keepalive_timeout" argument (a Keep-Alive header) is ignored');
  b.set('timeouts.keepAliveMs', ms, d);
}

/** nginx refuses a request line longer than one buffer (414) and a head larger than all of them. */
export function largeHeaderBuffers(d: Directive, s: Scope, b: Build): void {
  const n = count(d, b);
  const size = parseSize(d.args[1]!);
  if (n === null) return;
  if (size === null) return b.error(d, `invalid value "${d.args[1]!}" in "large_client_header_buffers" directive`);
  if (s.kind !== 'http') return b.notYet(d, '"large_client_header_buffers" below http{}');
  b.set('limits.maxUriBytes', size, d);
  b.set('limits.maxHeadBytes', Math.max(1024, n * size), d);
}

export function realIpFrom(d: Directive, s: Scope, b: Build): void {
  if (s.kind !== 'http') return b.notYet(d, '"set_real_ip_from" below http{}');
  const list = (b.opts.realIpFrom ??= []) as string[];
  list.push(d.args[0]!);
  b.where.set('realIpFrom', { file: d.file, line: d.line });
}

export function realIpHeader(d: Directive, _s: Scope, b: Build): void {
  if (d.args[0] !== 'proxy_protocol') b.notYet(d, `"real_ip_header ${d.args[0]!}" (wsplice takes the real address from the PROXY protocol only)`);
}

export const ignore: Handler = (d, _s, b) => void (b.ignored.has(d.name) || b.ignored.set(d.name, d));
