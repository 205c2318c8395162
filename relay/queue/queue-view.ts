// The queue for people: as it is on disk (every spool under the configured path, one per worker, each
// message with the hold its relay wrote for it), or as a relay's own scheduler holds it. `tenant-relay
// queue` and the mail console read it; neither touches a message: they leave requests (requests.ts).
import type { QueuedMessage } from './entry.js';
import { type Hold, type Holds, readHolds } from './holds.js';
import { SpoolLayout } from './spool-layout.js';
import { type QueueListing, Spool } from './spool.js';

export type Listed = QueueListing & { readonly hold?: Hold; readonly spool: Spool };

/** The spools under the configured path: the relay's own, or each worker's. */
export function spoolsAt(root: string): Spool[] {
  return SpoolLayout.spoolsUnder(root).map((s) => new Spool(s.path));
}

/** One message, in whichever spool and area holds it. */
export async function findQueued(spools: readonly Spool[], id: string): Promise<Listed | undefined> {
  for (const spool of spools) {
    const found = await spool.find(id);
    if (found) return withHolds(spool, [found])[0];
  }
  return undefined;
}

/** Every message of an area, over all the spools. */
export async function listQueued(spools: readonly Spool[], area: 'queue' | 'failed' = 'queue'): Promise<Listed[]> {
  return (await Promise.all(spools.map(async (spool) => withHolds(spool, await spool.list(area))))).flat();
}

/** Each entry with the hold its relay wrote for it (held by a limit: why, until when), if any. */
function withHolds(spool: Spool, listing: readonly QueueListing[]): Listed[] {
  const holds = readHolds(spool.layout.holdsFile);
  return listing.map((l) => {
    const hold = holds.get(l.id);
    return hold ? { ...l, hold, spool } : { ...l, spool };
  });
}

/** Where the mail console finds queued mail. */
export interface QueueView {
  find(id: string): Promise<Listed | undefined>;
  list(area: 'queue' | 'failed'): Promise<Listed[]>;
}

/** The spools on disk under `root()`: the primary of workers reads theirs. */
export function spoolQueueView(root: () => string): QueueView {
  return { find: (id) => findQueued(spoolsAt(root()), id), list: (area) => listQueued(spoolsAt(root()), area) };
}

/**
 * A relay's own queue, from its scheduler's memory (the same state as on disk): a look costs what it
 * shows. Read from disk, each page of the queue read every state file and each timeline the journal's
 * segments, on the thread that takes mail (20,000 queued: 1.1-1.3 s a page; two 8 MB segments: ~100 ms a
 * timeline), as often as anyone with a console token asked. Failed messages are files only.
 */
export function liveQueueView(spool: Spool, scheduler: { queued(id: string): QueuedMessage | undefined; allQueued(): Iterable<QueuedMessage>; readonly holds: Pick<Holds, 'get'> }): QueueView {
  const listed = (entry: QueuedMessage): Listed => {
    const hold = scheduler.holds.get(entry.id);
    return hold ? { id: entry.id, area: 'queue', entry, hold, spool } : { id: entry.id, area: 'queue', entry, spool };
  };
  return {
    find: async (id) => {
      const entry = scheduler.queued(id);
      if (entry) return listed(entry);
      const failed = await spool.findFiled(id, ['failed']);
      return failed && { ...failed, spool };
    },
    list: async (area) => (area === 'failed' ? listQueued([spool], 'failed') : [...scheduler.allQueued()].map(listed)),
  };
}
