/**
 * A per-client rate as nginx's limit_req counts it: a leaky bucket of
 * `rate` requests per second that may run `burst` ahead; past that a request
 * is refused at once (nginx `nodelay`: none is queued). Times and levels are
 * kept in milli-units, as integers.
 */
export interface Rate {
  /** Requests (or connections) per second, > 0. */
  rate: number;
  /** How many may come at once beyond the rate. */
  burst: number;
}

export class Bucket {
  /** Requests over the rate still in the bucket, x1000. */
  excess = 0;
  /** Time of the last accepted request, ms. */
  last = 0;
}

/**
 * Take one request from `b` at time `now` (ms). Returns 0 when it is
 * allowed, else how many seconds until one would be (for Retry-After).
 */
export function take(b: Bucket, r: Rate, now: number): number {
  if (b.last === 0) {
    // A new client: let it in with an empty bucket (nginx's new node).
    b.last = now;
    return 0;
  }
  const elapsed = Math.max(0, now - b.last);
  // What is over the rate once this request is counted; a request at exactly the rate adds nothing.
  const excess = Math.max(0, b.excess - r.rate * elapsed + 1000);
  if (excess > r.burst * 1000) {
    // The bucket drains at `rate` per second: the time until this request would fit.
    const waitMs = (b.excess + 1000 - r.burst * 1000) / r.rate - elapsed;
    return Math.max(1, Math.ceil(waitMs / 1000));
  }
  b.excess = excess;
  b.last = now;
  return 0;
}
