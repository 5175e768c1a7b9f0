/**
 * The collected scopes as the JSON model: upstreams, routes (one per
 * location; the default server's without hosts), listen entries with their
 * TLS and PROXY settings, forwarding, timeouts and the service keys. The http
 * level's proxy settings are the globals; a location's that differ (set in its
 * server, itself or an enclosing location) are its route's own. What the
 * model cannot say yet is refused with the directive's file:line.
 */
import { merged, nearest, type Build, type LocationScope, type ServerScope, type Settings } from './build.js';
import { forwarding, type HeaderLine } from './forward.js';
import { listenEntries } from './listeners.js';
import type { Directive } from './parse.js';
import { upstreamFor, upstreamsOf } from './upstreams.js';

/** Every map, as `maps` (the upgrade map too: it may be used beyond Connection). */
function maps(b: Build, out: Record<string, unknown>): void {
  if (b.maps.length === 0) return;
  out.maps = Object.fromEntries(b.maps.map((m) => {
    b.where.set(`maps.${m.variable}`, { file: m.at.file, line: m.at.line });
    const def = m.entries.find((e) => e.key === 'default');
    return [m.variable, { source: `$${m.source}`, entries: m.entries.filter((e) => e !== def).map((e) => [e.key, e.value]), ...(def !== undefined ? { default: def.value } : {}) }];
  }));
}

const MATCH = { prefix: 'prefix', exact: 'exact', 'prefix-stop': 'prefix-stop', regex: 'regex', 'regex-i': 'regex-caseless', named: 'prefix' } as const;

/** server_name list as route hosts; the default server's routes take none (they answer any other name too). */
function hosts(srv: ServerScope, isDefault: boolean): Record<string, unknown> {
  return isDefault || srv.names.length === 0 ? {} : { hosts: srv.names.map((n) => n.name) };
}

/** allow/deny and return of a level as route fields (return is not inherited, as in nginx's rewrite phase). */
function answers(st: Settings): Record<string, unknown> {
  const access = nearest(st, 'access');
  const ret = st.ret;
  return {
    ...(access !== null ? { access: access.map((a) => (a.allow ? { allow: a.from } : { deny: a.from })) } : {}),
    ...(ret !== null ? { return: { status: ret.status, ...(ret.text !== undefined ? { text: ret.text } : {}) } } : {}),
  };
}

/** What the emitter keeps while it walks: forwarding per list of lines (each line's problems reported once), notes made. */
interface Emitting {
  b: Build;
  forwardings: Map<unknown, Record<string, unknown>>;
  reported: Set<Directive>;
}

/** A location's own list of proxy_set_header lines as a route's whole forwarding: nginx sends none of the enclosing level's then. */
function ownForwarding(lines: HeaderLine[], field: string, e: Emitting): Record<string, unknown> {
  let f = e.forwardings.get(lines);
  if (f === undefined) {
    const x = forwarding(lines, e.b, `${field}.forwarding`);
    f = { host: x.host ?? null, xForwarded: x.xForwarded, xRealIp: x.xRealIp ?? false, setHeaders: x.setHeaders ?? {}, removeHeaders: x.removeHeaders ?? [] };
    e.forwardings.set(lines, f);
  }
  return f;
}

/** The values of a key-by-key setting written below http{} (the route's own; the JSON model inherits the rest from the globals). */
function below<K extends 'timeouts' | 'retry'>(st: Settings, k: K, b: Build): Array<[string, Settings[K][string]]> {
  const top = merged(b.http, k) as Record<string, { at: Directive }>;
  return Object.entries(merged(st, k)).filter(([key, v]) => top[key]?.at !== v.at) as Array<[string, Settings[K][string]]>;
}

/** A proxying location's timeouts, forwarding and nextUpstream where they differ from the http level's. */
function routeSettings(st: Settings, field: string, e: Emitting): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const timeouts = below(st, 'timeouts', e.b);
  if (timeouts.length > 0) out.timeouts = Object.fromEntries(timeouts.map(([k, v]) => [k, v.ms]));
  const lines = nearest(st, 'headers');
  if (lines !== e.b.http.headers) out.forwarding = ownForwarding(lines ?? [], field, e);
  const retry = below(st, 'retry', e.b);
  if (retry.length > 0) out.nextUpstream = Object.fromEntries(retry.map(([k, v]) => [k, v.value]));
  return out;
}

/** nginx answers `/x` with a 301 to `/x/` for a prefix or exact `/x/` location with proxy_pass (a `return` in it too). */
function slashes(loc: LocationScope): boolean {
  return loc.pass !== null && loc.path.endsWith('/') && loc.path !== '/' && (loc.match === 'prefix' || loc.match === 'exact' || loc.match === 'prefix-stop');
}

/** One location as a route, its nested locations as its routes; null after reporting. */
function route(loc: LocationScope, srv: ServerScope, isDefault: boolean, field: string, e: Emitting): Record<string, unknown> | null {
  const b = e.b;
  const st = loc.settings;
  b.where.set(field, { file: loc.at.file, line: loc.at.line });
  if (loc.pass === null && st.ret === null) return b.error(loc.at, `location "${loc.path}" has no "proxy_pass" or "return" (wsplice serves no files)`), null;
  let proxy: Record<string, unknown> = {};
  if (loc.pass !== null && st.ret === null) {
    const upstream = upstreamFor(loc, b);
    if (upstream === null) return null;
    proxy = { upstream, ...(loc.pass.uri !== null ? { uri: loc.pass.uri } : {}), ...routeSettings(st, field, e) };
  }
  const nested: Record<string, unknown>[] = [];
  for (const c of loc.children) {
    const r = route(c, srv, isDefault, `${field}.routes[${nested.length}]`, e);
    if (r !== null) nested.push(r);
  }
  return {
    path: loc.path, ...(loc.match !== 'prefix' ? { match: MATCH[loc.match] } : {}), ...proxy, ...(slashes(loc) ? { slashRedirect: true } : {}),
    ...(loc.parent === null ? hosts(srv, isDefault) : {}), ...answers(st), ...(nested.length > 0 ? { routes: nested } : {}),
  };
}

/** The routes of one server block: its own `return` answers every path before any location, as in nginx. */
function serverRoutes(srv: ServerScope, isDefault: boolean, e: Emitting, list: Record<string, unknown>[]): void {
  if (srv.settings.ret !== null) {
    e.b.where.set(`routes[${list.length}]`, { file: srv.settings.ret.at.file, line: srv.settings.ret.at.line });
    list.push({ path: '/', ...hosts(srv, isDefault), ...answers(srv.settings) });
    return;
  }
  for (const loc of srv.locations) {
    const r = route(loc, srv, isDefault, `routes[${list.length}]`, e);
    if (r !== null) list.push(r);
  }
}

function routes(b: Build, out: Record<string, unknown>): void {
  const list: Record<string, unknown>[] = [];
  const e: Emitting = { b, forwardings: new Map(), reported: new Set() };
  const defaultSrv = b.servers.find((s) => s.listen.some((l) => l.defaultServer)) ?? b.servers[0];
  const unnamed = b.servers.filter((s) => s.names.length === 0);
  for (const s of unnamed.slice(1)) if (s !== defaultSrv) b.notYet(s.at, 'a second server{} without server_name');
  for (const srv of b.servers) serverRoutes(srv, srv === defaultSrv, e, list);
  if (list.length > 0) out.routes = list;
  else if (b.servers.length > 0) b.error(b.servers[0]!.at, 'no location with "proxy_pass" or "return": nothing to serve');
  // The http level's settings are the globals every route inherits.
  for (const [k, v] of Object.entries(merged(b.http, 'timeouts'))) b.set(`timeouts.${k}`, v.ms, v.at);
  out.forwarding = forwarding(b.http.headers ?? [], b, 'forwarding');
}

export function emit(b: Build): Record<string, unknown> {
  if (b.servers.length === 0) b.is.add({ field: '', severity: 'error', message: 'no "server" block: nothing listens', file: b.file, line: 1 });
  const out: Record<string, unknown> = {};
  routes(b, out);
  out.upstreams = upstreamsOf(b);
  maps(b, out);
  out.listen = listenEntries(b);
  for (const [k, v] of Object.entries(b.service)) {
    out[k] = v.value;
    b.where.set(k, { file: v.at.file, line: v.at.line });
  }
  return { ...b.opts, ...out, ...(b.opts.timeouts !== undefined ? { timeouts: b.opts.timeouts } : {}) };
}
