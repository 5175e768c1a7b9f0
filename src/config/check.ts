/**
 * Validators as values: each knows how to check a JSON value (reporting every
 * problem to an Issues list) and how to describe itself as JSON Schema, so the
 * option tables are written once and give both the checks and the schema.
 */
import { didYouMean, type Issues } from './issues.js';

export type JsonSchema = { [key: string]: unknown };

export interface Check<T> {
  /** The value, or undefined after reporting why it is not valid. */
  parse(v: unknown, field: string, is: Issues): T | undefined;
  readonly schema: JsonSchema;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export const at = (field: string, key: string): string => (field === '' ? key : `${field}.${key}`);

export function int(min = 0, max = Number.MAX_SAFE_INTEGER): Check<number> {
  return {
    parse(v, field, is) {
      if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) return v;
      is.error(field, max === Number.MAX_SAFE_INTEGER ? `must be an integer >= ${min}` : `must be an integer from ${min} to ${max}`);
      return undefined;
    },
    schema: { type: 'integer', minimum: min, ...(max !== Number.MAX_SAFE_INTEGER ? { maximum: max } : {}) },
  };
}

export const bool: Check<boolean> = {
  parse(v, field, is) {
    if (typeof v === 'boolean') return v;
    is.error(field, 'must be a boolean');
    return undefined;
  },
  schema: { type: 'boolean' },
};

export function oneOf<T extends string>(...values: T[]): Check<T> {
  return {
    parse(v, field, is) {
      if (typeof v === 'string' && (values as string[]).includes(v)) return v as T;
      is.error(field, `must be ${values.map((x) => `"${x}"`).join(', ').replace(/, ([^,]*)$/, ' or $1')}`);
      return undefined;
    },
    schema: { enum: values },
  };
}

/** A string accepted by `ok`; `what` says what was expected. */
export function str(ok: (s: string) => boolean, what: string, schema: JsonSchema = {}): Check<string> {
  return {
    parse(v, field, is) {
      if (typeof v === 'string' && ok(v)) return v;
      is.error(field, typeof v === 'string' ? `invalid value "${v}" (expected ${what})` : `must be ${what}`);
      return undefined;
    },
    schema: { type: 'string', description: what, ...schema },
  };
}

export function nullable<T>(c: Check<T>): Check<T | null> {
  return {
    parse: (v, field, is) => (v === null ? null : c.parse(v, field, is)),
    schema: { anyOf: [c.schema, { type: 'null' }] },
  };
}

export function arrayOf<T>(item: Check<T>, nonEmpty = false): Check<T[]> {
  return {
    parse(v, field, is) {
      if (!Array.isArray(v) || (nonEmpty && v.length === 0)) {
        is.error(field, nonEmpty ? 'must be a non-empty array' : 'must be an array');
        return undefined;
      }
      const out: T[] = [];
      let ok = true;
      v.forEach((x: unknown, i: number) => {
        const r = item.parse(x, `${field}[${i}]`, is);
        if (r === undefined) ok = false;
        else out.push(r);
      });
      return ok ? out : undefined;
    },
    schema: { type: 'array', items: item.schema, ...(nonEmpty ? { minItems: 1 } : {}) },
  };
}

/** An object of NAME: value (upstream groups, headers). */
export function recordOf<T>(item: Check<T>, key?: { ok: (k: string) => boolean; what: string }, nonEmpty = false): Check<Map<string, T>> {
  return {
    parse(v, field, is) {
      if (!isObject(v) || (nonEmpty && Object.keys(v).length === 0)) {
        is.error(field, nonEmpty ? 'must name at least one entry' : 'must be an object');
        return undefined;
      }
      const out = new Map<string, T>();
      let ok = true;
      for (const [k, x] of Object.entries(v)) {
        if (key !== undefined && !key.ok(k)) {
          is.error(at(field, k), `invalid name (expected ${key.what})`);
          ok = false;
          continue;
        }
        const r = item.parse(x, at(field, k), is);
        if (r === undefined) ok = false;
        else out.set(k, r);
      }
      return ok ? out : undefined;
    },
    schema: { type: 'object', additionalProperties: item.schema, ...(nonEmpty ? { minProperties: 1 } : {}) },
  };
}

/** One field of an object: its check, default and documentation. */
export interface FieldRow<T = unknown> {
  check: Check<T>;
  /** Absent = optional without default (undefined in the result); `required` = must be given. */
  default?: T | 'required';
  doc: string;
  /** The nginx directive with the same meaning, if any. */
  nginx?: string;
  /** The command-line flag that sets it (`--idle-timeout`), with its argument's name. */
  flag?: { name: string; arg: string };
}

export type Rows = Record<string, FieldRow>;

/** The parsed object of a row table: each key's type, defaults applied. */
export type Parsed<R extends Rows> = {
  [K in keyof R]: R[K] extends { check: Check<infer T> } ? (R[K] extends { default: unknown } ? T : T | undefined) : never;
};

/** An object whose keys are the rows; unknown keys are errors (with a near-miss suggestion). */
export function object<R extends Rows>(rows: R): Check<Parsed<R>> & { rows: R } {
  const names = Object.keys(rows);
  return {
    rows,
    parse(v, field, is) {
      if (!isObject(v)) {
        is.error(field, 'must be an object');
        return undefined;
      }
      for (const k of Object.keys(v)) {
        if (names.includes(k)) continue;
        const near = didYouMean(k, names);
        is.error(at(field, k), `unknown option (${near !== null ? `did you mean "${near}"? ` : ''}expected one of ${names.join(', ')})`);
      }
      const out: Record<string, unknown> = {};
      for (const [k, row] of Object.entries(rows)) {
        if (v[k] === undefined) {
          if (row.default === 'required') is.error(at(field, k), 'is required');
          out[k] = row.default === 'required' ? undefined : row.default;
          continue;
        }
        // A failed field stays undefined: the rest is still checked, and the caller throws on
        // the collected errors before anything uses the result.
        out[k] = row.check.parse(v[k], at(field, k), is);
      }
      return out as Parsed<R>;
    },
    schema: {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(
        Object.entries(rows).map(([k, r]) => [k, {
          ...r.check.schema,
          description: r.doc + (r.nginx !== undefined ? ` (nginx: ${r.nginx})` : ''),
          ...(r.default !== undefined && r.default !== 'required' && !(r.default instanceof Map) && !(r.default instanceof Set) ? { default: r.default } : {}),
        }]),
      ),
      required: Object.entries(rows).filter(([, r]) => r.default === 'required').map(([k]) => k),
    },
  };
}

/** The first alternative whose shape matches (`is(v)`), checked by its own validator. */
export function either<A, B>(a: Check<A>, isA: (v: unknown) => boolean, b: Check<B>): Check<A | B> {
  return {
    parse: (v, field, is) => (isA(v) ? a.parse(v, field, is) : b.parse(v, field, is)),
    schema: { anyOf: [a.schema, b.schema] },
  };
}

/** The defaults of a row table (what an omitted section means). */
export function defaultsOf(rows: Rows): Record<string, unknown> {
  return Object.fromEntries(Object.entries(rows).filter(([, r]) => r.default !== 'required').map(([k, r]) => [k, r.default]));
}

/** Transform a checked value (e.g. an address string into its parsed form). */
export function map<A, B>(c: Check<A>, f: (a: A, field: string, is: Issues) => B | undefined): Check<B> {
  return {
    parse(v, field, is) {
      const a = c.parse(v, field, is);
      return a === undefined ? undefined : f(a, field, is);
    },
    schema: c.schema,
  };
}
