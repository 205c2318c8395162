// A local TLS upstream for trying a tenant's config before its real server is ready: an SMTP server on
// loopback with STARTTLS (or implicit TLS), the certificate certs/make-dev-certs.sh made, AUTH PLAIN/LOGIN
// with one user, printing one line per message it takes (envelope, size, Subject and From as received).
//
//   certs/make-dev-certs.sh
//   node bin/dev-upstream.js --port 2587 --tls starttls --user test --password test
//
// and point a tenant at it: upstream: { host: localhost, port: 2587, tls: starttls, ca: certs/dev/ca.pem,
// username: test, password: test }. --reply "550 5.1.1 no such user" answers every RCPT that way, to see
// how the relay handles a refusal. Plain JavaScript: any Node runs it. Loopback only.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SMTPServer } from 'smtp-server';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '2587' },
    tls: { type: 'string', default: 'starttls' },
    user: { type: 'string', default: 'test' },
    password: { type: 'string', default: 'test' },
    certs: { type: 'string', default: path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'certs', 'dev') },
    reply: { type: 'string' },
  },
});
if (values.tls !== 'starttls' && values.tls !== 'implicit') {
  console.error('dev-upstream: --tls is starttls or implicit');
  process.exit(2);
}
const read = (name) => {
  try {
    return fs.readFileSync(path.join(values.certs, name));
  } catch {
    console.error(`dev-upstream: no ${name} in ${values.certs}; run certs/make-dev-certs.sh (or give --certs DIR)`);
    process.exit(2);
  }
};
const refusal = values.reply && /^([45]\d\d) (.*)$/.exec(values.reply);

const server = new SMTPServer({
  secure: values.tls === 'implicit',
  key: read('server.key'),
  cert: read('server.pem'),
  minVersion: 'TLSv1.2',
  authMethods: ['PLAIN', 'LOGIN'],
  logger: false,
  onAuth(auth, _session, done) {
    if (auth.username === values.user && auth.password === values.password) return done(null, { user: auth.username });
    done(Object.assign(new Error('Authentication credentials invalid'), { responseCode: 535 }));
  },
  onRcptTo(_address, _session, done) {
    if (refusal) return done(Object.assign(new Error(refusal[2]), { responseCode: Number(refusal[1]) }));
    done();
  },
  onData(stream, session, done) {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const header = (name) => new RegExp(`^${name}:[ \\t]*(.*(?:\\r\\n[ \\t].*)*)`, 'mi').exec(text.split('\r\n\r\n')[0] ?? '')?.[1]?.replace(/\r\n[ \t]+/g, ' ') ?? '';
      const id = `dev${Date.now().toString(36)}`;
      console.log(
        JSON.stringify({ id, user: session.user ?? null, tls: Boolean(session.secure), mailFrom: session.envelope.mailFrom && session.envelope.mailFrom.address, rcptTo: session.envelope.rcptTo.map((r) => r.address), bytes: text.length, from: header('From'), subject: header('Subject'), dkim: /^DKIM-Signature:/im.test(text) }),
      );
      done(null, `Ok: queued as ${id}`);
    });
  },
});
server.listen(Number(values.port), '127.0.0.1', () => {
  console.error(`dev-upstream: listening on 127.0.0.1:${server.server.address().port} (tls: ${values.tls}, user ${values.user}); Ctrl-C stops`);
});
process.on('SIGINT', () => server.close(() => process.exit(0)));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
