/**
 * Command-line flags, in the manner of nginx/HAProxy: each flag maps onto the
 * same options object as a config file; flags given on the command line win.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import type { ProxyOptions, RouteConfig, UpstreamConfig } from '../options.js';

export const USAGE = `Usage: wsplice [options]

A WebSocket and HTTP/1.1 reverse proxy.

  -l, --listen HOST:PORT        listen here (repeatable; [v6]:PORT and unix:/path too)
  -u, --upstream ADDR[,weight=N]
                                a backend of the default upstream group (repeatable);
                                ADDR is HOST:PORT, [v6]:PORT or unix:/path
  -r, --route PREFIX=ADDR[,ADDR...]
                                send paths under PREFIX to these backends (repeatable;
                                =PREFIX for an exact match: --route =/ws=127.0.0.1:9000)
  -c, --config FILE             JSON config file (see README: upstreams, routes, forwarding,
                                timeouts, limits, relay, listen)
      --idle-timeout MS         close a tunnel idle this long (default 60000; 0 disables)
      --connect-timeout MS      upstream connect timeout (default 60000)
      --read-timeout MS         upstream response timeout (default 60000)
      --host-header VALUE       send this Host upstream instead of the client's
      --relay auto|js|splice    tunnel relay (default auto: splice when the addon is built)
      --demo                    run the demo: two echo backends behind the proxy on 127.0.0.1:8080
  -t, --test                    check the configuration and exit (like nginx -t)
  -q, --quiet                   no per-event log lines on stderr
  -v, --version                 print the version, parser build and relay, then exit
  -h, --help                    print this help

Signals: SIGTERM and SIGINT close gracefully (stop accepting, drain, then exit).
`;

export interface CliArgs {
  listen: string[];
  options: ProxyOptions | null;
  demo: boolean;
  test: boolean;
  quiet: boolean;
  help: boolean;
  version: boolean;
}

function parseServer(spec: string, field: string): string | { address: string; weight: number } {
  const [address, ...params] = spec.split(',');
  let weight = 1;
  for (const p of params) {
    const m = /^weight=(\d+)$/.exec(p);
    if (m === null) throw new ConfigError(field, `unknown server parameter "${p}" (expected weight=N)`);
    weight = Number(m[1]);
  }
  return weight === 1 ? address! : { address: address!, weight };
}

function intArg(v: string, flag: string): number {
  if (!/^\d+$/.test(v)) throw new ConfigError(flag, `expects a whole number of milliseconds, got "${v}"`);
  return Number(v);
}

/** Parse argv (without node and script). Throws ConfigError on a bad flag. */
export function parseArgs(argv: string[]): CliArgs {
  const out: CliArgs = { listen: [], options: null, demo: false, test: false, quiet: false, help: false, version: false };
  const upstream: Array<string | { address: string; weight: number }> = [];
  const routes: Array<{ path: string; exact: boolean; servers: string[] }> = [];
  let config: Record<string, unknown> | null = null;
  const timeouts: Record<string, number> = {};
  let hostHeader: string | undefined;
  let relay: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i]!;
    let inline: string | undefined;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    if (eq > 0) {
      inline = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new ConfigError(a, 'needs a value');
      return v;
    };
    switch (a) {
      case '-l': case '--listen': out.listen.push(value()); break;
      case '-u': case '--upstream': upstream.push(parseServer(value(), a)); break;
      case '-r': case '--route': {
        const v = value();
        const exact = v.startsWith('=');
        const body = exact ? v.slice(1) : v;
        const sep = body.indexOf('=');
        if (sep <= 0) throw new ConfigError(a, `expects PREFIX=ADDR[,ADDR...], got "${v}"`);
        routes.push({ path: body.slice(0, sep), exact, servers: body.slice(sep + 1).split(',') });
        break;
      }
      case '-c': case '--config': {
        const file = value();
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch (err) {
          throw new ConfigError(a, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        try {
          const parsed: unknown = JSON.parse(text);
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('top level must be an object');
          config = parsed as Record<string, unknown>;
        } catch (err) {
          throw new ConfigError(a, `${file} is not valid JSON: ${(err as Error).message}`);
        }
        break;
      }
      case '--idle-timeout': timeouts.idleMs = intArg(value(), a); break;
      case '--connect-timeout': timeouts.connectMs = intArg(value(), a); break;
      case '--read-timeout': timeouts.responseMs = intArg(value(), a); break;
      case '--host-header': hostHeader = value(); break;
      case '--relay': relay = value(); break;
      case '--demo': out.demo = true; break;
      case '-t': case '--test': out.test = true; break;
      case '-q': case '--quiet': out.quiet = true; break;
      case '-v': case '--version': out.version = true; break;
      case '-h': case '--help': out.help = true; break;
      default: throw new ConfigError(a, 'unknown option (see --help)');
    }
  }

  if (config === null && upstream.length === 0 && routes.length === 0) return out;
  const opts: Record<string, unknown> = config !== null ? { ...config } : {};
  if (Array.isArray(opts.listen)) {
    for (const l of opts.listen) {
      if (typeof l !== 'string') throw new ConfigError('listen', 'must be an array of "HOST:PORT" strings');
    }
    if (out.listen.length === 0) out.listen = opts.listen as string[];
  } else if (opts.listen !== undefined) {
    throw new ConfigError('listen', 'must be an array of "HOST:PORT" strings');
  }
  delete opts.listen;
  const upstreams: Record<string, UpstreamConfig> = { ...((opts.upstreams as Record<string, UpstreamConfig> | undefined) ?? {}) };
  if (upstream.length > 0) upstreams.default = { servers: upstream };
  const routeList: RouteConfig[] = [...((opts.routes as RouteConfig[] | undefined) ?? [])];
  routes.forEach((r, i) => {
    const name = `route${i}`;
    upstreams[name] = { servers: r.servers.map((s) => parseServer(s, '--route')) };
    routeList.push({ path: r.path, exact: r.exact, upstream: name });
  });
  if (routes.length > 0 && upstream.length > 0 && !routeList.some((r) => r.path === '/' && !r.exact)) {
    routeList.push({ path: '/', upstream: 'default' });
  }
  opts.upstreams = upstreams;
  if (routeList.length > 0) opts.routes = routeList;
  if (Object.keys(timeouts).length > 0) opts.timeouts = { ...((opts.timeouts as object | undefined) ?? {}), ...timeouts };
  if (hostHeader !== undefined) opts.forwarding = { ...((opts.forwarding as object | undefined) ?? {}), host: hostHeader };
  if (relay !== undefined) opts.relay = relay;
  out.options = opts as unknown as ProxyOptions;
  return out;
}

/** `HOST:PORT`, `[v6]:PORT`, `PORT` or `unix:/path` -> a listen target. */
export function parseListen(s: string): { host?: string; port?: number; path?: string } {
  if (s.startsWith('unix:')) return { path: s.slice(5) };
  if (/^\d+$/.test(s)) return { host: '127.0.0.1', port: Number(s) };
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(s);
  if (m === null) throw new ConfigError('--listen', `expects HOST:PORT, [v6]:PORT or unix:/path, got "${s}"`);
  return { host: m[1] ?? m[2]!, port: Number(m[3]) };
}
