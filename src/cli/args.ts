/**
 * Command-line parsing, in the manner of nginx: `node:util` parseArgs over the
 * flag table, every problem collected (not only the first), then the flags
 * mapped onto the same options object as a configuration file. With `-c`,
 * `--listen` and the option flags win over the file; `--upstream` and `--route`
 * are refused (the file says where traffic goes).
 */
import { parseArgs as parseFlags } from 'node:util';
import { didYouMean, Issues, type ConfigIssue, type SourceMap } from '../config/issues.js';
import type { ProxyOptions, RouteConfig, UpstreamConfig } from '../options.js';
import { FLAGS, type FlagRow } from './flags.js';
import { loadConfigFile, type ListenEntry } from './load.js';
import { parseWorkers } from './workers.js';
import { checkLevel, DEFAULT_SERVICE, takeService, type ServiceSettings } from './service.js';
import { isSignalName, SIGNALS, type SignalName } from './pidfile.js';

export { USAGE } from './flags.js';

export interface CliArgs {
  /** --listen values, else the config file's `listen` entries (strings or objects with TLS/PROXY options). */
  listen: ListenEntry[];
  /** Admin listener and logs: flags win over the file's top-level keys. */
  service: ServiceSettings;
  /** --pid-file, else the file's `pid` (null: none). */
  pidFile: string | null;
  /** -s: the signal to send the running instance (null: run). */
  signal: SignalName | null;
  options: ProxyOptions | null;
  /** Where each option field was written, when they come from a file. */
  where: SourceMap | undefined;
  configFile: string | null;
  /** Problems with the flags or the file, reported with those the options check finds. */
  issues: ConfigIssue[];
  demo: boolean;
  test: boolean;
  dump: boolean;
  schema: boolean;
  quiet: boolean;
  help: boolean;
  version: boolean;
}

type Values = Record<string, string | boolean | Array<string | boolean> | undefined>;

/** node:util parseArgs, lenient, then checked token by token so every bad flag is reported. */
function readFlags(argv: string[], is: Issues): Values {
  const options = Object.fromEntries(FLAGS.map((f) => [f.name, {
    type: f.arg !== undefined ? ('string' as const) : ('boolean' as const),
    ...(f.short !== undefined ? { short: f.short } : {}),
    ...(f.multiple === true ? { multiple: true } : {}),
  }]));
  const { values, tokens } = parseFlags({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  const byName = new Map(FLAGS.map((f) => [f.name, f]));
  for (const tk of tokens) {
    if (tk.kind === 'positional') is.error(tk.value, 'unexpected argument (see --help)');
    if (tk.kind !== 'option') continue;
    const f = byName.get(tk.name);
    if (f === undefined) {
      const near = didYouMean(tk.name, byName.keys());
      is.error(tk.rawName, `unknown option (${near !== null ? `did you mean --${near}? ` : ''}see --help)`);
    } else if (f.arg !== undefined && tk.value === undefined) {
      is.error(tk.rawName, 'needs a value');
    } else if (f.arg === undefined && tk.value !== undefined) {
      is.error(tk.rawName, 'takes no value');
    }
  }
  return values as Values;
}

function list(v: Values[string]): string[] {
  return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string');
}

function parseServer(spec: string, flag: string, is: Issues): string | { address: string; weight: number } {
  const [address, ...params] = spec.split(',');
  let weight = 1;
  for (const p of params) {
    const m = /^weight=(\d+)$/.exec(p);
    if (m === null) is.error(flag, `unknown server parameter "${p}" (expected weight=N)`);
    else weight = Number(m[1]);
  }
  return weight === 1 ? address! : { address: address!, weight };
}

/** `--upstream` and `--route` as upstream groups and routes. */
function fromFlags(values: Values, is: Issues): Record<string, unknown> | null {
  const ups = list(values.upstream).map((s) => parseServer(s, '--upstream', is));
  const routeSpecs = list(values.route);
  if (ups.length === 0 && routeSpecs.length === 0) return null;
  const upstreams: Record<string, UpstreamConfig> = {};
  const routes: RouteConfig[] = [];
  if (ups.length > 0) upstreams.default = { servers: ups };
  routeSpecs.forEach((v, i) => {
    const exact = v.startsWith('=');
    const body = exact ? v.slice(1) : v;
    const sep = body.indexOf('=');
    if (sep <= 0) return is.error('--route', `expects PREFIX=ADDR[,ADDR...], got "${v}"`);
    upstreams[`route${i}`] = { servers: body.slice(sep + 1).split(',').map((s) => parseServer(s, '--route', is)) };
    routes.push({ path: body.slice(0, sep), exact, upstream: `route${i}` });
  });
  if (routes.length > 0 && ups.length > 0 && !routes.some((r) => r.path === '/' && r.exact !== true)) routes.push({ path: '/', upstream: 'default' });
  return routes.length > 0 ? { upstreams, routes } : { upstreams };
}

/** Set a dotted path (`timeouts.idleMs`) in a plain options object, copying what it touches. */
function setPath(o: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let cur = o;
  for (const k of keys.slice(0, -1)) {
    const next = cur[k];
    cur = cur[k] = typeof next === 'object' && next !== null && !Array.isArray(next) ? { ...(next as object) } : {};
  }
  cur[keys[keys.length - 1]!] = value;
}

function applyOptionFlags(opts: Record<string, unknown>, values: Values, is: Issues): void {
  for (const f of FLAGS.filter((x): x is FlagRow & { option: NonNullable<FlagRow['option']> } => x.option !== undefined)) {
    const v = values[f.name];
    if (typeof v !== 'string') continue;
    if (f.option.ms && !/^\d+$/.test(v)) is.error(`--${f.name}`, `expects a whole number of milliseconds, got "${v}"`);
    else setPath(opts, f.option.path, f.option.ms ? Number(v) : v);
  }
}

/** --admin, --access-log, --error-log, --log-level over whatever the file said. */
function serviceFlags(s: ServiceSettings, values: Values, is: Issues): void {
  if (typeof values.admin === 'string') s.admin = values.admin;
  if (typeof values['access-log'] === 'string') s.accessLog = values['access-log'];
  if (typeof values['error-log'] === 'string') s.errorLog = values['error-log'];
  if (typeof values['log-level'] === 'string') s.logLevel = checkLevel(values['log-level'], '--log-level', is) ?? s.logLevel;
  if (values.quiet === true) s.logLevel = 'error';
  if (typeof values.workers === 'string') s.workers = parseWorkers(values.workers, '--workers', is) ?? s.workers;
}

/** The file's `pid` (taken out of the proxy options, as `admin` is). */
function pidOf(opts: Record<string, unknown>, is: Issues): string | null {
  const p = opts.pid;
  delete opts.pid;
  if (p === undefined) return null;
  if (typeof p === 'string' && p !== '') return p;
  is.error('pid', 'must be a file path ("/run/wsplice.pid")');
  return null;
}

function signalOf(v: Values[string], is: Issues): SignalName | null {
  if (typeof v !== 'string') return null;
  if (isSignalName(v)) return v;
  is.error('-s', `expects one of ${Object.keys(SIGNALS).join(', ')}, got "${v}"`);
  return null;
}

/** Parse argv (without node and script). Bad flags come back in `issues`, all of them. */
export function parseArgs(argv: string[]): CliArgs {
  const is = new Issues();
  const values = readFlags(argv, is);
  const flag = (n: string): boolean => values[n] === true;
  const out: CliArgs = {
    listen: list(values.listen), service: { ...DEFAULT_SERVICE }, options: null, where: undefined, configFile: null, issues: is.list,
    pidFile: typeof values['pid-file'] === 'string' ? values['pid-file'] : null, signal: signalOf(values.signal, is),
    demo: flag('demo'), test: flag('test'), dump: flag('dump'), schema: flag('schema'), quiet: flag('quiet'), help: flag('help'), version: flag('version'),
  };
  const file = typeof values.config === 'string' ? values.config : null;
  let opts: Record<string, unknown> | null = fromFlags(values, is);
  if (file !== null) {
    for (const n of ['upstream', 'route']) {
      if (values[n] !== undefined) is.error(`--${n}`, 'cannot be combined with --config: the file names the upstreams and routes');
    }
    out.configFile = file;
    const loaded = loadConfigFile(file, is);
    if (loaded !== null) {
      opts = { ...loaded.value };
      delete opts.$schema; // for editors only
      out.where = loaded.where;
      const fileListen = opts.listen;
      delete opts.listen;
      Object.assign(out.service, takeService(opts, is));
      const pid = pidOf(opts, is);
      out.pidFile ??= pid;
      const entry = (l: unknown): l is ListenEntry => typeof l === 'string' || (typeof l === 'object' && l !== null && !Array.isArray(l));
      if (out.listen.length === 0 && Array.isArray(fileListen)) out.listen = fileListen.filter(entry);
      if (fileListen !== undefined && (!Array.isArray(fileListen) || !fileListen.every(entry))) {
        is.error('listen', 'must be an array of "HOST:PORT" strings or {address, tls?, proxyProtocol?} objects');
      }
    }
  }
  applyOptionFlags(opts ?? {}, values, is);
  serviceFlags(out.service, values, is);
  out.options = opts as ProxyOptions | null;
  return out;
}

export { parseListen, parseListenEntry, type ListenEntry } from './load.js';
