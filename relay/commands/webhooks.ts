// tenant-relay webhooks: what each webhook's outbox holds (events waiting, events dead-lettered), and
// `webhooks replay NAME` to send its dead letters again. Works on the spool of a live relay: it only reads,
// and a replay is a file the relay's sender takes at its next look (within a minute).
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SpoolLayout } from '../queue/spool-layout.js';
import { outboxState, replayDeadLetters } from '../reporting/outbox-files.js';
import { loadFrom } from './config-file.js';
import type { CommandIo } from './io.js';

export async function webhooksCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } } });
  const config = loadFrom(values);
  const [action = 'list', name] = positionals;
  const outboxes = SpoolLayout.spoolsUnder(config.delivery.spool.path).flatMap((spool) => {
    const root = path.dirname(new SpoolLayout(spool.path).eventsDir('x'));
    const names = fs.existsSync(root) ? fs.readdirSync(root).filter((n) => fs.statSync(path.join(root, n)).isDirectory()) : [];
    return names.map((webhook) => ({ webhook, worker: spool.index, dir: path.join(root, webhook) }));
  });
  if (action === 'list') {
    const rows = outboxes.map((o) => ({ webhook: o.webhook, worker: o.worker, ...outboxState(o.dir) }));
    if (values.json) io.out(JSON.stringify(rows, null, 2));
    else if (rows.length === 0) io.out('no webhook outboxes in the spool');
    else for (const r of rows) io.out(`${r.webhook}${r.worker ? ` (worker ${r.worker})` : ''}: ${r.backlog} waiting, ${r.deadLettered} dead-lettered`);
    return 0;
  }
  if (action === 'replay' && name) {
    const mine = outboxes.filter((o) => o.webhook === name);
    if (mine.length === 0) {
      io.err(`tenant-relay webhooks replay: no outbox named ${name} (tenant-relay webhooks lists them)`);
      return 1;
    }
    const replayed = mine.reduce((n, o) => n + replayDeadLetters(o.dir), 0);
    io.out(replayed === 0 ? `${name}: nothing dead-lettered` : `${name}: ${replayed} dead-lettered event(s) handed back; the relay sends them at its next look (within a minute)`);
    return 0;
  }
  io.err('tenant-relay webhooks: list, or replay NAME');
  return 2;
}
