/**
 * limit_conn_zone / limit_conn and limit_req_zone / limit_req onto
 * `clientLimits` (one table per process: the zone's key and rate, the limit's
 * number and burst; a zone's size is its entry count at ~64 bytes each).
 */
import type { Build, Scope } from './build.js';
import type { Directive } from './parse.js';
import { parseSize } from './values.js';

const ZONE = /^zone=([A-Za-z0-9_-]+):(\d+[kKmM]?)$/;

function zoneDecl(d: Directive, b: Build, withRate: boolean): void {
  const z = d.args.slice(1).map((a) => ZONE.exec(a)).find((m) => m !== null);
  if (z === undefined || z === null) return b.error(d, `invalid zone in "${d.name}"`);
  let rate: number | undefined;
  if (withRate) {
    const r = d.args.map((a) => /^rate=(\d+)r\/(s|m)$/.exec(a)).find((m) => m !== null);
    if (r === undefined || r === null) return b.error(d, `invalid rate in "${d.name}" (expected rate=Nr/s or rate=Nr/m)`);
    rate = Number(r[1]) / (r[2] === 'm' ? 60 : 1);
  }
  if (!['$binary_remote_addr', '$remote_addr'].includes(d.args[0]!) && !/^\$http_[A-Za-z0-9_]+$/.test(d.args[0]!)) {
    return b.notYet(d, `the key "${d.args[0]!}" (wsplice keys on $binary_remote_addr, $remote_addr or $http_NAME)`);
  }
  b.zones.set(z[1]!, { key: d.args[0]!, ...(rate !== undefined ? { rate } : {}), at: d });
  b.set('clientLimits.maxClients', Math.max(1, Math.floor(parseSize(z[2]!)! / 64)), d);
}

export const limitConnZone = (d: Directive, _s: Scope, b: Build): void => zoneDecl(d, b, false);
export const limitReqZone = (d: Directive, _s: Scope, b: Build): void => zoneDecl(d, b, true);

/** Zones may be declared after their use: the limits are resolved once the tree is read. */
export const pendingLimits: WeakMap<Build, Directive[]> = new WeakMap();

export function limitUse(d: Directive, s: Scope, b: Build): void {
  if (s.kind !== 'http' && s.kind !== 'server') return b.notYet(d, `"${d.name}" in a location (wsplice limits per listener set)`);
  const list = pendingLimits.get(b) ?? [];
  list.push(d);
  pendingLimits.set(b, list);
}

export function limitStatus(d: Directive, _s: Scope, b: Build): void {
  if (d.args[0] !== '429' && d.args[0] !== '503') return b.notYet(d, `"${d.name} ${d.args[0]!}" (wsplice answers 429 or 503)`);
  b.set('clientLimits.status', Number(d.args[0]), d);
}

function applyConn(d: Directive, b: Build): void {
  const zone = b.zones.get(d.args[0]!);
  if (zone === undefined || zone.rate !== undefined) return b.error(d, `zone "${d.args[0]!}" is unknown`);
  if (zone.key !== '$binary_remote_addr' && zone.key !== '$remote_addr') return b.notYet(zone.at, `limit_conn keyed on "${zone.key}"`);
  if (!/^\d+$/.test(d.args[1] ?? '')) return b.error(d, `invalid number of connections "${d.args[1] ?? ''}"`);
  b.set('clientLimits.maxConnections', Number(d.args[1]), d);
}

function applyReq(d: Directive, b: Build): void {
  const name = /^zone=(.+)$/.exec(d.args[0]!)?.[1];
  const zone = name === undefined ? undefined : b.zones.get(name);
  if (zone?.rate === undefined) return b.error(d, `zone "${name ?? d.args[0]!}" is unknown`);
  let burst = 0;
  for (const p of d.args.slice(1)) {
    const m = /^burst=(\d+)$/.exec(p);
    if (m !== null) burst = Number(m[1]);
    else if (p !== 'nodelay') return b.notYet(d, `"limit_req ... ${p}" (wsplice refuses past the burst at once, as nodelay)`);
  }
  const key = zone.key === '$binary_remote_addr' ? '$remote_addr' : zone.key;
  b.set('clientLimits.requestRate', { rate: zone.rate, burst, key }, d);
}

export function resolveLimits(b: Build): void {
  for (const d of pendingLimits.get(b) ?? []) (d.name === 'limit_conn' ? applyConn : applyReq)(d, b);
}
