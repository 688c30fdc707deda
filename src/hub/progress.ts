/**
 * A one-line progress bar per file for a terminal; silent when the stream is
 * not a TTY (a log file or a pipe gets no carriage-return noise).
 */
import type { DownloadProgress, ProgressCallback } from './node-cache.js';
import { formatBytes } from './info.js';

export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

export function progressBar(stream: ProgressStream, intervalMs = 100): ProgressCallback {
  if (!stream.isTTY) return () => undefined;
  let file = '';
  let last = 0;
  const draw = (p: DownloadProgress): void => {
    const fraction = p.total > 0 ? p.bytes / p.total : 1;
    const width = 24;
    const filled = Math.round(fraction * width);
    const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
    const line = `${p.file} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${formatBytes(p.bytes)} / ${formatBytes(p.total)}`;
    stream.write(`\r${line.slice(0, (stream.columns ?? 100) - 1)}\x1b[K`);
  };
  return (p) => {
    const now = Date.now();
    const done = p.bytes >= p.total;
    if (p.file !== file) {
      file = p.file;
      last = 0;
    }
    if (!done && now - last < intervalMs) return;
    last = now;
    draw(p);
    if (done) {
      stream.write('\n');
      file = '';
    }
  };
}
