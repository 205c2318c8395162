// Requests from `tenant-relay queue` and the mail console (retry, delete, hold, release), left as files
// in the spool's requests/, each saying who asked: the running relay applies them at its next scan (a
// stopped one at start; the console's own relay at once), so no one races the scheduler for the same file.
import fs from 'node:fs/promises';
import { sanitizeUpstreamText } from '../errors.js';
import { PRIVATE_DIR, PRIVATE_FILE } from '../private-files.js';
import type { QueuedMessage } from './entry.js';
import { type RequestKind, SpoolLayout } from './spool-layout.js';

export interface QueueRequest {
  readonly id: string;
  readonly kind: RequestKind;
  /** Who asked, as the request says (cleaned and capped: the file is only as trusted as the spool). */
  readonly by: string;
}

/** A message after a request: as it is now on disk, 'gone' (deleted), or undefined when it does not apply. */
export function afterRequest(entry: QueuedMessage, kind: RequestKind, now: number): QueuedMessage | 'gone' | undefined {
  const { onHold: _held, ...released } = entry;
  switch (kind) {
    case 'delete':
      return 'gone';
    case 'hold':
      return entry.onHold ? undefined : { ...entry, onHold: { since: now } };
    // Retry now releases a held message too: the person wants it to go.
    case 'retry':
      return { ...released, nextAttemptAt: 0 };
    case 'release':
      return entry.onHold ? { ...released, nextAttemptAt: now } : undefined;
  }
}

export class QueueRequests {
  readonly #layout: SpoolLayout;

  constructor(layout: SpoolLayout) {
    this.#layout = layout;
  }

  async pending(): Promise<QueueRequest[]> {
    // Only the requests: a scan costs nothing more with a backlog in queue/.
    const names = await fs.readdir(this.#layout.requestsDir).catch(() => [] as string[]);
    const found: QueueRequest[] = [];
    for (const name of names) {
      const file = SpoolLayout.parseQueueFile(name);
      if (file?.kind !== 'request') continue;
      const said = await fs.readFile(this.#layout.request(file.id, file.request), 'utf8').catch(() => '');
      found.push({ id: file.id, kind: file.request, by: sanitizeUpstreamText(said, 120) || 'tenant-relay queue' });
    }
    return found;
  }

  async leave(id: string, kind: RequestKind, by = 'tenant-relay queue'): Promise<void> {
    // A spool last opened by a version before requests/ has none yet.
    await fs.mkdir(this.#layout.requestsDir, { recursive: true, mode: PRIVATE_DIR });
    await fs.writeFile(this.#layout.request(id, kind), by, { mode: PRIVATE_FILE });
  }

  async clear(request: QueueRequest): Promise<void> {
    await fs.rm(this.#layout.request(request.id, request.kind), { force: true });
  }
}
