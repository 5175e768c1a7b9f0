// The sticky cookie: issued on the first response (opaque: never the address), routes later
// requests back, and a cookie that does not decode or names a backend that is down falls back to
// balancing and is issued again. Never a crash, never a refusal.
import t from 'tap';
import { WebSocket } from 'ws';
import { createProxy } from '../src/index.js';
import { namedBackend, get } from './support/named-backends.js';
import { closeCode, closeWss, frontPort, port, startProxy, whoami, wsEcho } from './support/index.js';

function cookieOf(setCookie: string | string[] | undefined): string {
  const line = Array.isArray(setCookie) ? setCookie[0]! : setCookie ?? '';
  return line.split(';')[0]!;
}

t.test('sticky cookie: issued once, routes back, bad or stale cookies fall back and are re-issued', async (t) => {
  const [a, b] = await Promise.all([namedBackend('A'), namedBackend('B')]);
  const proxy = await startProxy({
    upstreams: { u: { servers: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], sticky: { cookie: 'srv', httpOnly: true, sameSite: 'lax', nocache: true } } },
  });
  t.teardown(async () => { await proxy.close(); await a.close(); await b.close(); });
  const first = await get(port(proxy));
  const setCookie = first.headers['set-cookie'];
  t.ok(setCookie !== undefined, 'the first response carries the cookie');
  const line = Array.isArray(setCookie) ? setCookie[0]! : setCookie!;
  t.match(line, /^srv=[^;]+; Path=\/;.*HttpOnly/i);
  t.match(line, /SameSite=Lax/i);
  t.notMatch(line, new RegExp(`${a.port}|${b.port}|127\\.0\\.0\\.1`), 'the value is opaque, not the address');
  const cookie = cookieOf(setCookie);
  for (let i = 0; i < 10; i++) {
    const r = await get(port(proxy), { headers: { cookie } });
    t.equal(r.body, first.body, `request ${i} back on ${first.body}`);
    t.equal(r.headers['set-cookie'], undefined, 'not issued again while it is right');
  }
  for (const bad of ['srv=garbage', 'srv=', 'srv=%%%;srv=x', `srv=${'z'.repeat(2000)}`]) {
    const r = await get(port(proxy), { headers: { cookie: bad } });
    t.equal(r.status, 200, `"${bad.slice(0, 20)}": balanced, not refused`);
    t.ok(r.headers['set-cookie'] !== undefined, 'and a good cookie issued');
  }
  // The backend the cookie names goes down: balanced to the other one, cookie re-issued for it.
  const g = proxy.groups.get('u')!;
  const pinned = g.backends.find((x) => x.label.endsWith(`:${first.body === 'A' ? a.port : b.port}`))!;
  g.setHealthy(pinned, false, 'test');
  const moved = await get(port(proxy), { headers: { cookie } });
  t.not(moved.body, first.body, 'moved off the down backend');
  t.not(cookieOf(moved.headers['set-cookie']), cookie, 'a cookie for the new backend');
});

/** The Set-Cookie of a `ws` client's 101 and the backend it reached; `cookie`: sent with the upgrade. */
async function upgradeThrough(p: number, cookie?: string): Promise<{ setCookie: string | string[] | undefined; name: string }> {
  const ws = new WebSocket(`ws://127.0.0.1:${p}/chat`, cookie === undefined ? {} : { headers: { cookie } });
  let setCookie: string | string[] | undefined;
  ws.once('upgrade', (res) => (setCookie = res.headers['set-cookie']));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const name = await whoami(ws);
  const closed = closeCode(ws);
  ws.close();
  await closed;
  return { setCookie, name };
}

for (const front of ['listener', 'proxy.ws'] as const) {
  t.test(`${front}: a WebSocket upgrade gets the sticky cookie on its 101, and upgrades carrying it come back to that backend`, async (t) => {
    const [a, b] = await Promise.all([wsEcho('A'), wsEcho('B')]);
    const proxy = createProxy({ upstreams: { u: { servers: [a, b].map((s) => `127.0.0.1:${port(s)}`), sticky: { cookie: 'srv', httpOnly: true } } } });
    const p = await frontPort(proxy, front);
    t.teardown(async () => { await proxy.close(); await closeWss(a); await closeWss(b); });
    const first = await upgradeThrough(p);
    const line = Array.isArray(first.setCookie) ? first.setCookie[0] : first.setCookie;
    t.match(line, /^srv=[^;]+; Path=\/; HttpOnly$/, 'the 101 carries the cookie');
    const cookie = cookieOf(first.setCookie);
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const again = await upgradeThrough(p, cookie);
      seen.push(again.name);
      t.equal(again.setCookie, undefined, `upgrade ${i}: not issued again while it is right`);
    }
    t.same(seen, Array(6).fill(first.name), `every upgrade with the cookie reached ${first.name}`);
    const spread = new Set<string>();
    for (let i = 0; i < 4; i++) spread.add((await upgradeThrough(p)).name);
    t.equal(spread.size, 2, 'without the cookie the upgrades are balanced over both');
  });
}

t.test('proxy.web issues the sticky cookie and routes by it', async (t) => {
  const [a, b] = await Promise.all([namedBackend('A'), namedBackend('B')]);
  const proxy = createProxy({ upstreams: { u: { servers: [a, b].map((s) => `127.0.0.1:${s.port}`), sticky: { cookie: 'srv', sameSite: 'lax', nocache: true } } } });
  const p = await frontPort(proxy, 'proxy.web');
  t.teardown(async () => { await proxy.close(); await a.close(); await b.close(); });
  const first = await get(p);
  t.equal(first.status, 200);
  t.match(first.headers['set-cookie'], [/^srv=[^;]+; Path=\/; SameSite=Lax$/], 'the first response carries the cookie');
  t.match(first.headers['cache-control'], /no-cache="set-cookie"/, 'and nocache');
  const cookie = cookieOf(first.headers['set-cookie']);
  for (let i = 0; i < 6; i++) {
    const r = await get(p, { headers: { cookie } });
    t.equal(r.body, first.body, `request ${i} back on ${first.body}`);
    t.equal(r.headers['set-cookie'], undefined, 'not issued again while it is right');
  }
  const bad = await get(p, { headers: { cookie: 'srv=garbage' } });
  t.equal(bad.status, 200, 'an undecodable cookie: balanced');
  t.ok(bad.headers['set-cookie'] !== undefined, 'and a good one issued');
});
