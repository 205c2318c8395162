// Secrets by reference: a `${file:}` secret (a Kubernetes Secret mounted as a file) rotated under a
// running relay is in use for the next delivery within seconds, without a reload by hand; the old one is
// never sent again, and neither value is logged.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import t from 'tap';
import { loadConfigFile } from '../config/load.js';
import { startRelay } from '../relay/runtime/start-relay.js';
import { sendThrough } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

t.test('a rotated password file is used by the next delivery, the old password is never sent again, and neither is logged', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-secret-files-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const users: Record<string, string> = { relay: 'old-password-1c9e' };
  const upstream = await startUpstream({ users, allowInsecureAuth: true });
  t.teardown(() => upstream.close());
  const secret = path.join(dir, 'upstream-password');
  fs.writeFileSync(secret, 'old-password-1c9e\n');
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(
    file,
    `listen: [{ host: 127.0.0.1, port: 0 }]
ops: { port: 0 }
delivery: { mode: passthrough, spool: { path: ${dir}/spool } }
smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: none, allowInsecureAuth: true, username: relay, password: "\${file:${secret}}" }
`,
  );
  let log = '';
  const relay = await startRelay(loadConfigFile(file), { logger: pino({ level: 'debug' }, { write: (line: string) => void (log += line) }), configFile: file });
  t.teardown(() => relay.close(0));
  const port = relay.addresses[0]?.port ?? 0;
  t.match((await sendThrough(port, { from: 'app@example.org', to: 'one@example.com' })).response, /^250 /);

  // The platform rotates it: the upstream takes only the new one from now on.
  users.relay = 'new-password-7f2a';
  const attemptsBefore = upstream.authAttempts.length;
  fs.writeFileSync(secret, 'new-password-7f2a\n');
  t.ok(await until(() => log.includes('"event":"config-reloaded"'), 5000), 'reloaded by itself within 5 s');
  t.match(log, new RegExp(`"why":"secret file changed: ${secret.replaceAll('/', '\\/')}"`), 'the log names the file');
  for (let i = 0; i < 3; i++) t.match((await sendThrough(port, { from: 'app@example.org', to: `after-${i}@example.com` })).response, /^250 /, 'delivered at the first try');
  t.equal(upstream.authAttempts.length - attemptsBefore, 1, 'one new login, with the new password: the old one was not tried');
  t.equal(upstream.received.length, 4);
  t.notMatch(log, /old-password|new-password/, 'neither value is logged');
});
