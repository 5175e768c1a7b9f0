/** The proxy under test, in this process. */
import { createProxy, type ProxyOptions } from '../../src/index.js';

/** What `createProxy` returns (named by inference, so a rename of the class changes nothing here). */
export type TestProxy = ReturnType<typeof createProxy>;

/** A proxy listening on 127.0.0.1:0; read its port with `port(proxy)`. */
export async function startProxy(opts: ProxyOptions): Promise<TestProxy> {
  const proxy = createProxy(opts);
  await proxy.listen({ host: '127.0.0.1', port: 0 });
  return proxy;
}
