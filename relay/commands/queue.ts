// tenant-relay queue: list, show, retry and delete on a live spool.
import { parseArgs } from 'node:util';
import { describeEntry, findEntry, headerOf, listQueue } from '../queue/admin.js';
import { Spool } from '../queue/spool.js';
import { loadFrom } from './config-file.js';

export async function queueCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, all: { type: 'boolean' }, failed: { type: 'boolean' } },
  });
  const [action, id] = positionals;
  const spool = new Spool(loadFrom(values).delivery.spool.path);
  const now = Date.now();
  const print = (value: unknown, text: string) => console.log(values.json ? JSON.stringify(value, null, 2) : text);
  switch (action) {
    case 'list': {
      const listing = await listQueue(spool, values.failed ? 'failed' : 'queue');
      print(
        listing.map((l) => l.entry),
        listing.length ? listing.map((l) => describeEntry(l, now)).join('\n') : `${values.failed ? 'no failed messages' : 'the queue is empty'}`,
      );
      return 0;
    }
    case 'show': {
      const found = id ? await findEntry(spool, id) : undefined;
      if (!found) return notFound(id);
      const header = await headerOf(spool, found);
      const recipients = found.entry.recipients.map((r) => `  ${r.status.padEnd(7)} <${r.address}>${r.reply ? `  ${r.reply}` : ''}`).join('\n');
      print({ ...found.entry, area: found.area, header }, `${describeEntry(found, now)}\nrecipients:\n${recipients}\n\n${header.trimEnd()}`);
      return 0;
    }
    case 'retry':
    case 'delete': {
      const targets = action === 'retry' && values.all ? (await listQueue(spool)).map((l) => l.id) : id ? [id] : [];
      if (targets.length === 0 && !values.all) return notFound(id);
      for (const target of targets) {
        if (!(await findEntry(spool, target))) return notFound(target);
        await spool.request(target, action);
      }
      print({ [action]: targets }, `${action} requested for ${targets.length} message(s); the relay applies it within delivery.scanSeconds`);
      return 0;
    }
    default:
      console.error('tenant-relay queue: list | show ID | retry ID | retry --all | delete ID');
      return 2;
  }
}

function notFound(id: string | undefined): number {
  console.error(id ? `tenant-relay queue: no message ${id} in the spool` : 'tenant-relay queue: give a message id');
  return 1;
}
