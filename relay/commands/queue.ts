// tenant-relay queue: list, show, retry, delete, hold and release on a live spool. It reads the spool as it
// is on disk and leaves requests beside the entries, which the running relay applies at its next scan.
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { QueuedMessage } from '../queue/entry.js';
import type { Hold } from '../queue/holds.js';
import { findQueued, listQueued, spoolsAt } from '../queue/queue-view.js';
import { QueueRequests } from '../queue/requests.js';
import type { QueueListing } from '../queue/spool.js';
import { loadFrom } from './config-file.js';
import type { CommandIo } from './io.js';

export async function queueCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, all: { type: 'boolean' }, failed: { type: 'boolean' } },
  });
  const [action, id] = positionals;
  // With several workers, each has a spool of its own under the configured path: the command reads them all.
  const spools = spoolsAt(loadFrom(values).delivery.spool.path);
  const now = Date.now();
  const print = (value: unknown, text: string) => io.out(values.json ? JSON.stringify(value, null, 2) : text);
  const notFound = (missing: string | undefined) => {
    io.err(missing ? `tenant-relay queue: no message ${missing} in the spool` : 'tenant-relay queue: give a message id');
    return 1;
  };
  switch (action) {
    case 'list': {
      const listing = await listQueued(spools, values.failed ? 'failed' : 'queue');
      print(
        listing.map((l) => ({ ...l.entry, ...(l.hold ? { hold: l.hold } : {}) })),
        listing.length ? listing.map((l) => describeEntry(l, now)).join('\n') : `${values.failed ? 'no failed messages' : 'the queue is empty'}`,
      );
      return 0;
    }
    case 'show': {
      const found = id ? await findQueued(spools, id) : undefined;
      if (!found) return notFound(id);
      const header = (await found.spool.headerOf(found)).toString('latin1');
      const recipients = found.entry.recipients
        .map((r) => `  ${r.status.padEnd(7)} <${r.address}>${r.reply ? `  ${r.reply}` : ''}${r.upstreamReply ? `\n          upstream said: ${r.upstreamReply}` : ''}`)
        .join('\n');
      print({ ...found.entry, area: found.area, ...(found.hold ? { hold: found.hold } : {}), header }, `${describeEntry(found, now)}\nrecipients:\n${recipients}\n\n${header.trimEnd()}`);
      return 0;
    }
    case 'retry':
    case 'delete':
    case 'hold':
    case 'release': {
      const targets = action === 'retry' && values.all ? (await Promise.all(spools.map((spool) => spool.list()))).flat().map((l) => l.id) : id ? [id] : [];
      if (targets.length === 0 && !values.all) return notFound(id);
      for (const target of targets) {
        const found = await findQueued(spools, target);
        if (!found) return notFound(target);
        // Beside the entry, in the spool of the process that holds it.
        await new QueueRequests(found.spool.layout).leave(target, action, `tenant-relay queue (${os.userInfo().username})`);
      }
      print({ [action]: targets }, `${action} requested for ${targets.length} message(s); the relay applies it within delivery.scanSeconds`);
      return 0;
    }
    default:
      io.err('tenant-relay queue: list | show ID | retry ID | retry --all | delete ID | hold ID | release ID');
      return 2;
  }
}

export function describeEntry(l: QueueListing & { hold?: Hold }, now: number): string {
  const e: QueuedMessage = l.entry;
  const count = (s: string) => e.recipients.filter((r) => r.status === s).length;
  const age = humanDuration(now - e.createdAt);
  const next =
    l.area === 'failed'
      ? 'failed'
      : e.onHold
        ? `on hold (by hand) for ${humanDuration(now - e.onHold.since)}, until released`
        : l.hold && l.hold.until > now
        ? `held for ${humanDuration(now - l.hold.since)}, looked at again in ${humanDuration(l.hold.until - now)}`
        : e.nextAttemptAt <= now
          ? 'due now'
          : `next try in ${humanDuration(e.nextAttemptAt - now)}`;
  const why = l.hold && l.area !== 'failed' && l.hold.until > now ? `\n    held: ${l.hold.reason} (until ${new Date(l.hold.until).toISOString()})` : '';
  return `${e.id}  ${age.padStart(6)}  ${String(e.size).padStart(8)} B  <${e.mailFrom}>  tenant=${e.tenant ?? '-'}  pending=${count('pending')} sent=${count('sent')} failed=${count('failed')}  attempts=${e.attempts}  ${next}${why}${e.lastError ? `\n    last: ${e.lastError}` : ''}`;
}

function humanDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.round(s / 60)}m`;
  if (s < 86_400) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}
