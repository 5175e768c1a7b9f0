/**
 * The collected scopes as the JSON model: upstreams, routes (one per
 * location; the default server's without hosts), listen entries with their
 * TLS and PROXY settings, forwarding, timeouts and the service keys. What the
 * model cannot say yet is refused with the directive's file:line.
 */
import { merged, nearest, type Build, type LocationScope, type ServerScope, type Settings } from './build.js';
import { forwarding, isUpgradeMap } from './forward.js';
import { listenEntries } from './listeners.js';
import { upstreamFor, upstreamsOf } from './upstreams.js';

function checkMaps(b: Build): void {
  for (const m of b.maps) if (!isUpgradeMap(m)) b.notYet(m.at, `"map $${m.source} $${m.variable}" (only the $http_upgrade -> $connection_upgrade map is read)`);
}

/** nginx's URI replacement is identity when the URI part equals the location's prefix. */
function checkUri(loc: LocationScope, b: Build): void {
  const p = loc.pass;
  if (p === null || p.uri === null || p.uri === loc.path) return;
  b.notYet(p.at, `"proxy_pass" with a URI part ("${p.uri}" replacing "${loc.path}")`);
}

function route(loc: LocationScope, srv: ServerScope, isDefault: boolean, b: Build): Record<string, unknown> | null {
  const st = loc.settings;
  if (loc.match === 'regex' || loc.match === 'regex-i') return b.notYet(loc.at, 'a regex location'), null;
  if (nearest(st, 'ret') !== null) return b.notYet(nearest(st, 'ret')!.at, '"return"'), null;
  if (nearest(st, 'access') !== null) return b.notYet(nearest(st, 'access')![0]!.at, '"allow"/"deny"'), null;
  const next = nearest(st, 'nextUpstream');
  if (next !== null && next.on.join(' ') !== 'error timeout') b.notYet(next.at, `"proxy_next_upstream ${next.on.join(' ') || 'off'}" (wsplice retries on error and timeout)`);
  if (loc.pass === null) return b.error(loc.at, `location "${loc.path}" has no "proxy_pass" (wsplice serves no files)`), null;
  checkUri(loc, b);
  const upstream = upstreamFor(loc, b);
  if (upstream === null) return null;
  const names = srv.names.filter((n) => !n.name.startsWith('~') && !n.name.includes('*'));
  for (const n of srv.names.filter((x) => !names.includes(x))) b.notYet(n.at, `the server name "${n.name}" (wildcard and regex names)`);
  return {
    path: loc.path, ...(loc.match === 'exact' ? { exact: true } : {}), upstream,
    ...(isDefault || names.length === 0 ? {} : { hosts: names.map((n) => n.name) }),
  };
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
    for (const loc of srv.locations) {
      const r = route(loc, srv, srv === defaultSrv, b);
      if (r === null) continue;
      b.where.set(`routes[${list.length}]`, { file: loc.at.file, line: loc.at.line });
      if (loc.pass !== null) b.where.set(`routes[${list.length}].upstream`, { file: loc.pass.at.file, line: loc.pass.at.line });
      list.push(r);
      levels.push(loc.settings);
    }
  }
  if (list.length > 0) out.routes = list;
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
  checkMaps(b);
  if (b.servers.length === 0) b.is.add({ field: '', severity: 'error', message: 'no "server" block: nothing listens', file: [...b.where.values()][0]?.file ?? '', line: 1 });
  const out: Record<string, unknown> = {};
  const levels = routes(b, out);
  if (levels.length === 0 && b.servers.length > 0) levels.push(b.servers[0]!.settings);
  if (levels.length > 0) {
    timeouts(levels, b);
    out.forwarding = forwarding(shared(levels, (s) => nearest(s, 'headers') ?? [], '"proxy_set_header" lines', b), b);
  }
  out.upstreams = upstreamsOf(b);
  out.listen = listenEntries(b);
  for (const [k, v] of Object.entries(b.service)) {
    out[k] = v.value;
    b.where.set(k, { file: v.at.file, line: v.at.line });
  }
  return { ...b.opts, ...out, ...(b.opts.timeouts !== undefined ? { timeouts: b.opts.timeouts } : {}) };
}
