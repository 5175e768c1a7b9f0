import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import t from 'tap';
import { Issues } from '../src/config/issues.js';
import { readNginxTree } from '../src/config/nginx/parse.js';
import { parseListenAddress, parseSize, parseTime } from '../src/config/nginx/values.js';

const dir = mkdtempSync(`${tmpdir()}/wsplice-nginx-`);

t.test('directives with file:line, quoted values, comments and includes with globs', async (t) => {
  mkdirSync(`${dir}/conf.d`);
  writeFileSync(`${dir}/conf.d/b.conf`, 'upstream b { server 127.0.0.1:2; }\n');
  writeFileSync(`${dir}/conf.d/a.conf`, 'upstream a { server 127.0.0.1:1; }\n');
  writeFileSync(`${dir}/main.conf`, "# comment\nmap $http_upgrade $connection_upgrade {\n  default upgrade;\n  '' close;\n}\ninclude conf.d/*.conf;\n");
  const is = new Issues();
  const tree = readNginxTree(`${dir}/main.conf`, is);
  t.same(is.list, []);
  t.same(tree.map((d) => [d.name, d.args, d.line]), [['map', ['$http_upgrade', '$connection_upgrade'], 2], ['upstream', ['a'], 1], ['upstream', ['b'], 1]]);
  t.same(tree[0]!.block!.map((d) => [d.name, d.args]), [['default', ['upgrade']], ['', ['close']]], "a quoted '' is a real empty word");
  t.match(tree[1]!.file, /conf\.d\/a\.conf$/, 'included files sorted, each directive keeps its own file');
});

t.test('syntax errors are all reported with their line', async (t) => {
  writeFileSync(`${dir}/bad.conf`, 'server {\n  listen 80\n}\n}\nlocation / {\n');
  const is = new Issues();
  readNginxTree(`${dir}/bad.conf`, is);
  t.match(is.list, [
    { message: /unexpected "}", expecting ";" after "listen"/, line: 3 },
    { message: /unexpected "}"/, line: 4 },
    { message: /unexpected end of file, expecting "}"/ },
  ]);
  const missing = new Issues();
  writeFileSync(`${dir}/inc.conf`, 'include nope.conf;\n');
  readNginxTree(`${dir}/inc.conf`, missing);
  t.match(missing.list, [{ message: /cannot read .*nope\.conf: ENOENT/, line: 1 }]);
});

t.test('nginx value syntaxes', async (t) => {
  t.equal(parseTime('60'), 60_000);
  t.equal(parseTime('1m30s'), 90_000);
  t.equal(parseTime('500ms'), 500);
  t.equal(parseTime('soon'), null);
  t.equal(parseSize('8k'), 8192);
  t.same(parseListenAddress('8080'), { address: '0.0.0.0:8080' });
  t.same(parseListenAddress('127.0.0.1:8080'), { address: '127.0.0.1:8080' });
  t.match(parseListenAddress('127.0.0.1:99999'), { error: /invalid port/ });
});
