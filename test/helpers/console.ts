// A relay for the mail console's tests: queue mode, tenants acme and beta on real upstreams, tokens for the
// support desk (every tenant), each tenant's admin, and one that may only read. acme's upstream refuses
// nobody@ (550 5.1.1) and defers later@ until `deferring` is turned off.
import type { Test } from 'tap';
import { queuedId, sendThrough, startTestRelay, type TestRelay } from './relay.js';
import { startUpstream, type Upstream } from './upstream.js';

export const TOKENS = {
  desk: 'support-desk-token-0123456789abcdef',
  acme: 'acme-admin-token-0123456789abcdef',
  beta: 'beta-admin-token-0123456789abcdef',
  reader: 'read-only-token-0123456789abcdef',
} as const;

export interface ConsoleFixture {
  readonly relay: TestRelay;
  readonly acmeUpstream: Upstream;
  readonly betaUpstream: Upstream;
  readonly base: string;
  /** Turn off to let later@ through. */
  deferring: boolean;
  /** Sends one message and returns its queue id. */
  send(from: string, to: string | string[], messageId?: string): Promise<string>;
  api(path: string, token: string, method?: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
}

export async function consoleFixture(t: Test, options: { manualScheduler?: boolean } = {}): Promise<ConsoleFixture> {
  const fixture = { deferring: true } as ConsoleFixture & { deferring: boolean };
  const acmeUpstream = await startUpstream({
    rcpt: (a) => (a.startsWith('nobody@') ? [550, '5.1.1 <nobody@example.com>: Recipient address rejected: User unknown'] : a.startsWith('later@') && fixture.deferring ? [451, '4.2.0 Mailbox busy, try later'] : undefined),
  });
  const betaUpstream = await startUpstream();
  t.teardown(() => Promise.all([acmeUpstream.close(), betaUpstream.close()]));
  const relay = await startTestRelay(
    `
ops:
  port: 0
  tokens:
    - { token: ${TOKENS.desk}, scopes: [trace, queue], name: support-desk }
    - { token: ${TOKENS.acme}, scopes: [trace, queue], tenant: acme, name: acme-admin }
    - { token: ${TOKENS.beta}, scopes: [trace, queue], tenant: beta }
    - { token: ${TOKENS.reader}, scopes: [trace] }
delivery: { mode: queue, spool: { path: \${SPOOL} }, retry: { minSeconds: 600, maxSeconds: 3600, jitter: 0 } }
smarthost: { host: 127.0.0.1, port: 9, tls: none }
tenants:
  - { id: acme, match: { domains: [acme.test] }, upstream: { host: 127.0.0.1, port: ${acmeUpstream.port}, tls: none } }
  - { id: beta, match: { domains: [beta.test] }, upstream: { host: 127.0.0.1, port: ${betaUpstream.port}, tls: none } }
`,
    {},
    { manualScheduler: options.manualScheduler ?? false },
  );
  t.teardown(() => relay.close());
  const base = `http://127.0.0.1:${relay.relay.opsPort}`;
  return Object.assign(fixture, {
    relay,
    acmeUpstream,
    betaUpstream,
    base,
    send: async (from: string, to: string | string[], messageId?: string) => {
      const list = Array.isArray(to) ? to : [to];
      const raw = `From: <${from}>\r\nTo: ${list.join(', ')}\r\nSubject: Your password reset\r\n${messageId ? `Message-ID: ${messageId}\r\n` : ''}\r\nHello.\r\n`;
      return queuedId((await sendThrough(relay.port, { from, to: list, raw })).response);
    },
    api: async (path: string, token: string, method = 'GET', body?: unknown) => {
      const res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
  });
}
