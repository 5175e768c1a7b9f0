/**
 * Writing heads: the request head forwarded upstream, the response head
 * forwarded to the client, and the proxy's own prebuilt error responses.
 * Each head is built as one latin1 string and written as one Buffer.
 */
import type { RequestHead, ResponseHead } from './head.js';
import type { RequestInfo } from './semantics.js';
import { HOP_BY_HOP } from './semantics.js';

/** Values the proxy adds itself are checked: CR, LF and NUL can never be emitted. */
const UNSAFE_VALUE = /[\r\n\0]/;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

export function isSafeValue(v: string): boolean {
  return !UNSAFE_VALUE.test(v);
}

export function isToken(v: string): boolean {
  return TOKEN.test(v);
}

/** nginx's `$host` from a Host value: `Example.COM:8080` -> `example.com`; `[::1]:80` -> `[::1]`. */
export function hostVariable(host: string): string {
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':');
  return (end > 0 ? host.slice(0, end) : host).toLowerCase();
}

export interface ForwardPolicy {
  /** Replace Host with this value (nginx `proxy_set_header Host ...`); null keeps the client's. */
  host: string | null;
  /** With host null: send nginx's `$host` (the name lower-cased, without port) rather than the Host as sent (`$http_host`). */
  hostVariable?: boolean;
  xForwarded: boolean;
  xRealIp: boolean;
  /** Lower-case names removed from every forwarded request. */
  remove: ReadonlySet<string>;
  /** Headers set on every forwarded request (replacing the client's), already validated. */
  set: ReadonlyArray<readonly [string, string]>;
  /** Lower-case keys of `set` and `dynamic`, to drop the client's copies. */
  setKeys: ReadonlySet<string>;
  /** Headers whose value has request variables (`$host`, `$http_NAME`...), evaluated per request head; an empty result is not sent, as nginx. */
  dynamic?: ReadonlyArray<readonly [string, (v: { h: RequestHead; info: RequestInfo; remoteAddress: string; proto: string }) => string]>;
}

export interface ClientFacts {
  remoteAddress: string;
  /** Host to send when neither policy nor client gives one (an HTTP/1.0 request): the backend's address. */
  fallbackHost: string;
  /** 'http' or 'https' as seen by the client (TLS terminated in front of us). */
  proto: string;
  /** The request target to send instead of the client's (a route's `uri`); omitted: the client's. */
  target?: string;
}

const X_FORWARDED = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip']);

/**
 * The request head sent upstream: HTTP/1.1 (nginx's proxy_http_version 1.1),
 * hop-by-hop headers removed, Host per policy, X-Forwarded-* appended, then
 * Connection: close for a plain request, Connection: upgrade + Upgrade for an upgrade.
 *
 * The target is the client's own, unnormalised (absolute-form made origin-form):
 * what nginx forwards with a `proxy_pass` that has no URI part. Routing used the
 * normalised path (path.ts); the backend sees the bytes the client sent. A
 * route with a `uri` gives `client.target` instead (path.ts replacePrefix).
 *
 * A request from an HTTP/1.0 client goes up as HTTP/1.0, so that the backend
 * frames its response for a 1.0 reader (Content-Length or close, never chunked,
 * RFC 9112 6.1). nginx instead asks with 1.1 and de-chunks for the client; here
 * body bytes pass through unparsed and uncopied, which de-chunking would end, and
 * a backend that chunks anyway is answered 502 (semantics.ts responseFramingProblem).
 */
export function forwardRequestHead(h: RequestHead, info: RequestInfo, policy: ForwardPolicy, client: ClientFacts, keepAlive = false): Buffer {
  let out = `${h.method} ${client.target ?? info.path} ${h.versionMinor === 0 ? 'HTTP/1.0' : 'HTTP/1.1'}\r\n`;
  // HTTP/1.1 upstream always gets a Host; an HTTP/1.0 client may have sent none.
  const host = policy.host ?? (info.host === '' ? client.fallbackHost : policy.hostVariable === true ? hostVariable(info.host) : info.host);
  out += `Host: ${host}\r\n`;
  let xff = '';
  for (let i = 0; i < h.keys.length; i++) {
    const k = h.keys[i]!;
    if (k === 'host' || info.drop.has(k) || policy.remove.has(k) || policy.setKeys.has(k)) continue;
    if (policy.xForwarded && X_FORWARDED.has(k)) {
      // Appended to, never trusted as the last hop.
      if (k === 'x-forwarded-for') xff = xff === '' ? h.values[i]! : `${xff}, ${h.values[i]!}`;
      continue;
    }
    if (policy.xRealIp && k === 'x-real-ip') continue;
    out += `${h.names[i]!}: ${h.values[i]!}\r\n`;
  }
  if (policy.xForwarded) {
    out += `X-Forwarded-For: ${xff === '' ? client.remoteAddress : `${xff}, ${client.remoteAddress}`}\r\n`;
    out += `X-Forwarded-Proto: ${client.proto}\r\n`;
    if (info.host !== '') out += `X-Forwarded-Host: ${info.host}\r\n`;
  }
  if (policy.xRealIp) out += `X-Real-IP: ${client.remoteAddress}\r\n`;
  for (const [name, value] of policy.set) out += `${name}: ${value}\r\n`;
  if (policy.dynamic !== undefined) {
    const src = { h, info, remoteAddress: client.remoteAddress, proto: client.proto };
    for (const [name, get] of policy.dynamic) {
      const value = get(src);
      if (value !== '') out += `${name}: ${value}\r\n`;
    }
  }
  if (info.kind === 'plain') out += keepAlive ? '\r\n' : 'Connection: close\r\n\r\n'; // keepAlive: a pooled connection (nginx Connection "")
  else out += `Connection: upgrade\r\nUpgrade: ${info.protocol}\r\n\r\n`;
  return Buffer.from(out, 'latin1');
}

/**
 * The response head sent to the client for a plain exchange: hop-by-hop
 * headers removed, framing kept (bytes pass through), Connection per the
 * client connection's fate. `extra`: header lines the proxy adds (`Name: value\r\n` each).
 */
export function forwardResponseHead(res: ResponseHead, drop: ReadonlySet<string>, clientHttp11: boolean, keepAlive: boolean, extra = ''): Buffer {
  return Buffer.from(responseHeadText(res, drop, clientHttp11, keepAlive, extra), 'latin1');
}

/** forwardResponseHead as a latin1 string (one character per byte), to be written with what follows it. */
export function responseHeadText(res: ResponseHead, drop: ReadonlySet<string>, clientHttp11: boolean, keepAlive: boolean, extra = ''): string {
  let out = `HTTP/1.1 ${res.status} ${res.reason}\r\n`;
  for (let i = 0; i < res.keys.length; i++) {
    const k = res.keys[i]!;
    if (HOP_BY_HOP.has(k) || drop.has(k)) continue;
    out += `${res.names[i]!}: ${res.values[i]!}\r\n`;
  }
  out += extra;
  if (!keepAlive) out += 'Connection: close\r\n\r\n';
  else if (!clientHttp11) out += 'Connection: keep-alive\r\n\r\n';
  else out += '\r\n';
  return out;
}

/**
 * A head as the upstream sent it (a 101 goes to the client byte for byte)
 * with `extra` (CRLF-ended header lines, e.g. a sticky cookie) added before
 * its blank line. No extra: the same buffer, nothing copied.
 */
export function withHeaderLines(head: Buffer, extra: string): Buffer {
  if (extra === '') return head;
  const end = head.length - (head[head.length - 2] === 0x0d ? 2 : 1); // the blank line: CRLF, or a bare LF
  return Buffer.concat([head.subarray(0, end), Buffer.from(extra, 'latin1'), head.subarray(end)]);
}

const REASONS: Record<number, string> = {
  400: 'Bad Request', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout',
  414: 'URI Too Long', 426: 'Upgrade Required', 431: 'Request Header Fields Too Large',
  500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
  501: 'Not Implemented', 505: 'HTTP Version Not Supported',
};

/**
 * The proxy's own response: a short text body with the reason, always
 * `Connection: close` (after an error the byte stream is not trusted).
 */
export function errorResponse(status: number, reason: string, extra = ''): Buffer {
  const body = `${status} ${REASONS[status] ?? 'Error'}: ${reason.replace(/[^\x20-\x7e]/g, '?')}\n`;
  return Buffer.from(
    `HTTP/1.1 ${status} ${REASONS[status] ?? 'Error'}\r\n` +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${body.length}\r\n` +
      extra +
      'Connection: close\r\n\r\n' +
      body,
    'latin1',
  );
}
