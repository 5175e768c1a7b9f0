/**
 * What the nginx reader collects while it walks the tree: the scopes (http,
 * server, location, upstream, map) with the settings nginx inherits from one
 * level to the next, the global options, the service settings, and every
 * problem with its file:line.
 */
import type { Issues } from '../issues.js';
import type { Directive } from './parse.js';

/** proxy_set_header lines, timeouts, TLS: what a level sets itself; children inherit the rest. */
export interface Settings {
  parent: Settings | null;
  /** proxy_set_header lines: a level with any replaces its parent's whole list, as nginx. */
  headers: Array<{ name: string; value: string; at: Directive }> | null;
  /** Timeouts in ms by option key (connectMs, responseMs, idleMs), the nearest level winning. */
  timeouts: Record<string, { ms: number; at: Directive }>;
  /** ssl_* (listener TLS) and proxy_ssl_* (upstream TLS) values, key by key. */
  ssl: Record<string, { value: unknown; at: Directive }>;
  proxySsl: Record<string, { value: unknown; at: Directive }>;
  /** allow/deny rules in order: a level with any replaces its parent's, as nginx. */
  access: Array<{ allow: boolean; from: string; at: Directive }> | null;
  ret: { status: number; text?: string; at: Directive } | null;
  /** proxy_next_upstream (on), _tries, _timeout (timeoutMs), key by key. */
  retry: Record<string, { value: unknown; at: Directive }>;
}

export const emptySettings = (parent: Settings | null): Settings => ({ parent, headers: null, timeouts: {}, ssl: {}, proxySsl: {}, access: null, ret: null, retry: {} });

/** The nearest level's own value of a list setting (nginx: a level with any replaces its parent's). */
export function nearest<K extends 'headers' | 'access' | 'ret'>(s: Settings, k: K): Settings[K] {
  for (let c: Settings | null = s; c !== null; c = c.parent) if (c[k] !== null) return c[k];
  return null as Settings[K];
}

/** A key-by-key setting merged down the chain, the nearest level winning. */
export function merged<K extends 'timeouts' | 'ssl' | 'proxySsl' | 'retry'>(s: Settings, k: K): Settings[K] {
  const chain: Settings[] = [];
  for (let c: Settings | null = s; c !== null; c = c.parent) chain.unshift(c);
  return Object.assign({}, ...chain.map((c) => c[k])) as Settings[K];
}

export interface ListenSpec {
  address: string;
  defaultServer: boolean;
  ssl: boolean;
  proxyProtocol: boolean;
  at: Directive;
}

export type LocationMatch = 'prefix' | 'exact' | 'prefix-stop' | 'regex' | 'regex-i' | 'named';

export interface LocationScope {
  path: string;
  match: LocationMatch;
  settings: Settings;
  pass: { scheme: 'http' | 'https'; target: string; uri: string | null; at: Directive } | null;
  /** The locations nested in this one, in file order. */
  children: LocationScope[];
  parent: LocationScope | null;
  at: Directive;
}

export interface ServerScope {
  listen: ListenSpec[];
  names: Array<{ name: string; at: Directive }>;
  settings: Settings;
  locations: LocationScope[];
  at: Directive;
}

export interface UpstreamScope {
  name: string;
  out: Record<string, unknown>;
  servers: Array<{ address: string; params: Record<string, unknown>; at: Directive }>;
  at: Directive;
}

export interface MapScope {
  source: string;
  variable: string;
  entries: Array<{ key: string; value: string; at: Directive }>;
  at: Directive;
}

export type Scope =
  | { kind: 'main' | 'events' }
  | { kind: 'http'; settings: Settings }
  | { kind: 'server'; server: ServerScope; settings: Settings }
  | { kind: 'location'; server: ServerScope; location: LocationScope; settings: Settings }
  | { kind: 'upstream'; upstream: UpstreamScope };

export type Context = Scope['kind'];

export class Build {
  /** Global options (timeouts, limits, clientLimits ...) as the JSON model names them. */
  readonly opts: Record<string, unknown> = {};
  readonly where = new Map<string, { file: string; line: number }>();
  /** accessLog / errorLog / logLevel, the file's top-level service keys. */
  readonly service: Record<string, { value: string; at: Directive }> = {};
  readonly ignored = new Map<string, Directive>();
  readonly http = emptySettings(null);
  readonly servers: ServerScope[] = [];
  readonly upstreams = new Map<string, UpstreamScope>();
  readonly maps: MapScope[] = [];
  /** limit_conn_zone / limit_req_zone by zone name. */
  readonly zones = new Map<string, { key: string; rate?: number; at: Directive }>();

  /** The file given to -c (problems of the whole configuration are reported there). */
  constructor(readonly is: Issues, readonly file: string) {}

  error(d: Directive, message: string): void {
    this.is.add({ field: '', severity: 'error', message, file: d.file, line: d.line });
  }

  warn(d: Directive, message: string): void {
    this.is.add({ field: '', severity: 'warning', message, file: d.file, line: d.line });
  }

  /** A directive (or one of its forms) wsplice means to read but cannot act on yet: refused, never dropped. */
  notYet(d: Directive, what: string = `"${d.name}"`): void {
    this.error(d, `${what} is not supported yet by wsplice`);
  }

  /** Set a dotted field of the global options and remember where it was written. */
  set(path: string, value: unknown, d: Directive): void {
    const keys = path.split('.');
    let cur = this.opts;
    for (const k of keys.slice(0, -1)) cur = (cur[k] ??= {}) as Record<string, unknown>;
    cur[keys[keys.length - 1]!] = value;
    this.where.set(path, { file: d.file, line: d.line });
  }
}
