// tenant-relay send-test: a realistic sample through the running relay, and what became of it.
import { parseArgs } from 'node:util';
import { SAMPLE_KINDS, type SampleKind } from '../ops/samples.js';
import type { SendTestRecord } from '../observe/send-tests.js';
import { sampleSender, sendSample } from '../runtime/send-sample.js';
import { decide } from '../routing/decide.js';
import { loadFrom } from './config-file.js';
import type { CommandIo } from './io.js';
import { askRelay } from './ops-client.js';

export async function sendTestCommand(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      tenant: { type: 'string' },
      to: { type: 'string' },
      kind: { type: 'string', default: 'password-reset' },
      from: { type: 'string' },
      auth: { type: 'string' },
      'timeout-seconds': { type: 'string', default: '30' },
    },
  });
  const config = loadFrom(values);
  const known = config.tenants.map((t) => t.id).join(', ') || 'none';
  const missing = [!values.tenant && `--tenant (one of: ${known})`, !values.to && '--to ADDRESS'].filter(Boolean);
  if (missing.length > 0) {
    io.err(`tenant-relay send-test: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} required`);
    return 2;
  }
  if (!SAMPLE_KINDS.includes(values.kind as SampleKind)) {
    io.err(`tenant-relay send-test: --kind ${values.kind} is not a sample; one of: ${SAMPLE_KINDS.join(', ')}`);
    return 2;
  }
  const tenant = config.directory.byId(values.tenant ?? '');
  if (!tenant) {
    io.err(`tenant-relay send-test: no tenant "${values.tenant}" in ${config.source} (its tenants: ${known})`);
    return 1;
  }
  const from = sampleSender(tenant, values.from);
  if (!from) {
    io.err(`tenant-relay send-test: tenant ${tenant.id} claims no address or domain; give --from`);
    return 2;
  }
  const decision = decide({ mailFrom: from }, values.auth ? { username: values.auth } : undefined, config);
  io.out(`route:    ${decision.kind === 'route' ? `tenant ${decision.tenant?.id ?? '(none)'} via upstream ${decision.route.upstream.name}: ${decision.reason}` : `refused: ${decision.reason}`}`);

  const auth = values.auth ? { user: values.auth, pass: process.env.TENANT_RELAY_PASSWORD ?? (await io.secret(`Password for ${values.auth} (not shown): `)) } : undefined;
  const sent = await sendSample(config, { tenant, from, to: values.to ?? '', kind: values.kind as SampleKind, ...(auth ? { auth } : {}) });
  if (!sent.ok) {
    io.out(`relay:    ${sent.error}`);
    return 1;
  }
  const { token, reply: relayReply } = sent;
  io.out(`relay:    ${relayReply}`);

  // The upstream's answer comes from the relay's ops listener, where it keeps send-test outcomes.
  const deadline = Date.now() + Number(values['timeout-seconds']) * 1000;
  let record: SendTestRecord | undefined;
  while (Date.now() < deadline) {
    const res = await askRelay(config, 'send-test', 'GET', `/send-test/${token}`).catch(() => undefined);
    if (res?.status === 200) {
      record = res.json as SendTestRecord;
      if (record.final) break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  if (!record) {
    io.out('upstream: no outcome yet (queued for a retry, or the ops listener is off); see tenant-relay queue list');
    return 1;
  }
  for (const r of record.recipients) io.out(`upstream: ${record.upstream} <${r.rcpt}> ${r.status}: ${r.reply}${r.upstreamQueueId ? ` (the upstream's queue id: ${r.upstreamQueueId})` : ''}`);
  io.out('headers as sent:');
  for (const name of ['DKIM-Signature', 'Received', 'From', 'Reply-To', 'Subject']) {
    for (const line of record.headers.match(new RegExp(`^${name}:.*(?:\\r?\\n[ \\t].*)*`, 'gmi')) ?? []) io.out(`  ${line.replace(/\r?\n[ \t]+/g, ' ')}`);
  }
  return record.recipients.every((r) => r.status === 'sent') ? 0 : 1;
}
