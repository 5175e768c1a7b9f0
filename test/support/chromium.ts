/**
 * Headless Chromium for tests, driven over the DevTools protocol (spoken with the `ws`
 * package): launch it in its own process group, open a page, and wait for the page to
 * publish `window.__result` (a JSON string). Tests skip when the binary is absent.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

export const CHROMIUM = process.env.WSPLICE_CHROMIUM ?? '/usr/bin/chromium';

/** `false` when Chromium is here, else the reason to skip (for tap's `skip` option). */
export const chromiumSkip: false | string = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is absent: install it with \`apt-get install -y chromium\` (Debian) to run the browser tests`;

export interface Cdp {
  send(method: string, params?: object, sessionId?: string): Promise<Record<string, unknown>>;
  close(): void;
}

export function cdp(url: string): Promise<Cdp> {
  const sock = new WebSocket(url, { perMessageDeflate: false });
  let id = 0;
  const pending = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  sock.on('message', (data) => {
    const m = JSON.parse(String(data)) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
    if (m.id === undefined) return;
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error) p?.reject(new Error(m.error.message));
    else p?.resolve(m.result ?? {});
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.once('open', () =>
      resolve({
        send: (method, params = {}, sessionId) =>
          new Promise((res, rej) => {
            const msg: Record<string, unknown> = { id: ++id, method, params };
            if (sessionId !== undefined) msg.sessionId = sessionId;
            pending.set(id, { resolve: res, reject: rej });
            sock.send(JSON.stringify(msg));
          }),
        close: () => sock.close(),
      }),
    );
  });
}

export async function launchChromium(t: { teardown: (f: () => unknown) => void; comment?: (msg: string) => void }, extraArgs: string[] = []): Promise<{ proc: ChildProcess; endpoint: string }> {
  const profile = mkdtempSync(join(tmpdir(), 'wsplice-chromium-'));
  const proc = spawn(
    CHROMIUM,
    [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', `--user-data-dir=${profile}`,
      '--remote-debugging-address=127.0.0.1', '--remote-debugging-port=0', ...extraArgs, 'about:blank',
    ],
    // Its own process group, so the renderer and helper processes go with it.
    { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
  );
  const killGroup = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-proc.pid!, sig);
    } catch {
      // already gone
    }
  };
  t.teardown(async () => {
    if (proc.exitCode === null) {
      killGroup('SIGTERM');
      const timer = setTimeout(() => killGroup('SIGKILL'), 3000);
      await once(proc, 'exit');
      clearTimeout(timer);
    }
    killGroup('SIGKILL'); // helpers that outlive the browser process
    // Chromium's helpers may still be writing the profile for a moment: retry, and never fail the test on it.
    try {
      rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
    } catch (err) {
      t.comment?.(`could not remove ${profile}: ${(err as Error).message}`);
    }
  });
  let stderr = '';
  const endpoint = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chromium did not open its DevTools port in 30 s:\n${stderr.slice(-2000)}`)), 30_000);
    proc.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString();
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chromium exited with ${code}:\n${stderr.slice(-2000)}`));
    });
  });
  return { proc, endpoint };
}


/**
 * Open `url` in a new tab and wait (bounded by `ms`) for the page to set `window.__result`;
 * returns the parsed result and the DOM's copy of it (`#result`), or undefined on time-out.
 */
export async function pageResult(browser: Cdp, url: string, ms = 30_000): Promise<{ out: Record<string, unknown>; raw: string | undefined; dom: string | undefined }> {
  const { targetId } = (await browser.send('Target.createTarget', { url })) as { targetId: string };
  const { sessionId } = (await browser.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
  let raw: string | undefined;
  const deadline = Date.now() + ms;
  while (raw === undefined && Date.now() < deadline) {
    const r = (await browser.send('Runtime.evaluate', { expression: 'window.__result', returnByValue: true }, sessionId)) as {
      result?: { value?: string };
    };
    raw = r.result?.value;
    if (raw === undefined) await new Promise((res) => setTimeout(res, 100));
  }
  const d = (await browser.send('Runtime.evaluate', { expression: "document.getElementById('result')?.textContent", returnByValue: true }, sessionId)) as {
    result?: { value?: string };
  };
  return { out: JSON.parse(raw ?? '{}') as Record<string, unknown>, raw, dom: d.result?.value };
}
