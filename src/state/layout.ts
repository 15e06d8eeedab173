import { join } from 'node:path';

/** Every path inside the state directory (DESIGN.md "The state directory"), in one place. */
export class StateLayout {
  constructor(readonly root: string) {}

  get stateFile(): string {
    return join(this.root, 'state.json');
  }
  get statusFile(): string {
    return join(this.root, 'status.json');
  }
  get keysFile(): string {
    return join(this.root, 'keys.json');
  }
  get bundlesDir(): string {
    return join(this.root, 'bundles');
  }
  bundleDir(sha256: string): string {
    return join(this.bundlesDir, sha256);
  }
  get currentLink(): string {
    return join(this.root, 'current');
  }
  get downloadsDir(): string {
    return join(this.root, 'downloads');
  }
  get outboxDir(): string {
    return join(this.root, 'outbox');
  }
  outboxTypeDir(type: string): string {
    return join(this.outboxDir, type);
  }
  get rejectedDir(): string {
    return join(this.outboxDir, '.rejected');
  }
  /** Packed directories awaiting upload (the agent's own cache; cleared on start). */
  get outboxPackedDir(): string {
    return join(this.outboxDir, '.packed');
  }
  /** Entries being deleted after upload: renamed here first, so a half-deleted one is never uploaded. */
  get outboxTrashDir(): string {
    return join(this.outboxDir, '.trash');
  }
}
