/**
 * The pid file (`--pid-file`, the file's `pid`; nginx's `pid` directive) and
 * `wsplice -s reload|stop|quit|reopen|upgrade`, which signals the instance it names. The
 * file holds JSON, `{"pid": N}`, so other tools can read it without guessing.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';

/** nginx's -s names and the signal each sends (what the running instance does with it is its own). */
export const SIGNALS = { reload: 'SIGHUP', stop: 'SIGTERM', quit: 'SIGQUIT', reopen: 'SIGUSR1', upgrade: 'SIGUSR2' } as const;
export type SignalName = keyof typeof SIGNALS;

export function isSignalName(s: string): s is SignalName {
  return Object.hasOwn(SIGNALS, s);
}

/** Write `{"pid": N}`; throws with the reason when the file cannot be written. */
export function writePidFile(file: string, pid = process.pid): void {
  try {
    writeFileSync(file, JSON.stringify({ pid }) + '\n');
  } catch (err) {
    throw new Error(`cannot write pid file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** Remove the pid file if it still names this process (a newer instance may have taken it). */
export function removePidFile(file: string, pid = process.pid): void {
  try {
    if (readPid(file) === pid) rmSync(file, { force: true });
  } catch {
    // Gone or unreadable: nothing of ours to remove.
  }
}

/** The pid a pid file names; throws with the reason. */
export function readPid(file: string): number {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read pid file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (is wsplice running?)`);
  }
  let pid: unknown;
  try {
    pid = (JSON.parse(text) as { pid?: unknown }).pid;
  } catch {
    pid = undefined;
  }
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) throw new Error(`pid file ${file} does not hold {"pid": N}`);
  return pid;
}

/** Send `name`'s signal to the pid in `file`; throws with the reason. */
export function signalInstance(file: string, name: SignalName): number {
  const pid = readPid(file);
  try {
    process.kill(pid, SIGNALS[name]);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`cannot signal process ${pid} from ${file}: ${code === 'ESRCH' ? 'no such process (stale pid file?)' : code ?? (err as Error).message}`);
  }
  return pid;
}
