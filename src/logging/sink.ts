/**
 * Where a log goes: stdout, stderr, a file (appended, reopened on SIGUSR1
 * for logrotate) or nowhere. Lines are JSON, one per line, written by pino
 * through an asynchronous pino.destination. A file that cannot be opened or written
 * is reported once; its lines are then dropped (counted) and serving goes on,
 * until a reopen succeeds.
 */
import { openSync } from 'node:fs';
import { pino, type Logger, type LoggerOptions } from 'pino';

type Destination = ReturnType<typeof pino.destination>;

/** `stdout`, `stderr`, `off` or a file path (nginx: `access_log off;`). */
export type LogTarget = string;

export class LogSink {
  readonly target: LogTarget;
  /** Lines dropped because the file could not be written. */
  dropped = 0;
  private readonly options: LoggerOptions;
  private readonly onProblem: (message: string) => void;
  private stream: Destination | null = null;
  private logger: Logger | null = null;
  private reported = false;

  constructor(target: LogTarget, options: LoggerOptions, onProblem: (message: string) => void) {
    this.target = target;
    this.options = options;
    this.onProblem = onProblem;
    this.open();
  }

  get enabled(): boolean {
    return this.target !== 'off';
  }

  /** The logger, or null when off or broken (the caller skips building its line). */
  get log(): Logger | null {
    if (this.logger === null && this.enabled) this.dropped++;
    return this.logger;
  }

  /** Reopen the file (after logrotate moved it), or retry one that failed. */
  reopen(): void {
    if (!this.isFile()) return;
    const old = this.stream;
    this.stream = null;
    this.logger = null;
    this.open();
    if (old !== null) old.end(); // flushes what it holds to the old (rotated) file, then closes it
  }

  /** Flush and close. */
  close(): Promise<void> {
    const s = this.stream;
    this.stream = null;
    this.logger = null;
    if (s === null || !this.isFile()) {
      if (s !== null) s.flush?.();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      s.once('close', () => resolve());
      s.once('error', () => resolve());
      s.end();
    });
  }

  private isFile(): boolean {
    return this.target !== 'off' && this.target !== 'stdout' && this.target !== 'stderr';
  }

  private open(): void {
    if (!this.enabled) return;
    // The file is opened here, synchronously: the stream has its fd from the start, so neither an
    // exit nor a write ever meets a stream still opening, and a path that cannot be opened is
    // known at once. Lines are still written asynchronously.
    let dest: number;
    try {
      dest = this.target === 'stdout' ? 1 : this.target === 'stderr' ? 2 : openSync(this.target, 'a');
    } catch (err) {
      this.report(err as NodeJS.ErrnoException);
      return;
    }
    const stream = pino.destination({ dest, sync: false, minLength: 0 });
    stream.on('error', (err: NodeJS.ErrnoException) => this.broken(stream, err));
    this.stream = stream;
    this.reported = false;
    this.logger = pino(this.options, stream);
  }

  private broken(stream: Destination, err: NodeJS.ErrnoException): void {
    if (this.stream !== stream) return;
    this.stream = null;
    this.logger = null;
    try {
      stream.destroy();
    } catch {
      // already gone
    }
    this.report(err);
  }

  private report(err: NodeJS.ErrnoException): void {
    if (this.reported) return;
    this.reported = true;
    this.onProblem(`log ${this.target}: ${err.code ?? err.message}; its lines are dropped until it can be reopened (SIGUSR1)`);
  }
}
