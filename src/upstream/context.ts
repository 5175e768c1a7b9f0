/**
 * What a balancer may know about a request: the client address and the
 * parsed request head. Variables (`$http_x`, `$cookie_x`, `$arg_x`, ...) are
 * read from the head on demand, only by the methods that need them.
 */
import type { RequestHead } from '../http1/head.js';

export interface PickContext {
  /** The client's address as the socket reports it (IPv4, IPv6 or IPv4-mapped IPv6). */
  readonly remoteAddress: string;
  readonly remotePort?: number;
  /** The request head; null when the pick is not for a request (health checks, tests). */
  readonly head: RequestHead | null;
}

/** The value of header `key` (lower case); repeated fields joined with ", " as nginx does. */
export function headerValue(ctx: PickContext, key: string): string {
  const h = ctx.head;
  if (h === null) return '';
  let out = '';
  for (let i = 0; i < h.keys.length; i++) {
    if (h.keys[i] !== key) continue;
    out = out === '' ? h.values[i]! : `${out}, ${h.values[i]!}`;
  }
  return out;
}

/** The value of cookie `name` in the Cookie header(s), or '' (names are case-sensitive). */
export function cookieValue(ctx: PickContext, name: string): string {
  const h = ctx.head;
  if (h === null) return '';
  for (let i = 0; i < h.keys.length; i++) {
    if (h.keys[i] !== 'cookie') continue;
    const v = findPair(h.values[i]!, name, ';');
    if (v !== null) return v;
  }
  return '';
}

/** The value of query argument `name` in the request target, or '' (not percent-decoded, as nginx's $arg_). */
export function argValue(ctx: PickContext, name: string): string {
  const t = ctx.head?.target ?? '';
  const q = t.indexOf('?');
  if (q < 0) return '';
  return findPair(t.slice(q + 1), name, '&') ?? '';
}

/** `name=value` in a `sep`-separated list, whitespace around pairs ignored. */
function findPair(list: string, name: string, sep: string): string | null {
  let pos = 0;
  while (pos <= list.length) {
    let end = list.indexOf(sep, pos);
    if (end < 0) end = list.length;
    let s = pos;
    while (s < end && (list.charCodeAt(s) === 0x20 || list.charCodeAt(s) === 0x09)) s++;
    const eq = list.indexOf('=', s);
    if (eq >= 0 && eq < end && eq - s === name.length && list.startsWith(name, s)) {
      let e = end;
      while (e > eq + 1 && (list.charCodeAt(e - 1) === 0x20 || list.charCodeAt(e - 1) === 0x09)) e--;
      return list.slice(eq + 1, e);
    }
    pos = end + 1;
  }
  return null;
}

/** The request target's path without the query (nginx `$uri`, not normalised). */
export function uriOf(ctx: PickContext): string {
  const t = ctx.head?.target ?? '';
  const q = t.indexOf('?');
  return q < 0 ? t : t.slice(0, q);
}
