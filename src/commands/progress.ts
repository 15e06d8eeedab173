import { formatBytes } from '../util/format.js';

export interface ProgressBar {
  update(done: number, total: number): void;
  /** Ends the bar's line. */
  finish(): void;
}

const WIDTH = 24;
const REDRAW_MS = 100;

/** One line, redrawn in place at most every 100 ms: `label [#####·····]  42%  27 MiB / 64 MiB  31 MiB/s`. */
export function renderProgress(label: string, done: number, total: number, elapsedMs: number): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(fraction * WIDTH);
  const rate = elapsedMs > 0 ? `  ${formatBytes((done * 1000) / elapsedMs)}/s` : '';
  return `${label} [${'#'.repeat(filled)}${'·'.repeat(WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}${rate}`;
}

/** A progress bar on a terminal; `write` is undefined when stderr is not one, and then nothing is drawn. */
export function progressBar(write: ((text: string) => void) | undefined, label: string, now: () => number = Date.now): ProgressBar {
  if (write === undefined) return { update: () => undefined, finish: () => undefined };
  const started = now();
  let lastDraw = 0;
  let last = '';
  let drawn = false;
  const draw = (text: string): void => {
    // \x1b[K clears what a longer previous line left behind.
    write(`\r${text}\x1b[K`);
    drawn = true;
    last = text;
  };
  return {
    update(done, total) {
      const t = now();
      if (done < total && t - lastDraw < REDRAW_MS) return;
      lastDraw = t;
      const text = renderProgress(label, done, total, t - started);
      if (text !== last) draw(text);
    },
    finish() {
      if (drawn) write('\n');
    },
  };
}
