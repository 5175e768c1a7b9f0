// Hand-written SVG bar chart: for each headline metric, one bar per peer showing its advantage over
// nginx (1 worker): peer/nginx for "higher is better", nginx/peer for "lower is better".
import { BASELINE, type Row, advantage } from './aggregate.js';
import { escapeXml, fmtRatio } from './format.js';

const COLORS = ['#8c8c8c', '#2e7d32', '#66bb6a', '#1565c0', '#ef6c00', '#00838f', '#c62828', '#6a1b9a', '#ad1457'];
const W = 920;
const LABEL_W = 300;
const BAR_H = 13;
const GAP = 12;
const MAX_RATIO = 4;

export function renderChart(rows: Row[], peers: string[], subtitle: string): string {
  const heads = rows.filter((r) => r.metric.headline && r.byPeer[BASELINE]);
  const plotW = W - LABEL_W - 110;
  const x = (v: number): number => LABEL_W + (Math.min(v, MAX_RATIO) / MAX_RATIO) * plotW;
  const parts: string[] = [];
  let y = 70;
  for (const row of heads) {
    const shown = peers.filter((p) => row.byPeer[p]);
    parts.push(`<text x="8" y="${y + 10}" class="g">${escapeXml(`${row.scenario.title}: ${row.metric.label}`)}</text>`);
    y += 16;
    for (const p of shown) {
      const v = advantage(row, p, BASELINE);
      const color = COLORS[peers.indexOf(p) % COLORS.length]!;
      parts.push(`<text x="${LABEL_W - 6}" y="${y + BAR_H - 2}" class="p">${escapeXml(p)}</text>`);
      if (Number.isFinite(v)) {
        parts.push(`<rect x="${LABEL_W}" y="${y}" width="${(x(v) - LABEL_W).toFixed(1)}" height="${BAR_H}" fill="${color}"/>`);
        parts.push(`<text x="${(x(v) + 4).toFixed(1)}" y="${y + BAR_H - 2}" class="v">${fmtRatio(v)}${v > MAX_RATIO ? ' (clipped)' : ''}</text>`);
      } else {
        parts.push(`<text x="${LABEL_W + 4}" y="${y + BAR_H - 2}" class="v">${row.byPeer[p]!.failed ? 'failed' : 'n/a'}</text>`);
      }
      y += BAR_H + 2;
    }
    y += GAP;
  }
  const h = y + 20;
  const ticks: string[] = [];
  for (let t = 0; t <= MAX_RATIO; t += 0.5) {
    const tx = x(t).toFixed(1);
    ticks.push(`<line x1="${tx}" y1="60" x2="${tx}" y2="${h - 20}" class="${t === 1 ? 'one' : 'grid'}"/>`);
    ticks.push(`<text x="${tx}" y="${h - 6}" class="t">${t}</text>`);
  }
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif">
<style>
  .title { font-size: 15px; font-weight: bold; }
  .sub { font-size: 11px; fill: #555; }
  .g { font-size: 12px; font-weight: bold; }
  .p { font-size: 11px; text-anchor: end; }
  .v { font-size: 10px; fill: #333; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
  .t { font-size: 10px; text-anchor: middle; fill: #555; }
  .grid { stroke: #e0e0e0; stroke-width: 1; }
  .one { stroke: #000; stroke-width: 1.5; stroke-dasharray: 4 3; }
</style>
<rect width="100%" height="100%" fill="#fff"/>
<text x="8" y="22" class="title">wsplice macro benchmark: advantage over nginx (1 worker), higher is better</text>
<text x="8" y="40" class="sub">${escapeXml('Throughput: peer / nginx. RSS, latency, CPU: nginx / peer. Dashed line = nginx. Medians of rounds in one run.')}</text>
<text x="8" y="54" class="sub">${escapeXml(subtitle)}</text>
${ticks.join('\n')}
${parts.join('\n')}
</svg>
`;
}
