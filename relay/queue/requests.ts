// Requests from `tenant-relay queue` (retry, delete), left as empty files beside the entries: the running
// relay applies them at its next scan (a stopped one at start), so the command never races the scheduler
// for the same file.
import fs from 'node:fs/promises';
import { PRIVATE_FILE } from '../private-files.js';
import { type RequestKind, SpoolLayout } from './spool-layout.js';

export interface QueueRequest {
  readonly id: string;
  readonly kind: RequestKind;
}

export class QueueRequests {
  readonly #layout: SpoolLayout;

  constructor(layout: SpoolLayout) {
    this.#layout = layout;
  }

  async pending(): Promise<QueueRequest[]> {
    const names = await fs.readdir(this.#layout.dir('queue')).catch(() => [] as string[]);
    return names.flatMap((name) => {
      const file = SpoolLayout.parseQueueFile(name);
      return file?.kind === 'request' ? [{ id: file.id, kind: file.request }] : [];
    });
  }

  async leave(id: string, kind: RequestKind): Promise<void> {
    await fs.writeFile(this.#layout.request(id, kind), '', { mode: PRIVATE_FILE });
  }

  async clear(request: QueueRequest): Promise<void> {
    await fs.rm(this.#layout.request(request.id, request.kind), { force: true });
  }
}
