/**
 * nginx configuration syntax, second step: the tree of directives (name,
 * arguments, optional block), each with file:line. `include` is expanded
 * here, with globs relative to the including file, so every later step sees
 * one tree. Syntax errors are collected per file, in nginx's words.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import type { Issues } from '../issues.js';
import { SyntaxProblem, tokenize, type Token } from './tokenize.js';

export interface Directive {
  name: string;
  args: string[];
  /** Which arguments were quoted ('' is then a real empty value). */
  quoted: boolean[];
  block: Directive[] | null;
  file: string;
  line: number;
}

const MAX_INCLUDE_DEPTH = 16;

class Reader {
  private i = 0;
  constructor(private readonly toks: Token[], private readonly file: string, private readonly is: Issues, private readonly depth: number) {}

  private problem(message: string, line: number): void {
    this.is.add({ field: '', severity: 'error', message, file: this.file, line });
  }

  /** Directives until `}` (inside a block) or the end of the file (top level). */
  block(inner: boolean, openLine: number): Directive[] {
    const out: Directive[] = [];
    while (this.i < this.toks.length) {
      const t = this.toks[this.i]!;
      if (t.kind === '}') {
        this.i++;
        if (inner) return out;
        this.problem('unexpected "}"', t.line);
        continue;
      }
      if (t.kind === ';' || t.kind === '{') {
        this.i++;
        this.problem(`unexpected "${t.kind}"`, t.line);
        continue;
      }
      const d = this.directive();
      if (d !== null) out.push(...(d.name === 'include' && d.block === null ? this.include(d) : [d]));
    }
    if (inner) this.problem('unexpected end of file, expecting "}"', this.toks[this.toks.length - 1]?.line ?? openLine);
    return out;
  }

  private directive(): Directive | null {
    const first = this.toks[this.i++]!;
    const d: Directive = { name: first.text, args: [], quoted: [], block: null, file: this.file, line: first.line };
    while (this.i < this.toks.length) {
      const t = this.toks[this.i++]!;
      if (t.kind === ';') return d;
      if (t.kind === '{') {
        d.block = this.block(true, t.line);
        return d;
      }
      if (t.kind === '}') {
        this.i--;
        this.problem(`unexpected "}", expecting ";" after "${d.name}"`, t.line);
        return d;
      }
      d.args.push(t.text);
      d.quoted.push(t.kind === 'quoted');
    }
    this.problem(`unexpected end of file, expecting ";" or "}" after "${d.name}"`, first.line);
    return d;
  }

  private include(d: Directive): Directive[] {
    if (d.args.length !== 1) {
      this.problem('invalid number of arguments in "include" directive', d.line);
      return [];
    }
    if (this.depth >= MAX_INCLUDE_DEPTH) {
      this.problem(`"include" nested deeper than ${MAX_INCLUDE_DEPTH} (a loop?)`, d.line);
      return [];
    }
    const pattern = isAbsolute(d.args[0]!) ? d.args[0]! : resolve(dirname(this.file), d.args[0]!);
    const files = /[*?[]/.test(pattern) ? glob(pattern) : [pattern];
    if (files === null) {
      this.problem(`"include ${d.args[0]!}": wildcards are supported in the file name only`, d.line);
      return [];
    }
    return files.flatMap((f) => readNginxTree(f, this.is, this.depth + 1, { file: this.file, line: d.line }));
  }
}

/** Files matching `dir/pattern` (`*`, `?`, `[...]` in the last component), sorted as nginx does. */
function glob(pattern: string): string[] | null {
  const dir = dirname(pattern);
  if (/[*?[]/.test(dir)) return null;
  const body = basename(pattern).replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  let re: RegExp;
  try {
    re = new RegExp(`^${body}$`);
  } catch {
    // An unterminated `[` (found by the config fuzz: it threw out of -c) is a literal, as glob(3) reads it.
    re = new RegExp(`^${body.replace(/[[\]]/g, '\\$&')}$`);
  }
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => re.test(n) && !n.startsWith('.')).sort().map((n) => join(dir, n)).filter((f) => statSync(f).isFile());
}

/** Read and parse one file (and what it includes). A file that cannot be read is an error at its include. */
export function readNginxTree(file: string, is: Issues, depth = 0, from?: { file: string; line: number }): Directive[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    is.add({ field: from === undefined ? '--config' : '', severity: 'error', message: `cannot read ${file}: ${code}`, ...(from ?? {}) });
    return [];
  }
  let toks: Token[];
  try {
    toks = tokenize(text);
  } catch (err) {
    if (!(err instanceof SyntaxProblem)) throw err;
    is.add({ field: '', severity: 'error', message: err.message, file, line: err.line });
    return [];
  }
  return new Reader(toks, file, is, depth).block(false, 1);
}
