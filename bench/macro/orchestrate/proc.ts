// Child processes of the runner: spawned with the fd limit raised, each in its own process group,
// all killed when the runner ends, however it ends (normal exit, error, SIGINT/SIGTERM).
import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';

const live = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal); // the whole group: nginx's workers too
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

export function killAllNow(): void {
  for (const c of live) killGroup(c, 'SIGKILL');
  live.clear();
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAllNow();
      process.stderr.write(`\nbench: ${sig}, peers stopped\n`);
      process.exit(130);
    });
  }
}

/** The soft fd limit the children get: as high as the hard limit allows (65536 wanted). */
export const ULIMIT_SH = 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"';

export interface Managed {
  child: ChildProcess;
  pid: number;
  /** stderr + stdout text collected so far (bounded), for error messages. */
  output(): string;
}

/** Starts `cmd args` via bash (to raise `ulimit -n` first, then exec: same pid as the program). */
export function spawnManaged(cmd: string, args: readonly string[], opts: { cwd?: string; stdin?: 'pipe' | 'ignore' } = {}): Managed {
  hookExit();
  const child = spawn('bash', ['-c', `${ULIMIT_SH}; exec "$@"`, 'bash', cmd, ...args], {
    cwd: opts.cwd,
    detached: true, // own process group, so killGroup reaches grandchildren
    stdio: [opts.stdin ?? 'pipe', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start ${cmd}`);
  live.add(child);
  child.on('exit', () => live.delete(child));
  let out = '';
  const keep = (d: Buffer): void => {
    if (out.length < 20_000) out += d.toString();
  };
  child.stderr!.on('data', keep);
  return { child, pid: child.pid, output: () => out };
}

/** Stops a managed process: SIGTERM to its group, SIGKILL after `graceMs`. */
export async function stopManaged(m: Managed, graceMs = 3000): Promise<void> {
  const { child } = m;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  killGroup(child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
  // Workers may outlive a killed master for a moment; make sure the group is gone.
  killGroup(child, 'SIGKILL');
}

/** Resolves with the first stdout line matching `re`; rejects on exit or after `timeoutMs`. */
export function waitForLine(m: Managed, re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: m.child.stdout! });
    const timer = setTimeout(() => finish(new Error(`no "${re.source}" within ${timeoutMs} ms`)), timeoutMs);
    const onExit = (): void => finish(new Error(`exited (${m.child.exitCode ?? m.child.signalCode}) before ready`));
    const finish = (e: Error | null, match?: RegExpExecArray): void => {
      clearTimeout(timer);
      m.child.removeListener('exit', onExit);
      rl.removeAllListeners('line');
      if (e) reject(e);
      else resolve(match!);
    };
    rl.on('line', (line) => {
      const match = re.exec(line);
      if (match) finish(null, match);
    });
    m.child.on('exit', onExit);
  });
}

/** Resolves once 127.0.0.1:port accepts a TCP connection; rejects if `m` exits or after `timeoutMs`. */
export async function waitForPort(port: number, m: Managed | null, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (m && (m.child.exitCode !== null || m.child.signalCode !== null)) {
      throw new Error(`exited (${m.child.exitCode ?? m.child.signalCode}) before listening`);
    }
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`port ${port} not listening within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A port that was free a moment ago (bind port 0, read it, close). */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen({ host: '127.0.0.1', port: 0 }, () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr !== 'string' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}
