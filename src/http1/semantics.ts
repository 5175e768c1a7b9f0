/**
 * HTTP/1.1 message semantics the engine decides itself (RFC 9110, RFC 9112):
 * version, Host, framing, the Connection/Upgrade token lists and which headers
 * are hop-by-hop. llhttp checks the syntax; this module checks the meaning.
 */
import { BadRequestError } from '../errors.js';
import { F_CHUNKED, F_CONTENT_LENGTH, F_TRANSFER_ENCODING } from './llhttp.js';
import { isIPv6 } from 'node:net';
import { count, getAll, getOne, tokens, type Head, type RequestHead, type ResponseHead } from './head.js';

/**
 * Headers that describe one connection only (RFC 9110 7.6.1), plus the obsolete
 * Proxy-Connection. Transfer-Encoding is hop-by-hop too, but body bytes pass
 * through unchanged, so their framing header must go with them.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade',
]);

/** The same and `close`: what `Connection: close` (the seed's upstream answers it every time) drops. */
const HOP_BY_HOP_AND_CLOSE: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'close']);

/** Never dropped because Connection names them: that would unframe the body or reroute it. */
const NOT_DROPPABLE: ReadonlySet<string> = new Set(['content-length', 'transfer-encoding', 'host']);

export type RequestKind = 'websocket' | 'upgrade' | 'plain';

export interface RequestInfo {
  kind: RequestKind;
  /** For kind 'upgrade': the protocol token that is tunnelled. */
  protocol: string;
  /** Lower-cased header names to drop when forwarding (hop-by-hop + Connection-named). */
  drop: ReadonlySet<string>;
  /** The client wants the connection kept after this exchange. */
  keepAlive: boolean;
  /** Host as the client sent it, or the absolute-form authority. */
  host: string;
  /** Origin-form target to forward. */
  path: string;
  hasBody: boolean;
}

// RFC 3986 reg-name / IPv4 / IP-literal, then an optional port. Deliberately strict:
// no userinfo, no spaces, no percent-encoding in a Host we route on; a reg-name is
// dot-separated non-empty labels (`..`, `.a`, `a..b` are refused, as nginx does; one
// trailing dot, the root, is allowed); an IP-literal must be a real IPv6 address.
// Checked by one scan over a byte table (every request's Host goes through here).
const LABEL_CHAR = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_~!$&'()*+;=-") LABEL_CHAR[c.charCodeAt(0)] = 1;

export function isValidHost(host: string): boolean {
  const n = host.length;
  if (n === 0 || n > 255) return false;
  if (host.charCodeAt(0) === 0x5b /* [ */) {
    const close = host.indexOf(']');
    if (close < 0 || !isIPv6(host.slice(1, close))) return false;
    if (close + 1 === n) return true;
    return host.charCodeAt(close + 1) === 0x3a /* : */ && validPort(host, close + 2);
  }
  const colon = host.lastIndexOf(':');
  const end = colon >= 0 ? colon : n;
  if (colon >= 0 && !validPort(host, colon + 1)) return false;
  // Labels of LABEL_CHAR, one dot between two, one more at the end allowed.
  let label = 0;
  for (let i = 0; i < end; i++) {
    const c = host.charCodeAt(i);
    if (c === 0x2e /* . */) {
      if (label === 0) return false;
      label = 0;
    } else if (c < 128 && LABEL_CHAR[c] === 1) label++;
    else return false;
  }
  return end > 0 && (label > 0 || host.charCodeAt(end - 1) === 0x2e);
}

/** `host[from..]` is empty or up to five digits of a number <= 65535 (RFC 3986 3.2.3: it may be empty). */
function validPort(host: string, from: number): boolean {
  const n = host.length;
  if (n - from > 5) return false;
  let v = 0;
  for (let i = from; i < n; i++) {
    const d = host.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return false;
    v = v * 10 + d;
  }
  return v <= 65535;
}

/**
 * Connection-specific header names to drop: the fixed hop-by-hop list and
 * every name listed in Connection (RFC 9110 7.6.1; `connection`: its tokens).
 * Most heads name nothing beyond the fixed list (`keep-alive`, `upgrade`)
 * but `close`: they share one of two fixed sets, and no set is built per head.
 */
export function dropSet(h: Head, connection: readonly string[] = tokens(h, 'connection')): ReadonlySet<string> {
  let drop: Set<string> | null = null;
  let close = false;
  for (const t of connection) {
    if (HOP_BY_HOP.has(t) || NOT_DROPPABLE.has(t)) continue;
    if (t === 'close' && drop === null) close = true;
    else (drop ??= new Set(close ? HOP_BY_HOP_AND_CLOSE : HOP_BY_HOP)).add(t);
  }
  return drop ?? (close ? HOP_BY_HOP_AND_CLOSE : HOP_BY_HOP);
}

/**
 * What is wrong with the Transfer-Encoding lines of a head (null: nothing, or
 * none present), as a status and a reason. Only one line of exactly `chunked`
 * is framed by (nginx): a second line, even empty, is a header some peer may
 * read instead of ours (the last one, say) and is refused with 400, as is a
 * list not ending in `chunked` (RFC 9112 6.1). Other codings before `chunked`
 * (`gzip, chunked`, `identity, chunked`) are well-formed but not implemented:
 * 501, as nginx answers them. Tokens are read per line, so an empty line or
 * element (which llhttp's F_TRANSFER_ENCODING does not flag) cannot hide; RFC
 * 9110 5.6.1 would have empty list elements ignored, but for the one header
 * that frames the body any reading but the obvious one is refused.
 */
export function transferEncodingProblem(h: Head): readonly [400 | 501, string] | null {
  const lines = getAll(h, 'transfer-encoding');
  if (lines.length === 0) return null;
  if (lines.length > 1) return [400, 'more than one Transfer-Encoding line'];
  const te = lines[0]!.split(',').map((t) => t.trim().toLowerCase());
  if (te.includes('')) return [400, 'empty Transfer-Encoding element'];
  if (te[te.length - 1] !== 'chunked') return [400, 'Transfer-Encoding must end in chunked'];
  if (te.indexOf('chunked') !== te.length - 1) return [400, 'chunked applied more than once'];
  if (h.flags & F_CONTENT_LENGTH) return [400, 'Content-Length with Transfer-Encoding'];
  if (te.length > 1) return [501, `transfer coding ${te[0]} is not implemented`];
  if (!(h.flags & F_CHUNKED)) return [400, 'unrecognised Transfer-Encoding'];
  return null;
}

function checkTransferEncoding(h: Head): void {
  const bad = transferEncodingProblem(h);
  if (bad === null) return;
  if (bad[0] === 501) throw new BadRequestError(bad[1], 'WSPLICE_NOT_IMPLEMENTED');
  throw new BadRequestError(bad[1]);
}

/** HTTP/1.0 and 1.1 only; CONNECT and the HTTP/2 preface are not served here. */
function checkVersionAndMethod(h: RequestHead): void {
  if (h.versionMajor !== 1 || (h.versionMinor !== 0 && h.versionMinor !== 1)) {
    if (h.versionMajor === 0) throw new BadRequestError('HTTP/0.9 is not served');
    throw new BadRequestError(`HTTP/${h.versionMajor}.${h.versionMinor} is not supported`, 'WSPLICE_VERSION', 505);
  }
  if (h.method === 'CONNECT') throw new BadRequestError('CONNECT is not served', 'WSPLICE_METHOD', 405);
  if (h.method === 'PRI') throw new BadRequestError('HTTP/2 preface on an HTTP/1 listener');
}

/** Request target (RFC 9112 3.2): origin-form, absolute-form, or * for OPTIONS. */
function requestTarget(h: RequestHead): { path: string; authority: string | undefined } {
  let path = h.target;
  let authority: string | undefined;
  if (path.charCodeAt(0) !== 0x2f /* / */) {
    if (path === '*') {
      if (h.method !== 'OPTIONS') throw new BadRequestError('asterisk-form target outside OPTIONS');
    } else {
      const m = /^(https?):\/\/([^/?#]*)([^#]*)$/i.exec(path);
      if (m === null) throw new BadRequestError('invalid request target');
      authority = m[2]!;
      if (authority.includes('@')) throw new BadRequestError('userinfo in request target');
      path = m[3] === '' ? '/' : m[3]!;
      if (path.charCodeAt(0) !== 0x2f) path = '/' + path; // "http://h?q" -> "/?q"
    }
  }
  if (path.includes('#')) throw new BadRequestError('fragment in request target');
  return { path, authority };
}

/** Host (RFC 9112 3.2): exactly one in HTTP/1.1; the absolute-form authority wins. */
function requestHost(h: RequestHead, http11: boolean, authority: string | undefined): string {
  const hostCount = count(h, 'host');
  if (hostCount > 1) throw new BadRequestError('more than one Host header');
  if (http11 && hostCount === 0) throw new BadRequestError('missing Host header');
  const host = hostCount === 1 ? (getOne(h, 'host') as string) : '';
  if (hostCount === 1 && !isValidHost(host)) throw new BadRequestError('invalid Host header');
  if (authority === undefined) return host;
  if (!isValidHost(authority)) throw new BadRequestError('invalid authority in request target');
  return authority;
}

/** Upgrade (RFC 9110 7.8): only with the `upgrade` Connection token, in HTTP/1.1. */
function upgradeKind(h: RequestHead, conn: string[], tunnelProtocols: ReadonlySet<string>): { kind: RequestKind; protocol: string } {
  if (h.versionMinor !== 1 || !conn.includes('upgrade')) return { kind: 'plain', protocol: '' };
  const offered = tokens(h, 'upgrade');
  if (offered.includes('websocket') && h.method === 'GET') return { kind: 'websocket', protocol: 'websocket' };
  for (const p of offered) if (tunnelProtocols.has(p)) return { kind: 'upgrade', protocol: p };
  return { kind: 'plain', protocol: '' };
}

/**
 * Validate a request head and say what kind of exchange it starts.
 * Throws BadRequestError (400/405/505) with a short reason.
 * `tunnelProtocols`: lower-case Upgrade tokens (other than websocket) that may be tunnelled.
 */
export function classifyRequest(h: RequestHead, tunnelProtocols: ReadonlySet<string>): RequestInfo {
  checkVersionAndMethod(h);
  const http11 = h.versionMinor === 1;
  const { path, authority } = requestTarget(h);
  const host = requestHost(h, http11, authority);

  // Framing. llhttp already refuses CL+TE, differing/duplicate CL, bad chunk sizes.
  if (h.flags & F_TRANSFER_ENCODING || count(h, 'transfer-encoding') > 0) {
    if (!http11) throw new BadRequestError('Transfer-Encoding in an HTTP/1.0 request');
    checkTransferEncoding(h);
  }
  const hasBody = (h.flags & F_CHUNKED) !== 0 || ((h.flags & F_CONTENT_LENGTH) !== 0 && h.contentLength > 0);

  const conn = tokens(h, 'connection');
  const keepAlive = http11 ? !conn.includes('close') : conn.includes('keep-alive');
  const { kind, protocol } = upgradeKind(h, conn, tunnelProtocols);
  return { kind, protocol, drop: dropSet(h, conn), keepAlive, host, path, hasBody };
}

/**
 * What makes a response head unusable for this request (null: nothing); the
 * exchange answers 502 instead. A status below 100. The request-side framing rules hold for
 * responses too: a second or empty Transfer-Encoding line, or a coding other
 * than `chunked`, is framing some client may read otherwise. A request from an
 * HTTP/1.0 client went upstream as HTTP/1.0, and a server must not send
 * Transfer-Encoding to it (RFC 9112 6.1): the 1.0 client could not read it.
 */
export function responseFramingProblem(res: ResponseHead, requestMinor: number): string | null {
  // llhttp reads `080` as 80: forwarded, it would be a two-digit status no client parses.
  if (res.status < 100) return `status ${res.status} is not three digits`;
  if (count(res, 'transfer-encoding') === 0) return null;
  if (requestMinor === 0) return 'Transfer-Encoding in a response to an HTTP/1.0 request';
  const bad = transferEncodingProblem(res);
  if (bad !== null) return `response ${bad[1]}`;
  return null;
}

/** A response carries no body for these (RFC 9110 6.4.1). */
export function responseHasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || (status >= 100 && status < 200) || status === 204 || status === 304;
}
