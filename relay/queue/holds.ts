// Why a queued message waits that no attempt recorded: held by a sending limit (its tenant's, or its
// upstream mailbox's) until a moment. The scheduler keeps them here and writes them beside the spool
// (holds.json, at most every two seconds) for `tenant-relay queue`, which runs in another process.
import fs from 'node:fs';
import { PRIVATE_FILE } from '../private-files.js';

export interface Hold {
  readonly reason: string;
  /** When the message is looked at again (milliseconds since the epoch). */
  readonly until: number;
  /** When this hold began. */
  readonly since: number;
}

const WRITE_EVERY_MS = 2000;
/** A message held for long is told about again this often, not at every look. */
const TELL_AGAIN_MS = 3_600_000;

export class Holds {
  readonly #file: string;
  readonly #held = new Map<string, Hold>();
  /** When each hold was last told. */
  readonly #told = new Map<string, number>();
  #dirty = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(file: string) {
    this.#file = file;
  }

  /** Holds `id` for `reason` until `until`; true when it is news: a new hold, a new reason, or an hour on. */
  set(id: string, reason: string, until: number, now: number): boolean {
    const before = this.#held.get(id);
    this.#held.set(id, { reason, until, since: before && before.reason === reason ? before.since : now });
    this.#changed();
    const news = !before || before.reason !== reason || now - (this.#told.get(id) ?? Number.NEGATIVE_INFINITY) >= TELL_AGAIN_MS;
    if (news) this.#told.set(id, now);
    return news;
  }

  get(id: string): Hold | undefined {
    return this.#held.get(id);
  }

  /** The message is attempted, or gone. */
  clear(id: string): void {
    this.#told.delete(id);
    if (this.#held.delete(id)) this.#changed();
  }

  /** How many messages each reason holds. */
  reasons(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const h of this.#held.values()) counts[h.reason] = (counts[h.reason] ?? 0) + 1;
    return counts;
  }

  /** Writes what is pending now (at a stop). */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#dirty) return;
    this.#dirty = false;
    try {
      fs.writeFileSync(`${this.#file}.new`, JSON.stringify(Object.fromEntries(this.#held)), { mode: PRIVATE_FILE });
      fs.renameSync(`${this.#file}.new`, this.#file);
    } catch {
      // Only the commands read it; the next change writes it again.
      this.#dirty = true;
    }
  }

  #changed(): void {
    this.#dirty = true;
    this.#timer ??= setTimeout(() => this.flush(), WRITE_EVERY_MS).unref();
  }
}

/** The holds a spool's scheduler wrote last, for the commands. */
export function readHolds(file: string): ReadonlyMap<string, Hold> {
  try {
    return new Map(Object.entries(JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, Hold>));
  } catch {
    return new Map();
  }
}

/** A budget key in words: "tenant acme" or "mailbox relay@smtp.acme.example". */
export function budgetInWords(key: string): string {
  if (key.startsWith('tenant:')) return `tenant ${key.slice('tenant:'.length)}`;
  const m = /^mailbox:([^/]+)\/([^/]*)\//.exec(key);
  return m ? `mailbox ${m[2] || '(no user)'} at ${m[1]}` : key;
}
