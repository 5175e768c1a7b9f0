#!/usr/bin/env node
// Measures the native relay against a plain JS pipe and a direct connection,
// with the proxy in its own process (its CPU time includes the relay thread).
// Figures in native-notes/splice.md come from this script.
//
//   npm run build && node bench/native/measure.mjs [relays...] [--bulk-gib=N] [--secs=N] [--idle=N] [--reps=N] [--ws]
//   --ws: tunnels started as WebSocket (the engine follows frame boundaries, for the drain's
//   Close 1001) and each ping-pong message one 64-byte binary frame
//   relays: direct js-pipe splice copy adaptive splice-256k (default: all)
//
// Loads: bulk = one connection sending N GiB client -> upstream (1 MiB writes),
// ping-pong = 50 connections x 64-byte message echoed by the upstream, for
// --secs seconds; idle = --idle open tunnels, proxy RSS growth per tunnel.
import net from 'node:net';
import { once } from 'node:events';
import { fork } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';

const RELAY_MODULE =
  process.env.WSPLICE_RELAY_MODULE ?? fileURLToPath(new URL('../../dist/src/relay/native.js', import.meta.url));

const args = process.argv.slice(2);
// Inherited by the proxy child (fork keeps the environment).
if (args.includes('--ws')) process.env.WSPLICE_MEASURE_WS = '1';
const WS = process.env.WSPLICE_MEASURE_WS === '1';
const opt = (name, dflt) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  return a ? Number(a.split('=')[1]) : dflt;
};

if (args[0] === '--proxy') await proxyMain(args[1], Number(args[2]));
else if (args[0] === '--backend') {
  const srv = await backend();
  process.send({ port: srv.address().port });
  process.on('message', () => process.exit(0));
} else await main();

// ---------------------------------------------------------------- proxy child
async function proxyMain(kind, backendPort) {
  let relay = null;
  if (kind !== 'js-pipe') {
    const { loadNativeRelay } = await import(pathToFileURL(RELAY_MODULE).href);
    const mode = kind.startsWith('splice') ? 'splice' : kind;
    const r = loadNativeRelay({ mode, pipeSize: kind === 'splice-256k' ? 256 * 1024 : 1 << 20 });
    if (!r.relay) throw new Error(r.reason);
    relay = r.relay;
  }
  const srv = net.createServer({ allowHalfOpen: true, noDelay: true }, (c) => {
    c.on('error', () => {});
    const u = net.connect({ port: backendPort, host: '127.0.0.1', allowHalfOpen: true, noDelay: true });
    u.on('error', () => {});
    u.once('connect', () => {
      if (relay) relay.start(c, u, null, null, { idleTimeoutMs: 0, websocket: WS }, () => {});
      else {
        c.pipe(u);
        u.pipe(c);
        c.on('close', () => u.destroy());
        u.on('close', () => c.destroy());
      }
    });
  });
  srv.listen(0, '127.0.0.1', () => process.send({ port: srv.address().port }));
  process.on('message', (m) => {
    if (m === 'usage') {
      globalThis.gc?.(); // RSS of live objects, not of garbage not yet collected
      const u = process.cpuUsage();
      process.send({ cpu: (u.user + u.system) / 1e6, rss: process.memoryUsage.rss() });
    } else if (m === 'exit') process.exit(0);
  });
}

// ---------------------------------------------------------------- load side
function ask(child, what) {
  child.send(what);
  return new Promise((resolve) => child.once('message', resolve));
}

async function backend() {
  // Sink for bulk (byte counter), echo for ping-pong (first byte 'P').
  const srv = net.createServer({ allowHalfOpen: true, noDelay: true }, (s) => {
    s.on('error', () => {});
    let echo = null;
    s.on('data', (d) => {
      if (echo === null) echo = d[0] === 0x50 || (d[0] === 0x82 && d[2] === 0x50); // --ws: a ping frame, not a bulk one
      if (echo) s.write(d);
    });
    s.on('end', () => s.end());
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return srv;
}

async function connect(port) {
  const s = net.connect({ port, host: '127.0.0.1', noDelay: true, allowHalfOpen: true });
  await once(s, 'connect');
  return s;
}

async function bulk(port, bytes) {
  const s = await connect(port);
  const chunk = Buffer.alloc(1 << 20, 0x42);
  if (WS) chunk.set([0x82, 127, 0, 0, 0, 0, 0x00, 0x0f, 0xff, 0xf6]); // one binary frame per write: 10 + 1048566 bytes
  const t0 = process.hrtime.bigint();
  for (let sent = 0; sent < bytes; sent += chunk.length) {
    if (!s.write(chunk)) await once(s, 'drain');
  }
  s.end();
  s.resume();
  await once(s, 'end'); // the sink ends after it read everything
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  s.destroy();
  return secs;
}

async function pingpong(port, conns, secs) {
  const msg = Buffer.alloc(64, 0x50);
  if (WS) msg.set([0x82, 62]); // one unmasked binary frame of 62 bytes: 64 on the wire
  let count = 0;
  let running = true;
  const socks = await Promise.all(Array.from({ length: conns }, () => connect(port)));
  const t0 = process.hrtime.bigint();
  for (const s of socks) {
    let got = 0;
    s.on('data', (d) => {
      got += d.length;
      while (got >= 64) {
        got -= 64;
        count++;
        if (running) s.write(msg);
      }
    });
    s.write(msg);
  }
  await new Promise((r) => setTimeout(r, secs * 1000));
  running = false;
  const el = Number(process.hrtime.bigint() - t0) / 1e9;
  for (const s of socks) s.destroy();
  return count / el;
}

async function idle(port, n, child) {
  // Two rounds: the first grows the heaps to the peak of a hand-over burst, the
  // second measures what each open tunnel keeps (RSS after a GC), not garbage.
  let perTunnel = NaN;
  for (let round = 0; round < 2; round++) {
    const before = await ask(child, 'usage');
    const socks = [];
    for (let i = 0; i < n; i++) {
      const s = await connect(port);
      s.write('P'); // through the tunnel and back: it is established
      await once(s, 'data');
      socks.push(s);
    }
    await new Promise((r) => setTimeout(r, 300));
    const after = await ask(child, 'usage');
    perTunnel = (after.rss - before.rss) / n;
    for (const s of socks) s.destroy();
    await new Promise((r) => setTimeout(r, 300));
  }
  return perTunnel;
}

async function main() {
  const all = ['direct', 'js-pipe', 'splice', 'splice-256k', 'copy', 'adaptive'];
  const kinds = args.filter((a) => !a.startsWith('--'));
  const gib = opt('bulk-gib', 4);
  const secs = opt('secs', 5);
  const idleN = opt('idle', 2000);
  // The backend (sink / echo) runs in its own process, so the load side's one
  // JS thread only sends (bulk) or drives the clients (ping-pong).
  const back = fork(fileURLToPath(import.meta.url), ['--backend']);
  const backPort = (await once(back, 'message'))[0].port;
  const reps = opt('reps', 1);
  const runs = [];
  for (let rep = 0; rep < reps; rep++) for (const kind of kinds.length ? kinds : all) {
    let child = null;
    let port = backPort;
    if (kind !== 'direct') {
      child = fork(fileURLToPath(import.meta.url), ['--proxy', kind, String(backPort)], { execArgv: ['--expose-gc'] });
      port = (await once(child, 'message'))[0].port;
    }
    const u0 = child ? await ask(child, 'usage') : null;
    const bytes = gib * 2 ** 30;
    const bsecs = await bulk(port, bytes);
    const u1 = child ? await ask(child, 'usage') : null;
    const mps = await pingpong(port, 50, secs);
    const u2 = child ? await ask(child, 'usage') : null;
    const rssPer = child ? await idle(port, idleN, child) : NaN;
    if (child) {
      child.send('exit');
      await once(child, 'exit');
    }
    const row = {
      relay: kind,
      bulkGBps: bytes / bsecs / 1e9,
      cpuSecPerGB: child ? (u1.cpu - u0.cpu) / (bytes / 1e9) : NaN,
      pingPongMsgsPerSec: mps,
      cpuUsPerMsg: child ? ((u2.cpu - u1.cpu) * 1e6) / (mps * secs) : NaN,
      rssBytesPerIdleTunnel: rssPer,
    };
    runs.push(row);
    console.log(JSON.stringify(row));
  }
  // Median of the repetitions, per relay and figure (the machine may be shared).
  const median = (xs) => {
    const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
    return v.length ? v[(v.length - 1) >> 1] : NaN;
  };
  const rows = (kinds.length ? kinds : all).map((relay) => {
    const rs = runs.filter((r) => r.relay === relay);
    const m = (k) => median(rs.map((r) => r[k]));
    return { relay, bulkGBps: m('bulkGBps'), cpuSecPerGB: m('cpuSecPerGB'), pingPongMsgsPerSec: m('pingPongMsgsPerSec'), cpuUsPerMsg: m('cpuUsPerMsg'), rssBytesPerIdleTunnel: m('rssBytesPerIdleTunnel') };
  });
  console.log(`\nmedian of ${reps} run(s); bulk ${gib} GiB, ping-pong ${secs} s, ${idleN} idle tunnels`);
  back.send('exit');
  console.log('\n| relay | bulk GB/s | proxy CPU s/GB | 50-conn 64 B ping-pong msgs/s | proxy CPU µs per round trip | proxy RSS B/idle tunnel |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) {
    const f = (x, d) => (Number.isFinite(x) ? x.toFixed(d) : '-');
    console.log(`| ${r.relay} | ${f(r.bulkGBps, 2)} | ${f(r.cpuSecPerGB, 3)} | ${f(r.pingPongMsgsPerSec / 1000, 1)}k | ${f(r.cpuUsPerMsg, 2)} | ${f(r.rssBytesPerIdleTunnel, 0)} |`);
  }
}
