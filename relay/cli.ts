#!/usr/bin/env node
// The `tenant-relay` command. Exit codes: 0 ok, 1 bad config or a failed check, 2 bad usage.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import nodemailer from 'nodemailer';
import { parseArgs } from 'node:util';
import { configJsonSchemaText } from '../config/json-schema.js';
import { ConfigError, loadConfigFile } from '../config/load.js';
import type { Config, Upstream } from '../config/types.js';
import { hashPassword } from './inbound/passwords.js';
import { describeEntry, findEntry, headerOf, listQueue } from './queue/admin.js';
import { Spool } from './queue/spool.js';
import { createLogger } from './ops/log.js';
import { preflight } from './ops/preflight.js';
import { SAMPLE_KINDS, type SampleKind, sample } from './ops/samples.js';
import { SEND_TEST_HEADER, type SendTestRecord } from './ops/send-tests.js';
import { defaultConfigFile } from './paths.js';
import { startRelay } from './relay.js';
import { transformMessage } from './message/transform.js';
import { decide, dkimPlan } from './routing/decide.js';

const USAGE = `Usage: tenant-relay <command> [options]

Commands:
  serve [--config FILE]           run the relay (default config: the built-in development one)
  check [--config FILE]           validate the config and print the routing table
  explain [--config FILE] --from ADDR [--auth USER]
                                  print the routing decision a message would get
  hash-password                   read a password on stdin, print a hash for inbound.users
  preflight [--tenant T] [--json] connect to each upstream, negotiate TLS, try AUTH (no mail sent)
  send-test --tenant T --to ADDR --kind password-reset|reminder|form-submission [--from ADDR]
            [--auth USER --password PW]
                                  send a sample through the running relay; print the route, the
                                  upstream's reply and the headers as sent
  schema                          print the JSON Schema of the config file (config/relay.schema.json)
  queue list [--failed] [--json]  the messages in the spool (or those that failed for good)
  queue show ID [--json]          one message: envelope, recipients, attempts, headers
  queue retry ID | --all          deliver now instead of at the next retry time
  queue delete ID                 remove a message from the queue without delivering it
                                  (queue commands take --config too; they work on a live spool)

Exit codes: 0 ok, 1 invalid config or refused decision, 2 usage error.
The config file can also be named by TENANT_RELAY_CONFIG.`;

/** `tenant-relay <command> --help`: usage, then what it does and how it exits. */
const HELP: Record<string, string> = {
  serve: `serve [--config FILE]

Runs the relay (default config: the built-in development one, or TENANT_RELAY_CONFIG). SIGHUP or a
change to the file reloads the config (an invalid file is logged and the running config stays).
SIGTERM or SIGINT: new connections get 421, sessions in DATA and deliveries in flight get
ops.shutdownGraceSeconds to finish, then exit 0; a second signal exits at once (1).`,
  check: `check [--config FILE]

Validates the file and prints the routing table: tenant, how it is recognised, upstream, TLS mode,
platform DKIM. Exit 1 with file:line:column: key: message for each problem.`,
  explain: `explain [--config FILE] --from ADDR [--auth USER] [--header-from ADDR] [--rcpt ADDR]

Prints the decision a message would get (tenant, upstream, rewrites, DKIM, reason), made by the same
function the server uses. With --header-from, also the From, Reply-To and DKIM-Signature the message
would leave with. Exit 1 if the message would be refused.`,
  preflight: `preflight [--config FILE] [--tenant T] [--json]

For each upstream: connects, negotiates TLS as configured, tries AUTH (no mail is sent). Prints
reachable, TLS version, certificate expiry and AUTH per upstream and the tenants using it. Exit 1 if
any upstream fails.`,
  'send-test': `send-test [--config FILE] --tenant T --to ADDR [--kind password-reset|reminder|form-submission]
          [--from ADDR] [--auth USER --password PW] [--timeout-seconds N]

Sends a realistic sample through the running relay (its first listener), then prints the route, the
relay's reply, the upstream's reply and the headers as sent (read from the relay's ops listener).
Exit 0 when the upstream accepted it, 1 otherwise.`,
  queue: `queue list [--failed] [--json] | show ID [--json] | retry ID | retry --all | delete ID   [--config FILE]

Works on the spool of a live relay: list and show read it; retry and delete leave requests the relay
applies within delivery.scanSeconds. Exit 1 for an unknown id.`,
  'hash-password': `hash-password

Reads a password on standard input and prints an scrypt hash for inbound.users[].passwordHash.`,
  schema: `schema

Prints the JSON Schema of the config file (what config/relay.schema.json holds).`,
};

const commands: Record<string, (args: string[]) => Promise<number>> = {
  serve,
  check,
  explain,
  'hash-password': hashPasswordCommand,
  queue: queueCommand,
  preflight: preflightCommand,
  'send-test': sendTestCommand,
  schema: async () => {
    process.stdout.write(configJsonSchemaText());
    return 0;
  },
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    console.error(`tenant-relay: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    console.log(`Usage: tenant-relay ${HELP[name] ?? name}`);
    return 0;
  }
  try {
    return await command(args);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 1;
    }
    if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`tenant-relay ${name}: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
}

function loadFrom(values: { config?: string | undefined }): Config {
  return loadConfigFile(values.config ?? process.env.TENANT_RELAY_CONFIG ?? defaultConfigFile);
}

async function serve(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  const file = values.config ?? process.env.TENANT_RELAY_CONFIG ?? defaultConfigFile;
  const logger = createLogger();
  const relay = await startRelay(loadConfigFile(file), { logger, configFile: file, watchConfig: true });
  process.on('SIGHUP', () => relay.reload('SIGHUP'));
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // A second signal: the operator wants out now. Queued mail is on disk; nothing accepted is lost.
        logger.warn({ event: 'stopping-now', signal });
        logger.flush();
        process.exit(1);
      }
      stopping = true;
      logger.info({ event: 'stopping', signal, graceMs: relay.config().ops.shutdownGraceMs });
      relay.close().then(resolve, resolve);
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  logger.info({ event: 'stopped' });
  logger.flush();
  return 0;
}

async function check(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } } });
  const config = loadFrom(values);
  console.log(`${config.source}: ok, ${config.tenants.length} tenant(s)\n`);
  const rows = [['TENANT', 'RECOGNISED BY', 'UPSTREAM', 'TLS', 'MODE', 'DKIM']];
  for (const t of [...config.tenants, undefined]) {
    const upstream = t?.upstream ?? config.smarthost;
    const by = t ? [...t.match.authUsers.map((u) => `auth:${u}`), ...t.match.addresses, ...t.match.domains].join(' ') : '(no match)';
    const where = upstream.kind === 'maildir' ? `maildir ${upstream.path}` : `${upstream.host}:${upstream.port}`;
    const via = t?.upstream ? where : `smarthost ${where}`;
    const dkim = dkimPlan(t, config);
    const mode = t?.delivery.mode ?? config.delivery.mode;
    rows.push([t?.id ?? '-', by || '(nothing)', via, upstream.kind === 'smtp' ? upstream.tls : '-', mode, dkim.kind === 'sign' ? `on (s=${dkim.selector}, ${dkim.keyOwner} key)` : `off (${dkim.reason})`]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
  return 0;
}

async function explain(args: string[]): Promise<number> {
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
    console.error('tenant-relay explain: --from ADDR is required (use --from "" for the null sender)');
    return 2;
  }
  const config = loadFrom(values);
  const decision = decide({ mailFrom: values.from }, values.auth ? { username: values.auth } : undefined, config);
  if (decision.kind === 'refuse') {
    console.log(`refused: ${decision.reply.code} ${decision.reply.enhanced} ${decision.reply.text}\nreason:  ${decision.reason}`);
    return 1;
  }
  const u = decision.route.upstream;
  const { from, replyTo, envelopeSender } = decision.rewrites;
  const rewrites = [
    from && `From: ${from.name !== undefined ? `"${from.name}" ` : ''}<${from.address ?? '(original address)'}>`,
    replyTo && `Reply-To: ${replyTo}`,
    envelopeSender && `MAIL FROM: ${envelopeSender}`,
  ].filter(Boolean);
  const dkim = decision.dkim;
  console.log(`tenant:   ${decision.tenant?.id ?? '(none)'}`);
  console.log(`upstream: ${u.name} (${u.kind === 'maildir' ? `maildir ${u.path}` : `${u.host}:${u.port} tls=${u.tls}${u.auth ? ' auth' : ''}`})`);
  console.log(`rewrites: ${rewrites.length ? rewrites.join('; ') : 'none'}`);
  console.log(`dkim:     ${dkim.kind === 'sign' ? `sign with the ${dkim.keyOwner} key (${dkim.key.algorithm}), s=${dkim.selector}, d=${dkim.signingDomain ?? 'the From domain'}` : `off: ${dkim.reason}`}`);
  console.log(`reason:   ${decision.reason}`);
  if (values['header-from'] === undefined) return 0;
  // The headers a message with this From would leave with: the same transform the server runs.
  const sample = Buffer.from(`From: ${values['header-from']}\r\nTo: <${values.rcpt ?? 'recipient@example.com'}>\r\nSubject: explain\r\n\r\n.\r\n`);
  const trace = { id: 'explain', receivedAt: new Date(), byHost: config.hostname, clientAddress: '127.0.0.1', tls: false, authenticated: Boolean(values.auth), recipients: [values.rcpt ?? 'recipient@example.com'] };
  const out = await transformMessage(sample, decision, config, trace);
  if (out.kind === 'refuse') {
    console.log(`refused:  ${out.reply.code} ${out.reply.enhanced} ${out.reply.text} (${out.reason})`);
    return 1;
  }
  const text = out.bytes.toString('latin1');
  for (const name of ['DKIM-Signature', 'From', 'Reply-To', ...(config.message.originalFromHeader ? [config.message.originalFromHeader] : [])]) {
    const line = new RegExp(`^${name}:.*(?:\\r\\n[ \\t].*)*`, 'mi').exec(text)?.[0].replace(/\r\n[ \t]+/g, ' ');
    if (line) console.log(`header:   ${name === 'DKIM-Signature' ? line.replace(/ b=.*$/, ' b=…') : line}`);
  }
  for (const w of out.warnings) console.log(`warning:  ${w}`);
  return 0;
}

async function preflightCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, tenant: { type: 'string' }, json: { type: 'boolean' } } });
  const config = loadFrom(values);
  const tenants = values.tenant ? config.tenants.filter((t) => t.id === values.tenant) : config.tenants;
  if (values.tenant && tenants.length === 0) {
    console.error(`tenant-relay preflight: no tenant "${values.tenant}"`);
    return 2;
  }
  // Each distinct upstream once, with the tenants that use it.
  const users = new Map<Upstream, string[]>();
  for (const t of tenants) {
    const u = t.upstream ?? config.smarthost;
    users.set(u, [...(users.get(u) ?? []), t.id]);
  }
  if (!values.tenant) users.set(config.smarthost, [...(users.get(config.smarthost) ?? []), '(no tenant)']);
  const reports = [];
  for (const [upstream, ids] of users) {
    if (upstream.kind === 'maildir') {
      reports.push({ upstream: upstream.name, tenants: ids, address: `maildir ${upstream.path}`, ok: true });
      continue;
    }
    reports.push({ ...(await preflight(upstream, config.hostname)), tenants: ids });
  }
  if (values.json) console.log(JSON.stringify(reports, null, 2));
  else {
    for (const r of reports) {
      const facts = 'reachable' in r ? [r.reachable ? 'reachable' : 'UNREACHABLE', r.tlsVersion, r.certificateDaysLeft !== undefined ? `certificate expires in ${r.certificateDaysLeft} days (${r.certificateExpires})` : undefined, `auth ${r.auth}`] : ['local'];
      console.log(`${r.ok ? 'ok  ' : 'FAIL'}  ${r.upstream} (${r.address}) for ${r.tenants.join(', ')}: ${facts.filter(Boolean).join(', ')}${'error' in r && r.error ? `\n      ${r.error}` : ''}`);
    }
  }
  return reports.every((r) => r.ok) ? 0 : 1;
}

async function sendTestCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      tenant: { type: 'string' },
      to: { type: 'string' },
      kind: { type: 'string', default: 'password-reset' },
      from: { type: 'string' },
      auth: { type: 'string' },
      password: { type: 'string' },
      'timeout-seconds': { type: 'string', default: '30' },
    },
  });
  const config = loadFrom(values);
  const tenant = config.directory.byId(values.tenant ?? '');
  if (!tenant || !values.to || !SAMPLE_KINDS.includes(values.kind as SampleKind)) {
    console.error(`tenant-relay send-test: --tenant (one of: ${config.tenants.map((t) => t.id).join(', ')}), --to and --kind (${SAMPLE_KINDS.join(', ')}) are required`);
    return 2;
  }
  const domain = tenant.match.domains.find((d) => !d.startsWith('*.'));
  const from = values.from ?? tenant.match.addresses[0] ?? (domain ? `noreply@${domain}` : undefined);
  if (!from) {
    console.error(`tenant-relay send-test: tenant ${tenant.id} claims no address or domain; give --from`);
    return 2;
  }
  const auth = values.auth ? { username: values.auth } : undefined;
  const decision = decide({ mailFrom: from }, auth, config);
  console.log(`route:    ${decision.kind === 'route' ? `tenant ${decision.tenant?.id ?? '(none)'} via upstream ${decision.route.upstream.name}: ${decision.reason}` : `refused: ${decision.reason}`}`);

  const listener = config.listen[0];
  if (!listener) return 2;
  const host = listener.host === '0.0.0.0' || listener.host === '::' ? '127.0.0.1' : listener.host;
  const token = randomUUID();
  const content = sample(values.kind as SampleKind, tenant.id);
  const transport = nodemailer.createTransport({
    host,
    port: listener.port,
    secure: listener.tls === 'implicit',
    requireTLS: listener.tls === 'starttls',
    ignoreTLS: listener.tls === 'none',
    ...(values.auth ? { auth: { user: values.auth, pass: values.password ?? '' } } : {}),
  });
  let relayReply: string;
  try {
    const info = await transport.sendMail({ from, to: values.to, ...content, headers: { [SEND_TEST_HEADER]: token } });
    relayReply = info.response;
  } catch (err) {
    console.log(`relay:    ${(err as { response?: string }).response ?? (err as Error).message}`);
    return 1;
  } finally {
    transport.close();
  }
  console.log(`relay:    ${relayReply}`);

  // The upstream's answer comes from the relay's ops listener, where it keeps send-test outcomes.
  const deadline = Date.now() + Number(values['timeout-seconds']) * 1000;
  let record: SendTestRecord | undefined;
  while (Date.now() < deadline) {
    const res = await fetch(`http://${config.ops.host === '0.0.0.0' ? '127.0.0.1' : config.ops.host}:${config.ops.port}/send-test/${token}`).catch(() => undefined);
    if (res?.ok) {
      record = (await res.json()) as SendTestRecord;
      if (record.final) break;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  if (!record) {
    console.log('upstream: no outcome yet (queued for a retry, or the ops listener is off); see tenant-relay queue list');
    return 1;
  }
  for (const r of record.recipients) console.log(`upstream: ${record.upstream} <${r.rcpt}> ${r.status}: ${r.reply}`);
  console.log('headers as sent:');
  for (const name of ['DKIM-Signature', 'Received', 'From', 'Reply-To', 'Subject']) {
    for (const line of record.headers.match(new RegExp(`^${name}:.*(?:\\r?\\n[ \\t].*)*`, 'gmi')) ?? []) console.log(`  ${line.replace(/\r?\n[ \t]+/g, ' ')}`);
  }
  return record.recipients.every((r) => r.status === 'sent') ? 0 : 1;
}

async function queueCommand(args: string[]): Promise<number> {
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

async function hashPasswordCommand(): Promise<number> {
  const password = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
  if (!password) {
    console.error('tenant-relay hash-password: give the password on standard input');
    return 2;
  }
  console.log(await hashPassword(password));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
