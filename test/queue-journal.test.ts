// The journal keeps messages accepted in memory: one segment file for many messages, removed once all of
// them are done, and never holding an old message forever.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { QueuedMessage } from '../relay/queue/entry.js';
import { newMessageId } from '../relay/ids.js';
import { readJournal } from '../relay/queue/journal.js';
import { QueueRequests } from '../relay/queue/requests.js';
import { Spool, type SpoolIo } from '../relay/queue/spool.js';
import { realIo } from '../relay/queue/message-files.js';
import { INLINE_SYNC_MAX_MS, InlineSync } from '../relay/queue/inline-sync.js';
import { sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

function spoolDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-journal-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

let counter = 0;
const message = (): { entry: QueuedMessage; bytes: Buffer } => {
  const bytes = Buffer.from(`Subject: message ${counter++}\r\n\r\n${'body line\r\n'.repeat(20)}`);
  const entry: QueuedMessage = { v: 1, id: newMessageId(), createdAt: Date.now(), mailFrom: 'a@example.com', tenant: null, size: bytes.length, recipients: [{ address: 'b@example.com', status: 'pending' }], attempts: 0, nextAttemptAt: 0 };
  return { entry, bytes };
};
const segments = (dir: string) => fs.readdirSync(path.join(dir, 'journal')).sort();
const until = async (what: () => boolean) => {
  for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 10));
};

t.test('segments are removed once every message in them is done', async (t) => {
  const dir = spoolDir();
  const spool = new Spool(dir, { journalSegmentBytes: 1024 });
  await spool.open();
  const ids: string[] = [];
  for (let i = 0; i < 12; i++) {
    const { entry, bytes } = message();
    await spool.commit(entry, bytes);
    ids.push(entry.id);
  }
  t.ok(segments(dir).length >= 3, `${segments(dir).length} segments for 12 messages of ~250 bytes`);
  for (const id of ids) await spool.remove(id);
  await spool.close();
  t.ok(segments(dir).length <= 1, 'only the segment last written to is left');
  t.same((await readJournal(path.join(dir, 'journal'))).live, [], 'and nothing in it is live');
});

t.test('a message left behind while newer segments fill moves to files of its own, with its bytes and state', async (t) => {
  const dir = spoolDir();
  const spool = new Spool(dir, { journalSegmentBytes: 1024 });
  await spool.open();
  const old = message();
  await spool.commit(old.entry, old.bytes);
  for (let i = 0; i < 16; i++) {
    const { entry, bytes } = message();
    await spool.commit(entry, bytes);
    await spool.remove(entry.id);
  }
  const eml = path.join(dir, 'queue', `${old.entry.id}.eml`);
  await until(() => fs.existsSync(path.join(dir, 'queue', `${old.entry.id}.json`)));
  t.ok(fs.readFileSync(eml).equals(old.bytes), 'its bytes, as journaled');
  t.same(await spool.read(old.entry.id), old.entry, 'its state');
  t.same(await spool.source(old.entry.id), { path: eml }, 'attempts read its file now');
  await spool.close();
  t.ok(segments(dir).length <= 3, `old segments are gone (${segments(dir).length} left)`);

  const again = new Spool(dir);
  const { entries } = await again.open();
  t.same(entries.map((e) => e.id), [old.entry.id], 'after a restart it is queued once, from its files');
  await again.close();
});

t.test('a state change of a journaled message (a retry) moves it out first; removing it then removes its files', async (t) => {
  const dir = spoolDir();
  const spool = new Spool(dir);
  await spool.open();
  const { entry, bytes } = message();
  await spool.commit(entry, bytes);
  const deferred = { ...entry, attempts: 1, nextAttemptAt: Date.now() + 60_000, lastError: '451 4.3.0 later' };
  await spool.update(deferred);
  t.same(await spool.read(entry.id), deferred);
  t.same(fs.readdirSync(path.join(dir, 'queue')).sort(), [`${entry.id}.eml`, `${entry.id}.json`]);
  await spool.remove(entry.id);
  t.same(fs.readdirSync(path.join(dir, 'queue')), []);
  await spool.close();
  t.same((await readJournal(path.join(dir, 'journal'))).live, []);
});

t.test('queue retry and delete apply to a message still in the journal', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const relay = await startTestRelay(`delivery: { mode: queue, spool: { path: \${SPOOL} } }\nsmarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`, {}, { manualScheduler: true });
  t.teardown(() => relay.close());
  const idOf = async (to: string) => /queued as (\w+)/.exec((await sendThrough(relay.port, { from: 'a@example.com', to })).response)?.[1] ?? '';
  const deleted = await idOf('deleted@example.com');
  const retried = await idOf('retried@example.com');
  const { spool, scheduler } = relay.relay;
  t.same((await spool.list()).map((l) => [l.id, Boolean(l.journal)]), [[deleted, true], [retried, true]].sort());
  const requests = new QueueRequests(spool.layout);
  await requests.leave(deleted, 'delete');
  await requests.leave(retried, 'retry');
  await scheduler.applyRequests();
  t.same((await spool.list()).map((l) => [l.id, Boolean(l.journal)]), [[retried, false]], 'deleted: gone; retried: in files of its own');
  t.match(await spool.read(retried), { id: retried, nextAttemptAt: 0 });
  await scheduler.runDue();
  t.same(upstream.received.map((m) => m.rcptTo), [['retried@example.com']]);
});

t.test('a reader beside the relay finds and lists a message at every moment of its move out of the journal', async (t) => {
  // The move writes the files, then marks the journal: a reader that looked at the files first and the
  // journal second could miss a message that moved in between (the console answered 404 to a hold).
  const dir = spoolDir();
  const spool = new Spool(dir);
  await spool.open();
  const reader = new Spool(dir);
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) {
    const { entry, bytes } = message();
    await spool.commit(entry, bytes);
    ids.push(entry.id);
  }
  const missed = new Set<string>();
  let looks = 0;
  for (const id of ids) {
    const { entry } = message();
    const moving = spool.update({ ...entry, id, attempts: 1, nextAttemptAt: Date.now() + 60_000 });
    let moved = false;
    void moving.then(() => (moved = true));
    // Bounded: a move is a few fsyncs; the reader looks until it is over, and once after.
    for (let i = 0; i < 500 && !moved; i++, looks++) {
      const [found, listed] = await Promise.all([reader.find(id), reader.list()]);
      if (!found || !listed.some((l) => l.id === id)) missed.add(id);
    }
    await moving;
  }
  t.ok(looks > ids.length, `${looks} looks during ${ids.length} moves`);
  t.same([...missed], [], 'never missing');
  t.same((await reader.list()).map((l) => [l.id, Boolean(l.journal)]), ids.map((id) => [id, false]).sort());
  await spool.close();
});

t.test('a reader lists the messages still live among segments of delivered ones, by their own ids whatever the order of their keys', async (t) => {
  const dir = spoolDir();
  const spool = new Spool(dir, { journalSegmentBytes: 64 * 1024 });
  await spool.open();
  const live: string[] = [];
  for (let i = 0; i < 300; i++) {
    const { entry, bytes } = message();
    // Some states name their id last: the reader must not depend on where it stands.
    const { id, ...rest } = entry;
    await spool.commit(i % 2 ? { ...rest, id } : entry, bytes);
    if (i % 50 === 7) live.push(id);
    else await spool.remove(id);
  }
  // The oldest have moved to files of their own; the rest are read from the journal.
  const { live: journaled } = await readJournal(path.join(dir, 'journal'));
  t.ok(journaled.length > 0 && journaled.length < live.length, `${journaled.length} of ${live.length} still journaled`);
  const listed = await new Spool(dir).list();
  t.same(listed.map((l) => l.id), [...live].sort(), 'the live ones, and only those');
  for (const l of listed) t.same(l.entry, await spool.read(l.id), `${l.id} as the relay holds it`);
  await spool.close();
});

t.test('a message delivered while it is being shown has an empty header, not an error', async (t) => {
  const dir = spoolDir();
  const spool = new Spool(dir);
  await spool.open();
  const { entry, bytes } = message();
  await spool.commit(entry, bytes);
  const [listed] = await new Spool(dir).list();
  t.ok(listed?.journal, 'listed from the journal');
  await spool.remove(entry.id);
  await spool.close();
  // Its segment finished and removed, as a busy relay's are.
  fs.rmSync(path.join(dir, 'journal'), { recursive: true, force: true });
  t.same(listed && (await spool.headerOf(listed)), Buffer.alloc(0));
  t.same(await spool.headerOf({ id: entry.id, area: 'queue', entry }), Buffer.alloc(0), 'nor from files it no longer has');
});

t.test('the journal fsyncs inline only for a lone session on a fast disk, and goes back to the pool when the disk slows', async (t) => {
  const dir = spoolDir();
  let alone = true;
  let slowMs = 0;
  const calls: boolean[] = [];
  // The disk's speed is the test's to set: fast is no wait at all, slow is a real fsync and 40 ms more. A
  // real fsync alone would be fast or slow as the machine is (on a loaded CI machine, over the 2 ms bound).
  const io: SpoolIo = {
    fsync: async (file, inline) => {
      calls.push(inline === true);
      if (slowMs === 0) return;
      await realIo.fsync(file, inline);
      await new Promise((r) => setTimeout(r, slowMs));
    },
    rename: realIo.rename,
  };
  const spool = new Spool(dir, { io, alone: () => alone });
  await spool.open();
  const commit = async (n: number) => {
    calls.length = 0;
    for (let i = 0; i < n; i++) {
      const { entry, bytes } = message();
      await spool.commit(entry, bytes);
    }
    return [...calls];
  };
  const fast = await commit(10);
  t.equal(fast[0], false, 'the first fsync goes to the pool: the disk is not measured yet');
  t.equal(fast.at(-1), true, 'once fsyncs are seen to be fast, a lone session commits inline');
  alone = false;
  t.same(await commit(5), [false, false, false, false, false], 'with another session open, every fsync goes to the pool');
  alone = true;
  slowMs = 40;
  const slowing = await commit(3);
  t.equal(slowing[0], true, 'inline while the disk was fast');
  t.same(slowing.slice(1), [false, false], 'a slow fsync sends the next ones to the pool');
  slowMs = 0;
  t.equal((await commit(30)).at(-1), true, 'and inline again once the disk is fast again');
  await spool.close();
});

t.test('inline fsync: the rule', async (t) => {
  const cases: { name: string; took: number[]; alone: boolean; inline: boolean }[] = [
    { name: 'unmeasured', took: [], alone: true, inline: false },
    { name: 'fast disk, lone session', took: [0.2, 0.2], alone: true, inline: true },
    { name: 'fast disk, other sessions', took: [0.2, 0.2], alone: false, inline: false },
    { name: 'one slow fsync after fast ones', took: [0.2, 0.2, 0.2, 30], alone: true, inline: false },
    { name: 'fast again after a slow one', took: [30, ...Array<number>(20).fill(0.2)], alone: true, inline: true },
    { name: 'always at the bound', took: Array<number>(10).fill(INLINE_SYNC_MAX_MS), alone: true, inline: false },
  ];
  for (const c of cases) {
    const rule = new InlineSync();
    for (const ms of c.took) rule.took(ms);
    t.equal(rule.chooses(c.alone), c.inline, c.name);
  }
});

t.test('stale messages move out one at a time while mail comes in, and several at a time once none has come for a second', async (t) => {
  const dir = spoolDir();
  // Each move renames one state file into queue/: a rename held for 2 ms holds its move, so the renames in
  // flight are the moves in flight.
  let inFlight = 0;
  const most = { busy: 0, idle: 0 };
  let phase: keyof typeof most = 'busy';
  const io: SpoolIo = {
    fsync: (file, inline) => realIo.fsync(file, inline),
    rename: async (from, to) => {
      inFlight++;
      most[phase] = Math.max(most[phase], inFlight);
      try {
        await new Promise((r) => setTimeout(r, 2));
        await realIo.rename(from, to);
      } finally {
        inFlight--;
      }
    },
  };
  const spool = new Spool(dir, { journalSegmentBytes: 64 * 1024, fsync: false, io });
  await spool.open();
  // ~220 messages a segment: the fill leaves those of the segments two back to move out, while it commits.
  const ids: string[] = [];
  for (let i = 0; i < 1500; i++) {
    const { entry, bytes } = message();
    await spool.commit(entry, bytes);
    ids.push(entry.id);
    if (i % 50 === 0) await new Promise((r) => setImmediate(r));
  }
  t.ok(spool.movingOut > 100, `${spool.movingOut} messages still to move when the mail stops`);
  t.equal(most.busy, 1, 'one move at a time while messages are committed');
  // The first move to end a second after the last commit starts the next several at once. The phase
  // turns before that second is up, so no move of the idle relay counts as one of the busy relay's.
  await new Promise((r) => setTimeout(r, 900));
  phase = 'idle';
  for (let i = 0; i < 2000 && spool.movingOut > 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(spool.movingOut, 0, 'all moved');
  t.ok(most.idle > 1 && most.idle <= 16, `then ${most.idle} at a time (at most 16)`);
  t.ok(ids.slice(0, 600).every((id) => fs.existsSync(path.join(dir, 'queue', `${id}.json`))), 'the old messages have files of their own');
  await spool.close();
});

t.test('a backlog left in old segments moves out a few messages at a time, not all at once: the files held open stay bounded', async (t) => {
  const dir = spoolDir();
  const spool = new Spool(dir, { journalSegmentBytes: 256 * 1024, fsync: false });
  await spool.open();
  const openFiles = () => fs.readdirSync('/proc/self/fd').length;
  const before = openFiles();
  let most = before;
  const ids: string[] = [];
  let firstBytes: Buffer | undefined;
  // ~900 messages a segment: each new segment leaves those of the segment two back to move out.
  for (let i = 0; i < 4000; i++) {
    const { entry, bytes } = message();
    await spool.commit(entry, bytes);
    ids.push(entry.id);
    if (i === 0) firstBytes = bytes;
    if (i % 20 === 0) most = Math.max(most, openFiles());
  }
  const moved = () => ids.slice(0, 1500).every((id) => fs.existsSync(path.join(dir, 'queue', `${id}.json`)));
  // One move at a time while the fill commits, more once it has been idle for a second: a slow machine
  // still needs seconds for 1,500 of them.
  for (let i = 0; i < 2000 && !moved(); i++) {
    most = Math.max(most, openFiles());
    await new Promise((r) => setTimeout(r, 10));
  }
  t.ok(moved(), 'the old messages have files of their own');
  t.ok(most - before < 100, `at most ${most - before} more files open at once (all at once, it was one or two per message waiting: thousands for a large backlog, past the process's limit)`);
  t.ok(fs.readFileSync(path.join(dir, 'queue', `${ids[0] ?? ''}.eml`)).equals(firstBytes ?? Buffer.alloc(1)), 'with its bytes, as journaled');
  await spool.close();
});
