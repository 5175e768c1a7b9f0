/**
 * Request variables as nginx names them ($host, $http_NAME, $remote_addr ...)
 * in header values ("$scheme://$host$request_uri"). A value is compiled once,
 * at configuration time, into parts; per request head it only joins strings.
 */
import type { RequestHead } from '../http1/head.js';
import type { RequestInfo } from '../http1/semantics.js';
import { hostVariable } from '../http1/serialize.js';

/** What a request offers to variables. */
export interface VarSource {
  h: RequestHead;
  info: RequestInfo;
  remoteAddress: string;
  proto: string;
}

export type Get = (v: VarSource) => string;

function header(v: VarSource, name: string): string {
  for (let i = 0; i < v.h.keys.length; i++) if (v.h.keys[i] === name) return v.h.values[i]!;
  return '';
}

const query = (v: VarSource): string => {
  const q = v.info.path.indexOf('?');
  return q < 0 ? '' : v.info.path.slice(q + 1);
};

const FIXED: Record<string, Get> = {
  host: (v) => hostVariable(v.info.host),
  http_host: (v) => v.info.host,
  remote_addr: (v) => v.remoteAddress,
  binary_remote_addr: (v) => v.remoteAddress,
  scheme: (v) => v.proto,
  request_uri: (v) => v.h.target,
  uri: (v) => v.info.path.split('?')[0]!,
  document_uri: (v) => v.info.path.split('?')[0]!,
  args: query,
  query_string: query,
  is_args: (v) => (query(v) !== '' ? '?' : ''),
  request_method: (v) => v.h.method,
  proxy_add_x_forwarded_for: (v) => {
    const xff = header(v, 'x-forwarded-for');
    return xff === '' ? v.remoteAddress : `${xff}, ${v.remoteAddress}`;
  },
};

/** The getter of `$name` (a fixed variable, a map's result, `$http_NAME`), or null when wsplice has no such variable. */
export function variable(name: string, maps?: ReadonlyMap<string, Get>): Get | null {
  const fixed = FIXED[name] ?? maps?.get(name);
  if (fixed !== undefined) return fixed;
  const m = /^http_([A-Za-z0-9_]+)$/.exec(name);
  if (m === null) return null;
  const key = m[1]!.toLowerCase().replace(/_/g, '-');
  return (v) => header(v, key);
}

const VAR = /\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))/g;

export function hasVariables(s: string): boolean {
  return /\$(?:\{[A-Za-z0-9_]+\}|[A-Za-z0-9_]+)/.test(s);
}

/** Compile "text $var ${var}text"; the first unknown variable's name instead when there is one. */
export function compileTemplate(source: string, maps?: ReadonlyMap<string, Get>): Get | { unknown: string } {
  const parts: Array<string | Get> = [];
  let last = 0;
  for (const m of source.matchAll(VAR)) {
    const name = m[1] ?? m[2]!;
    const f = variable(name, maps);
    if (f === null) return { unknown: name };
    if (m.index > last) parts.push(source.slice(last, m.index));
    parts.push(f);
    last = m.index + m[0].length;
  }
  if (last < source.length) parts.push(source.slice(last));
  return (v) => {
    let out = '';
    for (const p of parts) out += typeof p === 'string' ? p : p(v);
    return out;
  };
}
