/**
 * The path routes are matched on: the request target's path made canonical as
 * nginx makes it before it looks for a location, so that no spelling of a path
 * reaches a location another spelling would not (`/ws/../admin`,
 * `/ws/%2e%2e/admin` and `/ws/..%2Fadmin` are all `/admin`).
 *
 * Hand-written: WHATWG URL parsing (node:url) keeps `%2e%2e` and `%2F` encoded,
 * resolves `..` above the root silently, and never merges slashes; nginx's
 * rules are these, measured against nginx 1.22:
 *   - every %XX is decoded (so `%2F` separates segments, `%2e%2e` is `..`);
 *     a bad escape or an encoded NUL is refused;
 *   - `.` segments are dropped, `..` removes the segment before it, and a `..`
 *     with nothing before it (climbing above the root) is refused;
 *   - runs of `/` count as one (`merge_slashes on`).
 * The query (from the first raw `?`) is not part of the path. A decoded `?` is
 * kept encoded, `%3F`, so that a router that cuts at `?` cuts nothing more.
 * The result is a latin1 string: one character per byte, as the head is read.
 */
import { BadRequestError } from '../errors.js';

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

/** `%XX` decoded, `?` kept as `%3F` (unless `literalQuery`). Throws on a bad escape or `%00`. */
function decode(path: string, literalQuery: boolean): string {
  if (!path.includes('%')) return path;
  let out = '';
  let from = 0;
  for (let i = path.indexOf('%'); i >= 0; i = path.indexOf('%', from)) {
    const hi = hex(path.charCodeAt(i + 1));
    const lo = hex(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) throw new BadRequestError('invalid percent-encoding in the request path');
    const byte = hi * 16 + lo;
    if (byte === 0) throw new BadRequestError('encoded NUL in the request path');
    out += path.slice(from, i) + (byte === 0x3f && !literalQuery ? '%3F' : String.fromCharCode(byte));
    from = i + 3;
  }
  return out + path.slice(from);
}

/**
 * The normalised path of an origin-form target (query dropped), for routing.
 * `*` (OPTIONS *) is returned as it is. Throws BadRequestError (400) for a path
 * that climbs above the root, a bad %-escape or an encoded NUL.
 */
export function normalisePath(target: string): string {
  const q = target.indexOf('?');
  return canonical(q < 0 ? target : target.slice(0, q), false);
}

function canonical(raw: string, literalQuery: boolean): string {
  if (raw.charCodeAt(0) !== 0x2f /* / */) return raw;
  // Most paths have nothing to decode, no dot segment and no empty segment.
  if (raw.indexOf('%') < 0 && raw.indexOf('//') < 0 && raw.indexOf('/.') < 0) return raw;
  const segments = decode(raw, literalQuery).split('/');
  const out: string[] = [];
  // A path ending in `/`, `/.` or `/..` names a directory: it keeps its final slash.
  const last = segments[segments.length - 1]!;
  const trailing = last === '' || last === '.' || last === '..';
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '' || s === '.') continue;
    if (s === '..') {
      if (out.length === 0) throw new BadRequestError('request path climbs above the root');
      out.pop();
      continue;
    }
    out.push(s);
  }
  if (out.length === 0) return '/';
  return '/' + out.join('/') + (trailing ? '/' : '');
}

const HEX = '0123456789ABCDEF';

/** What nginx escapes again in a decoded path it sends: controls, space, `#`, `%`, `?`, DEL and non-ASCII bytes. */
function escapePath(p: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c > 0x20 && c < 0x7f && c !== 0x23 && c !== 0x25 && c !== 0x3f) continue;
    out += p.slice(from, i) + '%' + HEX[c >> 4]! + HEX[c & 15]!;
    from = i + 1;
  }
  return from === 0 ? p : out + p.slice(from);
}

/**
 * nginx's `proxy_pass` URI rule: the normalised path with its first `prefixLen`
 * characters (the location's path) replaced by `uri`, then the query (an empty
 * one dropped). The rest of a path that had a %-escape is sent decoded and
 * escaped again; a path without one, as it is. Called for a target that
 * normalisePath accepted (it cannot throw then).
 */
export function replacePrefix(target: string, prefixLen: number, uri: string): string {
  const q = target.indexOf('?');
  const raw = q < 0 ? target : target.slice(0, q);
  const quoted = raw.includes('%');
  const tail = canonical(raw, true).slice(prefixLen);
  return uri + (quoted ? escapePath(tail) : tail) + (q < 0 || q === target.length - 1 ? '' : target.slice(q));
}
