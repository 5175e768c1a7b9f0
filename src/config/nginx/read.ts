/**
 * nginx configuration syntax, third step: the tree walked against the
 * directive table (unknown names, wrong contexts, argument counts and blocks
 * refused in nginx's words, with "did you mean"), then the collected scopes
 * turned into the JSON model. A file with `http {}` or `events {}` at its top
 * is a whole nginx.conf; anything else is read as the inside of `http {}`.
 */
import { didYouMean, type Issues } from '../issues.js';
import type { LoadedConfig } from '../json.js';
import { Build, type Scope } from './build.js';
import { emit } from './emit.js';
import { resolveLimits } from './limits.js';
import { readNginxTree, type Directive } from './parse.js';
import { DIRECTIVES, type DirectiveRow } from './table.js';

const BY_NAME = new Map<string, DirectiveRow[]>();
for (const r of DIRECTIVES) BY_NAME.set(r.name, [...(BY_NAME.get(r.name) ?? []), r]);

function rowFor(d: Directive, scope: Scope, b: Build): DirectiveRow | null {
  const rows = BY_NAME.get(d.name);
  if (rows === undefined) {
    const near = didYouMean(d.name, BY_NAME.keys());
    const hint = scope.kind === 'upstream' && /^[\w.[\]:-]+:\d+$/.test(d.name) ? ' (an upstream lists its backends as "server ADDR;")' : near !== null ? ` (did you mean "${near}"?)` : '';
    b.error(d, `unknown directive "${d.name}"${hint}`);
    return null;
  }
  const r = rows.find((x) => x.contexts.includes(scope.kind));
  if (r === undefined) return b.error(d, `"${d.name}" directive is not allowed here`), null;
  if (d.args.length < r.args[0] || d.args.length > r.args[1]) return b.error(d, `invalid number of arguments in "${d.name}" directive`), null;
  if (r.block !== undefined && d.block === null) return b.error(d, `directive "${d.name}" has no opening "{"`), null;
  if (r.block === undefined && d.block !== null) return b.error(d, `directive "${d.name}" is not terminated by ";"`), null;
  return r;
}

/**
 * After an unknown word, the rest of its "arguments" may be the next directive (a line
 * like `...` without `;` swallows the `location` below it): read that one too, so its
 * own problems are reported in the same run.
 */
function recover(d: Directive, scope: Scope): Directive | null {
  if (BY_NAME.has(d.name)) return null;
  const i = d.args.findIndex((a, k) => !d.quoted[k] && BY_NAME.get(a)?.some((r) => r.contexts.includes(scope.kind)) === true);
  return i < 0 ? null : { ...d, name: d.args[i]!, args: d.args.slice(i + 1), quoted: d.quoted.slice(i + 1) };
}

/** Every directive of a block, in order; a block directive's children in the scope its handler returns. */
export function walk(dirs: readonly Directive[], scope: Scope, b: Build): void {
  for (const d of dirs) {
    const r = rowFor(d, scope, b);
    const next = r === null ? recover(d, scope) : null;
    if (next !== null) walk([next], scope, b);
    if (r === null) continue;
    const child = r.handler(d, scope, b);
    if (r.block === 'walk' && child !== undefined) walk(d.block!, child, b);
  }
}

/** Read an nginx-syntax file into the JSON model (options, listen entries, service keys) with each field's file:line. */
export function loadNginxConfig(file: string, is: Issues): LoadedConfig | null {
  const tree = readNginxTree(file, is);
  if (is.hasErrors && tree.length === 0) return null;
  const b = new Build(is, file);
  const whole = tree.some((d) => d.name === 'http' || d.name === 'events');
  walk(tree, whole ? { kind: 'main' } : { kind: 'http', settings: b.http }, b);
  resolveLimits(b);
  const value = emit(b);
  if (b.ignored.size > 0) {
    const first = [...b.ignored.values()][0]!;
    b.warn(first, `ignored (they only matter to nginx itself): ${[...b.ignored.keys()].join(', ')}`);
  }
  return { value, where: b.where };
}
