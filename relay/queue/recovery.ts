// At start, before the listeners open: what a previous run left in the spool goes back to work. Temp
// files and unfinished commits were never acknowledged (the client still has them) and are dropped; an
// entry that is torn or unreadable is moved to corrupt/ and reported, and the rest goes on.
import fs from 'node:fs/promises';
import { isQueuedMessage, type QueuedMessage } from './entry.js';
import type { Journal } from './journal.js';
import type { MessageFiles } from './message-files.js';
import { SpoolLayout } from './spool-layout.js';

export interface Recovered {
  readonly entries: QueuedMessage[];
  readonly corrupt: { readonly id: string; readonly reason: string }[];
  /** Journal segments that ended in a torn write (never acknowledged): bytes ignored. */
  readonly discarded: { readonly path: string; readonly bytes: number }[];
}

export async function recoverSpool(layout: SpoolLayout, journal: Journal, files: MessageFiles): Promise<Recovered> {
  for (const dir of layout.dirs) await fs.mkdir(dir, { recursive: true });
  const fromJournal = await journal.open();
  for (const name of await fs.readdir(layout.tmpDir)) await fs.rm(layout.temp(name), { force: true });
  const names = await fs.readdir(layout.dir('queue'));
  const present = new Set(names);
  const entries: QueuedMessage[] = [];
  const corrupt: { id: string; reason: string }[] = [];
  for (const name of names) {
    const file = SpoolLayout.parseQueueFile(name);
    if (!file || file.kind === 'request') continue;
    if (file.kind === 'state-aside') {
      await fs.rm(layout.stateAside(file.id), { force: true });
      continue;
    }
    if (file.kind === 'message') {
      // A message whose state never reached queue/ was never acknowledged: the client still has it.
      if (!present.has(`${file.id}.json`)) await fs.rm(layout.message(file.id), { force: true });
      continue;
    }
    const reason = await problemWith(layout, file.id, present);
    if (reason) {
      corrupt.push({ id: file.id, reason });
      await fs.rename(layout.message(file.id), layout.message(file.id, 'corrupt')).catch(() => {});
      await fs.rename(layout.state(file.id), layout.state(file.id, 'corrupt')).catch(() => {});
      continue;
    }
    const entry = await files.read(file.id);
    if (entry) entries.push(entry);
  }
  // A message both in the journal and in queue/ was being moved out: its files are the newer state.
  const filed = new Set(entries.map((e) => e.id));
  for (const e of fromJournal.recovered) {
    if (filed.has(e.id)) journal.done(e.id);
    else entries.push(e);
  }
  return { entries, corrupt, discarded: fromJournal.discarded };
}

async function problemWith(layout: SpoolLayout, id: string, present: ReadonlySet<string>): Promise<string | undefined> {
  if (!present.has(`${id}.eml`)) return 'message file missing';
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(layout.state(id), 'utf8'));
  } catch {
    return 'state file unreadable or truncated';
  }
  if (!isQueuedMessage(parsed) || parsed.id !== id) return 'state file has bad metadata';
  const { size } = await fs.stat(layout.message(id));
  // The recorded size is the end marker: a shorter or longer file is not the message that was accepted.
  if (size !== parsed.size) return `message file is ${size} bytes, ${parsed.size} were accepted`;
  return undefined;
}
