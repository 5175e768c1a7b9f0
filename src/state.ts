/**
 * The client connection's states, and the two questions every state answers
 * in one place: how long may it last (`timeoutFor`), and what does a failure
 * in it lead to (`decide`).
 *
 *   HeadIdle -> HeadReading -> Connecting -> AwaitHead -> Streaming -> HeadIdle (keep-alive)
 *                                  ^  retry     |  \--(valid 101)--> Tunnel
 *                                  \------------/
 *   any state --(answer or close)--> Lingering -> Closed;   --(reset or drop)--> Closed
 *
 * The request body may still be streaming in Connecting, AwaitHead and Streaming
 * (`Exchange.bodyDone` is false): it is forwarded as it comes.
 */
import { ERRORS, type ErrorCode } from './errors.js';
import { Limit } from './http1/llhttp.js';
import type { TimeoutConfig } from './options.js';

export const enum State {
  /** Between requests, or before a fresh connection's first byte. */
  HeadIdle = 0,
  /** Part of a request head has arrived. */
  HeadReading = 1,
  /** Connecting to a backend. */
  Connecting = 2,
  /** The request head went upstream; waiting for the response head (or the 101). */
  AwaitHead = 3,
  /** The response head went to the client; its body is flowing. */
  Streaming = 4,
  /** The relay owns both sockets. */
  Tunnel = 5,
  /** The last answer is written; the client has a moment to read it. */
  Lingering = 6,
  Closed = 7,
}

export const STATE_NAMES = ['head-idle', 'head-reading', 'connecting', 'await-head', 'streaming', 'tunnel', 'lingering', 'closed'] as const;

/** How long a connection we answered and half-closed may linger for the client to read it. */
export const LINGER_MS = 2_000;

/** `timeoutFor`'s answer when the running deadline goes on (the first head's runs from accept). */
export const KEEP = -1;

/**
 * The state's timeout in ms (0: none). The single place a deadline is chosen,
 * so a reader never has to find where a timer was armed.
 */
export function timeoutFor(state: State, t: Required<TimeoutConfig>, firstHead: boolean, sending = false): number {
  switch (state) {
    case State.HeadIdle: return firstHead ? t.headMs : t.keepAliveMs;
    case State.HeadReading: return firstHead ? KEEP : t.headMs;
    case State.Connecting: return t.connectMs;
    case State.AwaitHead: return sending ? t.sendMs : t.responseMs; // sending: the body is still going up (refreshed by each write)
    case State.Streaming: return t.responseMs; // refreshed by every upstream read
    case State.Lingering: return LINGER_MS;
    default: return 0; // Tunnel: the relay's idle timeout; Closed
  }
}

/** What a state's deadline means when it passes: the code, its reason; null: close quietly. `sending`: as in timeoutFor. */
export function expiry(state: State, sending = false): readonly [ErrorCode, string] | null {
  switch (state) {
    case State.HeadReading: return HEAD_LATE;
    case State.Connecting: return CONNECT_LATE;
    case State.AwaitHead: return sending ? SEND_LATE : RESPONSE_LATE;
    case State.Streaming: return STALLED;
    default: return null; // HeadIdle: an idle keep-alive connection; Lingering: time is up
  }
}

const HEAD_LATE = ['WSPLICE_CLIENT_TIMEOUT', 'request head not received in time'] as const;
const CONNECT_LATE = ['WSPLICE_UPSTREAM_TIMEOUT', 'connect timed out'] as const;
const RESPONSE_LATE = ['WSPLICE_UPSTREAM_TIMEOUT', 'response head timed out'] as const;
const SEND_LATE = ['WSPLICE_UPSTREAM_TIMEOUT', 'sending the request body timed out (the upstream stopped reading)'] as const;
const STALLED = ['WSPLICE_UPSTREAM_ABORTED', 'response stalled'] as const;

export const enum Verdict {
  /** Try the next backend: nothing of the response reached the client. */
  Retry = 0,
  /** The proxy's own answer (ERRORS[code].status), then close and linger. */
  Answer = 1,
  /** A quiet FIN, then linger. */
  Close = 2,
  /** RST both ends: a message is half-sent, nothing clean is possible. */
  Reset = 3,
  /** Destroy now: the peer is gone or abusive. */
  Drop = 4,
}

/**
 * What failure `code` leads to in `state`. `canRetry`: another backend may be
 * tried for this request (the connection knows tries, method and body).
 */
export function decide(state: State, code: ErrorCode, canRetry: boolean): Verdict {
  switch (state) {
    case State.HeadIdle:
      return Verdict.Close; // a FIN or the keep-alive timeout between requests
    case State.HeadReading:
      return ERRORS[code].status > 0 ? Verdict.Answer : Verdict.Drop;
    case State.Connecting:
    case State.AwaitHead:
      if (code === 'WSPLICE_CLIENT_ABORTED') return Verdict.Reset; // a cut body must not pass for a whole one
      if (code === 'WSPLICE_CLIENT_GONE' || code === 'WSPLICE_EARLY_DATA_OVERFLOW') return Verdict.Drop;
      if (ERRORS[code].backend && canRetry) return Verdict.Retry;
      return ERRORS[code].status > 0 ? Verdict.Answer : Verdict.Drop;
    case State.Streaming:
      return Verdict.Reset;
    default:
      return Verdict.Drop; // Tunnel (the relay owns it), Lingering, Closed
  }
}

/** What a request the parser refused is answered with (`inBody`: the head had been read). */
export function parseFailure(limit: Limit, reason: string, inBody: boolean): [ErrorCode, string] {
  if (limit === Limit.HeadTooLarge) return ['WSPLICE_HEAD_TOO_LARGE', 'request head too large'];
  if (limit === Limit.TooManyHeaders) return ['WSPLICE_HEAD_TOO_LARGE', reason];
  if (limit === Limit.UriTooLong) return ['WSPLICE_URI_TOO_LONG', reason];
  return ['WSPLICE_BAD_REQUEST', inBody ? `malformed request body: ${reason}` : `malformed request: ${reason}`];
}
