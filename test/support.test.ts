// The shared test support itself: the launchers (the CLI, the bench's peers), the 101 responder
// and the descriptor count, each proven against an independent peer.
import t from 'tap';
import {
  closeWss, connect, echo101, openFds, openTunnel, openWs, port, rawBackend, respondOnce, startCli, startPeer, waitFor, whoami,
  wsEcho,
} from './support/index.js';

t.test('startCli runs the built CLI, resolves its address, and stop() ends it', async (t) => {
  const wss = await wsEcho('behind-cli');
  t.teardown(() => closeWss(wss));
  const cli = await startCli(['--listen', '127.0.0.1:0', '--upstream', `127.0.0.1:${port(wss)}`], t);
  t.match(cli.address, /^127\.0\.0\.1:\d+$/);
  const ws = await openWs(`ws://${cli.address}/`);
  t.equal(await whoami(ws), 'behind-cli');
  ws.terminate();
  await cli.stop();
  t.equal(await cli.exited, 0, 'a graceful exit on SIGTERM');
});

t.test('startCli rejects with the output when the CLI exits before listening', async (t) => {
  await t.rejects(startCli(['--no-such-flag'], t), /exited/);
});

t.test('startPeer starts a bench peer in front of a ws backend (nginx when installed)', async (t) => {
  const wss = await wsEcho('behind-nginx');
  t.teardown(() => closeWss(wss));
  const peer = await startPeer('nginx-1w', port(wss), t);
  if (typeof peer === 'string') {
    t.comment(`skipped: ${peer}`);
    t.pass('nothing to start here');
    return;
  }
  const ws = await openWs(`ws://127.0.0.1:${peer.port}/`);
  t.equal(await whoami(ws), 'behind-nginx');
  ws.terminate();
  await peer.stop();
});

t.test('echo101 completes the handshake and echoes tunnel bytes; openTunnel reads the 101', async (t) => {
  const backend = await echo101();
  t.teardown(() => backend.close());
  const s = await openTunnel(backend.port);
  const got: Buffer[] = [];
  s.on('data', (d: Buffer) => got.push(d));
  s.resume();
  s.write('ping');
  await waitFor(() => Buffer.concat(got).toString() === 'ping', 5000, 'the echo');
  t.equal(Buffer.concat(got).toString(), 'ping');
  s.destroy();
});

t.test('openTunnel rejects with the reply when the answer is not a 101', async (t) => {
  const backend = await rawBackend(respondOnce('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'));
  t.teardown(() => backend.close());
  await t.rejects(openTunnel(backend.port), /not a 101: HTTP\/1\.1 403/);
});

t.test('openFds counts a socket while it is open', async (t) => {
  const backend = await echo101();
  t.teardown(() => backend.close());
  const before = openFds();
  const s = await connect(backend.port);
  await waitFor(() => backend.sockets.length === 1, 5000, 'the accept');
  const during = openFds();
  t.equal(during.sockets, before.sockets + 2, 'the client and the accepted socket');
  s.destroy();
  backend.sockets[0]!.destroy();
  await waitFor(() => openFds().sockets === before.sockets, 5000, 'both closed');
  t.equal(openFds().total, before.total);
});
