// The http-proxy peer (npm http-proxy, the Node incumbent) in its default configuration:
// proxies plain HTTP and WebSocket upgrades to one upstream.
// Usage: node http-proxy-peer.js CONFIG.json   with {"listen": PORT, "upstream": PORT}
// Prints "http-proxy listening on 127.0.0.1:PORT" when ready.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import httpProxy from 'http-proxy';

interface Config {
  listen: number;
  upstream: number;
}

const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Config;
// Defaults, as a user would start: no keep-alive agent (http-proxy then sends Connection: close upstream).
const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${config.upstream}` });
proxy.on('error', (_err, _req, res) => {
  // res is a ServerResponse for HTTP, a Socket for ws: answer the first, drop the second.
  if ('writeHead' in res) {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  } else {
    res.destroy();
  }
});

const server = createServer((req, res) => proxy.web(req, res));
server.on('upgrade', (req, socket, head) => proxy.ws(req, socket, head));
server.listen({ host: '127.0.0.1', port: config.listen, backlog: 4096 }, () => {
  process.stdout.write(`http-proxy listening on 127.0.0.1:${config.listen}\n`);
});
