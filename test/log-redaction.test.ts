// The logger's second line of defence: a secret handed to it by mistake is written as "[redacted]",
// whatever object carries it (up to three levels deep), and the caller's object is left as it was.
import { Writable } from 'node:stream';
import t from 'tap';
import { createLogger, redactSecrets } from '../relay/log.js';

/** The lines a logger writes, parsed. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger('info', destination) };
}

const cases: { name: string; line: Record<string, unknown>; secret: string; kept?: string }[] = [
  { name: 'a password at the top', line: { event: 'x', password: 'pw-top' }, secret: 'pw-top' },
  { name: 'an upstream password one level down', line: { upstream: { host: 'smtp.test', password: 'pw-up' } }, secret: 'pw-up', kept: 'smtp.test' },
  { name: "nodemailer's auth.pass", line: { auth: { user: 'app', pass: 'pw-auth' } }, secret: 'pw-auth', kept: 'app' },
  { name: 'auth.pass under any key', line: { transport: { auth: { user: 'app', pass: 'pw-deep' } } }, secret: 'pw-deep', kept: 'app' },
  { name: 'a token', line: { token: 'tok-top', tenant: 'acme' }, secret: 'tok-top', kept: 'acme' },
  { name: 'an OAuth2 access token', line: { grant: { accessToken: 'at-1', clientSecret: 'cs-1' } }, secret: 'at-1' },
  { name: 'a client secret', line: { grant: { clientSecret: 'cs-2' } }, secret: 'cs-2' },
  { name: 'a DKIM private key', line: { dkim: { selector: 's1', privateKey: '-----BEGIN PRIVATE KEY-----x' } }, secret: 'BEGIN PRIVATE KEY', kept: 's1' },
  { name: 'inside a list', line: { upstreams: [{ name: 'a' }, { name: 'b', password: 'pw-list' }] }, secret: 'pw-list', kept: 'b' },
  { name: 'on an error', line: { err: Object.assign(new Error('refused by upstream'), { token: 'tok-err' }) }, secret: 'tok-err', kept: 'refused by upstream' },
];

t.test('a secret under a known key never reaches the log line', async (t) => {
  for (const c of cases) {
    const { lines, logger } = capture();
    logger.info(c.line);
    const written = JSON.stringify(lines);
    t.notMatch(written, c.secret, c.name);
    t.match(written, '[redacted]', `${c.name}: says it was redacted`);
    if (c.kept) t.match(written, c.kept, `${c.name}: the rest of the line is kept`);
  }
});

t.test("redaction copies what it censors: the caller's objects (frozen config among them) are unchanged", async (t) => {
  const upstream = Object.freeze({ host: 'smtp.test', password: 'pw' });
  const line = { event: 'x', upstream, list: [{ pass: 'p' }] };
  const out = redactSecrets(line);
  t.same(out, { event: 'x', upstream: { host: 'smtp.test', password: '[redacted]' }, list: [{ pass: '[redacted]' }] });
  t.equal(upstream.password, 'pw');
  t.equal(line.list[0]?.pass, 'p');
});

t.test('a line without secrets is passed on as it is, not copied', async (t) => {
  const line = { event: 'delivered', id: 'abc', outcomes: [{ recipient: 'a@b.test', status: 'sent' }], bytes: Buffer.from('x') };
  t.equal(redactSecrets(line), line);
});
