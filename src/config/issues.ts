/**
 * Configuration problems, collected rather than thrown one at a time: a check
 * reports every error (and warning) it finds, each with the field path and,
 * for a file, where it was written.
 */
import { ConfigError } from '../errors.js';

export interface ConfigIssue {
  /** Dotted path of the field, e.g. `routes[1].upstream`; '' for the whole object. */
  field: string;
  message: string;
  severity: 'error' | 'warning';
  /** Where it was written, when it came from a file. */
  file?: string;
  line?: number;
}

/** Where a field path was written: used to give file:line to problems found after parsing. */
export type SourceMap = ReadonlyMap<string, { file: string; line: number }>;

export function formatIssue(i: ConfigIssue): string {
  const where = i.file !== undefined ? ` in ${i.file}${i.line !== undefined ? `:${i.line}` : ''}` : '';
  return `${i.field !== '' ? `${i.field}: ` : ''}${i.message}${where}`;
}

/**
 * Every error of a configuration at once. `field` is the first error's; the
 * message lists them all, one per line.
 */
export class ConfigErrors extends ConfigError {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    const errors = issues.filter((i) => i.severity === 'error');
    super('', errors.map(formatIssue).join('\n'));
    (this as { field: string }).field = errors[0]?.field ?? '';
    this.name = 'ConfigErrors';
    this.issues = issues;
  }
}

export class Issues {
  readonly list: ConfigIssue[] = [];
  private readonly where: SourceMap | undefined;

  constructor(where?: SourceMap) {
    this.where = where;
  }

  error(field: string, message: string): void {
    this.list.push(this.locate({ field, message, severity: 'error' }));
  }

  warn(field: string, message: string): void {
    this.list.push(this.locate({ field, message, severity: 'warning' }));
  }

  /** Add problems found elsewhere (a file reader), already located. */
  add(issue: ConfigIssue): void {
    this.list.push(issue);
  }

  get hasErrors(): boolean {
    return this.list.some((i) => i.severity === 'error');
  }

  throwIfErrors(): void {
    if (this.hasErrors) throw new ConfigErrors(this.list);
  }

  /** The source position of the field, or of its nearest written parent. */
  private locate(i: ConfigIssue): ConfigIssue {
    if (this.where === undefined) return i;
    for (let f = i.field; ; f = parentPath(f)) {
      const pos = this.where.get(f);
      if (pos !== undefined) return { ...i, file: pos.file, line: pos.line };
      if (f === '') return i;
    }
  }
}

/** `a.b[2].c` -> `a.b[2]` -> `a.b` -> `a` -> ''. */
export function parentPath(f: string): string {
  const m = /(?:\.[^.[\]]+|\[\d+\])$/.exec(f);
  return m === null ? '' : f.slice(0, m.index);
}

/** Levenshtein distance, for "did you mean". Bounded by the short names it is used on. */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}

/** The closest known name within a third of its length, or null. */
export function didYouMean(name: string, known: Iterable<string>): string | null {
  let best: string | null = null;
  let bestD = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const k of known) {
    const d = distance(name.toLowerCase(), k.toLowerCase());
    if (d < bestD) {
      best = k;
      bestD = d;
    }
  }
  return best;
}
