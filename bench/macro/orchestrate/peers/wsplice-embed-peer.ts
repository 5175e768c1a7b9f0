// wsplice embedded in a Node http.Server, beside the http-proxy peer and configured like it: the
// app's server parses, proxy.web and proxy.ws proxy plain requests and upgrades to one upstream.
// The gap to the wsplice CLI peers is what Node's own parser and http client cost.
// Usage: node wsplice-embed-peer.js CONFIG.json   with {"listen": PORT, "upstream": PORT}
// Prints "wsplice-embed listening on 127.0.0.1:PORT" when ready.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createProxy } from '../../../../src/index.js';

interface Config {
  listen: number;
  upstream: number;
}

const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Config;
const proxy = createProxy({ upstreams: { backend: { servers: [`127.0.0.1:${config.upstream}`] } } });

// Failures are answered by wsplice itself (502/504); the promises are safe to leave unawaited.
const server = createServer((req, res) => void proxy.web(req, res));
server.on('upgrade', (req, socket, head) => void proxy.ws(req, socket, head));
server.listen({ host: '127.0.0.1', port: config.listen, backlog: 4096 }, () => {
  process.stdout.write(`wsplice-embed listening on 127.0.0.1:${config.listen} (${proxy.relayNote})\n`);
});
