/**
 * SIGHUP in the CLI: read the command line's configuration again (the file
 * included), check all of it, then swap the proxy's options and open or close
 * listeners as the new file says. One reload runs at a time; signals that come
 * during one are folded into a single next run, which reads the file as it is
 * then (a storm of ten costs at most two reloads, and the last file wins).
 * A refused file changes nothing; every problem is logged.
 */
import { listenTargets } from './load.js';
import type { AddressInfo } from 'node:net';
import { ConfigErrors, formatIssue, Issues, type ConfigIssue } from '../config/issues.js';
import { ConfigError } from '../errors.js';
import { resolveOptions } from '../options.js';
import type { ListenTarget, WspliceProxy } from '../server.js';
import { parseArgs, type CliArgs } from './args.js';

/** Where a line about a reload goes (the CLI's stderr log). */
export type ReloadLog = (level: 'info' | 'error', line: string) => void;

/** The listeners the CLI opened, by target (as JSON), with the address each resolved to. */
export type BoundListeners = Map<string, AddressInfo | string>;

export function listenKey(t: ListenTarget): string {
  return JSON.stringify(t);
}

export class Reloader {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly proxy: WspliceProxy,
    private readonly argv: readonly string[],
    private readonly bound: BoundListeners,
    private readonly log: ReloadLog,
  ) {}

  /** Ask for a reload (SIGHUP); resolves when no reload is pending or running. */
  request(): Promise<void> {
    if (this.running !== null) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.once();
      } while (this.again);
      this.running = null;
    })();
    return this.running;
  }

  private async once(): Promise<void> {
    const next = this.check(parseArgs([...this.argv]));
    if ('issues' in next) {
      for (const i of next.issues) this.log('error', `reload: config error: ${formatIssue(i)}`);
      this.proxy.emit('reload', { ok: false, generation: this.proxy.generation, error: next.issues.map(formatIssue).join('; ') });
      this.log('error', `reload refused (${next.issues.length} problem(s)); generation ${this.proxy.generation} stays`);
      return;
    }
    try {
      this.proxy.reload(next.args.options!, next.args.where);
    } catch (err) {
      // Checked just above; only a file that changed under us (a certificate) gets here.
      for (const i of issuesOf(err)) this.log('error', `reload: config error: ${formatIssue(i)}`);
      this.log('error', `reload refused; generation ${this.proxy.generation} stays`);
      return;
    }
    const opened = await this.listeners(next.targets);
    this.log('info', `reload ok: generation ${this.proxy.generation}${opened}`);
  }

  /** Every problem of the new command line and file, or what to apply. */
  private check(args: CliArgs): { args: CliArgs; targets: ListenTarget[] } | { issues: readonly ConfigIssue[] } {
    const is = new Issues(args.where);
    for (const i of args.issues) is.add(i);
    if (args.options === null) is.error('--config', 'no upstream in the new configuration');
    else {
      try {
        // The proxy checks again when it swaps; here the problems join the flag and listen ones.
        resolveOptions(args.options, args.where);
      } catch (err) {
        for (const i of issuesOf(err)) is.add(i);
      }
    }
    const listen = args.listen.length > 0 ? args.listen : ['127.0.0.1:8080'];
    const targets = listenTargets(listen, is);
    return is.hasErrors ? { issues: is.list.filter((i) => i.severity === 'error') } : { args, targets };
  }

  /** Close the listeners the new file no longer has, open the new ones; a summary for the log line. */
  private async listeners(targets: readonly ListenTarget[]): Promise<string> {
    const wanted = new Map(targets.map((t) => [listenKey(t), t]));
    const closed: string[] = [];
    const opened: string[] = [];
    for (const [key, addr] of [...this.bound]) {
      if (wanted.has(key)) continue;
      await this.proxy.unlisten(addr);
      this.bound.delete(key);
      closed.push(fmt(addr));
    }
    for (const [key, t] of wanted) {
      if (this.bound.has(key)) continue;
      try {
        const addr = await this.proxy.listen(t);
        this.bound.set(key, addr);
        opened.push(fmt(addr));
        process.stdout.write(`wsplice listening on ${fmt(addr)}\n`);
      } catch (err) {
        this.log('error', `reload: cannot listen on ${key}: ${(err as Error).message}`);
      }
    }
    return (opened.length > 0 ? `; listening on ${opened.join(', ')}` : '') + (closed.length > 0 ? `; closed ${closed.join(', ')}` : '');
  }
}

function issuesOf(err: unknown): readonly ConfigIssue[] {
  if (err instanceof ConfigErrors) return err.issues;
  if (err instanceof ConfigError) return [{ field: err.field, message: err.message, severity: 'error' }];
  throw err;
}

export function fmt(a: AddressInfo | string): string {
  if (typeof a === 'string') return `unix:${a}`;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}
