// The source stays readable by its shape: the connection module stays small, no function grows past
// a screen, and the README's layout section names every folder there is.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import ts from 'typescript';

const root = path.resolve(import.meta.dirname, '..');
const MAX_FUNCTION_LINES = 60;
const MAX_CONNECTION_LINES = 450;

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== 'build' && e.name !== 'node_modules') out.push(...tsFiles(p)); }
    else if (p.endsWith('.ts') && !p.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Every function-like node with a body and more lines than the limit, as `file:line name (n lines)`. */
export function longFunctions(file: string, limit: number): string[] {
  const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const first = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const last = sf.getLineAndCharacterOfPosition(node.end).line;
      const name = node.name ? node.name.getText(sf) : '(anonymous)';
      if (last - first + 1 > limit) found.push(`${path.relative(root, file)}:${first + 1} ${name} (${last - first + 1} lines)`);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

t.test('the detector finds a long function (so the next check can fail)', async (t) => {
  const dir = t.testdir({ 'long.ts': `export function big(): number {\n${'  let x = 1;\n'.repeat(70)}  return 1;\n}\n` });
  t.equal(longFunctions(path.join(dir, 'long.ts'), MAX_FUNCTION_LINES).length, 1);
});

t.test(`no function in src/ is over ${MAX_FUNCTION_LINES} lines`, async (t) => {
  const long = tsFiles(path.join(root, 'src')).flatMap((f) => longFunctions(f, MAX_FUNCTION_LINES));
  t.same(long, [], 'split these into named steps');
});

t.test(`src/connection.ts is under ${MAX_CONNECTION_LINES} lines`, async (t) => {
  const lines = fs.readFileSync(path.join(root, 'src/connection.ts'), 'utf8').split('\n').length;
  t.ok(lines < MAX_CONNECTION_LINES, `${lines} lines`);
});

t.test("the README's layout section names every folder of src/, bench/ and the top level", async (t) => {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Layout');
  t.ok(start >= 0, 'README has a Layout section');
  const end = readme.indexOf('\n## ', start + 1);
  const layout = readme.slice(start, end < 0 ? undefined : end);
  const folders: string[] = [];
  for (const top of fs.readdirSync(root, { withFileTypes: true })) {
    if (!top.isDirectory() || top.name.startsWith('.') || top.name === 'node_modules' || top.name === 'dist') continue;
    if (!tracked(top.name)) continue;
    folders.push(`${top.name}/`);
  }
  for (const base of ['src', 'bench']) {
    for (const e of fs.readdirSync(path.join(root, base), { withFileTypes: true })) {
      if (e.isDirectory() && e.name !== 'build' && e.name !== 'results') folders.push(`${base}/${e.name}/`);
    }
  }
  const missing = folders.filter((f) => !layout.includes(f) && !layout.includes(f.slice(f.indexOf('/') + 1)));
  t.same(missing, [], 'each folder gets one line in the layout section');
});

/** A top-level folder counts when git tracks something in it (untracked scratch folders don't). */
let gitFiles: string[] | null | undefined;
function tracked(name: string): boolean {
  if (gitFiles === undefined) {
    try { gitFiles = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).split('\n'); } catch { gitFiles = null; }
  }
  return gitFiles === null || gitFiles.some((f) => f.startsWith(`${name}/`));
}
