// Which budgets a message draws on, the minute window a per-minute limit becomes, and a process's share of
// a budget when it counts alone: pure rules, as tables.
import t from 'tap';
import type { Limits, SmtpUpstream, Tenant } from '../config/types.js';
import { budgetsFor } from '../relay/limits/budgets.js';
import { minuteWindow, shareOf } from '../relay/limits/limiter.js';

const tenant = (id: string, limits?: Limits) => ({ id, ...(limits ? { limits } : {}) }) as unknown as Tenant;
const smtp = (name: string, o: { limits?: Limits; user?: string; credential?: string } = {}) =>
  ({ kind: 'smtp', name, host: 'smtp.office365.com', ...(o.limits ? { limits: o.limits } : {}), ...(o.user ? { auth: { user: o.user, id: o.credential ?? 'c1' } } : {}) }) as unknown as SmtpUpstream;

t.test('budgetsFor: the tenant budget, then the upstream mailbox budget, each only when limited', async (t) => {
  const cases: [string, Tenant | undefined, SmtpUpstream, string[]][] = [
    ['no tenant, no upstream limits', undefined, smtp('smarthost'), []],
    ['a tenant with limits', tenant('acme', { messagesPerMinute: 5 }), smtp('acme'), ['tenant:acme']],
    ['a tenant without limits', tenant('acme'), smtp('acme'), []],
    ['a mailbox with limits and credentials', tenant('acme', { messagesPerDay: 9 }), smtp('acme', { limits: { messagesPerMinute: 30 }, user: 'relay@acme.test' }), ['tenant:acme', 'mailbox:smtp.office365.com/relay@acme.test/c1']],
    ['another credential for the same host and user is another budget', undefined, smtp('evil', { limits: { messagesPerMinute: 30 }, user: 'relay@acme.test', credential: 'c2' }), ['mailbox:smtp.office365.com/relay@acme.test/c2']],
    ['no credentials: the upstream owner alone', undefined, smtp('acme', { limits: { messagesPerMinute: 30 } }), ['mailbox:smtp.office365.com/-/acme']],
  ];
  for (const [name, tn, up, keys] of cases) t.same(budgetsFor(tn, up).map((b) => b.key), keys, name);
});

t.test('a ramp: a new account sends N a day from its start, doubled each period, until its own day limit', async (t) => {
  const DAY = 86_400_000;
  const since = Date.parse('2026-12-01T00:00:00Z');
  const ramped = (limits: Limits | undefined, days: number) => {
    const up = { ...smtp('acme', { ...(limits ? { limits } : {}) }), ramp: { messagesPerDay: 100, sinceMs: since, doubleEveryMs: DAY } } as SmtpUpstream;
    return budgetsFor(undefined, up, since + days * DAY)[0]?.limits;
  };
  const cases: [string, Limits | undefined, number, Limits | undefined][] = [
    ['before it starts: the first step', undefined, -3, { messagesPerDay: 100 }],
    ['day 0', undefined, 0.5, { messagesPerDay: 100 }],
    ['day 1: doubled', undefined, 1, { messagesPerDay: 200 }],
    ['day 3', undefined, 3.2, { messagesPerDay: 800 }],
    ['the other limits stay', { messagesPerMinute: 30 }, 2, { messagesPerMinute: 30, messagesPerDay: 400 }],
    ['under its own day limit', { messagesPerDay: 2000 }, 4, { messagesPerDay: 1600 }],
    ['past it: its own', { messagesPerDay: 2000 }, 5, { messagesPerDay: 2000 }],
    ['with no own day limit, over after 40 doublings', undefined, 41, undefined],
  ];
  for (const [name, limits, days, expected] of cases) t.same(ramped(limits, days), expected, name);
});

t.test('minuteWindow: at most the limit in any window; under one a minute, one in a longer window', async (t) => {
  const cases: [number, { count: number; windowMs: number }][] = [
    [30, { count: 30, windowMs: 60_000 }],
    [1, { count: 1, windowMs: 60_000 }],
    [2.5, { count: 2, windowMs: 60_000 }],
    [0.5, { count: 1, windowMs: 120_000 }],
    [0.1, { count: 1, windowMs: 600_000 }],
  ];
  for (const [perMinute, window] of cases) t.same(minuteWindow(perMinute), window, `${perMinute} a minute`);
});

t.test('shareOf: a part of each limit, never below one message; whole when the share is 1', async (t) => {
  const budget = { key: 'tenant:a', limits: { messagesPerMinute: 30, messagesPerDay: 1000, recipientsPerDay: 10_000 } };
  const cases: [number, Limits][] = [
    [1, { messagesPerMinute: 30, messagesPerDay: 1000, recipientsPerDay: 10_000 }],
    [1 / 3, { messagesPerMinute: 10, messagesPerDay: 333, recipientsPerDay: 3333 }],
    [1 / 8, { messagesPerMinute: 3.75, messagesPerDay: 125, recipientsPerDay: 1250 }],
    [1 / 5000, { messagesPerMinute: 1, messagesPerDay: 1, recipientsPerDay: 2 }],
  ];
  for (const [share, limits] of cases) t.same(shareOf(budget, share).limits, limits, `share ${share}`);
  t.same(shareOf({ key: 'tenant:b', limits: { messagesPerDay: 5 } }, 1 / 8).limits, { messagesPerDay: 1 }, 'a day limit of 5 over 8 workers still lets each send');
});
