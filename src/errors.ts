/**
 * Error classes with stable `code`s. Each refusal the proxy makes to a peer
 * maps to one code and one HTTP status; the code is what logs, events and
 * tests match on, the message is for people.
 */

export type ErrorCode =
  | 'WSPLICE_BAD_REQUEST'          // malformed or ambiguous request head -> 400
  | 'WSPLICE_HEAD_TOO_LARGE'       // head over maxHeadBytes / maxHeaders -> 431
  | 'WSPLICE_URI_TOO_LONG'         // request target over maxUriBytes -> 414
  | 'WSPLICE_VERSION'              // not HTTP/1.0 or 1.1 -> 505
  | 'WSPLICE_METHOD'               // CONNECT and the like -> 405
  | 'WSPLICE_BAD_HANDSHAKE'        // WebSocket client handshake refused -> 400
  | 'WSPLICE_WS_VERSION'           // Sec-WebSocket-Version not 13 -> 426
  | 'WSPLICE_NO_ROUTE'             // no location matched -> 404
  | 'WSPLICE_CLIENT_TIMEOUT'       // client head not complete in time -> 408
  | 'WSPLICE_UPSTREAM_CONNECT'     // upstream refused / unreachable -> 502
  | 'WSPLICE_UPSTREAM_TIMEOUT'     // connect or response head timeout -> 504
  | 'WSPLICE_UPSTREAM_PROTOCOL'    // malformed response or failed 101 validation -> 502
  | 'WSPLICE_UPSTREAM_CLOSED'      // upstream closed before a complete response -> 502
  | 'WSPLICE_OVERLOADED'           // parser budget (limits.maxParsers) spent -> 503
  | 'WSPLICE_EARLY_DATA_OVERFLOW'  // client pushed more than the cap before the tunnel opened
  | 'WSPLICE_PROXY_PROTOCOL'       // PROXY header missing, malformed or untrusted: closed
  | 'WSPLICE_TLS_HANDSHAKE'        // TLS handshake failed (reason from OpenSSL or the client certificate)
  | 'WSPLICE_CLIENT_LIMIT'         // per-client connection or request limit -> 503 / 429 with Retry-After
  | 'WSPLICE_CONFIG';              // invalid options or config file

export class WspliceError extends Error {
  readonly code: ErrorCode;
  /** HTTP status sent to the client for this refusal, when one is sent. */
  readonly status: number;
  constructor(code: ErrorCode, status: number, message: string) {
    super(message);
    this.name = 'WspliceError';
    this.code = code;
    this.status = status;
  }
}

export class BadRequestError extends WspliceError {
  constructor(reason: string, code: ErrorCode = 'WSPLICE_BAD_REQUEST', status = 400) {
    super(code, status, reason);
    this.name = 'BadRequestError';
  }
}

export class HandshakeError extends WspliceError {
  constructor(reason: string, versionMismatch = false) {
    super(versionMismatch ? 'WSPLICE_WS_VERSION' : 'WSPLICE_BAD_HANDSHAKE', versionMismatch ? 426 : 400, reason);
    this.name = 'HandshakeError';
  }
}

export class UpstreamError extends WspliceError {
  /** The backend address that failed (host:port or unix path). */
  readonly backend: string;
  constructor(code: ErrorCode, status: number, backend: string, reason: string) {
    super(code, status, `${backend}: ${reason}`);
    this.name = 'UpstreamError';
    this.backend = backend;
  }
}

export class ConfigError extends WspliceError {
  /** Dotted path of the offending field, e.g. `routes[1].upstream`. */
  readonly field: string;
  constructor(field: string, message: string) {
    super('WSPLICE_CONFIG', 0, field ? `${field}: ${message}` : message);
    this.name = 'ConfigError';
    this.field = field;
  }
}
