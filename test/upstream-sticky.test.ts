// The sticky cookie: issued on the first response (opaque: never the address), routes later
// requests back, and a cookie that does not decode or names a backend that is down falls back to
// balancing and is issued again. Never a crash, never a refusal.
import t from 'tap';
import { namedBackend, get } from './support/named-backends.js';
import { port, startProxy } from './support/index.js';

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
