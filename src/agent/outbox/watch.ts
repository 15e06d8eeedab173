import { watch, type FSWatcher } from 'node:fs';
import { ARTIFACT_TYPES } from '../../api/types.js';
import type { Logger } from '../../log.js';
import type { StateLayout } from '../../state/layout.js';
import { isVisibleName } from './entries.js';

export interface OutboxWatch {
  close(): void;
}

/**
 * Calls `onEntry` when a visible name appears in (or leaves) an outbox type directory, so an
 * entry goes up within moments instead of at the next 10 s scan. Best effort: where inotify is
 * unavailable or exhausted the periodic scan still finds everything. Dot-names (writes in progress)
 * are ignored; the watchers never keep the process alive.
 */
export function watchOutbox(layout: StateLayout, onEntry: (type: string, name: string | null) => void, logger: Logger): OutboxWatch {
  const watchers: FSWatcher[] = [];
  for (const type of ARTIFACT_TYPES) {
    const dir = layout.outboxTypeDir(type);
    try {
      const watcher = watch(dir, { persistent: false }, (event, filename) => {
        // 'change' is a write into an entry in place; entries arrive by rename.
        if (event === 'rename' && (filename === null || isVisibleName(filename))) onEntry(type, filename);
      });
      watcher.on('error', (err) => {
        logger.debug({ err, dir }, 'outbox watch stopped; the periodic scan continues');
        watcher.close();
      });
      watchers.push(watcher);
    } catch (err) {
      logger.debug({ err, dir }, 'cannot watch the outbox; the periodic scan picks entries up');
    }
  }
  return {
    close: () => {
      for (const watcher of watchers.splice(0)) watcher.close();
    },
  };
}
