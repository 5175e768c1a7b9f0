/** The proxy under test, in this process. */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createProxy, type ProxyOptions } from '../../src/index.js';

/** What `createProxy` returns (named by inference, so a rename of the class changes nothing here). */
export type TestProxy = ReturnType<typeof createProxy>;

/** A proxy listening on 127.0.0.1:0; read its port with `port(proxy)`. */
export async function startProxy(opts: ProxyOptions): Promise<TestProxy> {
  const proxy = createProxy(opts);
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  return proxy;
}

/**
 * How clients reach the proxy: its own listener, or an app's http.Server handing upgrades to
 * `proxy.ws` (and, for 'proxy.web', plain requests to `proxy.web`).
 */
export type Front = 'listener' | 'proxy.ws' | 'proxy.web';
export const FRONTS: readonly Front[] = ['listener', 'proxy.ws'];

/**
 * An http.Server on 127.0.0.1:0 that hands every upgrade to `proxy.ws` and answers plain
 * requests itself (200 "app"), or hands them to `proxy.web` when `web`; closed when the
 * proxy closes. Resolves with its port.
 */
export async function embeddingServer(proxy: TestProxy, web = false): Promise<number> {
  const app = http.createServer((req, res) => {
    if (web) proxy.web(req, res).catch(() => {}); // proxy.web answered the client itself
    else res.end('app');
  });
  app.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => void proxy.ws(req, socket, head));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  proxy.once('close', () => {
    app.closeAllConnections();
    app.close();
  });
  return (app.address() as AddressInfo).port;
}

/** The port to reach a proxy through `front` (the listener's, started here, or an embedding server's). */
export async function frontPort(proxy: TestProxy, front: Front): Promise<number> {
  if (front !== 'listener') return embeddingServer(proxy, front === 'proxy.web');
  const a = await proxy.listen({ host: '127.0.0.1', port: 0 });
  return (a as AddressInfo).port;
}
