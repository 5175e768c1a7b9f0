/**
 * The command-line flags as one table: the CLI's own flags here, and every
 * option row that names a flag (src/options.ts) appended, so `--help`, the
 * parser and the mapping onto options come from the same rows.
 */
import type { Rows } from '../config/check.js';
import { OPTION_ROWS } from '../options.js';

export interface FlagRow {
  name: string;
  short?: string;
  /** The value's name in --help; absent = a boolean flag. */
  arg?: string;
  multiple?: boolean;
  help: string;
  /** For a flag that sets an option: its dotted path, and whether the value is milliseconds. */
  option?: { path: string; ms: boolean };
}

const OWN: FlagRow[] = [
  { name: 'listen', short: 'l', arg: 'HOST:PORT', multiple: true, help: 'listen here (repeatable; [v6]:PORT and unix:/path too)' },
  {
    name: 'upstream', short: 'u', arg: 'ADDR[,weight=N]', multiple: true,
    help: 'a backend of the default upstream group (repeatable);\nADDR is HOST:PORT, [v6]:PORT or unix:/path',
  },
  {
    name: 'route', short: 'r', arg: 'PREFIX=ADDR[,ADDR...]', multiple: true,
    help: 'send paths under PREFIX to these backends (repeatable;\n=PREFIX for an exact match: --route =/ws=127.0.0.1:9000)',
  },
  {
    name: 'admin', arg: 'HOST:PORT',
    help: 'serve /metrics, /healthz, /readyz and /status here (a bare PORT binds\n127.0.0.1; off by default; file: "admin": {"listen": ...})',
  },
  { name: 'access-log', arg: 'TARGET', help: 'one JSON line per request and per tunnel: stdout, stderr, off or a file\n(default off; file: "accessLog"; reopened on SIGUSR1)' },
  { name: 'error-log', arg: 'TARGET', help: 'refusals, upstream failures, service messages as JSON lines: stdout,\nstderr, off or a file (default stderr; file: "errorLog")' },
  { name: 'log-level', arg: 'LEVEL', help: 'error log level: fatal, error, warn, info, debug, trace (default info;\nrefusals are info, upstream failures warn; -q is error)' },
  {
    name: 'pid-file', arg: 'FILE',
    help: 'write {"pid": N} here at start, removed at exit (file: "pid": FILE;\nnginx pid); -s finds the instance through it',
  },
  {
    name: 'workers', arg: 'N|auto',
    help: 'run N worker processes sharing the listeners (auto: one per core; default 1;\nfile: "workers"; nginx worker_processes); the primary keeps the admin listener',
  },
  {
    name: 'config', short: 'c', arg: 'FILE',
    help: 'configuration file: FILE.json in the JSON format, any other name in\nnginx syntax (see README); --listen and the option flags given too win',
  },
];

const MODES: FlagRow[] = [
  {
    name: 'signal', short: 's', arg: 'reload|stop|quit|reopen|upgrade',
    help: 'signal the running instance named by the pid file and exit (like nginx -s):\nreload = SIGHUP, stop = SIGTERM, quit = SIGQUIT, reopen = SIGUSR1,\nupgrade = SIGUSR2 (a new process takes the listeners and tunnels)',
  },
  { name: 'demo', help: 'run the demo: two echo backends behind the proxy on 127.0.0.1:8080' },
  { name: 'test', short: 't', help: 'check the configuration, report every problem and exit (like nginx -t)' },
  { name: 'dump', short: 'T', help: 'check, then print the effective configuration and exit (like nginx -T)' },
  { name: 'schema', help: 'print the JSON Schema of the JSON configuration format and exit' },
  { name: 'quiet', short: 'q', help: 'error log at level error only (no line per refusal or upstream failure)' },
  { name: 'version', short: 'v', help: 'print the version, parser build and relay, then exit' },
  { name: 'help', short: 'h', help: 'print this help' },
];

/** Option rows with a `flag`, found by walking the option tables. */
function optionFlags(rows: Rows, prefix: string): FlagRow[] {
  const out: FlagRow[] = [];
  for (const [key, row] of Object.entries(rows)) {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    if (row.flag !== undefined) {
      const def = row.default === undefined || row.default === 'required' || row.default === null ? '' : ` (default ${String(row.default)})`;
      out.push({
        name: row.flag.name.slice(2), arg: row.flag.arg, help: `${row.doc}${def}${row.nginx !== undefined ? `; nginx ${row.nginx}` : ''}`,
        option: { path, ms: row.flag.arg === 'MS' },
      });
    }
    const sub = (row.check as { rows?: Rows }).rows;
    if (sub !== undefined) out.push(...optionFlags(sub, path));
  }
  return out;
}

export const FLAGS: readonly FlagRow[] = [...OWN, ...optionFlags(OPTION_ROWS, ''), ...MODES];

function usageLine(f: FlagRow): string {
  const left = `  ${f.short !== undefined ? `-${f.short}, ` : '    '}--${f.name}${f.arg !== undefined ? ` ${f.arg}` : ''}`;
  const [first, ...rest] = f.help.split('\n');
  const pad = ' '.repeat(32);
  const head = left.length < 32 ? left.padEnd(32) + first : `${left}\n${pad}${first}`;
  return [head, ...rest.map((l) => pad + l)].join('\n');
}

export const USAGE = `Usage: wsplice [options]

A WebSocket and HTTP/1.1 reverse proxy.

${FLAGS.map(usageLine).join('\n')}

Exit status: 0 ok; 1 -t found a problem, or a runtime failure; 2 a usage or configuration error at start.
Signals: SIGTERM, SIGQUIT and SIGINT close gracefully (stop accepting, drain, then exit);
SIGHUP reloads the configuration (checked whole first; open tunnels keep theirs); SIGUSR1 reopens the log files;
SIGUSR2 upgrades: a new process from the code on disk takes the listeners and live tunnels, this one drains and exits.
With --workers the primary drains every worker, forwards SIGHUP, replaces a worker that dies, and refuses SIGUSR2.
`;
