// The request-side Transfer-Encoding rules hold for responses: a backend's second or
// empty Transfer-Encoding line, an empty element or a coding before `chunked` is
// framing some client may read otherwise, and is answered 502 with nothing of the
// backend's response (nginx: "upstream sent duplicate header line" / "unknown
// Transfer-Encoding", 502). A plain `chunked` response is the control: it passes.
import t from 'tap';
import { rawBackend } from '../support/index.js';
import { rawExchange, startProxy } from './fixtures/harness.js';

const BODY = '5\r\nhello\r\n0\r\n\r\n';
const CASES: Array<[string, string]> = [
  ['chunked + an empty TE line', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: \r\n'],
  ['an empty TE line + chunked', 'Transfer-Encoding: \r\nTransfer-Encoding: chunked\r\n'],
  ['two TE: chunked lines', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n'],
  ['TE: identity, chunked', 'Transfer-Encoding: identity, chunked\r\n'],
  ['TE: gzip, chunked', 'Transfer-Encoding: gzip, chunked\r\n'],
  ['TE: chunked, (empty element)', 'Transfer-Encoding: chunked,\r\n'],
];

let reply = '';
const backend = await rawBackend((sock, data) => {
  if (data.includes('\r\n\r\n') && !sock.writableEnded) sock.end(reply);
});
const h = await startProxy({ upstreams: { b: { servers: [`127.0.0.1:${backend.port}`] } } });
t.teardown(async () => {
  await h.proxy.close();
  await backend.close();
});

for (const [id, lines] of CASES) {
  t.test(`response with ${id}: 502, none of the response reaches the client`, async (t) => {
    reply = `HTTP/1.1 200 OK\r\n${lines}\r\n${BODY}`;
    const before = h.upstreamErrors.length;
    const r = await rawExchange(h.port, ['GET / HTTP/1.1\r\nHost: a.test\r\n\r\n']);
    t.same(r.statuses, [502]);
    t.notMatch(r.text, /hello|Transfer-Encoding/i, 'nothing of the backend response');
    t.equal(r.end, 'fin');
    t.equal(h.upstreamErrors.length, before + 1, 'one upstream error');
    t.equal(h.upstreamErrors.at(-1)?.code, 'WSPLICE_UPSTREAM_PROTOCOL');
  });
}

t.test('a status llhttp reads as below 100 (`080`, found by the response fuzz): 502, never a two-digit status line', async (t) => {
  for (const status of ['080', '000', '099']) {
    reply = `HTTP/1.1 ${status} X\r\nContent-Length: 0\r\n\r\n`;
    const r = await rawExchange(h.port, ['GET / HTTP/1.1\r\nHost: a.test\r\n\r\n']);
    t.same(r.statuses, [502], status);
    t.notMatch(r.text, /^HTTP\/1\.1 \d{1,2} /m, 'no two-digit status line');
  }
});

t.test('control: one TE: chunked line passes, framing untouched', async (t) => {
  reply = `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${BODY}`;
  const r = await rawExchange(h.port, ['GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n']);
  t.same(r.statuses, [200]);
  t.ok(r.text.endsWith(`\r\n\r\n${BODY}`), 'the chunked body as sent');
});
