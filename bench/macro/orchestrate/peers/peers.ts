// The peers a run compares. Each starts from a config written into the run's temp dir, listens on
// 127.0.0.1:port and proxies to the echo backend; `direct` is no proxy at all.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, type Managed, spawnManaged, stopManaged, waitForLine, waitForPort } from '../proc.js';
import { processTree } from '../procfs.js';
import { type BenchCert, haproxyConfig, nginxConfig } from './configs.js';

export interface PeerContext {
  /** Repository root (holds dist/). */
  root: string;
  /** Per-run temp dir for configs and logs. */
  dir: string;
  backendPort: number;
  /** Soft fd limit the children run with. */
  maxFds: number;
  /** The certificate TLS listeners serve (null: no openssl, no TLS rows). */
  cert: BenchCert | null;
}

export interface RunningPeer {
  port: number;
  /** A TLS listener on the same proxy, same configuration (absent: the peer has none). */
  tlsPort?: number;
  /** The proxy's processes now (empty for direct). */
  pids(): number[];
  stop(): Promise<void>;
}

export interface PeerSpec {
  name: string;
  /** null when the peer can run here, else why not. */
  unavailable(ctx: PeerContext): string | null;
  version(ctx: PeerContext): string;
  start(ctx: PeerContext, port: number): Promise<RunningPeer>;
  /** The scenario kinds it runs (absent: every kind); a variant that only changes plain HTTP runs only 'http'. */
  kinds?: ReadonlyArray<'handshake' | 'pingpong' | 'stream' | 'idle' | 'http'>;
}

function has(cmd: string): boolean {
  try {
    execFileSync('bash', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** First line of a version command's stdout+stderr (nginx -v writes to stderr); '' when it cannot run. */
function versionOf(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10_000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}

/** Wraps a started process: ready when `readyLine` shows (if given) and the port accepts. */
async function ready(m: Managed, port: number, readyLine: RegExp | null, what: string, tlsPort?: number): Promise<RunningPeer> {
  try {
    if (readyLine) await waitForLine(m, readyLine, 15_000);
    await waitForPort(port, m, 15_000);
    if (tlsPort !== undefined) await waitForPort(tlsPort, m, 15_000);
  } catch (e) {
    await stopManaged(m, 500);
    const out = m.output().trim().split('\n').slice(-5).join(' | ');
    throw new Error(`${what}: ${(e as Error).message}${out ? ` (${out})` : ''}`);
  }
  m.child.stdout!.resume(); // keep draining stdout so a chatty peer never blocks on a full pipe
  return { port, ...(tlsPort !== undefined ? { tlsPort } : {}), pids: () => processTree(m.pid), stop: () => stopManaged(m) };
}

const direct: PeerSpec = {
  name: 'direct',
  unavailable: () => null,
  version: () => 'no proxy',
  start: async (ctx) => ({ port: ctx.backendPort, pids: () => [], stop: async () => {} }),
};

/** `keepalive`: the classic config plus `keepalive N;` and `Connection ""` for plain requests (HTTP rows only). */
function nginx(workers: '1' | 'auto', keepalive?: number): PeerSpec {
  return {
    name: keepalive !== undefined ? 'nginx-keepalive' : workers === '1' ? 'nginx-1w' : 'nginx-auto',
    ...(keepalive !== undefined ? { kinds: ['http'] as const } : {}),
    unavailable: () => (has('nginx') ? null : 'nginx not installed (bench/macro/orchestrate/peers/install.sh or --install)'),
    version: () => versionOf('nginx', ['-v']).replace(/^nginx version: /, ''),
    async start(ctx, port) {
      const dir = join(ctx.dir, `${this.name}-${port}`);
      mkdirSync(dir, { recursive: true });
      const conf = join(dir, 'nginx.conf');
      const tls = ctx.cert ? { port: await freePort(), cert: ctx.cert } : undefined;
      writeFileSync(conf, nginxConfig({ dir, port, backendPort: ctx.backendPort, workers, maxFds: ctx.maxFds, ...(tls ? { tls } : {}), ...(keepalive !== undefined ? { keepalive } : {}) }));
      const m = spawnManaged('nginx', ['-c', conf, '-p', dir, '-e', join(dir, 'error.log')], { stdin: 'ignore' });
      return ready(m, port, null, this.name, tls?.port);
    },
  };
}

const haproxy: PeerSpec = {
  name: 'haproxy',
  unavailable: () => (has('haproxy') ? null : 'haproxy not installed (bench/macro/orchestrate/peers/install.sh or --install)'),
  version: () => versionOf('haproxy', ['-v']).replace(/^HAProxy version (\S+).*/, 'HAProxy $1'),
  async start(ctx, port) {
    const conf = join(ctx.dir, `haproxy-${port}.cfg`);
    const tls = ctx.cert ? { port: await freePort(), cert: ctx.cert } : undefined;
    writeFileSync(conf, haproxyConfig({ port, backendPort: ctx.backendPort, maxFds: ctx.maxFds, ...(tls ? { tls } : {}) }));
    const m = spawnManaged('haproxy', ['-db', '-f', conf], { stdin: 'ignore' });
    return ready(m, port, null, 'haproxy', tls?.port);
  },
};

const httpProxy: PeerSpec = {
  name: 'http-proxy',
  unavailable: (ctx) => (existsSync(join(ctx.root, 'node_modules/http-proxy')) ? null : 'npm http-proxy not installed'),
  version: (ctx) => {
    try {
      const pkg = JSON.parse(readFileSync(join(ctx.root, 'node_modules/http-proxy/package.json'), 'utf8')) as { version: string };
      return `http-proxy ${pkg.version}`;
    } catch {
      return 'http-proxy ?';
    }
  },
  start: (ctx, port) => startNodePeer(ctx, port, 'http-proxy'),
};

/** Start a Node peer script `dist/bench/macro/orchestrate/peers/NAME-peer.js` with {listen, upstream}; it prints "NAME listening on". */
function startNodePeer(ctx: PeerContext, port: number, name: string): ReturnType<PeerSpec['start']> {
  const conf = join(ctx.dir, `${name}-${port}.json`);
  writeFileSync(conf, JSON.stringify({ listen: port, upstream: ctx.backendPort }));
  const script = join(ctx.root, `dist/bench/macro/orchestrate/peers/${name}-peer.js`);
  const m = spawnManaged(process.execPath, [script, conf], { cwd: ctx.root, stdin: 'ignore' });
  return ready(m, port, new RegExp(`^${name} listening on `), name);
}

/** The Node floor: a TCP relay with no HTTP (node-pipe-peer.ts). A reference line, like direct. */
const nodePipe: PeerSpec = {
  name: 'node-pipe',
  unavailable: () => null,
  version: () => `node ${process.version} net + pipe`,
  start: (ctx, port) => startNodePeer(ctx, port, 'node-pipe'),
};

const WSPLICE_CLI = 'dist/src/cli/main.js';

/** wsplice as a library in an http.Server (proxy.web + proxy.ws), the like-for-like peer of http-proxy. */
const wspliceEmbed: PeerSpec = {
  name: 'wsplice-embed',
  unavailable: (ctx) => (existsSync(join(ctx.root, 'dist/src/index.js')) ? null : 'dist/src/index.js not built yet'),
  version: (ctx) => `${wspliceVersion(ctx)} in node:http`.trim(),
  start: (ctx, port) => startNodePeer(ctx, port, 'wsplice-embed'),
};

function wspliceVersion(ctx: PeerContext): string {
  if (!existsSync(join(ctx.root, WSPLICE_CLI))) return '';
  return versionOf(process.execPath, [join(ctx.root, WSPLICE_CLI), '--version']);
}

/**
 * `keepalive`: the upstream pools its connections (`keepalive: { idle }`), HTTP rows only.
 * `workers`: started with `--workers N` (node:cluster workers sharing the listeners), every row.
 */
function wsplice(relay: 'js' | 'splice' | 'auto', keepalive?: number, workers?: number, baseline?: string): PeerSpec {
  const name = baseline !== undefined ? `base-wsplice-${relay}`
    : keepalive !== undefined ? 'wsplice-keepalive' : workers !== undefined ? 'wsplice-workers' : `wsplice-${relay}`;
  // A baseline runs another checkout's CLI, without a TLS listener (an older tree may not have one).
  const rootOf = (ctx: PeerContext): string => baseline ?? ctx.root;
  return {
    name,
    ...(keepalive !== undefined ? { kinds: ['http'] as const } : {}),
    unavailable(ctx) {
      if (!existsSync(join(rootOf(ctx), WSPLICE_CLI))) return `${WSPLICE_CLI} not built yet`;
      if (relay !== 'js') {
        let v = '';
        try {
          v = execFileSync(process.execPath, [join(rootOf(ctx), WSPLICE_CLI), '--version'], { encoding: 'utf8', timeout: 10_000 });
        } catch {
          // no --version yet
        }
        if (!v.includes('relay: splice')) return '`wsplice --version` does not report `relay: splice`';
      }
      return null;
    },
    version: (ctx) => wspliceVersion({ ...ctx, root: rootOf(ctx) }) + (baseline !== undefined ? ` (${baseline})` : ''),
    async start(ctx, port) {
      // As users run it: the CLI with a config file (kept beside the other configs for the record),
      // a plain listener and, when the run has a certificate, a TLS one serving it.
      const cert = baseline === undefined ? ctx.cert : null;
      const tlsPort = cert ? await freePort() : undefined;
      const conf = join(ctx.dir, `${name}-${port}.json`);
      writeFileSync(conf, `${JSON.stringify({
        listen: [`127.0.0.1:${port}`, ...(cert ? [{ address: `127.0.0.1:${tlsPort}`, tls: { certificates: [{ cert: cert.cert, key: cert.key }] } }] : [])],
        upstreams: { backend: { servers: [`127.0.0.1:${ctx.backendPort}`], ...(keepalive !== undefined ? { keepalive: { idle: keepalive } } : {}) } },
        relay,
      }, null, 1)}\n`);
      const args = [join(rootOf(ctx), WSPLICE_CLI), '-c', conf, ...(workers !== undefined ? ['--workers', String(workers)] : [])];
      const m = spawnManaged(process.execPath, args, { cwd: rootOf(ctx), stdin: 'ignore' });
      return ready(m, port, /wsplice listening on /, name, tlsPort);
    },
  };
}

export const ALL_PEERS: readonly PeerSpec[] = [
  direct, nginx('1'), nginx('auto'), nginx('1', 32), haproxy, httpProxy, nodePipe, wsplice('js'), wsplice('splice'), wsplice('auto'),
  wspliceEmbed, wsplice('auto', 32), wsplice('auto', undefined, 2),
];

/** `--baseline DIR`: base-wsplice-js/splice/auto from another built checkout, one for each of those chosen here. */
export function baselinePeers(root: string, chosen: readonly string[]): PeerSpec[] {
  const relays = (['js', 'splice', 'auto'] as const).filter((r) => chosen.includes(`wsplice-${r}`));
  return relays.map((r) => wsplice(r, undefined, undefined, root));
}
