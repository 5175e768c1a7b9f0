/**
 * The `routes` entries (nginx locations): the rows, and the checks that need
 * more than one field (a regex path, `upstream` or `return`, names). Resolved
 * into what the router builds its tables from.
 */
import { isValidHost } from '../http1/semantics.js';
import { arrayOf, at, bool, either, int, isObject, object, oneOf, str, type Check } from './check.js';
import type { Issues } from './issues.js';

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
  access: { check: arrayOf(rule), doc: 'allow/deny rules, first match wins; a denied client gets 403', nginx: 'allow, deny' },
} as const;

export interface ResolvedRoute {
  path: string;
  match: 'prefix' | 'exact' | 'prefix-stop' | 'regex' | 'regex-caseless';
  exact: boolean;
  upstream: string | null;
  hosts: string[] | null;
  return: { status: number; text: string | null } | null;
  access: Array<{ allow: boolean; from: string }> | null;
}

type ParsedRoute = { path: string; exact: boolean; match?: string; upstream?: string; hosts?: string[]; return?: { status: number; text?: string }; access?: Array<{ allow: boolean; from: string }> };

/** One route's cross-field checks; null after reporting. */
function resolveRoute(r: ParsedRoute, field: string, upstreams: readonly string[], is: Issues): ResolvedRoute | null {
  // A route the row checks refused (no path, a path or match that is not a string) was reported there.
  if (typeof r !== 'object' || r === null || typeof r.path !== 'string' || (r.match !== undefined && typeof r.match !== 'string')) return null;
  const match = (r.match ?? (r.exact ? 'exact' : 'prefix')) as ResolvedRoute['match'];
  let ok = true;
  if (match.startsWith('regex')) {
    try {
      new RegExp(r.path);
    } catch (err) {
      ok = false;
      is.error(at(field, 'path'), `invalid regular expression: ${(err as Error).message}`);
    }
  } else if (!r.path.startsWith('/')) {
    ok = false;
    is.error(at(field, 'path'), 'must start with / (or set match "regex")');
  }
  if (r.upstream === undefined && r.return === undefined) ok = (is.error(at(field, 'upstream'), 'is required (or give return)'), false);
  if (r.upstream !== undefined && !upstreams.includes(r.upstream)) ok = (is.error(at(field, 'upstream'), `must name an upstream (one of ${upstreams.join(', ')})`), false);
  if (!ok) return null;
  return {
    path: r.path, match, exact: match === 'exact', upstream: r.upstream ?? null,
    hosts: r.hosts?.map((h) => (h.startsWith('~') ? h : h.toLowerCase())) ?? null,
    return: r.return === undefined ? null : { status: r.return.status, text: r.return.text ?? null },
    access: r.access ?? null,
  };
}

/** Every route checked against the others: the same location twice in one virtual server is an error, as nginx's "duplicate location". */
export function resolveRoutes(routes: readonly ParsedRoute[], upstreams: readonly string[], is: Issues): ResolvedRoute[] {
  const out: ResolvedRoute[] = [];
  const seen = new Set<string>();
  routes.forEach((r, i) => {
    const x = resolveRoute(r, `routes[${i}]`, upstreams, is);
    if (x === null) return;
    const key = `${(x.hosts ?? []).join(' ')}|${x.match === 'prefix-stop' ? 'prefix' : x.match}|${x.path}`;
    if (seen.has(key)) is.error(`routes[${i}].path`, `duplicate location "${x.path}"`);
    seen.add(key);
    out.push(x);
  });
  return out;
}
