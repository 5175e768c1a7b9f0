/**
 * RFC 6455 section 4 handshake rules, as guard lists with one reason per
 * refusal: the client's request is checked before any upstream is touched,
 * the upstream's 101 before any byte is tunnelled. Every check returns its
 * refusal, or null when the message is acceptable.
 */
import { hash } from 'node:crypto';
import { HandshakeError } from '../errors.js';
import { count, getOne, tokens, type RequestHead, type ResponseHead } from '../http1/head.js';
import { F_CHUNKED, F_CONTENT_LENGTH } from '../http1/llhttp.js';

export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** base64(SHA-1(key + GUID)); crypto.hash is the one-shot form, without a Hash object per handshake. */
export function acceptFor(key: string): string {
  return hash('sha1', key + WS_GUID, 'base64');
}

const KEY_RE = /^[A-Za-z0-9+/]{22}==$/;

export interface ClientHandshake {
  key: string;
  /** Subprotocols the client offered (Sec-WebSocket-Protocol tokens), case preserved. */
  protocols: string[];
  /** Extension names the client offered (lower case). */
  extensions: string[];
}

function listValues(h: RequestHead | ResponseHead, key: string, lower: boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < h.keys.length; i++) {
    if (h.keys[i] !== key) continue;
    for (const part of h.values[i]!.split(',')) {
      const t = part.trim();
      if (t !== '') out.push(lower ? t.toLowerCase() : t);
    }
  }
  return out;
}

/** Extension names only: `permessage-deflate; client_max_window_bits` -> `permessage-deflate`. */
function extensionNames(h: RequestHead | ResponseHead): string[] {
  return listValues(h, 'sec-websocket-extensions', true).map((e) => e.split(';')[0]!.trim());
}

/**
 * Validate the client's opening handshake (RFC 6455 4.2.1). The caller has
 * already checked GET, HTTP/1.1, Host, Connection: upgrade and Upgrade: websocket.
 * Returns null when it is acceptable, else the refusal (400, or 426 for the version).
 */
export function checkClientHandshake(h: RequestHead): HandshakeError | null {
  const versions = count(h, 'sec-websocket-version');
  if (versions !== 1 || getOne(h, 'sec-websocket-version') !== '13') {
    return new HandshakeError('WSPLICE_WS_VERSION', versions === 0 ? 'missing Sec-WebSocket-Version' : 'unsupported Sec-WebSocket-Version');
  }
  const key = getOne(h, 'sec-websocket-key');
  if (key === undefined) return bad('missing Sec-WebSocket-Key');
  if (key === null) return bad('more than one Sec-WebSocket-Key');
  // 16 bytes base64-encode to exactly 22 characters and "==".
  if (!KEY_RE.test(key) || Buffer.from(key, 'base64').length !== 16) return bad('Sec-WebSocket-Key is not 16 base64-encoded bytes');
  if (h.flags & F_CHUNKED || count(h, 'transfer-encoding') > 0) return bad('body on an upgrade request');
  if (h.flags & F_CONTENT_LENGTH && h.contentLength > 0) return bad('body on an upgrade request');
  return null;
}

function bad(reason: string): HandshakeError {
  return new HandshakeError('WSPLICE_BAD_HANDSHAKE', reason);
}

/** What the upstream's 101 is checked against; read once `checkClientHandshake` passed. */
export function readClientHandshake(h: RequestHead): ClientHandshake {
  return {
    key: getOne(h, 'sec-websocket-key') as string,
    protocols: listValues(h, 'sec-websocket-protocol', false),
    extensions: extensionNames(h),
  };
}

/**
 * Validate the upstream's 101 (RFC 6455 4.1, client side). Returns null when
 * the tunnel may open, else the refusal (502, counted against the backend).
 */
export function checkUpstreamAccept(res: ResponseHead, client: ClientHandshake): HandshakeError | null {
  const why = acceptProblem(res, client);
  return why === null ? null : new HandshakeError('WSPLICE_UPSTREAM_PROTOCOL', `upgrade refused: ${why}`);
}

function acceptProblem(res: ResponseHead, client: ClientHandshake): string | null {
  if (res.status !== 101) return `status ${res.status}`;
  if (res.versionMajor !== 1 || res.versionMinor !== 1) return '101 not in HTTP/1.1';
  const upgrade = tokens(res, 'upgrade');
  if (upgrade.length !== 1 || upgrade[0] !== 'websocket') return 'Upgrade is not websocket';
  if (!tokens(res, 'connection').includes('upgrade')) return 'Connection lacks upgrade';
  const accept = getOne(res, 'sec-websocket-accept');
  if (accept === undefined) return 'missing Sec-WebSocket-Accept';
  if (accept === null) return 'more than one Sec-WebSocket-Accept';
  if (accept !== acceptFor(client.key)) return 'Sec-WebSocket-Accept does not match the key';
  const proto = listValues(res, 'sec-websocket-protocol', false);
  if (proto.length > 1) return 'more than one subprotocol selected';
  if (proto.length === 1 && !client.protocols.includes(proto[0]!)) return 'subprotocol not offered by the client';
  for (const ext of extensionNames(res)) {
    if (!client.extensions.includes(ext)) return `extension ${ext} not offered by the client`;
  }
  return null;
}

/** A non-WebSocket upgrade (an allow-listed protocol): the 101 must name it and carry the upgrade token. */
export function checkGenericUpgrade(res: ResponseHead, protocol: string): HandshakeError | null {
  const up = tokens(res, 'upgrade');
  if (up.length !== 1 || up[0] !== protocol) return new HandshakeError('WSPLICE_UPSTREAM_PROTOCOL', 'upgrade refused: Upgrade does not match the protocol asked for');
  if (!tokens(res, 'connection').includes('upgrade')) return new HandshakeError('WSPLICE_UPSTREAM_PROTOCOL', 'upgrade refused: Connection lacks upgrade');
  return null;
}
