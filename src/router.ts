/**
 * Routing, as nginx does it: first the virtual server (a route's `hosts`,
 * matched on the Host name without port; routes without `hosts` form the
 * default server), then the location within it: an exact path match wins,
 * else the longest matching prefix. The query string is not part of the path.
 */
import type { ResolvedOptions } from './options.js';
import type { UpstreamGroup } from './upstream/group.js';

interface Route {
  path: string;
  exact: boolean;
  group: UpstreamGroup;
}

export class Router {
  private readonly byHost = new Map<string, Route[]>();
  private readonly defaults: Route[] = [];

  constructor(routes: ResolvedOptions['routes'], groups: ReadonlyMap<string, UpstreamGroup>) {
    for (const r of routes) {
      const route: Route = { path: r.path, exact: r.exact, group: groups.get(r.upstream)! };
      if (r.hosts === null) this.defaults.push(route);
      else for (const h of r.hosts) {
        const list = this.byHost.get(h) ?? [];
        list.push(route);
        this.byHost.set(h, list);
      }
    }
    // Longest prefix first, so the first match is the best.
    const order = (a: Route, b: Route): number => b.path.length - a.path.length;
    this.defaults.sort(order);
    for (const list of this.byHost.values()) list.sort(order);
  }

  /** The upstream group for this request, or null (404). */
  match(host: string, target: string): UpstreamGroup | null {
    const q = target.indexOf('?');
    const path = q < 0 ? target : target.slice(0, q);
    const list = this.byHost.size === 0 ? this.defaults : (this.byHost.get(hostName(host)) ?? this.defaults);
    let prefix: Route | null = null;
    for (const r of list) {
      if (r.exact) {
        if (r.path === path) return r.group;
      } else if (prefix === null && path.startsWith(r.path)) {
        prefix = r;
      }
    }
    return prefix?.group ?? null;
  }
}

/** `Example.com:8080` -> `example.com`; `[::1]:80` -> `[::1]`. */
function hostName(host: string): string {
  const end = host.startsWith('[') ? host.indexOf(']') + 1 : host.indexOf(':');
  return (end > 0 ? host.slice(0, end) : host).toLowerCase();
}
