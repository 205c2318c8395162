// tenant-relay trace: what happened to recent messages, read from the trace the relay keeps beside its
// spool (trace.db): when each was accepted and from whom, every attempt with the upstream and what it
// answered (its queue id too), and how each recipient ended.
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { SpoolLayout } from '../queue/spool-layout.js';
import { traceQueryOf } from '../reporting/trace-query.js';
import { findInTraces, type TracedEvent, type TracedMessage } from '../reporting/trace-read.js';
import { loadFrom } from './config-file.js';
import type { CommandIo } from './io.js';

export async function traceCommand(args: string[], io: CommandIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      'message-id': { type: 'string' },
      rcpt: { type: 'string' },
      tenant: { type: 'string' },
      limit: { type: 'string', default: '20' },
      json: { type: 'boolean' },
    },
  });
  const query = traceQueryOf((key) => (key === 'queue-id' ? positionals[0] : values[key]));
  if (!query) {
    io.err('tenant-relay trace: give a queue id, or --message-id ID, --rcpt ADDRESS or --tenant T');
    return 2;
  }
  const root = loadFrom(values).delivery.spool.path;
  // One trace per worker, each in its own spool.
  const files = SpoolLayout.spoolsUnder(root)
    .map((s) => new SpoolLayout(s.path).traceFile)
    .filter((f) => fs.existsSync(f));
  if (files.length === 0) {
    io.err(`tenant-relay trace: no trace under ${root} (is trace.enabled on, and has this relay run with this spool?)`);
    return 1;
  }
  const found = findInTraces(files, query, Math.max(1, Number(values.limit) || 20));
  if (values.json) io.out(JSON.stringify({ messages: found }, null, 2));
  else io.out(found.length ? found.map(describe).join('\n\n') : 'no message found (the trace keeps trace.retentionDays)');
  return found.length ? 0 : 1;
}

function describe(m: TracedMessage): string {
  const facts = [m.tenant ? `tenant ${m.tenant}` : 'no tenant', m.mode, `from <${m.from}>`, m.messageId && `Message-ID ${m.messageId}`, m.size !== null && `${m.size} bytes`].filter(Boolean);
  return [`${m.queueId}  ${statusOf(m.events)}  accepted ${m.acceptedAt}`, `  ${facts.join(', ')}`, ...m.events.map((e) => `  ${e.time}  ${e.type.padEnd(9)} <${e.recipient}>${detail(e)}`)].join('\n');
}

function detail(e: TracedEvent): string {
  if (e.type === 'accepted') return `  ${e.reply}`;
  if (e.type === 'held') return `  ${e.reply}${e.nextAttemptAt ? `; looked at again ${e.nextAttemptAt}` : ''}`;
  const said = e.upstreamReply ? `  upstream said: ${e.upstreamReply}${e.upstreamQueueId ? ` (its queue id ${e.upstreamQueueId})` : ''}` : `  ${e.reply}`;
  return `  via ${e.upstream ?? '?'}, attempt ${e.attempt}${said}${e.nextAttemptAt ? `; next attempt ${e.nextAttemptAt}` : ''}`;
}

/** How the message stands: each recipient's last event. */
function statusOf(events: readonly TracedEvent[]): string {
  const last = new Map<string, TracedEvent['type']>();
  for (const e of events) last.set(e.recipient.toLowerCase(), e.type);
  const counts = new Map<string, number>();
  for (const type of last.values()) counts.set(type, (counts.get(type) ?? 0) + 1);
  if (counts.size === 0) return 'no events';
  if (counts.size === 1) return [...counts.keys()][0] === 'accepted' ? 'queued' : ([...counts.keys()][0] as string);
  return [...counts].map(([type, n]) => `${n} ${type === 'accepted' ? 'queued' : type}`).join(', ');
}
