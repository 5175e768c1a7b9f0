/**
 * Handlers of the server-side directives (server, listen, server_name,
 * location, proxy_pass, proxy_set_header, timeouts, ssl_*): each writes its
 * nginx meaning into the scope it appears in. Block handlers return the scope
 * their children are read in.
 */
import { emptySettings, type Build, type LocationMatch, type LocationScope, type Scope, type ServerScope, type Settings } from './build.js';
import type { Directive } from './parse.js';
import { parseFlag, parseListenAddress, parseTime } from './values.js';

export type Handler = (d: Directive, s: Scope, b: Build) => Scope | void;

export const settingsOf = (s: Scope): Settings => (s as { settings: Settings }).settings;
const serverOf = (s: Scope): ServerScope => (s as { server: ServerScope }).server;

export function server(d: Directive, _s: Scope, b: Build): Scope {
  const srv: ServerScope = { listen: [], names: [], settings: emptySettings(b.http), locations: [], at: d };
  b.servers.push(srv);
  return { kind: 'server', server: srv, settings: srv.settings };
}

const LISTEN_IGNORED = /^(reuseport|deferred|bind|http2|fastopen=\d+|rcvbuf=\S+|sndbuf=\S+|so_keepalive=\S+|ipv6only=(on|off)|backlog=\d+)$/;

export function listen(d: Directive, s: Scope, b: Build): void {
  const srv = serverOf(s);
  const a = parseListenAddress(d.args[0]!);
  if ('error' in a) return b.error(d, a.error);
  const entry = { address: a.address, defaultServer: false, ssl: false, proxyProtocol: false, at: d };
  for (const p of d.args.slice(1)) {
    if (p === 'default_server' || p === 'default') entry.defaultServer = true;
    else if (p === 'ssl') entry.ssl = true;
    else if (p === 'proxy_protocol') entry.proxyProtocol = true;
    else if (LISTEN_IGNORED.test(p)) b.warn(d, `"listen ... ${p}" is accepted and has no effect in wsplice (Node sets its own socket options)`);
    else b.error(d, `invalid parameter "${p}"`);
  }
  if (srv.listen.some((l) => l.address === entry.address)) return b.error(d, `duplicate listen ${d.args[0]!}`);
  srv.listen.push(entry);
}

export function serverName(d: Directive, s: Scope, b: Build): void {
  for (const n of d.args) {
    if (n === '' || n === '_') continue;
    if (n.startsWith('~')) {
      try {
        new RegExp(n.slice(1));
      } catch (err) {
        b.error(d, `invalid server name regex "${n}": ${(err as Error).message}`);
        continue;
      }
    } else if (!/^(\*\.)?[A-Za-z0-9._-]+(\.\*)?$/.test(n)) {
      b.error(d, `invalid server name "${n}"`);
      continue;
    }
    serverOf(s).names.push({ name: n.startsWith('~') ? n : n.toLowerCase(), at: d });
  }
}

const MODIFIERS: Record<string, LocationMatch> = { '=': 'exact', '^~': 'prefix-stop', '~': 'regex', '~*': 'regex-i' };

function locationForm(d: Directive, b: Build): { match: LocationMatch; path: string } | null {
  if (d.args.length === 2) {
    const match = MODIFIERS[d.args[0]!];
    if (match === undefined) return b.error(d, `invalid location modifier "${d.args[0]!}"`), null;
    return { match, path: d.args[1]! };
  }
  const p = d.args[0]!;
  if (p.startsWith('=') && p.length > 1) return { match: 'exact', path: p.slice(1) };
  if (p.startsWith('@')) return { match: 'named', path: p };
  return { match: 'prefix', path: p };
}

/** Where a location may not be, in nginx's words; null: it may. */
function nestingProblem(form: { match: LocationMatch; path: string }, parent: LocationScope | null): string | null {
  if (parent === null) return null;
  if (parent.match === 'exact') return `location "${form.path}" cannot be inside the exact location "${parent.path}"`;
  if (parent.match === 'named') return `location "${form.path}" cannot be inside the named location "${parent.path}"`;
  if (form.match === 'named') return `named location "${form.path}" can be on the server level only`;
  if (!form.match.startsWith('regex') && !form.path.startsWith(parent.path)) return `location "${form.path}" is outside location "${parent.path}"`;
  return null;
}

export function location(d: Directive, s: Scope, b: Build): Scope | void {
  const srv = serverOf(s);
  const form = locationForm(d, b);
  if (form === null) return;
  const { match, path } = form;
  if (match === 'regex' || match === 'regex-i') {
    try {
      new RegExp(path, match === 'regex-i' ? 'i' : '');
    } catch (err) {
      return b.error(d, `invalid location regex "${path}": ${(err as Error).message}`);
    }
  }
  const parent = s.kind === 'location' ? s.location : null;
  const nesting = nestingProblem(form, parent);
  if (nesting !== null) return b.error(d, nesting);
  // nginx: "=" and the prefix forms share one tree per level, so `location /a` and `location ^~ /a` clash too.
  const key = (l: { match: LocationMatch; path: string }): string => `${l.match === 'prefix-stop' ? 'prefix' : l.match} ${l.path}`;
  const siblings = parent?.children ?? srv.locations;
  if (siblings.some((l) => key(l) === key(form))) return b.error(d, `duplicate location "${path}"`);
  const loc: LocationScope = { path, match, settings: emptySettings(settingsOf(s)), pass: null, children: [], parent, at: d };
  // A named location is read (its directives are checked) but serves nothing: wsplice has no internal redirects.
  if (match === 'named') b.notYet(d, 'a named location');
  else siblings.push(loc);
  return { kind: 'location', server: srv, location: loc, settings: loc.settings };
}

export function proxyPass(d: Directive, s: Scope, b: Build): void {
  const loc = (s as { location: LocationScope }).location;
  const m = /^(https?):\/\/([^/]+)(\/.*)?$/.exec(d.args[0]!);
  if (m === null) return b.error(d, `invalid URL prefix in "${d.args[0]!}"`);
  if (d.args[0]!.includes('$')) return b.notYet(d, '"proxy_pass" with variables');
  let uri: string | null = m[3] ?? null;
  if (uri !== null && (loc.match === 'regex' || loc.match === 'regex-i' || loc.match === 'named')) {
    b.error(d, '"proxy_pass" cannot have URI part in location given by regular expression, or inside named location, or inside "if" statement, or inside "limit_except" block');
    uri = null; // kept as a proxy_pass, so that the location is not also reported as having none
  }
  loc.pass = { scheme: m[1] as 'http' | 'https', target: m[2]!, uri, at: d };
}

export function proxySetHeader(d: Directive, s: Scope): void {
  (settingsOf(s).headers ??= []).push({ name: d.args[0]!, value: d.args[1]!, at: d });
}

/** A time argument into timeout keys at this level. */
export function timeout(...keys: string[]): Handler {
  return (d, s, b) => {
    const ms = parseTime(d.args[0]!);
    if (ms === null) return b.error(d, `"${d.name}" directive invalid value "${d.args[0]!}"`);
    for (const k of keys) settingsOf(s).timeouts[k] = { ms, at: d };
  };
}

/** A global time option (http level only in wsplice's model: server-level values are refused as not supported yet). */
export function globalTime(path: string): Handler {
  return (d, s, b) => {
    const ms = parseTime(d.args[0]!);
    if (ms === null) return b.error(d, `"${d.name}" directive invalid value "${d.args[0]!}"`);
    if (s.kind !== 'http' && s.kind !== 'main') return b.notYet(d, `"${d.name}" below http{}`);
    b.set(path, ms, d);
  };
}

/** An ssl_* or proxy_ssl_* value kept at this level, parsed by `parse` (null = invalid). */
export function sslValue(group: 'ssl' | 'proxySsl', key: string, parse: (args: string[]) => unknown = (a) => a[0]): Handler {
  return (d, s, b) => {
    const v = parse(d.args);
    if (v === null || v === undefined) return b.error(d, `invalid value "${d.args.join(' ')}" in "${d.name}" directive`);
    settingsOf(s)[group][key] = { value: v, at: d };
  };
}

export const flag = (a: string[]): boolean | null => parseFlag(a[0]!);
export const seconds = (a: string[]): number | null => {
  const ms = parseTime(a[0]!);
  return ms === null ? null : Math.round(ms / 1000);
};
export const protocols = (a: string[]): string[] | null => (a.every((p) => /^(TLSv1|TLSv1\.[123])$/.test(p)) ? a : null);
