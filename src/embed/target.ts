/**
 * The per-call options of `proxy.ws` and `proxy.web` (http-proxy's names), and
 * what they turn into: the upstream group to use instead of the route's, and
 * the forwarding and timeout options of this one exchange, laid over the
 * route's own. Option errors are ConfigErrors naming the field, raised before
 * the socket is touched.
 */
import { ConfigError } from '../errors.js';
import { isSafeValue, isToken, type ForwardPolicy } from '../http1/serialize.js';
import type { ResolvedOptions } from '../options.js';
import type { Route, Routes } from '../router.js';
import { parseAddress, UpstreamGroup, type BackendAddress } from '../upstream/group.js';

export interface EmbedOptions {
  /**
   * Where to send this request instead of the route's upstream: an upstream name from the proxy's
   * options, `host:port`, `unix:/path`, or a URL (`http://`, `ws://`; its path is not used).
   */
  target?: string | URL;
  /** Send the target's `host:port` as Host instead of the client's (http-proxy `changeOrigin`). */
  changeOrigin?: boolean;
  /** X-Forwarded-For/-Proto/-Host on this request (http-proxy `xfwd`); default: the proxy's `forwarding.xForwarded`. */
  xfwd?: boolean;
  /** Headers set on the forwarded request, replacing the client's (http-proxy `headers`). */
  headers?: Record<string, string>;
  /** Upstream response head timeout for this request, ms (http-proxy `proxyTimeout`); default `timeouts.responseMs`. */
  proxyTimeout?: number;
}

/** What one call runs with. */
export interface EmbedPlan {
  /** The group to use; null: route the request as a listener does. */
  group: UpstreamGroup | null;
  options: ResolvedOptions;
  /** The call's forwarding and timeout options over a route's (null: the route's as they are). */
  adjust: ((r: Route) => Route) | null;
}

/** The route of a `target` group: every path, the global forwarding and timeouts, the group's retries. */
const targetRoutes = new WeakMap<UpstreamGroup, Route>();
function targetRoute(group: UpstreamGroup, o: ResolvedOptions): Route {
  let r = targetRoutes.get(group);
  if (r === undefined) {
    r = { path: '/', match: 'prefix', regex: null, group, ret: null, access: null, uri: null, forward: o.forward, timeouts: o.timeouts, retry: group.retry, children: null, slashRedirect: false };
    targetRoutes.set(group, r);
  }
  return r;
}

/** The routes a call sees: its target's one route, or the proxy's, with the call's options over them. */
export function planRoutes(base: Routes, plan: EmbedPlan): Routes {
  if (plan.group === null && plan.adjust === null) return base;
  const adjust = plan.adjust ?? ((r: Route): Route => r);
  const fixed = plan.group === null ? null : adjust(targetRoute(plan.group, plan.options));
  return {
    route(host, target) {
      if (fixed !== null) return fixed;
      const r = base.route(host, target);
      return r === null ? null : adjust(r);
    },
  };
}

/** Groups made for `target` strings, kept so their failure counts last across calls (bounded). */
const MAX_TARGET_GROUPS = 256;

export class TargetGroups {
  private readonly made = new Map<string, UpstreamGroup>();

  constructor(
    private readonly base: ResolvedOptions,
    private readonly named: ReadonlyMap<string, UpstreamGroup>,
  ) {}

  /** The plan for `o` (undefined: the proxy's own options and routes). Throws ConfigError. */
  plan(o: EmbedOptions | undefined): EmbedPlan {
    if (o === undefined) return { group: null, options: this.base, adjust: null };
    const group = o.target !== undefined ? this.group(o.target) : null;
    const responseMs = o.proxyTimeout;
    if (responseMs !== undefined && (!Number.isInteger(responseMs) || responseMs < 0)) throw new ConfigError('proxyTimeout', 'must be a whole number of ms, 0 or more');
    const forward = this.forwarder(o, group);
    if (forward === null && responseMs === undefined) return { group, options: this.base, adjust: null };
    const adjust = (r: Route): Route => ({
      ...r,
      forward: forward === null ? r.forward : forward(r.forward),
      timeouts: responseMs === undefined ? r.timeouts : { ...r.timeouts, responseMs },
    });
    return { group, options: this.base, adjust };
  }

  private group(target: string | URL): UpstreamGroup {
    const key = String(target);
    const named = this.named.get(key);
    if (named !== undefined) return named;
    const known = this.made.get(key);
    if (known !== undefined) return known;
    const address = addressOf(target);
    const g = new UpstreamGroup(key, [{ address, weight: 1 }]);
    if (this.made.size >= MAX_TARGET_GROUPS) this.made.delete(this.made.keys().next().value as string);
    this.made.set(key, g);
    return g;
  }

  /** The call's changes to a route's forwarding (checked now), or null when it makes none. */
  private forwarder(o: EmbedOptions, group: UpstreamGroup | null): ((base: ForwardPolicy) => ForwardPolicy) | null {
    if (o.changeOrigin !== true && o.xfwd === undefined && o.headers === undefined) return null;
    let host: string | undefined;
    if (o.changeOrigin === true) {
      if (group === null || group.backends.length !== 1) throw new ConfigError('changeOrigin', 'needs a target with one address');
      const b = group.backends[0]!;
      host = b.address.kind === 'unix' ? 'localhost' : b.label;
    }
    const extra: Array<readonly [string, string]> = [];
    for (const [name, value] of Object.entries(o.headers ?? {})) {
      if (!isToken(name)) throw new ConfigError(`headers.${name}`, 'not a header name');
      if (typeof value !== 'string' || !isSafeValue(value)) throw new ConfigError(`headers.${name}`, 'must be a string without CR, LF or NUL');
      extra.push([name, value]);
    }
    const keys = new Set(extra.map(([n]) => n.toLowerCase()));
    return (base) => {
      const set = extra.length === 0 ? base.set : [...base.set.filter(([n]) => !keys.has(n.toLowerCase())), ...extra];
      return { ...base, host: host ?? base.host, xForwarded: o.xfwd ?? base.xForwarded, set, setKeys: new Set([...base.setKeys, ...keys]) };
    };
  }
}

/** `host:port`, `unix:/path`, or an http/ws URL (port defaulting to 80). TLS targets need a named upstream with `tls`. */
function addressOf(target: string | URL): BackendAddress {
  if (typeof target === 'string' && !target.includes('://')) {
    const a = parseAddress(target);
    if (a === null) throw new ConfigError('target', `not an upstream name, host:port, unix:/path or URL: ${target}`);
    return a;
  }
  let u: URL;
  try {
    u = typeof target === 'string' ? new URL(target) : target;
  } catch {
    throw new ConfigError('target', `not a URL: ${String(target)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'ws:') {
    throw new ConfigError('target', `${u.protocol} targets need a named upstream with tls in the proxy's options`);
  }
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return { kind: 'tcp', host, port: u.port === '' ? 80 : Number(u.port) };
}
