// latest.md: what ran, on what, the summary, the targets and per-scenario details.
import { BASELINE, DIRECT, type Row, advantage, ratio } from './aggregate.js';
import { fmt, fmtRatio } from './format.js';
import type { Sample } from '../orchestrate/measure.js';
import { type Scenario, metricsFor } from '../orchestrate/plan.js';
import { DISTURBED_PCT } from '../orchestrate/quiet.js';

export interface RunMeta {
  date: string;
  mode: string;
  command: string;
  cores: number;
  cpuModel: string;
  kernel: string;
  versions: Record<string, string>;
  rounds: number;
  fdLimit: number;
  peers: string[];
  skipped: { peer: string; reason: string }[];
  httpClient: string;
  seconds: number;
  idleWarmTunnels: number;
  idleWindowMs: number;
  /** Rounds measured again because other processes were busy during them. */
  repeatedRounds: number;
}

export const CORES_NOTE = (cores: number): string =>
  `**${cores} cores, shared:** the load generator, the echo backend and the proxy run on the same ${cores} cores ` +
  'and compete for them, so every figure is for the whole system, not the proxy alone; `direct` (generator straight ' +
  'to the backend) is the ceiling on this machine, and the CPU columns show who was busy.';

/**
 * Targets, wsplice / nginx-1w on the same run (or / `base`, for `peer` only); checked on every
 * summary row of that kind.
 */
const TARGETS: { label: string; kind: Scenario['kind']; need: number; peer?: string; base?: string }[] = [
  { label: 'ping-pong msgs/s', kind: 'pingpong', need: 1.0 },
  { label: 'streaming MiB/s', kind: 'stream', need: 1.0 },
  { label: 'handshakes/s', kind: 'handshake', need: 0.8 },
  { label: 'RSS per idle tunnel', kind: 'idle', need: 1.0 },
  { label: 'plain HTTP req/s', kind: 'http', need: 0.7 },
  { label: 'pooled HTTP req/s vs nginx keepalive 32', kind: 'http', need: 1.5, peer: 'wsplice-keepalive', base: 'nginx-keepalive' },
  { label: 'pooled HTTP req/s vs HAProxy', kind: 'http', need: 1.0, peer: 'wsplice-keepalive', base: 'haproxy' },
];

function table(head: string[], body: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
}

function cell(row: Row, peer: string): string {
  const a = row.byPeer[peer];
  if (!a) return '';
  if (a.n === 0) return a.failed ? 'failed' : 'n/a';
  return `${fmt(a.median)} (${fmt(a.min)}–${fmt(a.max)})${a.failed ? ` ⚠${a.failed} failed` : ''}`;
}

function targets(rows: Row[], peer: string): string {
  const body: string[][] = [];
  for (const t of TARGETS) {
    if (t.peer !== undefined && t.peer !== peer) continue;
    const base = t.base ?? BASELINE;
    // Each scenario's primary metric only (the first of metricsFor), not its CPU row.
    for (const row of rows.filter((r) => r.scenario.kind === t.kind && r.metric.key === metricsFor(r.scenario)[0]!.key)) {
      if (!row.byPeer[peer] || !row.byPeer[base]) continue;
      const r = ratio(row, peer, base);
      const better = row.metric.better === 'higher';
      const met = Number.isFinite(r) && (better ? r >= t.need : r <= t.need);
      body.push([`${t.label}: ${row.scenario.title}`, `${better ? '>=' : '<='} ${t.need.toFixed(1)}`, Number.isFinite(r) ? r.toFixed(3) : 'n/a', met ? 'met' : 'NOT met']);
    }
  }
  const behind: string[] = [];
  for (const row of rows.filter((r) => r.metric.headline && r.byPeer[peer] && r.byPeer['http-proxy'])) {
    const adv = advantage(row, peer, 'http-proxy');
    if (!(adv > 1)) behind.push(`${row.scenario.title}: ${row.metric.label} (${fmtRatio(adv)})`);
  }
  if (body.length === 0) return '';
  const hp = rows.some((r) => r.byPeer['http-proxy'])
    ? behind.length === 0
      ? `\n\n${peer} is ahead of http-proxy on every summary row.`
      : `\n\n${peer} is NOT ahead of http-proxy on: ${behind.join('; ')} (advantage over http-proxy; > 1 = ahead).`
    : '';
  return `### ${peer} / ${BASELINE}\n\n${table(['target', 'needed', 'ratio', ''], body)}${hp}\n`;
}

export function renderMarkdown(meta: RunMeta, rows: Row[], samples: Sample[]): string {
  const peers = meta.peers;
  const out: string[] = [];
  out.push(`# wsplice macro benchmark (${meta.mode} mode)\n`);
  out.push(`Produced by \`${meta.command}\` on ${meta.date} in ${Math.round(meta.seconds)} s: ` +
    `${meta.rounds} round(s), peers interleaved round by round (A B C A B C ...) inside each scenario.\n`);
  out.push(`Machine: ${meta.cores} cores (${meta.cpuModel}), Linux ${meta.kernel}, fd limit ${meta.fdLimit}. ` +
    `Versions: ${Object.entries(meta.versions).map(([k, v]) => `${k}: ${v || 'n/a'}`).join('; ')}.\n`);
  if (meta.skipped.length) {
    out.push('Skipped peers:\n');
    for (const s of meta.skipped) out.push(`- ${s.peer}: ${s.reason}`);
    out.push('');
  }

  out.push(disturbance(samples, meta.repeatedRounds));
  out.push('## Summary\n');
  out.push(`> ${CORES_NOTE(meta.cores)}\n`);
  out.push(`Median over rounds, and in brackets the ratio to ${BASELINE} (peer / ${BASELINE}).\n`);
  const head = rows.filter((r) => r.metric.headline);
  out.push(table(['scenario', 'metric', ...peers], head.map((r) => [
    r.scenario.title, `${r.metric.label}${r.metric.better === 'lower' ? ' (lower is better)' : ''}`,
    ...peers.map((p) => (r.byPeer[p] ? `${r.byPeer[p]!.n ? fmt(r.byPeer[p]!.median) : r.byPeer[p]!.failed ? 'failed' : 'n/a'} (${fmtRatio(ratio(r, p, BASELINE))})` : '')),
  ])));
  out.push('\n![ratios](ratios.svg)\n');

  const wsPeers = peers.filter((p) => p.startsWith('wsplice'));
  if (wsPeers.length && peers.includes(BASELINE)) {
    out.push('## Targets\n');
    for (const p of wsPeers) out.push(targets(rows, p));
  }

  out.push('## Details\n');
  out.push(`> ${CORES_NOTE(meta.cores)}\n`);
  out.push('Each cell: median (min–max) over the rounds that passed their checks. ' +
    `Ratios on medians. CPU %: share of one core used during the measured window by proxy / backend / generator / ` +
    'everything else on the machine (other processes, and wrk in the HTTP rows), averaged over rounds.\n');
  const scenarios = [...new Map(rows.map((r) => [r.scenario.id, r.scenario])).values()];
  for (const sc of scenarios) {
    const mine = rows.filter((r) => r.scenario.id === sc.id);
    const main = mine.find((r) => r.metric.headline) ?? mine[0]!;
    const shown = peers.filter((p) => main.byPeer[p]);
    const cols = [`${main.metric.label} (${main.metric.unit})`, `x ${BASELINE}`, `x ${DIRECT}`,
      ...mine.filter((r) => r !== main).map((r) => `${r.metric.label} (${r.metric.unit})`), 'CPU % proxy/backend/gen/other', 'rounds ok'];
    const body = shown.map((p) => {
      const ss = samples.filter((s) => s.scenario === sc.id && s.peer === p && s.ok);
      // Clamped at 0: "other" is a difference of counters and can dip a hair below zero.
      const cpu = (k: string): string => fmt(Math.max(0, avg(ss.map((s) => s.values[k] ?? NaN))));
      const a = main.byPeer[p]!;
      return [p, cell(main, p), fmtRatio(ratio(main, p, BASELINE)), fmtRatio(ratio(main, p, DIRECT)),
        ...mine.filter((r) => r !== main).map((r) => cell(r, p)),
        sc.kind === 'idle' ? 'n/a' : `${cpu('proxyCpuPct')} / ${cpu('backendCpuPct')} / ${cpu('genCpuPct')} / ${cpu('otherCpuPct')}`,
        `${a.n}/${a.n + a.failed}`];
    });
    out.push(`### ${sc.title}\n`);
    out.push(table(['peer', ...cols], body));
    const failures = samples.filter((s) => s.scenario === sc.id && !s.ok);
    for (const f of failures) out.push(`\n- round ${f.round}, ${f.peer}: ${f.error}`);
    out.push('');
  }
  out.push(notes(meta));
  return out.join('\n');
}

/** Warns when the machine was busy with something else during the measured windows. */
function disturbance(samples: Sample[], repeated: number): string {
  const own = samples.filter((s) => s.client === 'loadgen' && Number.isFinite(s.values.otherCpuPct));
  if (own.length === 0) return '';
  const other = own.map((s) => s.values.otherCpuPct!).sort((a, b) => a - b);
  const med = Math.max(0, other[other.length >> 1]!); // a difference of counters: may dip below 0
  const busy = own.filter((s) => s.values.otherCpuPct! > DISTURBED_PCT).length;
  const steal = avg(own.map((s) => s.values.stealPct ?? NaN));
  const line = `Outside load (other processes on this shared machine): median ${fmt(med)}% of a core during the kept ` +
    `measured windows; ${busy} of ${own.length} kept samples above ${DISTURBED_PCT}%; hypervisor steal ${fmt(steal)}%; ` +
    `${repeated} round(s) measured again because of it (the discarded ones are in latest.json).`;
  return busy > own.length / 4
    ? `> **Warning:** ${line} The machine was not quiet (other processes running): absolute figures are low and noisy; compare ratios.\n`
    : `${line}\n`;
}

function avg(xs: number[]): number {
  const v = xs.filter(Number.isFinite);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
}

function notes(meta: RunMeta): string {
  return `## How it is measured

- Load generator: its own Node process, raw sockets, pre-built masked frames (no allocation per message).
  Echo backend: its own Node process (RFC 6455 handshake, unmasks and echoes every frame; tiny HTTP responder).
- handshake: connect, upgrade (101 and Sec-WebSocket-Accept checked), close frame, wait for the server's close
  frame and FIN; rate counts whole cycles, latency is connect to 101.
- ping-pong: one 64-byte frame in flight per connection; msgs/s counts round trips; RTT from write to whole echo.
- streaming: each connection writes frames as fast as the socket accepts them; MiB/s counts payload echoed back
  (each byte crosses the proxy twice); every echoed byte is compared with what was sent, frames in order, all
  frames accounted for at the end.
- idle: the proxy is restarted, ${meta.idleWarmTunnels} warm-up tunnels opened and closed, RSS (VmRSS, summed over the proxy's
  processes) read, then N tunnels opened (each exchanges one 64-byte echo) and held for ${meta.idleWindowMs} ms; KiB/tunnel =
  (median RSS over that window - before) / N; idle CPU over that window. N is capped by the fd limit (the proxy needs
  2 fds per tunnel). A Node peer's fixed heap growth weighs more at small N (quick mode) than at 9-10k (full mode).
- HTTP: keep-alive GETs of a 14-byte body, ${meta.httpClient}. nginx uses the classic WebSocket proxy config (bench/macro/orchestrate/peers/configs.ts), whose
  \`Connection: close\` upstream header (for requests without Upgrade) opens an upstream connection per request;
  http-proxy runs with its defaults (no keep-alive agent), HAProxy reuses server connections.
- CPU: utime + stime from /proc/PID/stat over the measured window, summed over the proxy's processes (nginx master +
  workers). nginx runs with \`access_log off\` (no peer logs requests).
`;
}
