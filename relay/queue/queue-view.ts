// The queue as it is on disk, for people: every spool under the configured path (one per worker), each
// message with the hold its relay wrote for it. `tenant-relay queue` and the mail console read it; neither
// touches a message: they leave requests (requests.ts).
import { type Hold, readHolds } from './holds.js';
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
