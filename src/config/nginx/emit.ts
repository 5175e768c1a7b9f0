/**
 * The collected scopes as the JSON model: upstreams, routes (one per
 * location; the default server's without hosts), listen entries with their
 * TLS and PROXY settings, forwarding, timeouts and the service keys. What the
 * model cannot say yet is refused with the directive's file:line.
 */
import { merged, nearest, type Build, type LocationScope, type ServerScope, type Settings } from './build.js';
import { forwarding } from './forward.js';
import { listenEntries } from './listeners.js';
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

/** nginx's URI replacement is identity when the URI part equals the location's prefix. */
function checkUri(loc: LocationScope, b: Build): void {
  const p = loc.pass;
  if (p === null || p.uri === null || p.uri === loc.path) return;
  b.notYet(p.at, `"proxy_pass" with a URI part ("${p.uri}" replacing "${loc.path}")`);
}

const MATCH = { prefix: 'prefix', exact: 'exact', 'prefix-stop': 'prefix-stop', regex: 'regex', 'regex-i': 'regex-caseless' } as const;

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

function route(loc: LocationScope, srv: ServerScope, isDefault: boolean, b: Build): Record<string, unknown> | null {
  const st = loc.settings;
  if (loc.pass === null && st.ret === null) return b.error(loc.at, `location "${loc.path}" has no "proxy_pass" or "return" (wsplice serves no files)`), null;
  let upstream: string | null = null;
  if (loc.pass !== null && st.ret === null) {
    checkUri(loc, b);
    upstream = upstreamFor(loc, b);
    if (upstream === null) return null;
  }
  return {
    path: loc.path, ...(loc.match !== 'prefix' ? { match: MATCH[loc.match] } : {}), ...(upstream !== null ? { upstream } : {}),
    ...hosts(srv, isDefault), ...answers(st),
  };
}

/** The routes of one server block: its own `return` answers every path before any location, as in nginx. */
function serverRoutes(srv: ServerScope, isDefault: boolean, b: Build, add: (r: Record<string, unknown>, at: LocationScope['at'], st: Settings) => void): void {
  if (srv.settings.ret !== null) {
    add({ path: '/', ...hosts(srv, isDefault), ...answers(srv.settings) }, srv.settings.ret.at, srv.settings);
    return;
  }
  for (const loc of srv.locations) {
    const r = route(loc, srv, isDefault, b);
    if (r !== null) add(r, loc.at, loc.settings);
  }
}

/** Settings every location shares become the global options; a location that differs is refused (per-route options come later). */
function shared<T>(levels: Settings[], get: (s: Settings) => T, what: string, b: Build): T {
  const first = get(levels[0]!);
  const sig = JSON.stringify(first, (k, v: unknown) => (k === 'at' ? undefined : v));
  for (const s of levels.slice(1)) {
    const v = get(s);
    if (JSON.stringify(v, (k, x: unknown) => (k === 'at' ? undefined : x)) !== sig) {
      const at = (s.headers?.[0]?.at ?? Object.values(s.timeouts)[0]?.at ?? b.servers[0]?.at)!;
      b.notYet(at, `${what} that differ between locations`);
      break;
    }
  }
  return first;
}

function routes(b: Build, out: Record<string, unknown>): Settings[] {
  const levels: Settings[] = [];
  const list: Record<string, unknown>[] = [];
  const defaultSrv = b.servers.find((s) => s.listen.some((l) => l.defaultServer)) ?? b.servers[0];
  const unnamed = b.servers.filter((s) => s.names.length === 0);
  for (const s of unnamed.slice(1)) if (s !== defaultSrv) b.notYet(s.at, 'a second server{} without server_name');
  for (const srv of b.servers) {
    serverRoutes(srv, srv === defaultSrv, b, (r, at, st) => {
      b.where.set(`routes[${list.length}]`, { file: at.file, line: at.line });
      list.push(r);
      if (r.upstream !== undefined) levels.push(st);
    });
  }
  if (list.length > 0) out.routes = list;
  else if (b.servers.length > 0) b.error(b.servers[0]!.at, 'no location with "proxy_pass" or "return": nothing to serve');
  return levels;
}

function timeouts(levels: Settings[], b: Build): void {
  const t = shared(levels, (s) => merged(s, 'timeouts'), '"proxy_*_timeout" values', b);
  for (const [k, v] of Object.entries(t)) {
    if (k === 'sendMs') b.notYet(v.at, '"proxy_send_timeout"');
    else b.set(`timeouts.${k}`, v.ms, v.at);
  }
}

export function emit(b: Build): Record<string, unknown> {
  if (b.servers.length === 0) b.is.add({ field: '', severity: 'error', message: 'no "server" block: nothing listens', file: b.file, line: 1 });
  const out: Record<string, unknown> = {};
  const levels = routes(b, out);
  if (levels.length === 0 && b.servers.length > 0) levels.push(b.servers[0]!.settings);
  if (levels.length > 0) {
    timeouts(levels, b);
    out.forwarding = forwarding(shared(levels, (s) => nearest(s, 'headers') ?? [], '"proxy_set_header" lines', b), b);
  }
  out.upstreams = upstreamsOf(b);
  maps(b, out);
  out.listen = listenEntries(b);
  for (const [k, v] of Object.entries(b.service)) {
    out[k] = v.value;
    b.where.set(k, { file: v.at.file, line: v.at.line });
  }
  return { ...b.opts, ...out, ...(b.opts.timeouts !== undefined ? { timeouts: b.opts.timeouts } : {}) };
}
