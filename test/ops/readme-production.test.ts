/**
 * README "Running in production" against the code: every metric the proxy and
 * the workers' primary register is in the metrics list with its labels and
 * nothing else is; the access and error log fields are the keys real lines
 * carry (lines written by traffic here, not a list copied from src/); every
 * command-line flag is documented; the signal table is the `-s` mapping; the
 * deploy/ files it names exist.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import t from 'tap';
import WebSocket from 'ws';
import { ProxyMetrics } from '../../src/admin/index.js';
import { FLAGS } from '../../src/cli/flags.js';
import { SIGNALS } from '../../src/cli/pidfile.js';
import { Primary } from '../../src/cli/workers.js';
import { createProxy } from '../../src/index.js';
import { closeWss, httpBackend, httpGet, port, ROOT, waitFor, wsEcho } from '../support/index.js';
import { loggedProxy } from '../support/logs.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const production = ((): string => {
  const start = readme.indexOf('\n## Running in production');
  const end = readme.indexOf('\n## ', start + 1);
  return start < 0 ? '' : readme.slice(start, end < 0 ? undefined : end);
})();

/** The rows of the first markdown table after `heading` (cells trimmed, header and rule skipped). */
function table(heading: string, firstCell: RegExp): string[][] {
  const from = production.indexOf(heading);
  if (from < 0) return [];
  const lines = production.slice(from).split('\n');
  const start = lines.findIndex((l) => l.startsWith('|') && firstCell.test(l.split('|')[1]!.trim()));
  const rows: string[][] = [];
  for (let i = start + 2; start >= 0 && i < lines.length && lines[i]!.startsWith('|'); i++) {
    rows.push(lines[i]!.split('|').slice(1, -1).map((c) => c.trim()));
  }
  return rows;
}

const ticked = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
/** "listener, class (`1xx`..`5xx`, `none`)" -> ["listener", "class"]. */
const labelNames = (cell: string): string[] => cell.replace(/\([^)]*\)/g, '').split(',').map((s) => s.trim()).filter((s) => s !== '');

t.test('the section is there, with each part the issue of running in production needs', async (t) => {
  for (const h of ['### Admin listener and metrics', '### Logs', '### Drain', '### Reload, signals and the pid file', '### Workers (all cores)', '### Docker, Kubernetes, systemd']) {
    t.ok(production.includes(`\n${h}\n`), h);
  }
});

t.test('the metrics list is what the proxy and the primary register, labels included', async (t) => {
  const proxy = createProxy({ upstreams: { b: { servers: ['127.0.0.1:1'] } } });
  const metrics = new ProxyMetrics(proxy);
  t.teardown(() => metrics.detach());
  const primary = new Primary({ count: 1, admin: null, say: () => {}, out: () => {} });
  const registered = new Map<string, string[]>();
  for (const reg of [metrics.registry, (primary as unknown as { registry: Registry }).registry]) {
    for (const m of reg.getMetricsAsArray()) registered.set(m.name, [...((m as unknown as { labelNames?: string[] }).labelNames ?? [])]);
  }
  const own = [...registered.keys()].filter((n) => n.startsWith('wsplice_'));
  t.ok(own.length >= 15, `the registries hold wsplice metrics (${own.length})`);
  t.same([...registered.keys()].filter((n) => !n.startsWith('wsplice_') && !/^(process|nodejs)_/.test(n)), [], 'the rest are process_* and nodejs_*, as the list says');

  const rows = table('### Admin listener and metrics', /^metric$/);
  t.ok(rows.length > 5, 'the metrics table');
  const listed = new Set<string>();
  for (const [names, labels] of rows) {
    const row = ticked(names!).filter((n) => n.startsWith('wsplice_'));
    for (const n of row) listed.add(n);
    const missing = row.filter((n) => !registered.has(n));
    t.same(missing, [], `${names}: registered`);
    if (missing.length > 0) continue;
    const actual = new Set(row.flatMap((n) => registered.get(n)!));
    t.same([...actual].sort(), labelNames(labels!).sort(), `${row.join(', ')}: labels as listed`);
  }
  // The primary's own two are described with the workers.
  const workers = production.slice(production.indexOf('### Workers'));
  for (const n of ['wsplice_workers_ready', 'wsplice_worker_restarts_total']) {
    t.ok(registered.has(n), `${n} registered by the primary`);
    if (workers.includes(`\`${n}\``)) listed.add(n);
  }
  t.same(own.filter((n) => !listed.has(n)).sort(), [], 'every registered wsplice metric is documented');
});

t.test('the access and error log fields are the keys of real lines', async (t) => {
  const wss = await wsEcho('a');
  const http = await httpBackend((_req, res) => (res.end('hi'), true));
  const { proxy, dir, access, errors, problems } = await loggedProxy(t, {
    upstreams: { ws: { servers: [`127.0.0.1:${port(wss)}`] }, http: { servers: [`127.0.0.1:${http.port}`] }, dead: { servers: ['127.0.0.1:1'] } },
    routes: [{ path: '/ws', upstream: 'ws' }, { path: '/api', upstream: 'http' }, { path: '/dead', upstream: 'dead' }],
  }, 'wsplice-readme-logs-');
  t.teardown(async () => {
    await closeWss(wss);
    await http.close();
  });
  t.equal((await httpGet(port(proxy), '/api', { agent: false })).status, 200);
  t.equal((await httpGet(port(proxy), '/nowhere', { agent: false })).status, 404, 'a refusal: an info line');
  t.equal((await httpGet(port(proxy), '/dead', { agent: false })).status, 502, 'an upstream failure: a warn line');
  const ws = new WebSocket(`ws://127.0.0.1:${port(proxy)}/ws`);
  await new Promise((r) => ws.once('open', r));
  ws.close();
  await new Promise((r) => ws.once('close', r));
  await waitFor(() => proxy.stats().connections === 0, 5000, 'every connection closed');
  await access.close();
  await errors.close();
  t.same(problems, []);

  const keys = (file: string, filter: (l: Record<string, unknown>) => boolean = () => true): Set<string> =>
    new Set(readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>).filter(filter).flatMap((l) => Object.keys(l)));
  const requestKeys = keys(join(dir, 'access.log'), (l) => l.type === 'request');
  const tunnelKeys = keys(join(dir, 'access.log'), (l) => l.type === 'tunnel');
  t.ok(requestKeys.size > 5 && tunnelKeys.size > 5, 'request and tunnel lines written');

  const rows = table('### Logs', /^field \(access log\)$/);
  const common = new Set(rows.filter(([c]) => !c!.startsWith('tunnels:')).flatMap(([c]) => ticked(c!)));
  const tunnelOnly = new Set(rows.filter(([c]) => c!.startsWith('tunnels:')).flatMap(([c]) => ticked(c!)));
  t.same([...requestKeys].filter((k) => !common.has(k)), [], 'every key of a request line is documented');
  t.same([...common].filter((k) => !requestKeys.has(k)), [], 'every documented field is on a request line');
  t.same([...tunnelKeys].filter((k) => !common.has(k) && !tunnelOnly.has(k)), [], 'every key of a tunnel line is documented');
  t.same([...tunnelOnly].filter((k) => !tunnelKeys.has(k)), [], 'every documented tunnel field is on a tunnel line');

  const sentence = /Error log lines carry ([^.]+)\./.exec(production)?.[1] ?? '';
  const documented = new Set(ticked(sentence.replace(/\([^)]*\)/g, '')));
  const errorKeys = keys(join(dir, 'error.log'));
  t.ok(errorKeys.has('backend'), 'the upstream failure line was written');
  t.same([...errorKeys].filter((k) => !documented.has(k)), [], 'every key of an error line is documented');
  t.same([...documented].filter((k) => !errorKeys.has(k)), [], 'every documented error field is on a line');
});

t.test('every flag is documented, the signal table is the -s mapping, the deploy files exist', async (t) => {
  for (const f of FLAGS) t.ok(readme.includes(`--${f.name}`), `--${f.name} is in the README`);
  const rows = table('### Reload, signals and the pid file', /^signal$/);
  const named = Object.fromEntries(rows.filter(([, s]) => s !== '').map(([sig, s]) => [ticked(s!)[0], ticked(sig!)[0]]));
  t.same(named, SIGNALS, 'each -s name and its signal, as the CLI sends them');
  t.ok(rows.some(([sig]) => sig === '`SIGINT`'), 'SIGINT is described');
  const paths = new Set([...production.matchAll(/`(deploy\/[\w.-]+)`/g)].map((m) => m[1]!));
  t.ok(paths.size >= 3, 'the recipes are named');
  for (const p of paths) t.ok(existsSync(join(ROOT, p)), `${p} exists`);
});
