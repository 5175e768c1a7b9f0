// `npm run bench`: the macro bench, then the hand-over bench, as two processes. npm appends the
// arguments after `--` to the end of a script's command line, so a chain of two commands in
// package.json would hand `--full` or `--wait-quiet` to the second one; this entry gives them to the
// macro run instead. `--no-handover` skips the hand-over bench; `--out DIR` goes to both.
// Usage: node dist/bench/run.js [macro bench flags] [--no-handover]
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

function run(script: string, args: string[]): number {
  const r = spawnSync(process.execPath, [join(here, script), ...args], { stdio: 'inherit' });
  if (r.error) throw r.error;
  return r.status ?? 1;
}

const args = process.argv.slice(2);
const noHandover = args.includes('--no-handover');
const macroArgs = args.filter((a) => a !== '--no-handover');
let status = run('macro/run.js', macroArgs);
// A re-render measures nothing; neither does a failed macro run have a reason to go on.
if (status === 0 && !noHandover && !macroArgs.includes('--rerender')) {
  const out = macroArgs.indexOf('--out');
  status = run('handover/run.js', out >= 0 && macroArgs[out + 1] !== undefined ? ['--out', macroArgs[out + 1]!] : []);
}
process.exit(status);
