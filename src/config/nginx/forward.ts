/**
 * proxy_set_header lines onto the `forwarding` options. nginx sends only what
 * the configuration names (plus Host and Connection), so X-Forwarded-* are on
 * only when the file sets them; Upgrade and Connection from the usual upgrade
 * map are what wsplice does itself for every upgrade.
 */
import type { Build, MapScope } from './build.js';
import type { Directive } from './parse.js';
import { compileTemplate } from '../variables.js';

export type HeaderLine = { name: string; value: string; at: Directive };

/**
 * The map that gives `upgrade` for any Upgrade header and `close` (or `""`, the
 * keep-alive form) for none: what wsplice writes itself on every request.
 */
export function isUpgradeMap(m: MapScope | undefined): boolean {
  if (m === undefined || m.source !== 'http_upgrade') return false;
  const byKey = new Map(m.entries.map((e) => [e.key, e.value.toLowerCase()]));
  const none = byKey.get('') ?? 'upgrade';
  return byKey.get('default') === 'upgrade' && (none === 'close' || none === '') && m.entries.every((e) => e.key === 'default' || e.key === '');
}

function mapNamed(b: Build, value: string): MapScope | undefined {
  const m = /^\$\{?([A-Za-z0-9_]+)\}?$/.exec(value);
  return m === null ? undefined : b.maps.find((x) => x.variable === m[1]);
}

/** One line's meaning; false when wsplice cannot give it (reported). `field`: the forwarding section it goes to. */
function line(h: HeaderLine, out: Record<string, unknown>, b: Build, field: string): void {
  const name = h.name.toLowerCase();
  const v = h.value;
  const set = (k: string, x: unknown): void => {
    out[k] = x;
    b.where.set(`${field}.${k}`, { file: h.at.file, line: h.at.line });
  };
  if (name === 'host') {
    if (v === '$host' || v === '$http_host') return set('host', v);
    if (!v.includes('$')) return set('host', v);
  } else if (name === 'upgrade') {
    if (v === '$http_upgrade') return;
  } else if (name === 'connection') {
    if (isUpgradeMap(mapNamed(b, v)) || /^(upgrade|close|keep-alive|)$/i.test(v)) return;
  } else if (name === 'x-real-ip' && v === '$remote_addr') {
    return set('xRealIp', true);
  } else if ((name === 'x-forwarded-for' && v === '$proxy_add_x_forwarded_for') || (name === 'x-forwarded-proto' && v === '$scheme') || (name === 'x-forwarded-host' && v === '$host')) {
    return set('xForwarded', true);
  } else if (v === '') {
    return set('removeHeaders', [...((out.removeHeaders as string[] | undefined) ?? []), h.name]);
  } else if (!v.includes('$') || typeof compileTemplate(v, new Map(b.maps.map((m) => [m.variable, () => '']))) === 'function') {
    return set('setHeaders', { ...((out.setHeaders as Record<string, string> | undefined) ?? {}), [h.name]: v });
  }
  const unknown = variables(v).find((n) => !isNginxVariable(n) && !b.maps.some((m) => m.variable === n));
  if (unknown !== undefined) return b.error(h.at, `unknown "${unknown}" variable`);
  b.notYet(h.at, `"proxy_set_header ${h.name} ${v === '' ? '""' : v}"`);
}

const NGINX_VARIABLES = new Set([
  'host', 'http_host', 'remote_addr', 'remote_port', 'binary_remote_addr', 'scheme', 'https', 'request_uri', 'uri', 'document_uri', 'args',
  'query_string', 'is_args', 'request_method', 'request_id', 'server_port', 'server_addr', 'server_name', 'server_protocol', 'proxy_host',
  'proxy_port', 'proxy_add_x_forwarded_for', 'proxy_protocol_addr', 'proxy_protocol_port', 'realip_remote_addr', 'request_length',
  'content_type', 'content_length', 'connection', 'msec', 'time_iso8601', 'time_local', 'hostname', 'pid', 'nginx_version', 'ssl_protocol',
  'ssl_cipher', 'ssl_server_name', 'ssl_client_s_dn', 'ssl_client_verify', 'request', 'status', 'upstream_addr',
]);

function isNginxVariable(n: string): boolean {
  return NGINX_VARIABLES.has(n) || /^(http|sent_http|cookie|arg|upstream_http)_\w+$/.test(n);
}

/** Variable names in a value (`$name`, `${name}`). */
function variables(v: string): string[] {
  return [...v.matchAll(/\$(?:\{(\w+)\}|(\w+))/g)].map((m) => m[1] ?? m[2]!);
}

/** The forwarding options a list of proxy_set_header lines means, for the section `field` (`forwarding`, `routes[0].forwarding`). */
export function forwarding(lines: readonly HeaderLine[], b: Build, field: string): Record<string, unknown> {
  const out: Record<string, unknown> = { xForwarded: false };
  for (const h of lines) line(h, out, b, field);
  return out;
}
