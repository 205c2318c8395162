// The `tenant-relay` commands: finds the subcommand and its --help, and runs it with the given streams
// (relay/cli.ts gives it the process's). Exit codes: 0 ok, 1 a failed check, 2 bad usage, 3 cannot run
// here (serve could not start: a port in use, a spool it cannot write; or this Node is too old).
import { ConfigError } from '../../config/load.js';
import type { CommandIo } from './io.js';

const USAGE = `Usage: tenant-relay <command> [options]

Commands:
  serve [--config FILE]           run the relay (default config: the built-in development one)
  check [--config FILE]           validate the config and print the routing table
  explain [--config FILE] --from ADDR [--auth USER]
                                  print the routing decision a message would get
  hash-password                   ask for a password (or read it on stdin), print a hash for
                                  inbound.users
  preflight [--tenant T] [--json] connect to each upstream, negotiate TLS, try AUTH (no mail sent)
  send-test --tenant T --to ADDR --kind password-reset|reminder|form-submission [--from ADDR]
            [--auth USER]         (the password: asked for, or TENANT_RELAY_PASSWORD, or stdin)
                                  send a sample through the running relay; print the route, the
                                  upstream's reply and the headers as sent
  schema [--events]               print the JSON Schema of the config file (config/relay.schema.json),
                                  or of the webhook's delivery events
  queue list [--failed] [--json]  the messages in the spool (or those that failed for good)
  queue show ID [--json]          one message: envelope, recipients, attempts, headers
  queue retry ID | --all          deliver now instead of at the next retry time
  queue delete ID                 remove a message from the queue without delivering it
  queue hold ID | release ID      keep a message from being attempted, and let it go again
  suppression list|add|remove|export --tenant T [--address A]
                                  a tenant's suppressed addresses (bounced for good, or by hand)
                                  (queue commands take --config too; they work on a live spool)
  drain [--timeout-seconds N]     tell the running relay to stop taking mail and deliver its queue;
                                  exit 0 once its spool is empty
  undrain                         tell a drained relay to take mail again
  webhooks [list | replay NAME]   each webhook's events waiting and dead-lettered; send the dead
                                  letters of one again
  trace ID | --message-id ID | --rcpt ADDR | --tenant T [--limit N] [--json]
                                  what happened to recent messages: accepted, each attempt with the
                                  upstream's reply, delivered, deferred, bounced, expired

Exit codes: 0 ok, 1 a failed check (invalid config, refused decision, failing upstream, unknown id),
2 usage error, 3 cannot run here (serve could not start: a port in use, a spool it cannot write; or
this Node is older than 22.19).
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
          [--from ADDR] [--auth USER] [--timeout-seconds N]

Sends a realistic sample through the running relay (its first listener), then prints the route, the
relay's reply, the upstream's reply and the headers as sent (read from the relay's ops listener).
With --auth, the password is TENANT_RELAY_PASSWORD when set, else asked for at a terminal (not shown),
else the first line of standard input; never on the command line, where ps and shell history show it.
Exit 0 when the upstream accepted it, 1 otherwise (an unknown tenant too), 2 for missing options.`,
  queue: `queue list [--failed] [--json] | show ID [--json] | retry ID | retry --all | delete ID | hold ID | release ID   [--config FILE]

Works on the spool of a live relay: list and show read it; retry, delete, hold and release leave
requests the relay applies within delivery.scanSeconds. A held message is not attempted (nor expired)
until released. Exit 1 for an unknown id.`,
  suppression: `suppression list --tenant T [--json] | add --tenant T --address A [--reason TEXT] [--days N]
            | remove --tenant T --address A | export [--tenant T]   [--config FILE]

A tenant's suppressed addresses (--tenant - for mail of no tenant), in the store the relay uses (Redis
with limits.store.redis, else suppressions.db beside the spool): an address is suppressed after its
mailbox refused mail for good (user unknown, mailbox disabled), or by hand (add, for suppression's
expiryDays or --days). export prints one JSON line per entry (every tenant's without --tenant).
Exit 1 when remove finds nothing, 2 for usage errors.`,
  drain: `drain [--config FILE] [--timeout-seconds N] [--json]

Asks the running relay, through its ops listener (a token with the drain scope is required), to stop
taking mail (new sessions and transactions get 421 4.3.2, /readyz turns 503) and to deliver what is
queued now, retries included. Prints progress, and exits 0 once the spool is empty, or 1 with what is
left after --timeout-seconds (300, at most 86400). The relay refuses mail until it is stopped (SIGTERM)
or told to take it again (tenant-relay undrain).`,
  webhooks: `webhooks [list | replay NAME] [--config FILE] [--json]

list (the default): for each webhook's outbox in the spool (platform, tenant-<id>; per worker), the
delivery events waiting and those dead-lettered (refused for good by the receiver: a 4xx five times in a
row, or a 413 for a single event). replay NAME: hands that webhook's dead letters back to its sender,
which sends them again at its next look (within a minute; a stopped relay at its next start).`,
  undrain: `undrain [--config FILE] [--json]

Tells a drained relay (tenant-relay drain, POST /drain) to take mail again: sessions are accepted and
/readyz turns 200. Exit 0 once it does, 1 if it is stopping or cannot be reached.`,
  trace: `trace [--config FILE] QUEUE-ID | --message-id ID | --rcpt ADDRESS | --tenant T [--limit N] [--json]

Reads the trace the relay keeps beside its spool (trace.db, trace.retentionDays): for each message found
(newest first, --limit of them, 20 by default), when it was accepted, from whom, its tenant and
Message-ID, and every event: accepted, each attempt with its upstream and what the upstream answered
(with its queue id), delivered, deferred, bounced, expired. Exit 1 when nothing is found.`,
  'hash-password': `hash-password

At a terminal, asks for the password twice (not shown); else reads the first line of standard input
(echo -n PW | tenant-relay hash-password). Prints an scrypt hash for inbound.users[].passwordHash.`,
  schema: `schema [--events]

Prints the JSON Schema of the config file (what config/relay.schema.json holds); with --events, that
of a webhook request's body (relay/reporting/delivery-events.schema.json).`,
};

type Command = (args: string[], io: CommandIo) => Promise<number>;

// Each command's module is loaded when it runs: `check` on a cold process should not pay for loading
// the SMTP server, the DKIM signer and the upstream pools that only `serve` needs.
const commands: Record<string, () => Promise<Command>> = {
  serve: async () => (await import('./serve.js')).serve,
  check: async () => (await import('./check.js')).check,
  explain: async () => (await import('./explain.js')).explain,
  'hash-password': async () => (await import('./hash-password.js')).hashPasswordCommand,
  queue: async () => (await import('./queue.js')).queueCommand,
  suppression: async () => (await import('./suppression.js')).suppressionCommand,
  preflight: async () => (await import('./preflight.js')).preflightCommand,
  'send-test': async () => (await import('./send-test.js')).sendTestCommand,
  trace: async () => (await import('./trace.js')).traceCommand,
  drain: async () => (await import('./drain.js')).drainCommand,
  undrain: async () => (await import('./drain.js')).undrainCommand,
  webhooks: async () => (await import('./webhooks.js')).webhooksCommand,
  schema: async () => {
    const { configJsonSchemaText } = await import('../../config/json-schema.js');
    const { deliveryEventsJsonSchemaText } = await import('../reporting/event-schema.js');
    return async (args, io) => {
      io.out((args.includes('--events') ? deliveryEventsJsonSchemaText() : configJsonSchemaText()).trimEnd());
      return 0;
    };
  },
};

export async function runCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(USAGE);
    return name ? 0 : 2;
  }
  const load = commands[name];
  if (!load) {
    io.err(`tenant-relay: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.out(`Usage: tenant-relay ${HELP[name] ?? name}`);
    return 0;
  }
  try {
    return await (await load())(args, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(err.message);
      return 1;
    }
    if (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS')) {
      io.err(`tenant-relay ${name}: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
}
