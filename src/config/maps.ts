/**
 * `maps` (nginx `map $source $name { ... }`): a variable whose value depends
 * on another, looked up as nginx does: an exact string first, then regexes
 * (`~` case-sensitive, `~*` not) in order, else the default. Values may use
 * the fixed request variables; a map of a map is refused (no loops to check).
 */
import { at, isObject, type Check } from './check.js';
import type { Issues } from './issues.js';
import { compileTemplate, hasVariables, type Get } from './variables.js';

export interface MapConfig {
  /** The value looked up, e.g. "$http_upgrade" or "$http_x_tenant:$uri". */
  source: string;
  /** [key, value] pairs in order; a key "~re" or "~*re" is a regex. */
  entries: Array<[string, string]>;
  default?: string;
}

export const MAPS: Check<Map<string, MapConfig>> = {
  parse(v, field, is) {
    if (!isObject(v)) return is.error(field, 'must be an object of NAME: {source, entries, default?}'), undefined;
    const out = new Map<string, MapConfig>();
    for (const [name, m] of Object.entries(v)) {
      const f = at(field, name);
      const ok = isObject(m) && typeof m.source === 'string' && hasVariables(m.source) && Array.isArray(m.entries) &&
        m.entries.every((e: unknown) => Array.isArray(e) && e.length === 2 && e.every((x: unknown) => typeof x === 'string')) &&
        (m.default === undefined || typeof m.default === 'string') && Object.keys(m).every((k) => ['source', 'entries', 'default'].includes(k));
      if (!ok || !/^[A-Za-z0-9_]+$/.test(name)) is.error(f, 'must be { source: "$variable...", entries: [["key", "value"], ...], default?: "value" } under a name of letters, digits and _');
      else out.set(name, m as unknown as MapConfig);
    }
    return out;
  },
  schema: {
    type: 'object',
    additionalProperties: {
      type: 'object', additionalProperties: false, required: ['source', 'entries'],
      properties: { source: { type: 'string' }, entries: { type: 'array', items: { type: 'array', items: { type: 'string' }, minItems: 2, maxItems: 2 } }, default: { type: 'string' } },
    },
  },
};

function compileValue(s: string, field: string, is: Issues): Get | null {
  const t = compileTemplate(s);
  if (typeof t === 'function') return t;
  is.error(field, `unknown variable "$${t.unknown}" (a map's values use request variables, not other maps)`);
  return null;
}

function compileMap(m: MapConfig, field: string, is: Issues): Get | null {
  const source = compileValue(m.source, at(field, 'source'), is);
  const exact = new Map<string, Get>();
  const regexes: Array<[RegExp, Get]> = [];
  m.entries.forEach(([k, val], i) => {
    const value = compileValue(val, `${at(field, 'entries')}[${i}]`, is);
    if (value === null) return;
    if (!k.startsWith('~')) return void (exact.has(k) || exact.set(k, value));
    try {
      regexes.push([new RegExp(k.replace(/^~\*?/, ''), k.startsWith('~*') ? 'i' : ''), value]);
    } catch (err) {
      is.error(`${at(field, 'entries')}[${i}]`, `invalid regular expression: ${(err as Error).message}`);
    }
  });
  const fallback = compileValue(m.default ?? '', at(field, 'default'), is);
  if (source === null || fallback === null) return null;
  return (v) => {
    const s = source(v);
    const e = exact.get(s);
    if (e !== undefined) return e(v);
    for (const [re, value] of regexes) if (re.test(s)) return value(v);
    return fallback(v);
  };
}

/** Every map compiled into a variable getter by name. */
export function compileMaps(maps: ReadonlyMap<string, MapConfig>, is: Issues): Map<string, Get> {
  const out = new Map<string, Get>();
  for (const [name, m] of maps) {
    const g = compileMap(m, `maps.${name}`, is);
    if (g !== null) out.set(name, g);
  }
  return out;
}
