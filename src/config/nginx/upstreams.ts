/**
 * upstream{} blocks and proxy_pass targets onto `upstreams`: a named block is
 * a group; an address (`http://127.0.0.1:3000`) is a group of one named after
 * it. TLS to the backends (`proxy_pass https://` with proxy_ssl_*) is the
 * group's `tls`. Server parameters, the balancing method and the sticky
 * cookie map one to one onto the group's JSON fields.
 */
import { merged, type Build, type LocationScope, type UpstreamScope } from './build.js';
import type { Directive } from './parse.js';

/** Each group's scheme and TLS settings, as the locations that use it say. */
const uses = new WeakMap<Build, Map<string, { scheme: string; tls: Record<string, unknown> | null; retry: Record<string, unknown>; at: Directive }>>();

function upstreamTls(loc: LocationScope): Record<string, unknown> {
  const s = merged(loc.settings, 'proxySsl');
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) if (k !== 'sendName') o[k] = v.value;
  if (s.sendName?.value === false) o.serverName = false;
  return o;
}

/** The group a location's proxy_pass names (made for a bare address), or null after reporting why not. */
export function upstreamFor(loc: LocationScope, b: Build): string | null {
  const p = loc.pass!;
  const table = uses.get(b) ?? new Map();
  uses.set(b, table);
  let name = p.target;
  if (!b.upstreams.has(name)) {
    const hasPort = /:\d+$/.test(name);
    if (!hasPort && !/^[\d.]+$|^\[/.test(name) && !name.includes('.')) {
      return b.error(p.at, `host not found in upstream "${name}"`), null;
    }
    if (!hasPort) name = `${name}:${p.scheme === 'https' ? 443 : 80}`;
  }
  const tls = p.scheme === 'https' ? upstreamTls(loc) : null;
  // The http level's proxy_next_upstream* are the group's; a location's own are its route's (emit.ts).
  const retry = Object.fromEntries(Object.entries(merged(b.http, 'retry')).map(([k, v]) => [k, v.value]));
  const had = table.get(name);
  if (had !== undefined && JSON.stringify([had.scheme, had.tls, had.retry]) !== JSON.stringify([p.scheme, tls, retry])) {
    b.notYet(p.at, `upstream "${name}" used with different schemes or proxy_ssl_* settings`);
  }
  if (had === undefined) table.set(name, { scheme: p.scheme, tls, retry, at: p.at });
  return name;
}

/** Per-server max_fails / fail_timeout: the group's when every server says the same, else each server's own. */
function groupFailures(u: UpstreamScope, o: Record<string, unknown>): Set<string> {
  const shared = new Set<string>();
  for (const k of ['maxFails', 'failTimeoutMs']) {
    const vals = new Set(u.servers.map((s) => s.params[k]));
    const v = u.servers[0]?.params[k];
    if (vals.size === 1 && v !== undefined) {
      o[k] = v;
      shared.add(k);
    }
  }
  return shared;
}

/** nginx refuses `backup` under ip_hash, hash and random (in either order here: nginx misses a method given after the server). */
function backupAllowed(u: UpstreamScope, b: Build): void {
  const bal = u.out.balance as string | { method: string } | undefined;
  const method = typeof bal === 'string' ? bal : bal?.method;
  if (method !== 'ip_hash' && method !== 'hash' && method !== 'random') return;
  for (const s of u.servers) {
    if (s.params.backup !== true) continue;
    b.error(s.at, `balancing method does not support parameter "backup" (${method} has no second tier to fall back on)`);
    delete s.params.backup;
  }
}

function group(u: UpstreamScope, b: Build): Record<string, unknown> {
  if (u.servers.length === 0) b.error(u.at, 'no servers are inside upstream');
  const o: Record<string, unknown> = {};
  backupAllowed(u, b);
  const shared = groupFailures(u, o);
  o.servers = u.servers.map((s, i) => {
    b.where.set(`upstreams.${u.name}.servers[${i}]`, { file: s.at.file, line: s.at.line });
    const own = Object.entries(s.params).filter(([k]) => !shared.has(k));
    return own.length > 0 ? { address: s.address, ...Object.fromEntries(own) } : s.address;
  });
  if (u.out.balance !== undefined) {
    o.balance = u.out.balance;
    const at = u.out.balanceAt as Directive;
    b.where.set(`upstreams.${u.name}.balance`, { file: at.file, line: at.line });
  }
  const sticky = u.out.sticky as { value: Record<string, unknown>; at: Directive } | undefined;
  if (sticky !== undefined) {
    o.sticky = sticky.value;
    b.where.set(`upstreams.${u.name}.sticky`, { file: sticky.at.file, line: sticky.at.line });
  }
  keepalivePool(u, o, b);
  return o;
}

/** keepalive N (+ keepalive_timeout, keepalive_requests) as the group's pool. */
function keepalivePool(u: UpstreamScope, o: Record<string, unknown>, b: Build): void {
  const get = (k: string): { value: unknown; at: Directive } | undefined => u.out[k] as { value: unknown; at: Directive } | undefined;
  const idle = get('idle');
  if (idle === undefined) {
    for (const k of ['timeoutMs', 'requests']) if (get(k) !== undefined) b.warn(get(k)!.at, `"${get(k)!.at.name}" has no effect without "keepalive N"`);
    return;
  }
  o.keepalive = { idle: idle.value, ...Object.fromEntries(['timeoutMs', 'requests'].filter((k) => get(k) !== undefined).map((k) => [k, get(k)!.value])) };
}

export function upstreamsOf(b: Build): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const table = uses.get(b) ?? new Map();
  for (const [name, u] of b.upstreams) {
    b.where.set(`upstreams.${name}`, { file: u.at.file, line: u.at.line });
    const g = group(u, b);
    if (u.servers.length > 0) out[name] = g;
    if (!table.has(name)) b.warn(u.at, `upstream "${name}" is not used by any proxy_pass`);
  }
  for (const [name, use] of table) {
    if (!b.upstreams.has(name)) {
      out[name] = { servers: [name] };
      b.where.set(`upstreams.${name}`, { file: use.at.file, line: use.at.line });
    }
    if (use.tls !== null) (out[name] as Record<string, unknown>).tls = use.tls;
    if (Object.keys(use.retry).length > 0 && out[name] !== undefined) (out[name] as Record<string, unknown>).nextUpstream = use.retry;
  }
  return out;
}
