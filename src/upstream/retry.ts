/**
 * When a failed try may go to the next backend (nginx `proxy_next_upstream`,
 * `proxy_next_upstream_tries`, `proxy_next_upstream_timeout`), in one place.
 *
 * Never once a byte of the response reached the client. A connect that failed
 * sent nothing: any request moves on. A request that was sent (the backend
 * accepted, then closed, reset, timed out or answered 502/503/504 before the
 * proxy passed anything on) is sent again only when that is safe: an upgrade
 * (nothing of the tunnel exists yet), or an idempotent request whose body
 * never left the proxy; a non-idempotent one only with `non_idempotent`.
 */
import type { ErrorCode } from '../errors.js';
import type { Exchange } from '../exchange.js';
import { State } from '../state.js';

export type RetryCause = 'error' | 'timeout' | 'http_502' | 'http_503' | 'http_504';

export const RETRY_CONDITIONS = ['error', 'timeout', 'http_502', 'http_503', 'http_504', 'non_idempotent'] as const;
export type RetryCondition = (typeof RETRY_CONDITIONS)[number];

export interface RetryPolicy {
  /** Causes that move on to the next backend; empty: `proxy_next_upstream off`. */
  readonly on: ReadonlySet<RetryCause>;
  /** Send non-idempotent requests (POST, PATCH, ...) again. */
  readonly nonIdempotent: boolean;
  /** Tries at most, the first included; 0: one per backend. */
  readonly tries: number;
  /** No new try this long after the first began; 0: no limit. */
  readonly timeoutMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { on: new Set(['error', 'timeout']), nonIdempotent: false, tries: 0, timeoutMs: 0 };

/** The policy of the `nextUpstream` option (`on` defaults to error and timeout). */
export function retryPolicy(o: { on?: readonly RetryCondition[]; tries?: number; timeoutMs?: number } | undefined): RetryPolicy {
  if (o === undefined) return DEFAULT_RETRY;
  const on = o.on ?? ['error', 'timeout'];
  return {
    on: new Set(on.filter((c): c is RetryCause => c !== 'non_idempotent')),
    nonIdempotent: on.includes('non_idempotent'),
    tries: o.tries ?? 0,
    timeoutMs: o.timeoutMs ?? 0,
  };
}

/** The cause a failure code stands for; null: never retried (a malformed response, a bad 101). */
export function causeOf(code: ErrorCode): RetryCause | null {
  if (code === 'WSPLICE_UPSTREAM_CONNECT' || code === 'WSPLICE_UPSTREAM_CLOSED') return 'error';
  return code === 'WSPLICE_UPSTREAM_TIMEOUT' ? 'timeout' : null;
}

/** The cause a response status stands for (http_502, http_503, http_504), or null. */
export function causeOfStatus(status: number): RetryCause | null {
  return status === 502 ? 'http_502' : status === 503 ? 'http_503' : status === 504 ? 'http_504' : null;
}

/** Methods a retry may run twice (RFC 9110 9.2.2). */
export const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** The policy allows another try after `cause`: its condition is on, within its tries (else one per backend) and its time. */
export function withinPolicy(p: RetryPolicy, cause: RetryCause | null, tries: number, backends: number, startedAt: number, now: number): boolean {
  if (cause === null || !p.on.has(cause)) return false;
  if (tries + 1 >= (p.tries > 0 ? p.tries : backends)) return false;
  return !(p.timeoutMs > 0 && now - startedAt >= p.timeoutMs);
}

/** Another try of `x` may be made after `cause` in `state`, by its route's policy (its group's unless the route sets one). */
export function mayRetry(x: Exchange, state: State, cause: RetryCause | null, now = Date.now()): boolean {
  const p = x.route.retry;
  if (x.responseStarted || !withinPolicy(p, cause, x.tries, x.group.backends.length, x.startedAt, now)) return false;
  if (state === State.Connecting) return true; // nothing was sent
  if (state !== State.AwaitHead) return false;
  return x.replayable || (p.nonIdempotent && !x.bodySent);
}
