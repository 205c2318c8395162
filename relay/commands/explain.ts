// tenant-relay explain: the decision (and headers) a message would get, from the server's own functions.
import { parseArgs } from 'node:util';
import { formatReply, Replies } from '../errors.js';
import { transformMessage } from '../message/transform.js';
import { createLogger } from '../log.js';
import { decide } from '../routing/decide.js';
import { PlatformTenants } from '../tenancy/platform-tenants.js';
import { resolveTenants } from '../tenancy/resolve.js';
import { loadFrom } from './config-file.js';
import type { CommandIo } from './io.js';
import { describeUpstream } from './upstream-text.js';

export async function explain(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      from: { type: 'string' },
      auth: { type: 'string' },
      'header-from': { type: 'string' },
      rcpt: { type: 'string' },
    },
  });
  if (values.from === undefined) {
    io.err('tenant-relay explain: --from ADDR is required (use --from "" for the null sender)');
    return 2;
  }
  const config = loadFrom(values);
  const auth = values.auth ? { username: values.auth } : undefined;
  // The same lookups the server makes: the platform is asked about what the config files do not answer.
  const logger = createLogger('warn');
  const platform = config.tenantSource && new PlatformTenants(config.tenantSource, { logger, config: () => config });
  const found = await resolveTenants(values.from, auth, config, platform);
  if (!found.ok) {
    io.out(`refused: ${formatReply(Replies.tenantLookupUnavailable)}\nreason:  ${found.reason}`);
    return 1;
  }
  const decision = decide({ mailFrom: values.from }, auth, config, found.tenants);
  if (decision.kind === 'refused') {
    io.out(`refused: ${formatReply(decision.reply)}\nreason:  ${decision.reason}`);
    return 1;
  }
  const { route } = decision;
  const u = route.upstream;
  const { from, replyTo, envelopeSender } = decision.rewrites;
  const rewrites = [
    from && `From: ${from.name !== undefined ? `"${from.name}" ` : ''}<${from.address ?? '(original address)'}>`,
    replyTo && `Reply-To: ${replyTo}`,
    envelopeSender && `MAIL FROM: ${envelopeSender}`,
  ].filter(Boolean);
  const dkim = decision.dkim;
  const fromPlatform = decision.tenant && !config.directory.byId(decision.tenant.id);
  io.out(`tenant:   ${decision.tenant?.id ?? '(none)'}${fromPlatform ? ` (record from the tenant source ${config.tenantSource?.url})` : ''}`);
  io.out(`upstream: ${describeUpstream(u)}`);
  io.out(`mode:     ${decision.mode === 'queue' ? 'queue (on disk before 250, delivered with retries)' : 'passthrough (forwarded while the client waits)'}`);
  if (route.fallback) {
    const after = route.fallback.afterMs / 60_000;
    io.out(`fallback: ${describeUpstream(route.fallback.upstream)} after ${after} minute(s) of temporary failures${decision.mode === 'queue' ? '' : ' (queue mode only)'}`);
  }
  io.out(`failure:  ${onFailure(decision.mode, route.fallback !== undefined, config.delivery.retry.maxLifetimeMs)}`);
  io.out(`rewrites: ${rewrites.length ? rewrites.join('; ') : 'none'}`);
  io.out(`dkim:     ${dkim.kind === 'sign' ? `sign with the ${dkim.keyOwner} key (${dkim.key.algorithm}), s=${dkim.selector}, d=${dkim.signingDomain ?? 'the From domain'}, ${dkim.reason}` : `off: ${dkim.reason}`}`);
  if (decision.headerFrom) {
    io.out(`from:     ${decision.headerFrom.ownOnly ? `must be tenant ${decision.headerFrom.tenant.id}'s own (inbound.checkHeaderFrom), else 553 5.7.1` : "another tenant's address is refused (553 5.7.1); one nobody claims goes unsigned"}; in Sender and Resent- headers another tenant's address is refused too`);
  }
  io.out(`reason:   ${decision.reason}`);
  if (values['header-from'] === undefined) return 0;
  // The headers a message with this From would leave with: the same transform the server runs.
  const sample = Buffer.from(`From: ${values['header-from']}\r\nTo: <${values.rcpt ?? 'recipient@example.com'}>\r\nSubject: explain\r\n\r\n.\r\n`);
  const trace = { id: 'explain', receivedAt: new Date(), byHost: config.hostname, clientAddress: '127.0.0.1', tls: false, authenticated: Boolean(values.auth), recipients: [values.rcpt ?? 'recipient@example.com'] };
  const out = await transformMessage(sample, decision, config, trace);
  if (out.kind === 'refused') {
    io.out(`refused:  ${formatReply(out.reply)} (${out.reason})`);
    return 1;
  }
  const text = out.bytes.toString('latin1');
  const own = [config.message.originalFromHeader, config.message.traceHeader].filter((h): h is string => h !== undefined);
  for (const name of ['DKIM-Signature', 'From', 'Reply-To', ...own]) {
    const line = new RegExp(`^${name}:.*(?:\\r\\n[ \\t].*)*`, 'mi').exec(text)?.[0].replace(/\r\n[ \t]+/g, ' ');
    if (line) io.out(`header:   ${name === 'DKIM-Signature' ? line.replace(/ b=.*$/, ' b=…') : line}`);
  }
  for (const w of out.warnings) io.out(`warning:  ${w}`);
  return 0;
}

/** What becomes of a message the upstream does not take, in the operator's words. */
function onFailure(mode: 'queue' | 'passthrough', fallback: boolean, lifetimeMs: number): string {
  if (mode === 'passthrough') return "the upstream's refusal is the client's answer (4xx: the app may retry; 5xx: it should not); the relay keeps nothing";
  const hours = Math.round((lifetimeMs / 3_600_000) * 10) / 10;
  const retried = `a temporary failure (4xx, no answer) is retried for ${hours} h (delivery.retry.maxLifetimeHours)${fallback ? ', through the fallback once it applies' : ''}, then bounced`;
  return `${retried}; a permanent one (5xx) is bounced at once; a bounce is a DSN to the envelope sender${fallback ? '' : '; no fallback upstream'}`;
}
