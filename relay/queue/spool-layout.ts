// The spool on disk: the one module that knows its folders and file names. Everything else asks here.
//
//   journal/  messages accepted in memory, awaiting or in their first attempt: <seq>.log segments
//   tmp/      being written (state files, large incoming messages, pass-through staging): never
//             acknowledged, cleared at start
//   queue/    messages with files of their own: <id>.eml (the bytes to send) and <id>.json (envelope and
//             per-recipient state)
//   requests/ <id>.retry, .delete, .hold and .release: requests left by `tenant-relay queue` and the mail
//             console. A folder of their own: the relay looks for them every few seconds, and a backlog
//             of 100,000 deferred messages is 200,000 names in queue/ (versions before it left them in
//             queue/; the recovery moves any found there)
//   failed/   finished with at least one recipient failed for good, kept for inspection
//   corrupt/  entries found unreadable at start, moved aside
//   events/   delivery events waiting for a webhook: events/<webhook>/<seq>.jsonl and a cursor
//   trace.db  the message trace (SQLite), recent messages and their attempts
//   holds.json  why held messages wait and until when; relays-seen.json  the fleet's size, last seen
//   worker-<n>/  with several workers, the spool of worker n (worker 0's is the root itself, so the
//             layout of one process is unchanged and a relay that grows workers keeps its queue)
import fs from 'node:fs';
import path from 'node:path';

export type Area = 'queue' | 'failed' | 'corrupt';
/** Requests left beside a message by `tenant-relay queue` or the mail console. */
export const REQUEST_KINDS = ['retry', 'delete', 'hold', 'release'] as const;
export type RequestKind = (typeof REQUEST_KINDS)[number];

/** What a file name in queue/ is. */
export type QueueFile =
  | { readonly kind: 'message' | 'state' | 'state-aside'; readonly id: string }
  | { readonly kind: 'request'; readonly id: string; readonly request: RequestKind };

export class SpoolLayout {
  readonly root: string;
  readonly tmpDir: string;
  readonly journalDir: string;
  readonly requestsDir: string;

  constructor(root: string) {
    this.root = root;
    this.tmpDir = path.join(root, 'tmp');
    this.journalDir = path.join(root, 'journal');
    this.requestsDir = path.join(root, 'requests');
  }

  /** The outbox of one webhook ("platform", or "tenant-<id>"). */
  eventsDir(webhook: string): string {
    return path.join(this.root, 'events', webhook);
  }

  get traceFile(): string {
    return path.join(this.root, 'trace.db');
  }

  /** How many relays shared the limits when this one last saw Redis (for its share after a restart). */
  get relaysSeenFile(): string {
    return path.join(this.root, 'relays-seen.json');
  }

  /** Why each held message waits, and until when (for `tenant-relay queue`, which runs apart). */
  get holdsFile(): string {
    return path.join(this.root, 'holds.json');
  }

  /** Every folder, for creating them at start. */
  get dirs(): readonly string[] {
    return [this.tmpDir, this.journalDir, this.dir('queue'), this.requestsDir, this.dir('failed'), this.dir('corrupt')];
  }

  dir(area: Area): string {
    return path.join(this.root, area);
  }

  message(id: string, area: Area = 'queue'): string {
    return path.join(this.root, area, `${id}.eml`);
  }

  state(id: string, area: Area = 'queue'): string {
    return path.join(this.root, area, `${id}.json`);
  }

  /** A new state written beside the old one, then renamed over it. */
  stateAside(id: string): string {
    return path.join(this.root, 'queue', `${id}.json.new`);
  }

  /** A first state written in tmp/, then renamed into queue/ (the commit). */
  stateDraft(id: string): string {
    return path.join(this.tmpDir, `${id}.json`);
  }

  request(id: string, kind: RequestKind): string {
    return path.join(this.requestsDir, `${id}.${kind}`);
  }

  /** Where a version before requests/ left a request: queue/, beside the message. */
  requestBesideMessage(id: string, kind: RequestKind): string {
    return path.join(this.dir('queue'), `${id}.${kind}`);
  }

  temp(name: string): string {
    return path.join(this.tmpDir, name);
  }

  /** The spool of worker `index` under the configured path. */
  static ofWorker(root: string, index: number): string {
    return index === 0 ? root : path.join(root, `worker-${index}`);
  }

  /** Every spool under the configured path: the root's (worker 0, or the only process), then each worker-<n>/ found. */
  static spoolsUnder(root: string): { readonly index: number; readonly path: string }[] {
    let names: string[] = [];
    try {
      names = fs.readdirSync(root);
    } catch {
      // No spool yet.
    }
    const workers = names
      .map((n) => Number(/^worker-(\d{1,3})$/.exec(n)?.[1]))
      .filter((n) => Number.isInteger(n) && n > 0)
      .sort((a, b) => a - b);
    return [{ index: 0, path: root }, ...workers.map((index) => ({ index, path: SpoolLayout.ofWorker(root, index) }))];
  }

  /** Mail waits in the spool at `root`: journal segments or queued messages. */
  static holdsMail(root: string): boolean {
    const some = (dir: string) => {
      try {
        return fs.readdirSync(path.join(root, dir)).length > 0;
      } catch {
        return false;
      }
    };
    return some('journal') || some('queue');
  }

  /** Reads a file name in queue/ or requests/; undefined for names the spool does not write. */
  static parseQueueFile(name: string): QueueFile | undefined {
    const m = /^([a-z0-9]+)\.(eml|json|json\.new|retry|delete|hold|release)$/.exec(name);
    if (!m?.[1]) return undefined;
    const [, id, ext] = m;
    if (ext === 'retry' || ext === 'delete' || ext === 'hold' || ext === 'release') return { kind: 'request', id, request: ext };
    return { kind: ext === 'eml' ? 'message' : ext === 'json' ? 'state' : 'state-aside', id };
  }
}
