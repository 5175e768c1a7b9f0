#!/usr/bin/env node
/**
 * The `wsplice` command: flags or a config file -> checked options -> a proxy
 * and its listeners. One line per listener on stdout (`wsplice listening on
 * HOST:PORT`), events on stderr, graceful close on SIGTERM/SIGINT.
 * Exit status: 0 ok; 1 `-t` found a problem or a runtime failure; 2 a usage or
 * configuration error at start.
 */
import { listenTargets } from './load.js';
import { readFileSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import { ConfigErrors, formatIssue, Issues, type ConfigIssue } from '../config/issues.js';
import { ConfigError, WspliceError } from '../errors.js';
import { llhttpBuild } from '../http1/llhttp.js';
import { defaultMaxConnections, nofileLimit } from '../limits/nofile.js';
import { LIMIT_ROWS, resolveOptions, type ProxyOptions } from '../options.js';
import { selectRelay } from '../relay/index.js';
import { WspliceProxy, type ListenTarget } from '../server.js';
import { parseAdminListen, startAdmin, type AdminTarget } from '../admin/index.js';
import { configSchema } from '../config/schema.js';
import { startLogs, type Logs } from './service.js';
import { isWorker, Primary, workerMetrics, workerReady } from './workers.js';
import { parseArgs, USAGE, type CliArgs, type ListenEntry } from './args.js';
import { portOf, startEchoBackend } from './demo.js';
import { removePidFile, signalInstance, SIGNALS, writePidFile, type SignalName } from './pidfile.js';
import { listenKey, Reloader, type BoundListeners, type ReloadLog } from './reload.js';
import { adminKey, listenGiven, upgradeChannel, Upgrader, type TakeSide, type UpgradeLog } from './upgrade.js';
import { ChannelClosed } from '../handover/channel.js';
import type { AdminServer } from '../admin/server.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  let relay: string;
  try {
    relay = selectRelay('auto').note;
  } catch (err) {
    relay = `relay: js (${(err as Error).message})`;
  }
  // The default connection limit, derived from this process's fd limit (no pools configured).
  const conns = defaultMaxConnections(nofileLimit(), LIMIT_ROWS.maxRetired.default, 0).note;
  return `wsplice ${pkg.version}\nnode ${process.version}\nparser: ${llhttpBuild()}\n${relay}\nconnections: ${conns}`;
}

function fmt(a: AddressInfo | string): string {
  if (typeof a === 'string') return `unix:${a}`;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

const say = (line: string): void => void process.stderr.write(`wsplice: ${line}\n`);

/** Each problem on its own line, errors then warnings. */
function reportIssues(err: unknown): boolean {
  if (!(err instanceof ConfigError)) return false;
  const issues: readonly ConfigIssue[] = err instanceof ConfigErrors ? err.issues : [{ field: '', message: err.message, severity: 'error' }];
  for (const i of issues) say(`${i.severity === 'error' ? 'config error' : 'warning'}: ${formatIssue(i)}`);
  return true;
}

interface Prepared {
  proxy: WspliceProxy;
  /** What each listen target resolved to (SIGHUP compares the new file's targets with these). */
  bound: BoundListeners;
  admin: AdminTarget | null;
  targets: ListenTarget[];
  backends: Server[];
}

/** The demo's echo backends and options, or the given ones; null when nothing says where to send traffic. */
async function optionsFor(args: CliArgs, backends: Server[]): Promise<{ options: ProxyOptions; listen: ListenEntry[] } | null> {
  if (!args.demo) return args.options === null ? null : { options: args.options, listen: args.listen };
  for (const name of ['echo-1', 'echo-2']) backends.push(await startEchoBackend(name));
  const servers = backends.map((b) => `127.0.0.1:${portOf(b)}`);
  return { options: { ...(args.options ?? {}), upstreams: { backend: { servers } } }, listen: args.listen.length > 0 ? args.listen : ['127.0.0.1:8080'] };
}

/** Check everything (file positions included) and build the proxy; an exit code when it cannot. */
async function prepare(args: CliArgs): Promise<Prepared | number> {
  const backends: Server[] = [];
  const given = await optionsFor(args, backends);
  if (given === null) {
    if (!reportIssues(args.issues.length > 0 ? new ConfigErrors(args.issues) : null)) {
      say('no upstream given (use --upstream, --route, --config or --demo; see --help)');
    }
    return failed(args);
  }
  try {
    const is = new Issues(args.where);
    for (const i of args.issues) is.add(i);
    try {
      resolveOptions(given.options, args.where);
    } catch (err) {
      if (!(err instanceof ConfigErrors)) throw err;
      for (const i of err.issues) is.add(i);
    }
    is.throwIfErrors();
    const listen = given.listen.length > 0 ? given.listen : ['127.0.0.1:8080'];
    const targets = listenTargets(listen, is);
    let admin: AdminTarget | null = null;
    try {
      if (args.service.admin !== null) admin = parseAdminListen(args.service.admin);
    } catch (err) {
      is.error('--admin', (err as Error).message.replace(/^admin listen: /, ''));
    }
    is.throwIfErrors();
    return { proxy: new WspliceProxy(given.options), bound: new Map(), admin, targets, backends };
  } catch (err) {
    for (const s of backends) s.close();
    if (!reportIssues(err)) throw err;
    return failed(args);
  }
}

/** nginx's exit convention: 1 when -t finds a problem, 2 for a configuration that cannot start. */
function failed(args: CliArgs): number {
  if (!args.test && !args.dump) return 2;
  say(`configuration${args.configFile !== null ? ` file ${args.configFile}` : ''} test failed`);
  return 1;
}

/** Listen on every target; the addresses, or null (all closed) when one cannot. Workers leave the printing to the primary. */
async function listenAll(p: Prepared): Promise<string[] | null> {
  const addresses: string[] = [];
  for (const t of p.targets) {
    try {
      const addr = await p.proxy.listen(t);
      p.bound.set(listenKey(t), addr);
      addresses.push(fmt(addr));
      if (!isWorker()) process.stdout.write(`wsplice listening on ${fmt(addr)}\n`);
    } catch (err) {
      say(`cannot listen on ${JSON.stringify(t)}: ${(err as Error).message}`);
      await p.proxy.close();
      for (const s of p.backends) s.close();
      return null;
    }
  }
  return addresses;
}

function demoBanner(p: Prepared): void {
  const addr = fmt(p.proxy.address()!);
  process.stdout.write(
    `demo: two echo backends (127.0.0.1:${portOf(p.backends[0]!)}, 127.0.0.1:${portOf(p.backends[1]!)}) behind the proxy, ${p.proxy.relayNote}\n` +
      `try:  curl -i http://${addr}/hello\n` +
      `      node -e "const ws=new (require('ws'))('ws://${addr}/');ws.on('open',()=>ws.send('whoami'));ws.on('message',m=>{console.log(String(m));ws.close()})"\n` +
      'Ctrl-C to stop.\n',
  );
}

/** SIGHUP: reload (src/cli/reload.ts); in --demo the backends are made here, so there is nothing to re-read. */
function onHangup(p: Prepared, args: CliArgs, logs: Logs): void {
  const log: ReloadLog = (level, line) => (level === 'error' ? logs.error.error({ code: 'WSPLICE_CONFIG' }, line) : logs.error.info({ code: 'WSPLICE_RELOAD' }, line));
  const reloader = new Reloader(p.proxy, process.argv.slice(2), p.bound, log);
  process.on('SIGHUP', () => {
    if (args.demo) log('info', 'SIGHUP: nothing to reload in --demo');
    else void reloader.request();
  });
}

/** -s NAME: signal the instance the pid file names, then exit (0 sent, 1 not). */
function sendSignal(args: CliArgs, name: SignalName): number {
  if (args.pidFile === null) {
    say('-s needs the pid file: --pid-file FILE, or -c FILE with "pid"');
    return 1;
  }
  try {
    const pid = signalInstance(args.pidFile, name);
    process.stdout.write(`wsplice: sent ${SIGNALS[name]} to ${pid}\n`);
    return 0;
  } catch (err) {
    say((err as Error).message);
    return 1;
  }
}

/**
 * Until SIGTERM/SIGQUIT/SIGINT, or an upgrade that succeeded: then a graceful close (the drain).
 * A signal during an upgrade waits for its outcome; a second signal exits at once.
 */
function untilSignal(p: Prepared, up: Upgrader, upgraded: Promise<void>): Promise<'stopped' | 'upgraded'> {
  return new Promise((resolve) => {
    let stopping = false;
    const close = (how: 'stopped' | 'upgraded'): void => {
      void p.proxy.close().then(() => {
        for (const s of p.backends) s.close();
        resolve(how);
      });
    };
    void upgraded.then(() => close('upgraded'));
    const stop = (sig: string): void => {
      if (stopping) {
        if (isWorker()) return; // the primary sends SIGKILL when it means it
        process.exit(1);
      }
      stopping = true;
      const pending = up.pending;
      if (pending === null) {
        say(`${sig}, closing gracefully`);
        return close('stopped');
      }
      say(`${sig} during an upgrade: closing once it is decided`);
      void pending.then((r) => (r.ok ? undefined : close('stopped'))); // ok: the upgrade's drain runs
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGQUIT', () => stop('SIGQUIT'));
  });
}

function pidFileWritten(file: string): boolean {
  try {
    writePidFile(file);
    return true;
  } catch (err) {
    say((err as Error).message);
    return false;
  }
}

type Closable = { close(): Promise<void>; server?: AdminServer; address?: AddressInfo | string };

/** The admin listener in a single process; in a worker, only the metrics the primary aggregates. */
async function startAdminFor(p: Prepared, target = p.admin): Promise<Closable | null | string> {
  if (isWorker()) {
    const metrics = workerMetrics(p.proxy);
    return { close: async () => metrics.detach() };
  }
  if (target === null) return null;
  try {
    const admin = await startAdmin(p.proxy, target);
    process.stdout.write(`wsplice admin on ${fmt(admin.address)}\n`);
    return admin;
  } catch (err) {
    return (err as Error).message; // e.g. "admin listener 127.0.0.1:9100: address already in use (EADDRINUSE)"
  }
}

/** --workers N: this process becomes the primary (the proxy built by prepare() only checked the configuration). */
async function runPrimary(p: Prepared, args: CliArgs): Promise<number> {
  await p.proxy.close();
  for (const s of p.backends) s.close();
  if (args.pidFile !== null && !pidFileWritten(args.pidFile)) return 1;
  const code = await new Primary({ count: args.service.workers, admin: p.admin, say, out: (l) => void process.stdout.write(l + '\n') }).run();
  if (args.pidFile !== null) removePidFile(args.pidFile);
  return code;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  if (args.help && args.issues.length === 0) return void process.stdout.write(USAGE), 0;
  if (args.version) return void process.stdout.write(version() + '\n'), 0;
  if (args.signal !== null) return sendSignal(args, args.signal);
  if (args.schema) return void process.stdout.write(JSON.stringify(configSchema(), null, 2) + '\n'), 0;
  const p = await prepare(args);
  if (typeof p === 'number') return p;
  for (const i of args.issues) if (i.severity === 'warning') say(`warning: ${formatIssue(i)}`);
  if (args.test || args.dump) {
    if (args.dump) process.stdout.write(JSON.stringify({ listen: p.targets, ...(args.options ?? {}) }, null, 2) + '\n');
    process.stdout.write(`wsplice: configuration ok (${p.proxy.groups.size} upstream group(s), ${p.proxy.relayNote})\n`);
    return 0;
  }
  const channel = upgradeChannel();
  if (args.service.workers > 1 && !isWorker()) {
    // An upgrade hands tunnels to one process; the new configuration asks for several.
    if (channel !== null) return say('upgrade refused: the new configuration runs --workers; restart instead'), 1;
    return runPrimary(p, args);
  }
  return serve(p, args, channel);
}

/** Run as the instance: a fresh start, or (WSPLICE_UPGRADE_FD) the new process of an upgrade. */
async function serve(p: Prepared, args: CliArgs, channel: number | null): Promise<number> {
  const logs = startLogs(p.proxy, args.service, say);
  process.on('SIGUSR1', () => logs.reopen());
  onHangup(p, args, logs); // before listening: a SIGHUP must never kill a starting instance
  let admin: Closable | null = null;
  let markUpgraded!: () => void;
  const upgraded = new Promise<void>((r) => (markUpgraded = r));
  const up = new Upgrader({
    proxy: p.proxy,
    log: upgradeLog(logs),
    admin: () => (admin?.server !== undefined && p.admin !== null ? { key: adminKey(p.admin), address: fmt(admin.address!), fd: admin.server.fd() } : null),
    upgraded: () => void (admin?.close() ?? Promise.resolve()).then(markUpgraded, markUpgraded), // the new process serves the admin socket now
  });
  onUpgradeSignal(up, logs);
  const pidFile = isWorker() ? null : args.pidFile; // with workers, the primary's
  const started = channel === null ? await startFresh(p, pidFile) : await startTaken(p, channel, pidFile, logs);
  if (typeof started === 'number') {
    await logs.close();
    return started;
  }
  admin = started.admin;
  up.serving = true;
  const how = await untilSignal(p, up, upgraded);
  await admin?.close();
  await logs.close();
  // Upgraded: the pid file names the new process, which wrote it.
  if (pidFile !== null && how === 'stopped' && !up.upgraded) removePidFile(pidFile);
  return 0;
}

function upgradeLog(logs: Logs): UpgradeLog {
  return (level, line) => logs.error[level]({ code: 'WSPLICE_UPGRADE' }, line);
}

/** SIGUSR2: the upgrade; a worker refuses it (the primary would have to move every worker's tunnels). */
function onUpgradeSignal(up: Upgrader, logs: Logs): void {
  process.on('SIGUSR2', () => {
    if (isWorker()) logs.error.warn({ code: 'WSPLICE_UPGRADE' }, 'SIGUSR2: a worker does not upgrade (with --workers the upgrade is refused); ignored');
    else up.request();
  });
}

/** A plain start: admin, pid file, listeners. An exit code when one of them cannot. */
async function startFresh(p: Prepared, pidFile: string | null): Promise<{ admin: Closable | null } | number> {
  const admin = await startAdminFor(p);
  if (typeof admin === 'string') {
    say(admin);
    for (const s of p.backends) s.close();
    return 1;
  }
  // Written before the listeners open: whoever sees one listening can already signal the process.
  if (pidFile !== null && !pidFileWritten(pidFile)) {
    await admin?.close();
    for (const s of p.backends) s.close();
    return 1;
  }
  const addresses = await listenAll(p);
  if (addresses === null) {
    await admin?.close();
    if (pidFile !== null) removePidFile(pidFile);
    return 1;
  }
  if (isWorker()) workerReady(addresses);
  else if (p.backends.length > 0) demoBanner(p);
  return { admin };
}

/**
 * The new process of an upgrade: take the old one's listeners (and admin socket) and tunnels over
 * the channel, then write the pid file. Exit 1 when it cannot: the old process goes on.
 */
async function startTaken(p: Prepared, channel: number, pidFile: string | null, logs: Logs): Promise<{ admin: Closable | null } | number> {
  let admin: Closable | null = null;
  const side: TakeSide = {
    proxy: p.proxy, targets: p.targets, bound: p.bound, admin: p.admin,
    out: (l) => void process.stdout.write(l + '\n'),
    startAdmin: async (t) => {
      const a = await startAdminFor(p, t);
      if (typeof a === 'string') return a;
      admin = a;
      return null;
    },
  };
  const log = upgradeLog(logs);
  try {
    const r = await p.proxy.takeOver(channel, { listen: (given) => listenGiven(side, given) });
    log('info', `upgrade: took over from pid ${r.peerPid} (version ${r.peerVersion}): ${r.listeners} listener(s), ${r.tunnels} tunnel(s), longest pause ${r.maxPauseMs.toFixed(2)} ms`);
  } catch (err) {
    // The old process gone after we served (it crashed mid-way): what we hold runs here, we are the instance.
    const orphaned = err instanceof ChannelClosed && p.proxy.addresses().length > 0;
    log(orphaned ? 'warn' : 'error', `upgrade: ${orphaned ? 'the old process went away mid-way; serving what was taken' : `take-over failed, exiting (the old process goes on): ${(err as Error).message}`}`);
    if (!orphaned) {
      await p.proxy.close();
      await (admin as Closable | null)?.close();
      return 1;
    }
  }
  if (pidFile !== null && !pidFileWritten(pidFile)) log('error', 'upgrade: the pid file still names the old process');
  return { admin };
}

main().then(
  (code) => {
    process.exitCode = code;
    if (isWorker()) process.exit(code); // the IPC channel to the primary would keep it alive
  },
  (err: unknown) => {
    say(err instanceof WspliceError ? err.message : String((err as Error).stack));
    process.exitCode = 1;
  },
);
