// Runner side of the load generator and the echo backend: starts them, sends jobs, answers marks.
import { createInterface, type Interface } from 'node:readline';
import { join } from 'node:path';
import { type Managed, spawnManaged, stopManaged, waitForLine } from './proc.js';
import type { GenCommand, GenEvent, Job, JobResult } from '../loadgen/protocol.js';

export type MarkPhase = Extract<GenEvent, { event: 'mark' }>['phase'];

/** Called on each mark; the generator goes on once the returned promise settles. */
export type MarkHandler = (phase: MarkPhase) => void | Promise<void>;

export class LoadGen {
  private readonly lines: Interface;
  private onEvent: ((e: GenEvent) => void) | null = null;

  private constructor(readonly proc: Managed) {
    this.lines = createInterface({ input: proc.child.stdout! });
    this.lines.on('line', (line) => {
      if (!line.startsWith('{')) return;
      this.onEvent?.(JSON.parse(line) as GenEvent);
    });
  }

  static start(distMacro: string): LoadGen {
    return new LoadGen(spawnManaged(process.execPath, [join(distMacro, 'loadgen/loadgen.js')]));
  }

  private send(cmd: GenCommand): void {
    this.proc.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
  }

  /** Runs one job; rejects if the generator reports an error, dies, or takes longer than `timeoutMs`. */
  run(job: Job, onMark: MarkHandler, timeoutMs: number): Promise<JobResult> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`load generator: ${job.kind} took over ${timeoutMs} ms`)), timeoutMs);
      const onExit = (): void => done(new Error(`load generator exited: ${this.proc.output().slice(-500)}`));
      const done = (err: Error | null, result?: JobResult): void => {
        clearTimeout(timer);
        this.onEvent = null;
        this.proc.child.removeListener('exit', onExit);
        if (err) reject(err);
        else resolve(result!);
      };
      this.proc.child.on('exit', onExit);
      this.onEvent = (e) => {
        if (e.event === 'mark') {
          Promise.resolve(onMark(e.phase)).then(
            () => this.send({ cmd: 'continue' }),
            (err: unknown) => {
              this.send({ cmd: 'continue' });
              done(err instanceof Error ? err : new Error(String(err)));
            },
          );
        } else if (e.event === 'result') done(null, e.result);
        else done(new Error(e.message));
      };
      this.send({ cmd: 'job', job });
    });
  }

  async stop(): Promise<void> {
    this.send({ cmd: 'exit' });
    await stopManaged(this.proc, 2000);
  }
}

export interface Backend {
  port: number;
  proc: Managed;
}

export async function startBackend(distMacro: string): Promise<Backend> {
  const proc = spawnManaged(process.execPath, [join(distMacro, 'backend/backend.js')]);
  const m = await waitForLine(proc, /^backend listening 127\.0\.0\.1:(\d+)$/, 15_000);
  proc.child.stdout!.resume();
  return { port: Number(m[1]), proc };
}
