/**
 * Notices every change to one file, including a replacement by rename (an
 * editor's save, a Kubernetes ConfigMap update), which a watch on the file
 * itself misses because the watched inode is gone. It watches the directory
 * and also compares the file's identity (inode, size, mtime) on a short
 * interval, so a change is seen even where fs.watch is unreliable.
 */
import { type FSWatcher, statSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from '../log/logger.js';

const POLL_MS = 250;

function identity(path: string): string {
  try {
    const stat = statSync(path);
    return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
  } catch {
    return 'missing';
  }
}

/** Calls `onChange` (debounced) whenever the file's content may have changed. */
export class FileChangeWatcher {
  private last: string;
  private dirWatcher: FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;

  constructor(
    private readonly path: string,
    private readonly onChange: () => void,
    private readonly logger: Logger,
  ) {
    this.last = identity(path);
  }

  start(): void {
    try {
      const name = basename(this.path);
      this.dirWatcher = watch(dirname(this.path), (_event, file) => {
        if (file === null || file === name || String(file).startsWith('..')) this.check();
      });
      this.dirWatcher.on('error', (error) =>
        this.logger.warn('flags directory watch failed; polling only', { error }),
      );
    } catch (error) {
      this.logger.warn('cannot watch the flags directory; polling only', { error });
    }
    this.poller = setInterval(() => this.check(), POLL_MS);
    this.poller.unref();
  }

  private check(): void {
    const now = identity(this.path);
    if (now === this.last || now === 'missing') return;
    this.last = now;
    // Let a burst of writes settle, then reload once.
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.onChange(), 20);
    this.debounce.unref();
  }

  stop(): void {
    this.dirWatcher?.close();
    if (this.poller) clearInterval(this.poller);
    if (this.debounce) clearTimeout(this.debounce);
  }
}
