/**
 * The `routes` entries (nginx locations): the rows, and the checks that need
 * more than one field (a regex path, `upstream` or `return`, names, nesting).
 * Resolved into what the router builds its tables from, each route with its
 * effective settings (forwarding, timeouts, nextUpstream) merged once, here,
 * over the routes around it and the globals, as nginx inherits a location's.
 */
import { isValidHost } from '../http1/semantics.js';
import type { ForwardPolicy } from '../http1/serialize.js';
import type { NextUpstreamConfig, TimeoutConfig } from '../options.js';
import { retryPolicy, type RetryPolicy } from '../upstream/retry.js';
import { arrayOf, at, bool, either, int, isObject, object, oneOf, str, type Check } from './check.js';
import { forwardPolicy, type ForwardingFields } from './forwarding.js';
import type { Issues } from './issues.js';
import type { Get } from './variables.js';

const ACCESS_FROM = /^(?:all|\d{1,3}(?:\.\d{1,3}){3}(?:\/\d{1,2})?|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*(?:\/\d{1,3})?)$/;
const from = str((v) => ACCESS_FROM.test(v), '"all", an address or a CIDR block');

const rule: Check<{ allow: boolean; from: string }> = either(
  { parse: (v, f, is) => { const x = object({ allow: { check: from, default: 'required', doc: 'allowed' } }).parse(v, f, is); return x && { allow: true, from: x.allow }; }, schema: { type: 'object', properties: { allow: from.schema }, required: ['allow'], additionalProperties: false } },
  (v) => isObject(v) && 'allow' in v,
  { parse: (v, f, is) => { const x = object({ deny: { check: from, default: 'required', doc: 'denied' } }).parse(v, f, is); return x && { allow: false, from: x.deny }; }, schema: { type: 'object', properties: { deny: from.schema }, required: ['deny'], additionalProperties: false } },
);

/** A server name as nginx takes it: exact, `*.suffix`, `.suffix`, `prefix.*` or `~regex`. */
function validName(n: string): boolean {
  if (n.startsWith('~')) {
    try {
      new RegExp(n.slice(1));
      return true;
    } catch {
      return false;
    }
  }
  const bare = n.replace(/^\*\./, '').replace(/^\./, '').replace(/\.\*$/, '');
  return isValidHost(bare);
}

export const ROUTE_ROWS = {
  path: { check: str((p) => p !== '', 'a path starting with /, or a regular expression with match "regex"'), default: 'required', doc: 'path prefix, the exact path, or a regular expression', nginx: 'location' },
  exact: { check: bool, default: false, doc: 'match the path exactly (as match "exact")', nginx: 'location =' },
  match: {
    check: oneOf('prefix', 'exact', 'prefix-stop', 'regex', 'regex-caseless'),
    doc: 'prefix (default), exact, prefix-stop (wins over regexes), regex, regex-caseless', nginx: 'location, =, ^~, ~, ~*',
  },
  upstream: { check: str(() => true, 'the name of an upstream'), doc: 'name of an entry in upstreams (required unless return is given)', nginx: 'proxy_pass' },
  hosts: { check: arrayOf(str(validName, 'a host name, *.suffix, prefix.* or ~regex')), doc: 'virtual server names (matched without port, case-insensitive); omitted = the default server', nginx: 'server_name' },
  return: {
    check: object({ status: { check: int(100, 999), default: 'required', doc: 'status code' }, text: { check: str(() => true, 'a string'), doc: 'body, or the URL of a redirect' } }),
    doc: 'answer without proxying', nginx: 'return CODE [TEXT|URL]',
  },
  access: { check: arrayOf(rule), doc: 'allow/deny rules, first match wins; a denied client gets 403 (inherited by nested routes that have none)', nginx: 'allow, deny' },
  uri: {
    check: str((u) => /^\/[\x21-\x7e]*$/.test(u), 'a path starting with / (no spaces or control characters)'),
    doc: 'replaces the part of the normalised path the route matched (prefix and exact routes only); the query follows', nginx: 'proxy_pass http://UPSTREAM/URI',
  },
  slashRedirect: {
    check: bool,
    doc: 'answer the path without its final / with a 301 to the path with it, the query kept (a prefix or exact path ending in /)', nginx: 'location /x/ { proxy_pass ...; } (implicit)',
  },
} as const;

/** The settings a route passes to the routes nested in it (nginx: what a location's children inherit). */
interface Enclosing {
  forwarding: ForwardingFields;
  forward: ForwardPolicy;
  timeouts: Required<TimeoutConfig>;
  /** nextUpstream fields set on this route and those around it. */
  next: NextUpstreamConfig;
  access: Array<{ allow: boolean; from: string }> | null;
  hosts: string[] | null;
  parent: ResolvedRoute | null;
}

/** The globals routes inherit, and the upstreams' own nextUpstream fields. */
export interface RouteDefaults {
  forwarding: ForwardingFields;
  forward: ForwardPolicy;
  timeouts: Required<TimeoutConfig>;
  maps: ReadonlyMap<string, Get>;
  upstreams: ReadonlyMap<string, { nextUpstream?: NextUpstreamConfig | undefined }>;
}

export interface ResolvedRoute {
  path: string;
  match: 'prefix' | 'exact' | 'prefix-stop' | 'regex' | 'regex-caseless';
  exact: boolean;
  upstream: string | null;
  hosts: string[] | null;
  return: { status: number; text: string | null } | null;
  access: Array<{ allow: boolean; from: string }> | null;
  /** nginx proxy_pass URI part: replaces the matched prefix (null: the client's target as sent). */
  uri: string | null;
  forward: ForwardPolicy;
  timeouts: Required<TimeoutConfig>;
  /** This route's nextUpstream over its upstream's; null: the upstream's own policy. */
  retry: RetryPolicy | null;
  /** Nested routes (nginx locations inside a location), searched when this one matched. */
  routes: ResolvedRoute[];
  /** 301 from the path without the final slash to the path (nginx: a `/x/` location with proxy_pass). */
  slashRedirect: boolean;
}

type RouteTimeouts = { connectMs?: number | undefined; responseMs?: number | undefined; sendMs?: number | undefined; idleMs?: number | undefined };
type RouteForwarding = { [K in keyof ForwardingFields]?: ForwardingFields[K] | undefined };
export type ParsedRoute = {
  path: string; exact: boolean; match?: string | undefined; upstream?: string | undefined; hosts?: string[] | undefined;
  return?: { status: number; text?: string | undefined } | undefined; access?: Array<{ allow: boolean; from: string }> | undefined;
  uri?: string | undefined; slashRedirect?: boolean | undefined; timeouts?: RouteTimeouts | undefined; forwarding?: RouteForwarding | undefined;
  nextUpstream?: { [K in keyof NextUpstreamConfig]?: NextUpstreamConfig[K] | undefined } | undefined; routes?: ParsedRoute[] | undefined;
};

/** The fields of `o` that were given (a route's own settings, to lay over the enclosing ones). */
function given<T extends object>(o: T | undefined): Partial<T> {
  return o === undefined ? {} : (Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>);
}

/** Where a nested route may not be, in nginx's words; null: it may. */
function nestingProblem(r: ParsedRoute, match: string, parent: ResolvedRoute | null): string | null {
  if (parent === null) return null;
  if (parent.match === 'exact') return `location "${r.path}" cannot be inside the exact location "${parent.path}"`;
  if (!match.startsWith('regex') && !r.path.startsWith(parent.path)) return `location "${r.path}" is outside location "${parent.path}"`;
  return r.hosts !== undefined ? 'hosts: only a top-level route names virtual servers (a nested one takes its parent\'s)' : null;
}

/** The path and match checks of one route; false after reporting. */
function checkPath(r: ParsedRoute, match: string, field: string, up: Enclosing, upstreams: RouteDefaults['upstreams'], is: Issues): boolean {
  let ok = true;
  if (match.startsWith('regex')) {
    try {
      new RegExp(r.path);
    } catch (err) {
      ok = (is.error(at(field, 'path'), `invalid regular expression: ${(err as Error).message}`), false);
    }
    if (r.uri !== undefined) ok = (is.error(at(field, 'uri'), 'cannot be used with a regular expression route (nginx: "proxy_pass" cannot have URI part in location given by regular expression)'), false);
  } else if (!r.path.startsWith('/')) {
    ok = (is.error(at(field, 'path'), 'must start with / (or set match "regex")'), false);
  }
  if (r.slashRedirect === true && (match.startsWith('regex') || !r.path.endsWith('/') || r.path === '/')) ok = (is.error(at(field, 'slashRedirect'), 'needs a prefix or exact path ending in / (other than "/")'), false);
  const nesting = nestingProblem(r, match, up.parent);
  if (nesting !== null) ok = (is.error(at(field, 'path'), nesting), false);
  if (r.upstream === undefined && r.return === undefined) ok = (is.error(at(field, 'upstream'), 'is required (or give return)'), false);
  if (r.uri !== undefined && r.upstream === undefined) ok = (is.error(at(field, 'uri'), 'needs upstream'), false);
  if (r.upstream !== undefined && !upstreams.has(r.upstream)) ok = (is.error(at(field, 'upstream'), `must name an upstream (one of ${[...upstreams.keys()].join(', ')})`), false);
  return ok;
}

/** The settings of a route: its own fields over the enclosing ones; objects shared when it sets none. */
function settings(r: ParsedRoute, field: string, up: Enclosing, d: RouteDefaults, is: Issues): Omit<Enclosing, 'access' | 'hosts' | 'parent'> {
  const ownFw = given(r.forwarding);
  const forwarding = Object.keys(ownFw).length === 0 ? up.forwarding : { ...up.forwarding, ...ownFw };
  const forward = forwarding === up.forwarding ? up.forward : forwardPolicy(forwarding, d.maps, at(field, 'forwarding'), is);
  const ownT = given(r.timeouts);
  const timeouts = Object.keys(ownT).length === 0 ? up.timeouts : { ...up.timeouts, ...ownT };
  const ownN = given(r.nextUpstream);
  return { forwarding, forward, timeouts, next: Object.keys(ownN).length === 0 ? up.next : { ...up.next, ...ownN } };
}

/** One route (and those nested in it); null after reporting. */
function resolveRoute(r: ParsedRoute, field: string, up: Enclosing, d: RouteDefaults, is: Issues): ResolvedRoute | null {
  // A route the row checks refused (no path, a path or match that is not a string) was reported there.
  if (typeof r !== 'object' || r === null || typeof r.path !== 'string' || (r.match !== undefined && typeof r.match !== 'string')) return null;
  const match = (r.match ?? (r.exact ? 'exact' : 'prefix')) as ResolvedRoute['match'];
  if (!checkPath(r, match, field, up, d.upstreams, is)) return null;
  const s = settings(r, field, up, d, is);
  const next = Object.keys(s.next).length === 0 || r.upstream === undefined ? null : { ...given(d.upstreams.get(r.upstream)?.nextUpstream), ...s.next };
  const out: ResolvedRoute = {
    path: r.path, match, exact: match === 'exact', upstream: r.upstream ?? null,
    hosts: up.parent !== null ? up.hosts : r.hosts?.map((h) => (h.startsWith('~') ? h : h.toLowerCase())) ?? null,
    return: r.return === undefined ? null : { status: r.return.status, text: r.return.text ?? null },
    access: r.access ?? up.access, uri: r.uri ?? null,
    forward: s.forward, timeouts: s.timeouts, retry: next === null ? null : retryPolicy(next), routes: [], slashRedirect: r.slashRedirect ?? false,
  };
  if (r.routes !== undefined) out.routes = resolveLevel(r.routes, at(field, 'routes'), { ...s, access: out.access, hosts: out.hosts, parent: out }, d, is);
  return out;
}

/** The routes of one level: the same location twice in one virtual server (or one parent) is an error, as nginx's "duplicate location". */
function resolveLevel(routes: readonly ParsedRoute[], field: string, up: Enclosing, d: RouteDefaults, is: Issues): ResolvedRoute[] {
  const out: ResolvedRoute[] = [];
  const seen = new Set<string>();
  routes.forEach((r, i) => {
    const x = resolveRoute(r, `${field}[${i}]`, up, d, is);
    if (x === null) return;
    const key = `${(x.hosts ?? []).join(' ')}|${x.match === 'prefix-stop' ? 'prefix' : x.match}|${x.path}`;
    if (seen.has(key)) is.error(`${field}[${i}].path`, `duplicate location "${x.path}"`);
    seen.add(key);
    out.push(x);
  });
  return out;
}

/** Every route checked, nested ones included, with its effective settings. */
export function resolveRoutes(routes: readonly ParsedRoute[], d: RouteDefaults, is: Issues): ResolvedRoute[] {
  return resolveLevel(routes, 'routes', { forwarding: d.forwarding, forward: d.forward, timeouts: d.timeouts, next: {}, access: null, hosts: null, parent: null }, d, is);
}
