/**
 * SIGUSR2 (`wsplice -s upgrade`): replace this process with a new one started from the code on disk
 * now, with no reconnect. The old process starts the new one with its own command line and one end
 * of a socketpair (fd 3, named by WSPLICE_UPGRADE_FD); the new one checks its configuration, takes
 * the listening sockets (the admin one too: nothing is bound twice, so nothing clashes), says it
 * serves, and adopts every native tunnel (src/handover/). Only then does the old one drain what
 * cannot move (JS-relay and TLS tunnels, exchanges in flight) and exit; the new one writes the pid
 * file. Any failure before that leaves the old process as it was: it logs why and goes on.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AdminTarget } from '../admin/server.js';
import { handoverCalls, type HandOverReport } from '../handover/index.js';
import type { GivenListener, ListenTarget, WspliceProxy } from '../server.js';
import { listenKey, type BoundListeners } from './reload.js';

/** The environment variable that tells a new process which fd is its upgrade channel. */
export const UPGRADE_FD_ENV = 'WSPLICE_UPGRADE_FD';
const CHILD_FD = 3;
/** The new process's start (node, the code, the configuration) up to its hello. */
const HELLO_MS = 15_000;
/** From the listeners given to "ready" (TLS contexts built, sockets served). */
const READY_MS = 30_000;

export type UpgradeLog = (level: 'info' | 'warn' | 'error', line: string) => void;

export interface UpgradeResult {
  ok: boolean;
  reason: string;
  /** The new process's pid (0 when none started). */
  pid: number;
  report: HandOverReport | null;
}

export interface UpgradeHost {
  proxy: WspliceProxy;
  /** The admin listener to give along, or null (none). */
  admin(): GivenListener | null;
  log: UpgradeLog;
  /** The upgrade succeeded: this process drains and exits. */
  upgraded(r: UpgradeResult): void;
}

/** What names the admin listener between the two processes. */
export function adminKey(t: AdminTarget): string {
  return `admin ${JSON.stringify({ host: t.host, port: t.port, path: t.path })}`;
}

export class Upgrader {
  /** False until this process serves: a SIGUSR2 while it starts (or takes over) is ignored. */
  serving = false;
  private running: Promise<UpgradeResult> | null = null;
  private succeeded = false;

  constructor(private readonly host: UpgradeHost) {
    host.proxy.on('handover', (e) => host.log('info', `upgrade: phase ${e.phase}`));
  }

  /** An upgrade succeeded: the new process is the instance (and owns the pid file). */
  get upgraded(): boolean {
    return this.succeeded;
  }

  /** The upgrade under way, or null (SIGTERM waits for its outcome). */
  get pending(): Promise<UpgradeResult> | null {
    return this.running;
  }

  /** SIGUSR2: start an upgrade unless one runs (or this process cannot yet, or already did). */
  request(): void {
    const log = this.host.log;
    if (!this.serving) return log('warn', 'SIGUSR2: not serving yet; upgrade ignored');
    if (this.succeeded) return log('warn', 'SIGUSR2: already upgraded, this process is draining; ignored');
    if (this.running !== null) return log('warn', 'SIGUSR2: an upgrade is already under way; ignored');
    this.running = this.run().catch((err: unknown) => this.refused(0, (err as Error).message)).then((r) => {
      this.running = null;
      if (r.ok) {
        this.succeeded = true;
        this.host.upgraded(r);
      }
      return r;
    });
  }

  private async run(): Promise<UpgradeResult> {
    const { proxy, log } = this.host;
    let calls: ReturnType<typeof handoverCalls>;
    try {
      calls = handoverCalls();
    } catch (err) {
      return this.refused(0, (err as Error).message);
    }
    const [mine, theirs] = calls.channelPair();
    let child: ChildProcess;
    try {
      child = startNew(theirs);
    } catch (err) {
      calls.closeFd(mine);
      return this.refused(0, `cannot start the new process: ${(err as Error).message}`);
    } finally {
      calls.closeFd(theirs); // the new process holds its own copy: when it dies, ours reads the end
    }
    const exited = exitOf(child);
    log('info', `upgrade: started pid ${child.pid ?? 0} (${process.execPath} ${process.argv.slice(1).join(' ')})`);
    const admin = this.host.admin();
    try {
      const report = await proxy.handOver(mine, { timeoutMs: HELLO_MS, readyTimeoutMs: READY_MS, extraListeners: admin !== null ? [admin] : [] });
      log('info', `upgrade done: pid ${report.peerPid} (version ${report.peerVersion}) serves ${report.listeners} listener(s); ${report.moved} tunnel(s) moved, ${report.stayed} drain here, ${report.ms.toFixed(1)} ms`);
      return { ok: true, reason: '', pid: report.peerPid, report };
    } catch (err) {
      // The new process's own end is the better reason when it died; alive, it must not serve beside us.
      const why = await Promise.race([exited, sleep(1000).then(() => null)]);
      if (why === null) child.kill('SIGTERM');
      const reason = `${(err as Error).message}${why !== null ? ` (the new process ${why})` : ' (the new process was stopped)'}`;
      return this.refused(child.pid ?? 0, reason, (err as { report?: HandOverReport }).report ?? null);
    }
  }

  private refused(pid: number, reason: string, report: HandOverReport | null = null): UpgradeResult {
    this.host.log('error', `upgrade rolled back: ${reason}; pid ${process.pid} keeps every listener and tunnel`);
    return { ok: false, reason, pid, report };
  }
}

/** The new process: this one's command line, the channel as fd 3, the same stdout and stderr. */
function startNew(channelFd: number): ChildProcess {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ['ignore', 'inherit', 'inherit', channelFd],
    env: { ...process.env, [UPGRADE_FD_ENV]: String(CHILD_FD) },
  });
  child.unref(); // this process exits after the hand-over; the new one runs on
  return child;
}

function exitOf(child: ChildProcess): Promise<string> {
  return new Promise((resolve) => {
    child.once('exit', (code, sig) => resolve(sig !== null ? `was killed by ${sig}` : `exited with code ${code ?? 0}`));
    child.once('error', (err) => resolve(`could not start: ${err.message}`));
  });
}

/** In a new process: the upgrade channel's fd, or null (a plain start). Read once. */
export function upgradeChannel(): number | null {
  const v = process.env[UPGRADE_FD_ENV];
  if (v === undefined) return null;
  delete process.env[UPGRADE_FD_ENV]; // its own upgrades set it afresh
  const fd = Number(v);
  return Number.isInteger(fd) && fd >= 0 ? fd : null;
}

export interface TakeSide {
  proxy: WspliceProxy;
  targets: readonly ListenTarget[];
  bound: BoundListeners;
  admin: AdminTarget | null;
  /** Serve the admin listener on `t` (the given socket or a fresh bind); the error's message when it cannot. */
  startAdmin(t: AdminTarget): Promise<string | null>;
  out(line: string): void;
}

/**
 * Serve on the sockets the old process gave: each configured listen target on the socket given for
 * it (never bound again), the admin target likewise. A different set of listeners is refused with
 * both lists: the old process keeps serving, and a reload (SIGHUP) is the way to change them.
 */
export async function listenGiven(s: TakeSide, given: GivenListener[]): Promise<void> {
  const ownKeys = new Set(s.targets.map(listenKey));
  const isAdmin = (g: GivenListener): boolean => g.key.startsWith('admin ');
  const proxyGiven = given.filter((g) => !isAdmin(g));
  const byKey = new Map(proxyGiven.map((g) => [g.key, g]));
  const missing = s.targets.filter((t) => !byKey.has(listenKey(t))).map(listenKey);
  const gone = proxyGiven.filter((g) => !ownKeys.has(g.key)).map((g) => g.address);
  const closeAll = (): void => {
    for (const g of given) handoverCalls().closeFd(g.fd);
  };
  if (missing.length > 0 || gone.length > 0) {
    closeAll();
    throw new Error(`the new configuration's listeners differ from the running ones (not running: ${missing.join(', ') || 'none'}; not configured: ${gone.join(', ') || 'none'}); change listeners with a reload (SIGHUP), not an upgrade`);
  }
  for (const t of s.targets) {
    const g = byKey.get(listenKey(t))!;
    const addr = await s.proxy.listen({ ...(t as object), fd: g.fd });
    s.bound.set(listenKey(t), addr);
    s.out(`wsplice listening on ${typeof addr === 'string' ? `unix:${addr}` : g.address}`);
  }
  const adminGiven = given.find(isAdmin) ?? null;
  if (s.admin === null) {
    if (adminGiven !== null) handoverCalls().closeFd(adminGiven.fd);
    return;
  }
  const same = adminGiven !== null && adminGiven.key === adminKey(s.admin);
  if (adminGiven !== null && !same) handoverCalls().closeFd(adminGiven.fd);
  const bad = await s.startAdmin(same ? { fd: adminGiven.fd } : s.admin);
  if (bad !== null) throw new Error(bad);
}
