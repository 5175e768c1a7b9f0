// The Node floor: a TCP relay with no HTTP at all. It accepts, connects upstream on the first
// bytes, forwards them as they are, then pipes both ways. Whatever a Node proxy does costs at
// least this; the gap between it and wsplice is wsplice's own work per connection and per byte.
// Its HTTP row is not a like-for-like figure: with no HTTP it keeps one upstream connection per
// client connection, where nginx and wsplice open one per request (Connection: close, as the usual nginx block sets).
// Usage: node node-pipe-peer.js CONFIG.json   with {"listen": PORT, "upstream": PORT}
// Prints "node-pipe listening on 127.0.0.1:PORT" when ready.
import { readFileSync } from 'node:fs';
import net from 'node:net';

interface Config {
  listen: number;
  upstream: number;
}

const config = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Config;

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  client.on('error', () => {});
  client.once('data', (first: Buffer) => {
    client.pause();
    const up = net.connect({ host: '127.0.0.1', port: config.upstream, allowHalfOpen: true, noDelay: true }, () => {
      up.write(first);
      up.pipe(client);
      client.pipe(up);
      client.resume();
    });
    up.on('error', () => client.destroy());
    client.on('error', () => up.destroy());
    up.on('close', () => client.destroy());
    client.on('close', () => up.destroy());
  });
});
server.listen({ host: '127.0.0.1', port: config.listen, backlog: 4096 }, () => {
  process.stdout.write(`node-pipe listening on 127.0.0.1:${config.listen}\n`);
});
