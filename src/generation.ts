/**
 * One configuration generation: what a set of resolved options turns into
 * (upstream groups, router, parser pools, per-client limiter, upstream TLS).
 * The proxy builds one at start and one per reload; a connection keeps the
 * generation it was accepted under, so a reload never changes an open
 * exchange or tunnel. Building checks everything before anything is swapped.
 */
import { ConfigError } from './errors.js';
import { ParserPool, TYPE_REQUEST, TYPE_RESPONSE } from './http1/llhttp.js';
import { ClientLimiter } from './limits/limiter.js';
import type { ResolvedOptions } from './options.js';
import { Router } from './router.js';
import { UpstreamTls } from './tls/upstream.js';
import type { BackendTransition, UpstreamGroup } from './upstream/group.js';
import { UpstreamPool } from './upstream/pool.js';
import { startUpstreams, type UpstreamRuntime } from './upstream/runtime.js';

export interface Generation {
  readonly options: ResolvedOptions;
  readonly groups: ReadonlyMap<string, UpstreamGroup>;
  /** The groups with their health checkers and DNS refreshers running; stop() when replaced. */
  readonly upstreams: UpstreamRuntime;
  readonly router: Router;
  readonly requestParsers: ParserPool;
  readonly responseParsers: ParserPool;
  readonly limiter: ClientLimiter | null;
  readonly upstreamTls: ReadonlyMap<string, UpstreamTls>;
  /** Keep-alive pools by upstream group (new per generation: pooled sockets belong to its backends). */
  readonly pools: ReadonlyMap<string, UpstreamPool>;
}

/**
 * The pieces for `options`. Parser pools and the limiter are taken over from
 * `previous` when their settings did not change (the limiter's per-client
 * counts then survive a reload). Throws ConfigError for an unreadable TLS file.
 */
export function buildGeneration(options: ResolvedOptions, previous: Generation | null, onTransition: (t: BackendTransition) => void = () => {}): Generation {
  const upstreamTls = upstreamTlsOf(options);
  const upstreams = startUpstreams(options.upstreams, onTransition); // last: nothing after it throws
  const groups = upstreams.groups;
  const sameLimits = previous !== null && sameJson(previous.options.limits, options.limits);
  const sameClientLimits = previous !== null && sameJson(previous.options.clientLimits, options.clientLimits);
  const pools = sameLimits ? previous : parserPools(options);
  return {
    options,
    groups,
    upstreams,
    router: new Router(options.routes, groups),
    requestParsers: pools.requestParsers,
    responseParsers: pools.responseParsers,
    limiter: sameClientLimits ? previous.limiter : options.clientLimits !== null ? new ClientLimiter(options.clientLimits) : null,
    upstreamTls,
    pools: poolsOf(options),
  };
}

/** A keep-alive pool per upstream group with `keepalive`; not with sendProxy (a PROXY header names one client). */
function poolsOf(options: ResolvedOptions): Map<string, UpstreamPool> {
  const out = new Map<string, UpstreamPool>();
  for (const [name, u] of options.upstreams) if (u.keepalive !== null && u.sendProxy === null) out.set(name, new UpstreamPool(u.keepalive));
  return out;
}

function parserPools(options: ResolvedOptions): Pick<Generation, 'requestParsers' | 'responseParsers'> {
  const limits = {
    maxHeadBytes: options.limits.maxHeadBytes,
    maxHeaders: options.limits.maxHeaders,
    maxUriBytes: options.limits.maxUriBytes,
  };
  return {
    requestParsers: new ParserPool(TYPE_REQUEST, limits, options.limits.maxParsers),
    responseParsers: new ParserPool(TYPE_RESPONSE, { ...limits, maxHeaders: Math.max(limits.maxHeaders, 200) }, options.limits.maxParsers),
  };
}

/** Resolved option sections are plain data (numbers, strings, arrays): equal JSON is equal settings. */
function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** A TLS client context per upstream group with `tls`; a bad file is a ConfigError naming the group. */
function upstreamTlsOf(options: ResolvedOptions): Map<string, UpstreamTls> {
  const out = new Map<string, UpstreamTls>();
  for (const [name, u] of options.upstreams) {
    if (u.tls === null) continue;
    try {
      out.set(name, new UpstreamTls(u.tls));
    } catch (err) {
      throw new ConfigError(`upstreams.${name}.tls`, (err as Error).message);
    }
  }
  return out;
}
