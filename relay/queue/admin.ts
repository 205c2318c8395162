// What `tenant-relay queue` shows and asks for. It reads the spool directly and leaves retry/delete
// requests beside the entries, which a running relay applies at its next scan (and a stopped one at start),
// so the command never races the scheduler for the same file.
import fs from 'node:fs/promises';
import path from 'node:path';
import { readHeaderBlock, splitMessage } from '../message/split.js';
import { isQueuedMessage, type QueuedMessage } from './entry.js';
import { type JournalPlace, readJournal, readJournalBytes } from './journal.js';
import type { Spool } from './spool.js';

export interface QueueListing {
  readonly id: string;
  readonly area: 'queue' | 'failed';
  readonly entry: QueuedMessage;
  /** Set for a message still in the journal (accepted moments ago, or awaiting its first attempt). */
  readonly journal?: JournalPlace;
}

export async function listQueue(spool: Spool, area: 'queue' | 'failed' = 'queue'): Promise<QueueListing[]> {
  let names: string[];
  try {
    names = await fs.readdir(path.join(spool.dir, area));
  } catch {
    return [];
  }
  const listings: QueueListing[] = [];
  for (const name of names.filter((n) => n.endsWith('.json')).sort()) {
    try {
      const entry: unknown = JSON.parse(await fs.readFile(spool.path(area, name), 'utf8'));
      if (isQueuedMessage(entry)) listings.push({ id: entry.id, area, entry });
    } catch {
      // Being replaced right now, or damaged: the relay's own scan deals with it.
    }
  }
  if (area === 'queue') {
    // Messages moved out of the journal may still be in it for a moment: their files are the newer state.
    const filed = new Set(listings.map((l) => l.id));
    const { live } = await readJournal(path.join(spool.dir, 'journal'));
    for (const m of live) {
      if (!filed.has(m.entry.id)) listings.push({ id: m.entry.id, area, entry: m.entry, journal: { segment: m.segment, offset: m.offset, length: m.length } });
    }
    listings.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  return listings;
}

export async function findEntry(spool: Spool, id: string): Promise<QueueListing | undefined> {
  for (const area of ['queue', 'failed'] as const) {
    const found = (await listQueue(spool, area)).find((l) => l.id === id);
    if (found) return found;
  }
  return undefined;
}

export async function headerOf(spool: Spool, listing: QueueListing): Promise<string> {
  if (listing.journal) return splitMessage(await readJournalBytes(listing.journal)).header.toString('latin1');
  return ((await readHeaderBlock(spool.path(listing.area, `${listing.id}.eml`))) ?? Buffer.alloc(0)).toString('latin1');
}

export function describeEntry(l: QueueListing, now: number): string {
  const e = l.entry;
  const count = (s: string) => e.recipients.filter((r) => r.status === s).length;
  const age = humanDuration(now - e.createdAt);
  const next = l.area === 'failed' ? 'failed' : e.nextAttemptAt <= now ? 'due now' : `next try in ${humanDuration(e.nextAttemptAt - now)}`;
  return `${e.id}  ${age.padStart(6)}  ${String(e.size).padStart(8)} B  <${e.mailFrom}>  tenant=${e.tenant ?? '-'}  pending=${count('pending')} sent=${count('sent')} failed=${count('failed')}  attempts=${e.attempts}  ${next}${e.lastError ? `\n    last: ${e.lastError}` : ''}`;
}

function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.round(s / 60)}m`;
  if (s < 86_400) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}
