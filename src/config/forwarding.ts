/**
 * A `forwarding` section (the global one, or a route's merged over the
 * enclosing levels) into the policy the head writer runs on: header values
 * with request variables compiled here, once, at configuration load.
 */
import type { ForwardPolicy } from '../http1/serialize.js';
import type { Issues } from './issues.js';
import { compileTemplate, hasVariables, type Get } from './variables.js';

/** The forwarding fields after checking (setHeaders as a Map); every field set. */
export interface ForwardingFields {
  host: string | null;
  xForwarded: boolean;
  xRealIp: boolean;
  setHeaders: ReadonlyMap<string, string>;
  removeHeaders: readonly string[];
}

type Dynamic = NonNullable<ForwardPolicy['dynamic']>[number];

/** setHeaders split into fixed values and values with request variables; `field`: where errors are reported. */
function headerTemplates(headers: ReadonlyMap<string, string>, maps: ReadonlyMap<string, Get>, field: string, is: Issues): { set: Array<[string, string]>; dynamic: Dynamic[] } {
  const set: Array<[string, string]> = [];
  const dynamic: Dynamic[] = [];
  for (const [name, value] of headers) {
    if (!hasVariables(value)) {
      set.push([name, value]);
      continue;
    }
    const t = compileTemplate(value, maps);
    if (typeof t === 'function') dynamic.push([name, t]);
    else is.error(`${field}.setHeaders.${name}`, `unknown variable "$${t.unknown}" (known: $host, $http_host, $http_NAME, $remote_addr, $scheme, $request_uri, $uri, $args, $is_args, $request_method, $proxy_add_x_forwarded_for, a map's name)`);
  }
  return { set, dynamic };
}

/** The policy of a forwarding section; `field` names it in errors (`forwarding`, `routes[2].forwarding`). */
export function forwardPolicy(fw: ForwardingFields, maps: ReadonlyMap<string, Get>, field: string, is: Issues): ForwardPolicy {
  const { set, dynamic } = headerTemplates(fw.setHeaders, maps, field, is);
  return {
    host: fw.host === null || fw.host.startsWith('$') ? null : fw.host,
    hostVariable: fw.host === '$host',
    xForwarded: fw.xForwarded,
    xRealIp: fw.xRealIp,
    remove: new Set(fw.removeHeaders.map((n) => n.toLowerCase())),
    set,
    setKeys: new Set([...set, ...dynamic].map(([n]) => n.toLowerCase())),
    ...(dynamic.length > 0 ? { dynamic } : {}),
  };
}
