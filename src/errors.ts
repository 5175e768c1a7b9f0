/**
 * Every failure the proxy names, as one table: its stable code, the status of
 * the proxy's own answer, extra header lines of that answer, whether it counts
 * against the backend that caused it, and the event it is reported as. The
 * code is what logs, events and tests match on; the message is for people.
 */

export interface ErrorRow {
  /** Status of the proxy's own answer; 0: no answer is sent, the connection is closed. */
  readonly status: number;
  /** Header lines (each ending in CRLF) added to that answer. */
  readonly headers: string;
  /** Counts against the backend (nginx max_fails). */
  readonly backend: boolean;
  /** The event it is reported as; null: not reported (the peer went away, nothing to tell). */
  readonly event: 'refused' | 'upstreamError' | null;
  /** A fixed body text for the client instead of the reason (upstream details stay private). */
  readonly text?: string;
}

const refused = (status: number, headers = ''): ErrorRow => ({ status, headers, backend: false, event: 'refused' });
const upstream = (status: number, text: string): ErrorRow => ({ status, headers: '', backend: true, event: 'upstreamError', text });
const quiet = (backend = false): ErrorRow => ({ status: 0, headers: '', backend, event: null });

export const ERRORS = {
  WSPLICE_BAD_REQUEST: refused(400),                  // malformed or ambiguous request head or body framing
  WSPLICE_HEAD_TOO_LARGE: refused(431),               // head over maxHeadBytes / maxHeaders
  WSPLICE_URI_TOO_LONG: refused(414),                 // request target over maxUriBytes
  WSPLICE_VERSION: refused(505),                      // not HTTP/1.0 or 1.1
  WSPLICE_METHOD: refused(405),                       // CONNECT and the like
  WSPLICE_NOT_IMPLEMENTED: refused(501),              // a transfer coding other than chunked (gzip, chunked)
  WSPLICE_BAD_HANDSHAKE: refused(400),                // WebSocket client handshake refused
  WSPLICE_WS_VERSION: refused(426, 'Sec-WebSocket-Version: 13\r\n'), // Sec-WebSocket-Version not 13
  WSPLICE_NO_ROUTE: refused(404),                     // no location matched
  WSPLICE_FORBIDDEN: refused(403),                    // a location's deny rule matched the client
  WSPLICE_RETURN: quiet(),                            // a location's own answer (return): its status and text, not a failure
  WSPLICE_CLIENT_TIMEOUT: refused(408),               // client head not complete in time
  WSPLICE_EARLY_DATA_OVERFLOW: refused(0),            // more than the cap sent before the tunnel opened: closed
  WSPLICE_CLIENT_ABORTED: quiet(),                    // the client cut its request body short
  WSPLICE_CLIENT_GONE: quiet(),                       // the client left before its upgrade completed
  WSPLICE_UPSTREAM_CONNECT: upstream(502, 'upstream failed'),   // refused / unreachable
  WSPLICE_UPSTREAM_TIMEOUT: upstream(504, 'upstream timed out'), // connect or response head timeout
  WSPLICE_UPSTREAM_PROTOCOL: upstream(502, 'upstream failed'),  // malformed response or failed 101 validation
  WSPLICE_UPSTREAM_CLOSED: upstream(502, 'upstream failed'),    // closed or reset before a complete response head
  WSPLICE_UPSTREAM_ABORTED: quiet(),                  // the response broke off mid-body: the client is reset
  WSPLICE_UPSTREAM_FULL: refused(503, 'Retry-After: 1\r\n'), // every backend down, unhealthy or at max_conns
  WSPLICE_OVERLOADED: refused(503),                   // parser budget (limits.maxParsers) spent
  WSPLICE_PROXY_PROTOCOL: refused(0),                 // PROXY header missing, malformed or untrusted: closed
  WSPLICE_TLS_HANDSHAKE: refused(0),                  // TLS handshake failed (reason from OpenSSL or the client certificate)
  WSPLICE_CLIENT_LIMIT: refused(503, 'Retry-After: 1\r\n'), // per-client connection or request limit (429 or 503 as configured)
  WSPLICE_CONFIG: quiet(),                            // invalid options or config file
  WSPLICE_EMBED_MISUSE: quiet(),                      // proxy.ws/proxy.web given a socket or response they cannot take
} as const satisfies Record<string, ErrorRow>;

export type ErrorCode = keyof typeof ERRORS;

export class WspliceError extends Error {
  readonly code: ErrorCode;
  /** HTTP status sent to the client for this refusal, when one is sent (0: none). */
  readonly status: number;
  /** A whole answer to send as is (a location's `return` or `deny`), instead of one built from the status. */
  readonly response?: Buffer;
  constructor(code: ErrorCode, message: string, status: number = ERRORS[code].status) {
    super(message);
    this.name = 'WspliceError';
    this.code = code;
    this.status = status;
  }
}

export class BadRequestError extends WspliceError {
  constructor(reason: string, code: ErrorCode = 'WSPLICE_BAD_REQUEST', status: number = ERRORS[code].status) {
    super(code, reason, status);
    this.name = 'BadRequestError';
  }
}

/** A WebSocket handshake refused, the client's (400, 426) or the upstream's 101 (502). */
export class HandshakeError extends WspliceError {
  constructor(code: 'WSPLICE_BAD_HANDSHAKE' | 'WSPLICE_WS_VERSION' | 'WSPLICE_UPSTREAM_PROTOCOL', reason: string) {
    super(code, reason);
    this.name = 'HandshakeError';
  }
}

export class UpstreamError extends WspliceError {
  /** The backend address that failed (host:port or unix path). */
  readonly backend: string;
  constructor(code: ErrorCode, backend: string, reason: string) {
    super(code, `${backend}: ${reason}`);
    this.name = 'UpstreamError';
    this.backend = backend;
  }
}

export class ConfigError extends WspliceError {
  /** Dotted path of the offending field, e.g. `routes[1].upstream`. */
  readonly field: string;
  constructor(field: string, message: string) {
    super('WSPLICE_CONFIG', field ? `${field}: ${message}` : message);
    this.name = 'ConfigError';
    this.field = field;
  }
}
