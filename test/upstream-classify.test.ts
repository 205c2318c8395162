// What an upstream's answer means for each recipient (delivery/classify.ts), as a table: nodemailer's
// error shapes in, the reply and status out. Wire behaviour is in upstream-faults.test.ts.
import t from 'tap';
import { outcomesFromError, outcomesFromInfo, replyForError } from '../relay/delivery/classify.js';

const error = (fields: Record<string, unknown>) => Object.assign(new Error(String(fields.message ?? 'failed')), fields);

const cases: [string, Record<string, unknown>, string, number, string][] = [
  // name, nodemailer error fields, reply id, code, enhanced
  ['550 with an enhanced code: passed on, permanent', { responseCode: 550, response: '550 5.1.1 no such user' }, 'upstream-rejected', 550, '5.1.1'],
  ['553 without one: 5.0.0', { responseCode: 553, response: '553 sender refused' }, 'upstream-rejected', 553, '5.0.0'],
  ['a 5xx outside 550-554 is said as 554', { responseCode: 557, response: '557 odd' }, 'upstream-rejected', 554, '5.0.0'],
  ['503 (bad sequence) is not the message: retried', { responseCode: 503, response: '503 bad sequence' }, 'upstream-temp-fail', 451, '4.4.0'],
  ['450 at RCPT: retried as 4.4.0', { responseCode: 450, response: '450 4.2.1 busy' }, 'upstream-temp-fail', 451, '4.4.0'],
  ['421 greeting', { responseCode: 421, response: '421 too busy' }, 'upstream-temp-fail', 451, '4.4.0'],
  ['bad credentials', { code: 'EAUTH', responseCode: 535, response: '535 5.7.8 nope' }, 'upstream-auth', 451, '4.4.0'],
  ['no STARTTLS offered', { code: 'ETLS', message: 'STARTTLS not offered' }, 'upstream-tls', 451, '4.4.0'],
  ['a 500 to STARTTLS is a TLS failure, not a bounce', { code: 'ETLS', responseCode: 500, response: '500 unknown command' }, 'upstream-tls', 451, '4.4.0'],
  ['an untrusted certificate', { code: 'ESOCKET', message: 'self-signed certificate in certificate chain' }, 'upstream-tls', 451, '4.4.0'],
  ['the deadline', { code: 'EABORT', message: 'no answer within 60000 ms' }, 'upstream-timeout', 451, '4.4.2'],
  ['a socket timeout', { code: 'ETIMEDOUT', message: 'Timeout' }, 'upstream-timeout', 451, '4.4.2'],
  ['connection refused', { code: 'ESOCKET', originalCode: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:1' }, 'upstream-unreachable', 451, '4.4.1'],
  ['an unknown host', { code: 'EDNS', message: 'getaddrinfo ENOTFOUND smtp.gone.test' }, 'upstream-unreachable', 451, '4.4.1'],
  ['a dropped connection', { code: 'ECONNECTION', message: 'Connection closed unexpectedly' }, 'upstream-connection-lost', 451, '4.4.2'],
  // Microsoft 365's 5.7.139 has several causes, each with its own fix; all deferred, none bounced.
  ['M365: basic authentication disabled', { code: 'EAUTH', responseCode: 535, response: '535 5.7.139 Authentication unsuccessful, basic authentication is disabled. [SN4PR0501CA0054.namprd05.prod.outlook.com]' }, 'upstream-basic-auth-disabled', 451, '4.7.0'],
  ['M365: SMTP AUTH disabled for the tenant or mailbox', { code: 'EAUTH', responseCode: 535, response: '535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.' }, 'upstream-smtp-auth-disabled', 451, '4.7.0'],
  ['M365: security defaults block it', { code: 'EAUTH', responseCode: 535, response: "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator." }, 'upstream-basic-auth-disabled', 451, '4.7.0'],
  ['M365: Conditional Access', { code: 'EAUTH', responseCode: 535, response: '535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator.' }, 'upstream-basic-auth-disabled', 451, '4.7.0'],
  ['M365: wrong credentials are the credentials', { code: 'EAUTH', responseCode: 535, response: '535 5.7.139 Authentication unsuccessful, the user credentials were incorrect.' }, 'upstream-auth', 451, '4.4.0'],
  ['M365: an account locked by failed attempts', { code: 'EAUTH', responseCode: 535, response: '535 5.7.139 Authentication unsuccessful, account locked due to too many failed attempts.' }, 'upstream-auth', 451, '4.4.0'],
  ['M365: client submission off (550 5.7.30)', { responseCode: 550, response: '550 5.7.30 Basic authentication is not supported for Client Submission.' }, 'upstream-basic-auth-disabled', 451, '4.7.0'],
];

for (const [name, fields, id, code, enhanced] of cases) {
  t.test(name, async (t) => {
    const reply = replyForError('up', error(fields));
    t.match(reply, { id, code, enhanced });
    const [outcome] = outcomesFromError('up', ['a@example.com'], error(fields));
    t.equal(outcome?.status, code >= 500 ? 'perm' : 'temp');
  });
}

t.test('upstream text is sanitised into the reply: one line, bounded', async (t) => {
  const reply = replyForError('up', error({ responseCode: 550, response: `550 5.7.1 spam\r\nInjected: header ${'x'.repeat(400)}` }));
  t.notMatch(reply.text, /[\r\n]/);
  t.ok(reply.text.length < 260);
});

t.test('each recipient gets its own reply when all were refused at RCPT', async (t) => {
  const err = error({
    code: 'EENVELOPE',
    rejectedErrors: [error({ recipient: 'gone@example.com', responseCode: 550, response: '550 5.1.1 gone' }), error({ recipient: 'busy@example.com', responseCode: 450, response: '450 busy' })],
  });
  t.match(outcomesFromError('up', ['gone@example.com', 'busy@example.com'], err), [
    { recipient: 'gone@example.com', status: 'perm', reply: { enhanced: '5.1.1' } },
    { recipient: 'busy@example.com', status: 'temp', reply: { id: 'upstream-temp-fail' } },
  ]);
});

t.test('a resolved send is read per recipient: accepted, refused by name, or unacknowledged', async (t) => {
  const info = { accepted: ['OK@example.com'], rejectedErrors: [error({ recipient: 'gone@example.com', responseCode: 550, response: '550 5.1.1 gone' })] };
  t.match(outcomesFromInfo('up', ['ok@example.com', 'gone@example.com', 'silent@example.com'], info), [
    { recipient: 'ok@example.com', status: 'sent', reply: { id: 'delivered' } },
    { recipient: 'gone@example.com', status: 'perm' },
    { recipient: 'silent@example.com', status: 'temp', reply: { text: /recipient not acknowledged/ } },
  ]);
});

t.test('a connection lost after the whole message went out may have delivered it; a reply says otherwise', async (t) => {
  const dropped = error({ code: 'ECONNECTION', message: 'Connection closed unexpectedly' });
  t.match(outcomesFromError('up', ['a@example.com'], dropped, { streamed: true }), [{ status: 'temp', mayHaveArrived: true }]);
  t.match(outcomesFromError('up', ['a@example.com'], dropped, { streamed: false }), [{ status: 'temp', mayHaveArrived: undefined }]);
  const refused = error({ responseCode: 451, response: '451 4.3.0 scanner down' });
  t.match(outcomesFromError('up', ['a@example.com'], refused, { streamed: true }), [{ status: 'temp', mayHaveArrived: undefined }], 'the upstream answered the dot: it does not have it');
});
