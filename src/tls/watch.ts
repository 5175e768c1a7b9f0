/**
 * Watching certificate files for a change (a renewal writes new files, often
 * by replacing a symlink): each file's directory is watched, events are
 * debounced, then one reload runs. Watching is best effort: a directory that
 * cannot be watched is skipped, and SIGHUP (reload) still works.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

export const DEBOUNCE_MS = 250;

export class CertificateWatcher {
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(files: readonly string[], private readonly onChange: () => void) {
    this.setFiles(files);
  }

  setFiles(files: readonly string[]): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.closed) return;
    const byDir = new Map<string, Set<string>>();
    for (const f of files) {
      const d = dirname(f);
      if (!byDir.has(d)) byDir.set(d, new Set());
      byDir.get(d)!.add(basename(f));
    }
    for (const [dir, names] of byDir) {
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => {
          // Some platforms give no name: then any change in the directory counts.
          if (name === null || names.has(String(name)) || String(name).startsWith('..')) this.schedule();
        });
        w.on('error', () => w.close());
        this.watchers.push(w);
      } catch {
        // Unwatchable (gone, no permission): reload by signal only.
      }
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    this.watchers = [];
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer !== null) this.timer.refresh();
    else {
      this.timer = setTimeout(() => {
        this.timer = null;
        if (!this.closed) this.onChange();
      }, DEBOUNCE_MS);
      this.timer.unref();
    }
  }
}
