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

/** Until SIGTERM/SIGQUIT/SIGINT: then a graceful close; a second signal exits at once. */
function untilSignal(p: Prepared): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) {
        if (isWorker()) return; // the primary sends SIGKILL when it means it
        process.exit(1);
      }
      stopping = true;
      say(`${sig}, closing gracefully`);
      void p.proxy.close().then(() => {
        for (const s of p.backends) s.close();
        resolve();
      });
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

/** The admin listener in a single process; in a worker, only the metrics the primary aggregates. */
async function startAdminFor(p: Prepared): Promise<{ close(): Promise<void> } | null | string> {
  if (isWorker()) {
    const metrics = workerMetrics(p.proxy);
    return { close: async () => metrics.detach() };
  }
  if (p.admin === null) return null;
  try {
    const admin = await startAdmin(p.proxy, p.admin);
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
  if (args.service.workers > 1 && !isWorker()) return runPrimary(p, args);
  const logs = startLogs(p.proxy, args.service, say);
  process.on('SIGUSR1', () => logs.reopen());
  onHangup(p, args, logs); // before listening: a SIGHUP must never kill a starting instance
  const admin = await startAdminFor(p);
  if (typeof admin === 'string') {
    say(admin);
    for (const s of p.backends) s.close();
    await logs.close();
    return 1;
  }
  const pidFile = isWorker() ? null : args.pidFile; // with workers, the primary's
  // Written before the listeners open: whoever sees one listening can already signal the process.
  if (pidFile !== null && !pidFileWritten(pidFile)) {
    await admin?.close();
    for (const s of p.backends) s.close();
    return 1;
  }
  const addresses = await listenAll(p);
  if (addresses === null) {
    await admin?.close();
    await logs.close();
    if (pidFile !== null) removePidFile(pidFile);
    return 1;
  }
  if (isWorker()) workerReady(addresses);
  else if (args.demo) demoBanner(p);
  await untilSignal(p);
  await admin?.close();
  await logs.close();
  if (pidFile !== null) removePidFile(pidFile);
  return 0;
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
