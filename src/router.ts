/**
 * Routing, as nginx does it. First the virtual server, by the Host name
 * (without port, lower-cased): an exact name, then the longest `*.` wildcard,
 * then the longest `.*` wildcard, then the first `~regex` in order, else the
 * default server (the routes without `hosts`). Then the location within it:
 * an exact (`=`) match wins; else the longest prefix, which wins at once when
 * it is a `^~` one; else the first regex location, in order, that matches;
 * else that longest prefix. The query string is not part of the path.
 * Nested routes (locations inside a location) are searched the same way when
 * their parent matched: a nested exact or regex match is final; otherwise the
 * deepest prefix stands unless a regex of an enclosing level matches, each
 * level's regexes tried from the innermost out (a `^~` prefix skips only the
 * regexes of its own level).
 *
 * Each route carries its effective forwarding, timeouts and retry policy,
 * resolved at configuration load: a request only reads them.
 */
import { WspliceError } from './errors.js';
import { errorResponse, hostVariable as hostName } from './http1/serialize.js';
import type { ResolvedRoute } from './config/routes.js';
import type { ForwardPolicy } from './http1/serialize.js';
import type { TimeoutConfig } from './options.js';
import { TrustList } from './proxy-protocol/trust.js';
import type { UpstreamGroup } from './upstream/group.js';
import { DEFAULT_RETRY, type RetryPolicy } from './upstream/retry.js';

export type RouteMatch = 'prefix' | 'exact' | 'prefix-stop' | 'regex' | 'regex-caseless';
/** A resolved route; the nginx-only fields may be left out (a single prefix route, as an embedder builds one). */
type RouteConfig = Pick<ResolvedRoute, 'path' | 'exact' | 'upstream' | 'hosts' | 'forward' | 'timeouts'> & Partial<ResolvedRoute>;

/** What a location does with a request: proxy to a group, or answer itself. */
export interface Route {
  path: string;
  match: RouteMatch;
  regex: RegExp | null;
  group: UpstreamGroup | null;
  /** nginx `return CODE [TEXT|URL]`. */
  ret: { status: number; text: string | null } | null;
  /** allow/deny in order, first match wins (null: everyone). */
  access: Array<{ allow: boolean; from: TrustList | null }> | null;
  /** nginx proxy_pass URI part, replacing the first `path.length` characters of the normalised path; null: the target as sent. */
  uri: string | null;
  forward: ForwardPolicy;
  timeouts: Required<TimeoutConfig>;
  /** The policy of retries through this route (its group's unless the route sets its own). */
  retry: RetryPolicy;
  /** The routes nested in this one (null: none). */
  children: Level | null;
  /** Answer the path without its final slash with a 301 to the path with it (nginx: a `/x/` location with proxy_pass). */
  slashRedirect: boolean;
}

/** A location's own answer (`return`, or 403 from `deny`), sent as is. */
export class RouteAnswer extends WspliceError {
  override readonly response: Buffer;
  constructor(status: number, response: Buffer, reason: string) {
    super(status === 403 ? 'WSPLICE_FORBIDDEN' : 'WSPLICE_RETURN', reason, status);
    this.response = response;
  }
}

/** One level of locations: a virtual server's, or those nested in one location. */
class Level {
  readonly exact: Route[] = [];
  readonly prefixes: Route[] = [];
  readonly regexes: Route[] = [];
  /** The slash-redirecting routes by their path without its final slash (null: none, the common case). */
  slashed: Map<string, Route> | null = null;

  add(r: Route): void {
    (r.match === 'exact' ? this.exact : r.regex !== null ? this.regexes : this.prefixes).push(r);
    if (r.slashRedirect && !(this.slashed ??= new Map()).has(r.path.slice(0, -1))) this.slashed.set(r.path.slice(0, -1), r);
  }

  /** Longest prefix first, so the first match is the best. */
  seal(): void {
    this.prefixes.sort((a, b) => b.path.length - a.path.length);
  }
}

/** Set by `find`: the route it returned is final (an exact or a regex match), no enclosing regex is tried. */
let final = false;

/** nginx's search of one level, then of the level nested in the location it picked. */
function find(level: Level, path: string): Route | null {
  for (const r of level.exact) if (r.path === path) return (final = true), r;
  let found: Route | null = null;
  for (const r of level.prefixes) {
    if (path.startsWith(r.path)) {
      found = r;
      break;
    }
  }
  // A path one slash short of a redirecting location's is answered by that location, over any regex,
  // unless a location of its own length matches it (an exact one was tried above).
  const slashed = level.slashed?.get(path);
  if (slashed !== undefined && (found === null || found.path.length < path.length)) return (final = true), slashed;
  const stop = found !== null && found.match === 'prefix-stop';
  final = false;
  if (found !== null && found.children !== null) {
    const inner = find(found.children, path);
    if (inner !== null) found = inner;
    if (final) return found;
  }
  if (!stop) {
    for (const r of level.regexes) {
      if (!r.regex!.test(path)) continue;
      const inner = r.children === null ? null : find(r.children, path);
      final = true;
      return inner ?? r;
    }
  }
  final = false;
  return found;
}

function toRoute(r: RouteConfig, groups: ReadonlyMap<string, UpstreamGroup>): Route {
  const match = r.match ?? (r.exact ? 'exact' : 'prefix');
  const regex = match === 'regex' || match === 'regex-caseless' ? new RegExp(r.path, match === 'regex-caseless' ? 'i' : '') : null;
  const group = r.upstream === null ? null : groups.get(r.upstream)!;
  let children: Level | null = null;
  if (r.routes !== undefined && r.routes.length > 0) {
    children = new Level();
    for (const c of r.routes) children.add(toRoute(c, groups));
    children.seal();
  }
  return {
    path: r.path, match, regex, group,
    ret: r.return ?? null,
    access: r.access?.map((a) => ({ allow: a.allow, from: a.from === 'all' ? null : new TrustList([a.from]) })) ?? null,
    uri: r.uri ?? null, forward: r.forward, timeouts: r.timeouts,
    retry: r.retry ?? group?.retry ?? DEFAULT_RETRY,
    children, slashRedirect: r.slashRedirect ?? false,
  };
}

/** Host names of virtual servers: exact, `*.suffix`, `prefix.*`, `~regex`, searched in nginx's order. */
class Names {
  readonly exact = new Map<string, Level>();
  readonly leading: Array<[string, Level]> = [];
  readonly trailing: Array<[string, Level]> = [];
  readonly regexes: Array<[RegExp, Level]> = [];

  add(name: string, vs: Level): void {
    if (name.startsWith('~')) this.regexes.push([new RegExp(name.slice(1), 'i'), vs]);
    else if (name.startsWith('*.')) this.leading.push([name.slice(1), vs]);
    else if (name.startsWith('.')) this.leading.push([name, vs]), this.exact.has(name.slice(1)) || this.exact.set(name.slice(1), vs);
    else if (name.endsWith('.*')) this.trailing.push([name.slice(0, -1), vs]);
    else if (!this.exact.has(name)) this.exact.set(name, vs);
  }

  seal(): void {
    this.leading.sort((a, b) => b[0].length - a[0].length);
    this.trailing.sort((a, b) => b[0].length - a[0].length);
  }

  find(host: string): Level | undefined {
    const e = this.exact.get(host);
    if (e !== undefined) return e;
    for (const [suffix, vs] of this.leading) if (host.endsWith(suffix)) return vs;
    for (const [prefix, vs] of this.trailing) if (host.startsWith(prefix)) return vs;
    for (const [re, vs] of this.regexes) if (re.test(host)) return vs;
    return undefined;
  }
}

/** What a connection asks of the routing tables (a call's own, for an embedded request with options). */
export interface Routes {
  /** The location for this request, or null (404). */
  route(host: string, target: string): Route | null;
}

export class Router implements Routes {
  private readonly names = new Names();
  private readonly defaults = new Level();

  constructor(routes: readonly RouteConfig[], groups: ReadonlyMap<string, UpstreamGroup>) {
    // Routes with the same host list form one virtual server, as one nginx server{} block.
    const servers = new Map<string, Level>();
    for (const r of routes) {
      const route = toRoute(r, groups);
      if (r.hosts === null) {
        this.defaults.add(route);
        continue;
      }
      const key = r.hosts.join(' ');
      let vs = servers.get(key);
      if (vs === undefined) {
        vs = new Level();
        servers.set(key, vs);
        for (const h of r.hosts) this.names.add(h, vs);
      }
      vs.add(route);
    }
    this.defaults.seal();
    for (const vs of servers.values()) vs.seal();
    this.names.seal();
  }

  /** The location for this request, or null (404). */
  route(host: string, target: string): Route | null {
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    return find(this.names.find(hostName(host)) ?? this.defaults, path);
  }

  /** The upstream group for this request, or null (no location, or one that answers itself). */
  match(host: string, target: string): UpstreamGroup | null {
    return this.route(host, target)?.group ?? null;
  }
}

/**
 * A location's `return` and allow/deny for one client: the answer, or null to proxy.
 * `return` runs first: nginx's rewrite phase comes before its access phase.
 */
export function answerOf(r: Route, remoteAddress: string): RouteAnswer | null {
  if (r.ret !== null) return new RouteAnswer(r.ret.status, returnResponse(r.ret.status, r.ret.text), `return ${r.ret.status}`);
  const rule = r.access?.find((a) => a.from === null || a.from.has(remoteAddress));
  if (rule === undefined || rule.allow) return null;
  return new RouteAnswer(403, errorResponse(403, FORBIDDEN), `${FORBIDDEN}, client: ${remoteAddress}`);
}

/** Where the connection was accepted: the scheme, and the local address and port a redirect names when the request names no host. */
export interface Origin {
  proto: string;
  localAddress?: string | undefined;
  localPort?: number | undefined;
}

/**
 * The Location of a slash-redirecting route's 301 for a path one slash short of its own, or null (the route
 * serves it). Absolute, as nginx's defaults make it: the scheme, the request's host (lower-cased, without its
 * port; the local address when it names none), the local port unless the scheme's default, the route's path, the query.
 */
export function slashLocation(r: Route, path: string, target: string, host: string, o: Origin): string | null {
  if (!r.slashRedirect || path.length >= r.path.length) return null;
  let name = hostName(host);
  if (name === '') name = o.localAddress?.includes(':') === true ? `[${o.localAddress}]` : (o.localAddress ?? 'localhost');
  const port = o.localPort === undefined || o.localPort === (o.proto === 'https' ? 443 : 80) ? '' : `:${o.localPort}`;
  const q = target.indexOf('?');
  return `${o.proto}://${name}${port}${r.path}${q < 0 || q === target.length - 1 ? '' : target.slice(q)}`;
}

/** The 301 a listener sends for a slash redirect. */
export function slashAnswer(location: string): RouteAnswer {
  return new RouteAnswer(301, errorResponse(301, 'moved', `Location: ${location}\r\n`), `moved to ${location}`);
}

const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** The reason a `deny` answers with (403). */
export const FORBIDDEN = 'access forbidden by rule';

/** What nginx `return` answers: its text as the body, or the proxy's own wording (a redirect's URL in Location). */
export type ReturnAnswer = { text: string } | { reason: string; location: string | null };

export function returnAnswer(status: number, text: string | null): ReturnAnswer {
  const redirect = REDIRECTS.has(status);
  if (text !== null && !redirect) return { text };
  return { reason: redirect ? 'moved' : 'returned by the configuration', location: redirect ? text : null };
}

function returnResponse(status: number, text: string | null): Buffer {
  const a = returnAnswer(status, text);
  if (!('text' in a)) return errorResponse(status, a.reason, a.location !== null ? `Location: ${a.location}\r\n` : '');
  return Buffer.from(`HTTP/1.1 ${status} ${status < 400 ? 'OK' : 'Error'}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(a.text)}\r\nConnection: close\r\n\r\n${a.text}`);
}
