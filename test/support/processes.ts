/**
 * Child processes for tests: the wsplice CLI and the comparison peers (nginx, HAProxy,
 * http-proxy, ...). Both go through the bench's launchers (own process group, raised fd
 * limit, killed when this process exits), so a test and the bench start peers the same way.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Managed, freePort, spawnManaged, stopManaged } from '../../bench/macro/orchestrate/proc.js';
import { ALL_PEERS, type RunningPeer } from '../../bench/macro/orchestrate/peers/peers.js';
import { within } from './wait.js';

/** The repository root (holds dist/ once `npm run build` ran; `npm test` builds first). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The built CLI. */
export const CLI = join(ROOT, 'dist/src/cli/main.js');

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface CliProcess {
  child: Managed['child'];
  pid: number;
  /** The first address the CLI printed as "wsplice listening on HOST:PORT". */
  address: string;
  port: number;
  /** Everything written to stdout so far (bounded to 1 MiB). */
  stdout(): string;
  /** Everything written to stderr so far (bounded). */
  stderr(): string;
  /** Resolves with the exit code, or the signal name, when the process ends. */
  exited: Promise<number | string>;
  /** SIGTERM, SIGKILL after `graceMs`; resolves when the process group is gone. */
  stop(graceMs?: number): Promise<void>;
}

export interface CliOptions {
  /** The stdout line that means ready; its first group, if any, is the address. */
  ready?: RegExp;
  /** How long to wait for `ready` (default 15 s). */
  readyMs?: number;
  cwd?: string;
  /** Another copy of the built CLI to run (default dist/src/cli/main.js of this tree). */
  cli?: string;
}

/**
 * Runs `node dist/src/cli/main.js ...args` and resolves once it prints that it listens.
 * Rejects with its output if it exits or stays silent. Stopped at teardown when `t` is given.
 */
export async function startCli(args: readonly string[], t?: Teardown, o: CliOptions = {}): Promise<CliProcess> {
  const m = spawnManaged(process.execPath, [o.cli ?? CLI, ...args], { cwd: o.cwd ?? ROOT, stdin: 'ignore' });
  if (t) t.teardown(() => stopManaged(m, 2000));
  let out = '';
  m.child.stdout!.on('data', (d: Buffer) => {
    if (out.length < 1 << 20) out += d.toString();
  });
  const exited = new Promise<number | string>((r) => m.child.once('exit', (code, sig) => r(code ?? sig ?? -1)));
  const ready = o.ready ?? /wsplice listening on (\S+)/;
  const match = await within(new Promise<RegExpExecArray>((resolveReady, reject) => {
    const check = (): void => {
      const found = ready.exec(out);
      if (found) resolveReady(found);
    };
    m.child.stdout!.on('data', check);
    void exited.then((why) => reject(new Error(`wsplice exited (${why}) before ready: ${out}${m.output()}`)));
  }), o.readyMs ?? 15_000, `wsplice to print ${ready.source} (${args.join(' ')})`).catch(async (e: unknown) => {
    await stopManaged(m, 500);
    throw e;
  });
  const address = match[1] ?? '';
  return {
    child: m.child,
    pid: m.pid,
    address,
    port: Number(/:(\d+)$/.exec(address)?.[1] ?? 0),
    stdout: () => out,
    stderr: () => m.output(),
    exited,
    stop: (graceMs = 3000) => stopManaged(m, graceMs),
  };
}

/** The bench's peer names: direct, nginx-1w, nginx-auto, haproxy, http-proxy, node-pipe, wsplice-js, ... */
export const PEER_NAMES: readonly string[] = ALL_PEERS.map((p) => p.name);

export interface StartedPeer extends RunningPeer {
  /** Its temp dir (config, logs), removed by stop(). */
  dir: string;
}

/**
 * Starts one of the bench's peers in front of `backendPort`, with the bench's config.
 * Resolves with a string (the reason) when the peer cannot run here, e.g. nginx missing.
 */
export async function startPeer(name: string, backendPort: number, t?: Teardown): Promise<StartedPeer | string> {
  const spec = ALL_PEERS.find((p) => p.name === name);
  if (!spec) throw new Error(`unknown peer ${name} (${PEER_NAMES.join(', ')})`);
  const dir = mkdtempSync(join(tmpdir(), `wsplice-peer-${name}-`));
  const ctx = { root: ROOT, dir, backendPort, maxFds: 1024, cert: null };
  const why = spec.unavailable(ctx);
  if (why) {
    rmSync(dir, { recursive: true, force: true });
    return why;
  }
  const peer = await spec.start(ctx, name === 'direct' ? backendPort : await freePort());
  const stop = async (): Promise<void> => {
    await peer.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  if (t) t.teardown(stop);
  return { ...peer, dir, stop };
}
