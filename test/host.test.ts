// The Host check every request goes through, against the RFC 3986 grammar written as a regular
// expression (the form it had before it became one scan): the two must agree on every input.
import t from 'tap';
import { isIPv6 } from 'node:net';
import { isValidHost } from '../src/http1/semantics.js';

const REG_NAME = /^[A-Za-z0-9_~!$&'()*+;=-]+(?:\.[A-Za-z0-9_~!$&'()*+;=-]+)*\.?$/;
const port = (p: string): boolean => /^[0-9]{0,5}$/.test(p) && Number(p) <= 65535;
function reference(host: string): boolean {
  if (host.length === 0 || host.length > 255) return false;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    if (close < 0 || !isIPv6(host.slice(1, close))) return false;
    const rest = host.slice(close + 1);
    return rest === '' || (rest.startsWith(':') && port(rest.slice(1)));
  }
  const colon = host.lastIndexOf(':');
  if (colon >= 0 && !port(host.slice(colon + 1))) return false;
  return REG_NAME.test(colon >= 0 ? host.slice(0, colon) : host);
}

t.test('named cases', async (t) => {
  const cases: Array<[string, boolean]> = [
    ['a.test', true], ['a.test.', true], ['a.test:', true], ['a.test:8080', true], ['127.0.0.1:65535', true],
    ['[::1]', true], ['[::1]:8080', true], ['x', true], ["a-b_c~!$&'()*+;=.d", true],
    ['', false], ['.', false], ['..', false], ['.a', false], ['a..b', false], ['a b', false], ['a%20b', false],
    ['a.test:65536', false], ['a.test:123456', false], ['a.test:8x', false], [':80', false], ['u@a.test', false],
    ['[::1', false], ['[zz]', false], ['[::1]x', false], ['[::1]:99999', false], ['é.test', false], ['a'.repeat(256), false],
  ];
  for (const [h, ok] of cases) t.equal(isValidHost(h), ok, JSON.stringify(h));
});

t.test('agrees with the grammar on 20,000 generated hosts', async (t) => {
  // A fixed-seed generator over the characters that matter (label characters, dots, colons,
  // brackets, digits, a space, a non-ASCII letter), so a failure replays.
  const alphabet = "ab9-_~.:.:[]:0123456789 é%@";
  let seed = 0x2545f491;
  const next = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8);
  let valid = 0;
  let disagree = 0;
  for (let i = 0; i < 20_000; i++) {
    let h = '';
    const len = next() % 12;
    for (let j = 0; j < len; j++) h += alphabet[next() % alphabet.length];
    const want = reference(h);
    if (want) valid++;
    if (isValidHost(h) !== want && disagree++ < 5) t.fail(`${JSON.stringify(h)}: expected ${want}`);
  }
  t.equal(disagree, 0, 'no disagreement');
  t.ok(valid > 1000, `the generator makes valid hosts too (${valid})`);
});
