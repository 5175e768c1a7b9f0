// The callgrind plumbing the cost counters share: valgrind's command line for a Node process whose
// count starts at a chosen moment, the control calls that start and dump it, and the sums of the
// per-thread dump files (the main thread, where the event loop runs, and all threads).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** How long one callgrind_control call may take (it waits for the process to reach a safe point). */
const CONTROL_MS = 60_000;

/**
 * valgrind's arguments to run `command` under callgrind with one dump file per thread and nothing
 * counted until `countFrom`, so that a warm-up runs uninstrumented (several times faster).
 */
export function callgrindArgs(outFile: string, command: readonly string[]): string[] {
  return ['--tool=callgrind', '--separate-threads=yes', '--smc-check=all-non-file', '--instr-atstart=no', `--callgrind-out-file=${outFile}`, ...command];
}

/** Switch instrumentation on and zero the counters: what follows is what is counted. */
export function countFrom(pid: number): void {
  execFileSync('callgrind_control', ['-i', 'on', String(pid)], { stdio: 'ignore', timeout: CONTROL_MS });
  execFileSync('callgrind_control', ['-z', String(pid)], { stdio: 'ignore', timeout: CONTROL_MS });
}

/** Write the counters since `countFrom` (or the zeroing) to the dump files numbered .1. */
export function dump(pid: number): void {
  execFileSync('callgrind_control', ['-d', String(pid)], { stdio: 'ignore', timeout: CONTROL_MS });
}

/** The instructions of one callgrind dump file, from its `summary:` (or `totals:`) line. */
export function instructionsOf(file: string): number {
  const m = /^(?:summary|totals): (\d+)/m.exec(readFileSync(file, 'latin1'));
  if (m === null) throw new Error(`${file}: no summary line`);
  return Number(m[1]);
}

export interface Dumped {
  /** Instructions of the main thread (the event loop). */
  main: number;
  /** Instructions of all threads (V8's compilers and marking, libuv's pool too; their share varies run to run). */
  all: number;
  /** The main thread's dump file, for callgrind_annotate. */
  mainFile: string;
}

/**
 * The first dump on request of a process run with `--callgrind-out-file=outFile`: one file per
 * thread, `outFile.1-NN`, where -01 is the main thread. Throws when there is none.
 */
export function dumpedInstructions(outFile: string): Dumped {
  const dir = dirname(outFile);
  const prefix = `${basename(outFile)}.1-`;
  const files = readdirSync(dir).filter((f) => f.startsWith(prefix)).sort();
  if (files.length === 0) throw new Error(`no callgrind dump ${outFile}.1-*`);
  let main = 0;
  let all = 0;
  let mainFile = join(dir, files[0]!);
  for (const f of files) {
    const n = instructionsOf(join(dir, f));
    all += n;
    if (f.endsWith('-01')) {
      main = n;
      mainFile = join(dir, f);
    }
  }
  return { main, all, mainFile };
}
