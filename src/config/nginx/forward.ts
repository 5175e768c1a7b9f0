/**
 * proxy_set_header lines onto the `forwarding` options. nginx sends only what
 * the configuration names (plus Host and Connection), so X-Forwarded-* are on
 * only when the file sets them; Upgrade and Connection from the usual upgrade
 * map are what wsplice does itself for every upgrade.
 */
import type { Build, MapScope } from './build.js';
import type { Directive } from './parse.js';

export type HeaderLine = { name: string; value: string; at: Directive };

/** The map that gives `upgrade` for any Upgrade header and `close` for none. */
export function isUpgradeMap(m: MapScope | undefined): boolean {
  if (m === undefined || m.source !== 'http_upgrade') return false;
  const byKey = new Map(m.entries.map((e) => [e.key, e.value.toLowerCase()]));
  return byKey.get('default') === 'upgrade' && (byKey.get('') ?? 'upgrade') === 'close' && m.entries.every((e) => e.key === 'default' || e.key === '');
}

function mapNamed(b: Build, value: string): MapScope | undefined {
  const m = /^\$\{?([A-Za-z0-9_]+)\}?$/.exec(value);
  return m === null ? undefined : b.maps.find((x) => x.variable === m[1]);
}

/** One line's meaning; false when wsplice cannot give it (reported). */
function line(h: HeaderLine, out: Record<string, unknown>, b: Build): void {
  const name = h.name.toLowerCase();
  const v = h.value;
  const set = (k: string, x: unknown): void => {
    out[k] = x;
    b.where.set(`forwarding.${k}`, { file: h.at.file, line: h.at.line });
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
  } else if (!v.includes('$')) {
    return set('setHeaders', { ...((out.setHeaders as Record<string, string> | undefined) ?? {}), [h.name]: v });
  }
  b.notYet(h.at, `"proxy_set_header ${h.name} ${v === '' ? '""' : v}"`);
}

/** The forwarding options a list of proxy_set_header lines means. */
export function forwarding(lines: readonly HeaderLine[], b: Build): Record<string, unknown> {
  const out: Record<string, unknown> = { xForwarded: false };
  for (const h of lines) line(h, out, b);
  return out;
}
