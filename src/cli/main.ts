#!/usr/bin/env node
/**
 * The `wsplice` command: flags or a JSON config -> createProxy -> listeners.
 * One line per listener on stdout (`wsplice listening on HOST:PORT`), events
 * on stderr, graceful close on SIGTERM/SIGINT.
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import { ConfigError, WspliceError } from '../errors.js';
import { llhttpBuild } from '../http1/llhttp.js';
import type { ProxyOptions } from '../options.js';
import { selectRelay } from '../relay/index.js';
import { Proxy } from '../server.js';
import { parseArgs, parseListen, USAGE } from './args.js';
import { portOf, startEchoBackend } from './demo.js';

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  let relay: string;
  try {
    relay = selectRelay('auto').note;
  } catch (err) {
    relay = `relay: js (${(err as Error).message})`;
  }
  return `wsplice ${pkg.version}\nnode ${process.version}\nparser: ${llhttpBuild()}\n${relay}`;
}

function fmt(a: AddressInfo | string): string {
  if (typeof a === 'string') return `unix:${a}`;
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`wsplice: ${(err as Error).message}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (args.version) {
    process.stdout.write(version() + '\n');
    return 0;
  }

  const backends: Server[] = [];
  let options: ProxyOptions | null = args.options;
  let listen = args.listen;
  if (args.demo) {
    const a = await startEchoBackend('echo-1');
    const b = await startEchoBackend('echo-2');
    backends.push(a, b);
    options = {
      ...(options ?? {}),
      upstreams: { backend: { servers: [`127.0.0.1:${portOf(a)}`, `127.0.0.1:${portOf(b)}`] } },
    };
    if (listen.length === 0) listen = ['127.0.0.1:8080'];
  }
  if (options === null) {
    process.stderr.write('wsplice: no upstream given (use --upstream, --route, --config or --demo; see --help)\n');
    return 2;
  }
  if (listen.length === 0) listen = ['127.0.0.1:8080'];

  let proxy: Proxy;
  let targets;
  try {
    proxy = new Proxy(options);
    targets = listen.map(parseListen);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`wsplice: config error: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (args.test) {
    process.stdout.write(`wsplice: configuration ok (${proxy.groups.size} upstream group(s), ${proxy.relayNote})\n`);
    return 0;
  }
  if (!args.quiet) {
    proxy.on('refused', (e) => process.stderr.write(`refused #${e.id} ${e.remoteAddress} ${e.status} ${e.code}: ${e.reason}\n`));
    proxy.on('upstreamError', (e) => process.stderr.write(`upstream #${e.id} ${e.status} ${e.code}: ${e.reason}\n`));
    proxy.on('error', (e) => process.stderr.write(`error: ${e.message}\n`));
  }
  for (const t of targets) {
    try {
      const addr = await proxy.listen(t);
      process.stdout.write(`wsplice listening on ${fmt(addr)}\n`);
    } catch (err) {
      process.stderr.write(`wsplice: cannot listen on ${JSON.stringify(t)}: ${(err as Error).message}\n`);
      await proxy.close();
      for (const s of backends) s.close();
      return 1;
    }
  }
  if (args.demo) {
    const addr = fmt(proxy.address()!);
    process.stdout.write(
      `demo: two echo backends (127.0.0.1:${portOf(backends[0]!)}, 127.0.0.1:${portOf(backends[1]!)}) behind the proxy, ${proxy.relayNote}\n` +
        `try:  curl -i http://${addr}/hello\n` +
        `      node -e "const ws=new (require('ws'))('ws://${addr}/');ws.on('open',()=>ws.send('whoami'));ws.on('message',m=>{console.log(String(m));ws.close()})"\n` +
        'Ctrl-C to stop.\n',
    );
  }

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) {
        process.exit(1); // a second signal: now
      }
      stopping = true;
      process.stderr.write(`wsplice: ${sig}, closing gracefully\n`);
      void proxy.close().then(() => {
        for (const s of backends) s.close();
        resolve();
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`wsplice: ${err instanceof WspliceError ? err.message : (err as Error).stack}\n`);
    process.exitCode = 1;
  },
);
