// At start, before the listeners open: what a previous run left in the spool goes back to work. Temp
// files and unfinished commits were never acknowledged (the client still has them) and are dropped; an
// entry that is torn or unreadable is moved to corrupt/ and reported, and the rest goes on.
import fs from 'node:fs/promises';
import type { Logger } from '../log.js';
import { renameIfThere } from '../files.js';
import { PRIVATE_DIR, tightenTree } from '../private-files.js';
import { isQueuedMessage, type QueuedMessage } from './entry.js';
import type { Journal } from './journal.js';
import { SpoolLayout } from './spool-layout.js';
import { withSharedTexts } from './shared-texts.js';

export interface Recovered {
  readonly entries: QueuedMessage[];
  readonly corrupt: { readonly id: string; readonly reason: string }[];
  /** Journal segments that ended in a torn write (never acknowledged): bytes ignored. */
  readonly discarded: { readonly path: string; readonly bytes: number }[];
  /** Files and folders that others could read, made private (0600/0700). */
  readonly tightened: number;
}

export async function recoverSpool(layout: SpoolLayout, journal: Journal): Promise<Recovered> {
  for (const dir of layout.dirs) await fs.mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
  // A spool written under a wider umask (or by an older version) holds mail anyone on the machine could read.
  const tightened = await tightenTree(layout.root);
  const fromJournal = await journal.open();
  for (const name of await fs.readdir(layout.tmpDir)) await fs.rm(layout.temp(name), { force: true });
  const names = await fs.readdir(layout.dir('queue'));
  const present = new Set(names);
  const states: string[] = [];
  for (const name of names) {
    const file = SpoolLayout.parseQueueFile(name);
    if (!file) continue;
    // Left by a version that kept requests beside the messages: applied from requests/ like the others.
    if (file.kind === 'request') await renameIfThere(layout.requestBesideMessage(file.id, file.request), layout.request(file.id, file.request));
    else if (file.kind === 'state') states.push(file.id);
    else if (file.kind === 'state-aside') await fs.rm(layout.stateAside(file.id), { force: true });
    // A message whose state never reached queue/ was never acknowledged: the client still has it.
    else if (!present.has(`${file.id}.json`)) await fs.rm(layout.message(file.id), { force: true });
  }
  const entries: QueuedMessage[] = [];
  const corrupt: { id: string; reason: string }[] = [];
  // Many at once: a backlog of 100,000 deferred messages is read in seconds, not one file at a time.
  await inParallel(states, 64, async (id) => {
    const read = await readEntry(layout, id, present);
    if (read.ok) return void entries.push(read.entry);
    corrupt.push({ id, reason: read.reason });
    await fs.rename(layout.message(id), layout.message(id, 'corrupt')).catch(() => {});
    await fs.rename(layout.state(id), layout.state(id, 'corrupt')).catch(() => {});
  });
  // A message both in the journal and in queue/ was being moved out: its files are the newer state.
  const filed = new Set(entries.map((e) => e.id));
  for (const e of fromJournal.recovered) {
    if (filed.has(e.id)) journal.done(e.id);
    else entries.push(e);
  }
  return { entries, corrupt, discarded: fromJournal.discarded, tightened };
}

/** A queued message's state, checked against its message file; or why it cannot be trusted. */
async function readEntry(layout: SpoolLayout, id: string, present: ReadonlySet<string>): Promise<{ ok: true; entry: QueuedMessage } | { ok: false; reason: string }> {
  if (!present.has(`${id}.eml`)) return { ok: false, reason: 'message file missing' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(layout.state(id), 'utf8'));
  } catch {
    return { ok: false, reason: 'state file unreadable or truncated' };
  }
  if (!isQueuedMessage(parsed) || parsed.id !== id) return { ok: false, reason: 'state file has bad metadata' };
  const { size } = await fs.stat(layout.message(id));
  // The recorded size is the end marker: a shorter or longer file is not the message that was accepted.
  if (size !== parsed.size) return { ok: false, reason: `message file is ${size} bytes, ${parsed.size} were accepted` };
  return { ok: true, entry: withSharedTexts(parsed) };
}

async function inParallel<T>(items: readonly T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

/** What the recovery found, said once at start: nothing of it is lost mail, but an operator may want to look. */
export function logRecovered({ entries, corrupt, discarded, tightened }: Recovered, logger: Logger): void {
  if (tightened > 0) logger.warn({ event: 'spool-tightened', entries: tightened }, 'spool files or folders others could read were made private (0600/0700)');
  // Expected after a crash (a write cut short was never acknowledged); without one, it means damage on disk.
  for (const d of discarded) logger.warn({ event: 'journal-tail-discarded', segment: d.path, bytes: d.bytes }, 'a journal segment ends in a torn or damaged record; the bytes from there on were ignored');
  for (const c of corrupt) logger.error({ event: 'queue-corrupt', id: c.id, reason: c.reason }, 'queue entry moved to corrupt/');
  logger.info({ event: 'queue-loaded', entries: entries.length, corrupt: corrupt.length });
}
