// Tenants on Microsoft 365 and Google Workspace: the relay gets an OAuth2 access token for the tenant's
// mailbox (client credentials with a secret or a certificate; a service account's JWT grant) and logs in
// with AUTH XOAUTH2. Real parts only: a token endpoint on loopback that checks each grant as the provider
// does, and an SMTP upstream that offers XOAUTH2 and LOGIN (not PLAIN) and takes only the tokens issued.
import { createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError, loadConfigFile, parseConfig } from '../config/load.js';
import type { SmtpUpstream } from '../config/types.js';
import { AccessTokens } from '../relay/delivery/oauth2/tokens.js';
import { createLogger, silentLogger } from '../relay/log.js';
import { startRelay } from '../relay/runtime/start-relay.js';
import { makeTestCerts } from './helpers/certs.js';
import { listeningPort, runCli, spawnCli } from './helpers/cli.js';
import { queuedId, replyOf, sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { startTokenEndpoint } from './helpers/token-endpoint.js';
import { closedPort, startUpstream, type Upstream } from './helpers/upstream.js';

const certs = makeTestCerts();
const CLIENT_SECRET = 'Qx~8Q~s3cr3t-value-nobody-may-see.Zk1';
const MAILBOX = 'notifications@acme.test';

// Microsoft's certificate credential: the test CA's server certificate doubles as the app's certificate.
const appCert = new X509Certificate(certs.server.cert);
const thumbprint = createHash('sha1').update(appCert.raw).digest('base64url');
// Google's service account key, made here.
const google = generateKeyPairSync('rsa', { modulusLength: 2048 });
const GOOGLE_KEY = google.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const SERVICE_ACCOUNT = 'relay@acme-project.iam.gserviceaccount.com';

const endpoint = await startTokenEndpoint({
  clients: {
    'app-secret': { secret: CLIENT_SECRET },
    'app-cert': { publicKey: appCert.publicKey.export({ type: 'spki', format: 'pem' }).toString(), thumbprint },
    [SERVICE_ACCOUNT]: { publicKey: google.publicKey.export({ type: 'spki', format: 'pem' }).toString() },
  },
});
t.teardown(() => endpoint.close());

const MICROSOFT_TOKEN_URL = `${endpoint.base}/contoso.example/oauth2/v2.0/token`;
const GOOGLE_TOKEN_URL = `${endpoint.base}/token`;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-oauth2-'));
const keyFile = (name: string, text: string) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
};
const CERT_FILE = keyFile('app.crt', certs.server.cert);
const CERT_KEY_FILE = keyFile('app.key', certs.server.key);
const GOOGLE_KEY_FILE = keyFile('google.pem', GOOGLE_KEY);
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

/** An upstream like Microsoft 365 or Gmail: STARTTLS, XOAUTH2 and LOGIN, only the endpoint's tokens. */
async function providerUpstream(t: Test, refuses: 'microsoft' | 'google', extra: Parameters<typeof startUpstream>[0] = {}): Promise<Upstream> {
  const upstream = await startUpstream({ tls: 'starttls', cert: certs.server, xoauth2: { accepts: (user, token) => user === MAILBOX && endpoint.valid.has(token), refuses }, ...extra });
  t.teardown(() => upstream.close());
  return upstream;
}

const microsoftAuth = (clientSecret = '${SECRET}') =>
  `{ kind: oauth2, provider: microsoft, tenantId: contoso.example, clientId: app-secret, clientSecret: "${clientSecret}", mailbox: ${MAILBOX}, tokenUrl: "${MICROSOFT_TOKEN_URL}" }`;
const certificateAuth = `{ kind: oauth2, provider: microsoft, tenantId: contoso.example, clientId: app-cert, certificate: "\${file:${CERT_FILE}}", privateKey: "\${file:${CERT_KEY_FILE}}", mailbox: ${MAILBOX}, tokenUrl: "${MICROSOFT_TOKEN_URL}" }`;
const googleAuth = `{ kind: oauth2, provider: google, serviceAccount: ${SERVICE_ACCOUNT}, privateKey: "\${file:${GOOGLE_KEY_FILE}}", mailbox: ${MAILBOX}, tokenUrl: "${GOOGLE_TOKEN_URL}" }`;

async function relayFor(t: Test, upstream: Upstream, auth: string, options: { mode?: 'queue' | 'passthrough'; extra?: string } = {}): Promise<TestRelay> {
  const mode = options.mode ?? 'passthrough';
  const relay = await startTestRelay(
    `
delivery: { mode: ${mode}, spool: { path: \${SPOOL} }, retry: { minSeconds: 300, maxSeconds: 3600, jitter: 0 } }
smarthost: { host: 127.0.0.1, port: 9, tls: none }
tenants:
  - id: acme
    match: { domains: [acme.test] }
    upstream: { host: 127.0.0.1, port: ${upstream.port}, tls: starttls, ca: ${certs.caFile}, timeoutSeconds: 5, connectTimeoutSeconds: 2, auth: ${auth} }
${options.extra ?? ''}`,
    { SECRET: CLIENT_SECRET },
    { manualScheduler: mode === 'queue' },
  );
  t.teardown(() => relay.close());
  return relay;
}

const send = (relay: TestRelay, to = 'someone@example.com') => sendThrough(relay.port, { from: 'app@acme.test', to });

function resetEndpoint() {
  endpoint.requests.length = 0;
  endpoint.behaviour = 'issue';
  endpoint.expiresIn = 3599;
}

t.beforeEach(() => resetEndpoint());

t.test('Microsoft, client secret: many messages over many connections ask for one token', async (t) => {
  const upstream = await providerUpstream(t, 'microsoft');
  const relay = await relayFor(t, upstream, microsoftAuth());
  await Promise.all(Array.from({ length: 8 }, (_, i) => send(relay, `r${i}@example.com`)));
  for (let i = 0; i < 4; i++) await send(relay);
  t.equal(upstream.received.length, 12);
  t.equal(endpoint.requests.length, 1, 'one token request');
  t.same(endpoint.requests[0]?.form, { grant_type: 'client_credentials', client_id: 'app-secret', scope: 'https://outlook.office365.com/.default', client_secret: CLIENT_SECRET });
  t.ok(upstream.received.every((m) => m.user === MAILBOX && m.secure), 'logged in as the mailbox, over TLS');
  t.ok(upstream.authAttempts.every((a) => a === `${MAILBOX} (XOAUTH2)`), 'XOAUTH2 every time');
  t.match(relay.logs.find((l) => l.event === 'oauth2-token'), { upstream: 'acme', provider: 'microsoft', endpoint: /^127\.0\.0\.1:\d+$/ });
});

t.test("Microsoft, certificate: the client assertion is signed with the app's key and names its thumbprint", async (t) => {
  const upstream = await providerUpstream(t, 'microsoft');
  const relay = await relayFor(t, upstream, certificateAuth);
  await send(relay);
  t.equal(upstream.received.length, 1);
  const request = endpoint.requests[0];
  t.match(request?.form, { grant_type: 'client_credentials', client_id: 'app-cert', client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' });
  t.notOk(request?.form.client_secret);
  t.match(request?.header, { alg: 'RS256', typ: 'JWT', x5t: thumbprint });
  t.match(request?.claims, { aud: MICROSOFT_TOKEN_URL, iss: 'app-cert', sub: 'app-cert', jti: String });
});

t.test("Google: the service account's JWT grant acts as the mailbox, verified with the key the test made", async (t) => {
  const upstream = await providerUpstream(t, 'google');
  const relay = await relayFor(t, upstream, googleAuth);
  await send(relay);
  await send(relay);
  t.equal(upstream.received.length, 2);
  t.equal(endpoint.requests.length, 1);
  t.match(endpoint.requests[0]?.form, { grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer' });
  const claims = endpoint.requests[0]?.claims ?? {};
  t.match(claims, { iss: SERVICE_ACCOUNT, sub: MAILBOX, scope: 'https://mail.google.com/', aud: GOOGLE_TOKEN_URL });
  t.ok(Number(claims.exp) - Number(claims.iat) <= 3600, 'an assertion of an hour at most');
});

t.test('a revoked token is renewed once and the message delivered (Microsoft: a plain 535; Google: a 334 challenge)', async (t) => {
  for (const [provider, auth] of [
    ['microsoft', microsoftAuth()],
    ['google', googleAuth],
  ] as const) {
    resetEndpoint();
    const upstream = await providerUpstream(t, provider);
    const relay = await relayFor(t, upstream, auth);
    await send(relay);
    endpoint.revokeAll();
    await upstream.dropConnections();
    const info = await send(relay);
    t.match(info.response, /^250 /, provider);
    t.equal(upstream.received.length, 2, `${provider}: both delivered`);
    t.equal(endpoint.requests.length, 2, `${provider}: one renewal`);
  }
});

t.test('a token that keeps being refused is tried once more, then deferred: 451 4.4.0, never a bounce', async (t) => {
  const upstream = await startUpstream({ tls: 'starttls', cert: certs.server, xoauth2: { accepts: () => false, refuses: 'microsoft' } });
  t.teardown(() => upstream.close());
  const relay = await relayFor(t, upstream, microsoftAuth());
  t.match(await replyOf(send(relay)), /^451 4\.4\.0 /);
  t.equal(endpoint.requests.length, 2, 'the first token and one renewal, no more');
});

t.test('token endpoint down: queued mail is deferred, then delivered when it is back; nothing lost', async (t) => {
  const upstream = await providerUpstream(t, 'microsoft');
  const relay = await relayFor(t, upstream, microsoftAuth(), { mode: 'queue' });
  await endpoint.stop();
  const id = queuedId((await send(relay)).response);
  const now = Date.now();
  await relay.relay.scheduler.runDue(now);
  t.equal(upstream.received.length, 0);
  t.match(await relay.relay.spool.read(id), { attempts: 1, recipients: [{ status: 'pending', reply: /^451 4\.7\.0 Upstream acme: no OAuth2 access token \(unreachable\)/ }] });
  t.match(relay.logs.find((l) => l.event === 'oauth2-token-failed'), { upstream: 'acme', provider: 'microsoft', reason: 'unreachable' });
  const metrics = await (await fetch(`http://127.0.0.1:${relay.relay.opsPort}/metrics`)).text();
  t.match(metrics, /tenant_relay_oauth2_token_requests_total\{upstream="acme",provider="microsoft",result="failed",error="unreachable"\} 1/);
  await endpoint.restart();
  await relay.relay.scheduler.runDue(now + 6 * 60_000);
  t.equal(upstream.received.length, 1, 'delivered after the endpoint came back');
  t.equal(await relay.relay.spool.read(id), undefined, 'gone from the queue');
});

t.test('a token endpoint that hangs is given up on at its deadline', async (t) => {
  const upstream = await providerUpstream(t, 'microsoft');
  const tokens = new AccessTokens({ logger: createLogger('silent'), requestTimeoutMs: 1000 });
  endpoint.behaviour = 'hang';
  const config = parseConfig(`smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: starttls, ca: ${certs.caFile}, auth: ${microsoftAuth()} }\n`, 'relay.yaml', { SECRET: CLIENT_SECRET });
  const grant = (config.smarthost as SmtpUpstream).auth;
  if (grant?.kind !== 'oauth2') return t.fail('no grant');
  const started = Date.now();
  const err = await tokens.get(grant.grant, { upstream: 'smarthost' }).catch((e: Error & { reason?: string }) => e);
  t.match(err, { code: 'ETOKEN', reason: 'timeout' });
  t.ok(Date.now() - started < 5000, 'at the deadline');
});

t.test('a wrong client secret: pass-through answers 451 4.7.0 with the AADSTS code; queued mail waits, no DSN', async (t) => {
  const upstream = await providerUpstream(t, 'microsoft');
  const live = await relayFor(t, upstream, microsoftAuth('not-the-secret'));
  t.match(await replyOf(send(live)), /^451 4\.7\.0 Upstream acme: no OAuth2 access token \(invalid_client AADSTS7000215\)/);
  t.match(live.logs.find((l) => l.event === 'oauth2-token-failed'), { upstream: 'acme', reason: 'invalid_client AADSTS7000215', err: /Invalid client secret provided/ });

  const queued = await relayFor(t, upstream, microsoftAuth('not-the-secret'), { mode: 'queue' });
  const id = queuedId((await send(queued)).response);
  await queued.relay.scheduler.runDue(Date.now());
  t.match(await queued.relay.spool.read(id), { recipients: [{ status: 'pending' }] }, 'still queued');
  t.notOk(queued.logs.some((l) => l.event === 'dsn' || l.event === 'bounced'), 'no bounce');
  t.equal(upstream.received.length, 0);
});

t.test('the token comes before the connection: a token endpoint that refuses leaves the upstream untouched', async (t) => {
  const upstream = await providerUpstream(t, 'microsoft');
  const live = await relayFor(t, upstream, microsoftAuth('also-not-the-secret'));
  t.match(await replyOf(send(live)), /^451 4\.7\.0 Upstream acme: no OAuth2 access token \(invalid_client AADSTS7000215\)/);
  t.equal(upstream.connections.opened, 0, 'no connection opened, so no idle timeout of the upstream stands in for the token failure');
});

t.test('preflight mints a token and logs in with XOAUTH2: expiry and scopes shown, never the token; a wrong secret fails clearly', async (t) => {
  const upstream = await providerUpstream(t, 'microsoft');
  const file = path.join(dir, 'preflight.yaml');
  fs.writeFileSync(
    file,
    `smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: starttls, ca: ${certs.caFile}, auth: ${microsoftAuth(CLIENT_SECRET)} }
tenants:
  - { id: wrong, match: { domains: [wrong.test] }, upstream: { host: 127.0.0.1, port: ${upstream.port}, tls: starttls, ca: ${certs.caFile}, auth: ${microsoftAuth('not-the-secret')} } }
`,
  );
  const r = await runCli(['preflight', '--config', file]);
  t.equal(r.code, 1);
  t.match(r.stdout, /^ok {4}smarthost \(127\.0\.0\.1:\d+\) for \(no tenant\): reachable, TLSv1\.3, certificate expires in [01] days \(.*\), oauth2 token until \d{4}-\d\d-\d\dT[\d:.]+Z for SMTP\.SendAsApp, auth \(oauth2\) ok$/m);
  t.match(r.stdout, /^FAIL {2}wrong \(127\.0\.0\.1:\d+\) for wrong: reachable, .*auth \(oauth2\) no token\n {6}token endpoint: invalid_client AADSTS7000215 \(AADSTS7000215: Invalid client secret provided\./m);
  for (const token of endpoint.issued) t.notOk(r.stdout.includes(token) || r.stderr.includes(token), 'no token in the output');
  t.notOk(r.stdout.includes(CLIENT_SECRET), 'no secret in the output');
  t.equal(upstream.received.length, 0, 'no mail sent');
  const json = JSON.parse((await runCli(['preflight', '--config', file, '--json'])).stdout) as { authKind: string; token?: { scopes: string[] } }[];
  t.match(json.find((r) => r.authKind === 'oauth2' && r.token), { token: { expires: String, scopes: ['SMTP.SendAsApp'] }, auth: 'ok', ok: true });
});

t.test('send-test goes through an OAuth2 tenant like any other', async (t) => {
  const upstream = await providerUpstream(t, 'microsoft');
  const file = path.join(dir, 'send-test.yaml');
  fs.writeFileSync(
    file,
    `listen: [{ host: 127.0.0.1, port: ${await closedPort()} }]
ops: { port: ${await closedPort()} }
delivery: { spool: { path: ${dir}/send-test-spool } }
smarthost: { host: 127.0.0.1, port: 9, tls: none }
tenants:
  - id: acme
    match: { domains: [acme.test] }
    identity: { from: ${MAILBOX} }
    upstream: { host: 127.0.0.1, port: ${upstream.port}, tls: starttls, ca: ${certs.caFile}, auth: ${microsoftAuth(CLIENT_SECRET)} }
`,
  );
  const relay = await startRelay(loadConfigFile(file), { logger: silentLogger });
  t.teardown(() => relay.close(0));
  const r = await runCli(['send-test', '--config', file, '--tenant', 'acme', '--to', 'customer@example.com']);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(r.stdout, /^upstream: acme <customer@example\.com> sent: 250 /m);
  t.equal(upstream.received[0]?.user, MAILBOX, 'logged in with XOAUTH2 as the mailbox');
});

t.test('Microsoft 365 with basic authentication off (535 5.7.139): deferred with the reason, never bounced; preflight says configure oauth2', async (t) => {
  const upstream = await startUpstream({ tls: 'starttls', cert: certs.server, users: { relay: 'right' }, auth: () => [535, '5.7.139 Authentication unsuccessful, basic authentication is disabled. [SN4PR0501CA0054.namprd05.prod.outlook.com]'] });
  t.teardown(() => upstream.close());
  const relay = await relayFor(t, upstream, '{ kind: password, username: relay, password: right }');
  t.match(await replyOf(send(relay)), /^451 4\.7\.0 Upstream acme: basic authentication is disabled for this tenant: configure oauth2$/);
  const metrics = await (await fetch(`http://127.0.0.1:${relay.relay.opsPort}/metrics`)).text();
  t.match(metrics, /tenant_relay_upstream_errors_total\{upstream="acme",reason="upstream-basic-auth-disabled"\} 1/);

  const file = path.join(dir, 'basic.yaml');
  fs.writeFileSync(file, `smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: starttls, ca: ${certs.caFile}, username: relay, password: right }\n`);
  const r = await runCli(['preflight', '--config', file]);
  t.equal(r.code, 1);
  t.match(r.stdout, /auth \(password\) refused\n {6}basic authentication is disabled for this tenant \(or security defaults or a Conditional Access policy block it\): configure oauth2\n {6}upstream said: 535 5\.7\.139 /);
});

t.test('550 5.7.30 (basic authentication not supported for client submission) is read the same way', async (t) => {
  const upstream = await startUpstream({ tls: 'starttls', cert: certs.server, users: { relay: 'right' }, auth: () => [550, '5.7.30 Basic authentication is not supported for Client Submission'] });
  t.teardown(() => upstream.close());
  const relay = await relayFor(t, upstream, '{ kind: password, username: relay, password: right }');
  t.match(await replyOf(send(relay)), /^451 4\.7\.0 Upstream acme: basic authentication is disabled for this tenant: configure oauth2$/);
});

t.test("SubmissionQuotaExceeded (554 5.2.0) defers until the quota frees, instead of bouncing", async (t) => {
  let overQuota = true;
  const upstream = await providerUpstream(t, 'microsoft', {
    data: () => (overQuota ? [554, '5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException; Failed to process message due to a permanent exception with message [BeginDiagnosticData]'] : undefined),
  });
  const live = await relayFor(t, upstream, microsoftAuth());
  t.match(await replyOf(send(live)), /^451 4\.2\.0 Upstream acme: the mailbox's sending quota is used up; retried when it frees: 554 5\.2\.0 STOREDRV\.Submission\.Exception:SubmissionQuotaExceededException/);

  const queued = await relayFor(t, upstream, microsoftAuth(), { mode: 'queue' });
  const id = queuedId((await send(queued)).response);
  const now = Date.now();
  await queued.relay.scheduler.runDue(now);
  t.match(await queued.relay.spool.read(id), { recipients: [{ status: 'pending', reply: /^451 4\.2\.0 / }] }, 'held, not bounced');
  overQuota = false;
  await queued.relay.scheduler.runDue(now + 6 * 60_000);
  t.equal(upstream.received.length, 1, 'delivered once the quota freed');
});

t.test("Gmail's daily sending limit (550 5.4.5) defers like Microsoft's quota: held, then delivered, no bounce", async (t) => {
  let overLimit = true;
  const upstream = await providerUpstream(t, 'google', {
    data: () => (overLimit ? [550, '5.4.5 Daily user sending limit exceeded. For more information on Gmail sending limits go to https://support.google.com/a/answer/166852 - gsmtp'] : undefined),
  });
  const queued = await relayFor(t, upstream, googleAuth, { mode: 'queue' });
  const id = queuedId((await send(queued)).response);
  const now = Date.now();
  await queued.relay.scheduler.runDue(now);
  t.match(await queued.relay.spool.read(id), { recipients: [{ status: 'pending', reply: /^451 4\.2\.0 Upstream acme: the mailbox's sending quota is used up; retried when it frees: 550 5\.4\.5 Daily user sending limit exceeded/ }] }, 'held, not bounced');
  t.notOk(queued.logs.some((l) => l.event === 'bounced' || l.event === 'dsn-queued'), 'no bounce, no DSN to the sender');
  overLimit = false;
  await queued.relay.scheduler.runDue(now + 6 * 60_000);
  t.equal(upstream.received.length, 1, 'delivered once the limit freed');
});

t.test("a mailbox's own limits hold queued mail instead of running into the provider's refusal", async (t) => {
  const upstream = await providerUpstream(t, 'microsoft');
  const relay = await relayFor(t, upstream, microsoftAuth(), { mode: 'queue' });
  await relay.close();
  const limited = await startTestRelay(
    `
delivery: { mode: queue, spool: { path: \${SPOOL} } }
smarthost: { host: 127.0.0.1, port: 9, tls: none }
tenants:
  - id: acme
    match: { domains: [acme.test] }
    upstream: { host: 127.0.0.1, port: ${upstream.port}, tls: starttls, ca: ${certs.caFile}, auth: ${microsoftAuth()}, limits: { recipientsPerDay: 3 } }
`,
    { SECRET: CLIENT_SECRET },
    { manualScheduler: true },
  );
  t.teardown(() => limited.close());
  await sendThrough(limited.port, { from: 'app@acme.test', to: ['a@example.com', 'b@example.com'] });
  const second = queuedId((await sendThrough(limited.port, { from: 'app@acme.test', to: ['c@example.com', 'd@example.com'] })).response);
  await limited.relay.scheduler.runDue(Date.now());
  t.equal(upstream.received.length, 1, 'the first message went');
  t.match(await limited.relay.spool.read(second), { attempts: 0 }, 'the second waits in the spool, not tried');
});

t.test('no secret, key or token in the logs, explain, check, metrics or the spool', async (t) => {
  const upstream = await providerUpstream(t, 'microsoft');
  const relay = await relayFor(t, upstream, microsoftAuth(), { mode: 'queue' });
  await send(relay);
  await relay.relay.scheduler.runDue(Date.now());
  t.equal(upstream.received.length, 1);
  endpoint.revokeAll();
  endpoint.behaviour = 'refuse';
  await send(relay); // stays in the spool: its token was refused
  await relay.relay.scheduler.runDue(Date.now());
  t.ok(endpoint.issued.length > 0);

  const file = path.join(dir, 'secrets.yaml');
  fs.writeFileSync(
    file,
    `smarthost: { host: 127.0.0.1, port: ${upstream.port}, tls: starttls, ca: ${certs.caFile}, auth: ${googleAuth} }
tenants:
  - { id: acme, match: { domains: [acme.test] }, upstream: { host: 127.0.0.1, port: ${upstream.port}, tls: starttls, auth: ${microsoftAuth(CLIENT_SECRET)} } }
  - { id: cert, match: { domains: [cert.test] }, upstream: { host: 127.0.0.1, port: ${upstream.port}, tls: starttls, auth: ${certificateAuth} } }
`,
  );
  const check = await runCli(['check', '--config', file]);
  t.equal(check.code, 0, check.stderr);
  t.match(check.stdout, /acme .*starttls\s+oauth2 microsoft \(notifications@acme\.test\)/);
  t.match(check.stdout, /\(no match\)\s+smarthost .*starttls\s+oauth2 google \(notifications@acme\.test\)/);
  const explain = await runCli(['explain', '--config', file, '--from', 'app@acme.test']);
  t.match(explain.stdout, /upstream: acme \(127\.0\.0\.1:\d+ tls=starttls auth=oauth2 microsoft \(notifications@acme\.test\)\)/);
  const metrics = await (await fetch(`http://127.0.0.1:${relay.relay.opsPort}/metrics`)).text();

  const spoolFiles: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else spoolFiles.push(fs.readFileSync(path.join(d, e.name), 'latin1'));
    }
  };
  walk(relay.spoolDir);
  t.ok(spoolFiles.length > 0, 'something is in the spool');

  const keyLine = (pem: string) => pem.split('\n')[5] ?? pem;
  const secrets = [CLIENT_SECRET, keyLine(certs.server.key), keyLine(GOOGLE_KEY), ...endpoint.issued];
  const places = { logs: JSON.stringify(relay.logs), check: check.stdout + check.stderr, explain: explain.stdout + explain.stderr, metrics, spool: spoolFiles.join('\n') };
  for (const [where, text] of Object.entries(places)) {
    t.notOk(secrets.some((s) => text.includes(s)), `nothing secret in the ${where}`);
  }
});

t.test('config: an OAuth2 upstream with tls: none, a missing mailbox, or a secret and a certificate are refused with file:line and key', async (t) => {
  const errorsOf = (upstream: string) => {
    try {
      parseConfig(`smarthost: { host: 127.0.0.1, tls: none }\ntenants:\n  - id: acme\n    match: { domains: [acme.test] }\n    upstream: ${upstream}\n`, 'relay.yaml', { SECRET: 'x' });
      return '';
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      return err.message;
    }
  };
  t.match(errorsOf(`{ host: smtp.office365.com, tls: none, auth: ${microsoftAuth()} }`), /relay\.yaml:5:\d+: tenants\[0\]\.upstream\.tls: OAuth2 access tokens would travel in cleartext with tls: none/);
  t.match(errorsOf('{ host: smtp.office365.com, tls: starttls, auth: { kind: oauth2, provider: microsoft, tenantId: contoso.example, clientId: app, clientSecret: x } }'), /relay\.yaml:5:\d+: tenants\[0\]\.upstream\.auth\.mailbox: /);
  t.match(
    errorsOf(`{ host: smtp.office365.com, tls: starttls, auth: { kind: oauth2, provider: microsoft, tenantId: contoso.example, clientId: app, clientSecret: x, certificate: "\${file:${CERT_FILE}}", privateKey: "\${file:${CERT_KEY_FILE}}", mailbox: ${MAILBOX} } }`),
    /tenants\[0\]\.upstream\.auth\.clientSecret: use clientSecret, or certificate and privateKey, not both/,
  );
  t.match(errorsOf(`{ host: smtp.gmail.com, tls: starttls, auth: { kind: oauth2, provider: google, serviceAccount: ${SERVICE_ACCOUNT}, privateKey: not-a-key, mailbox: ${MAILBOX} } }`), /tenants\[0\]\.upstream\.auth\.privateKey: is not the service account's RSA private key/);
  t.match(errorsOf(`{ host: smtp.example, tls: starttls, auth: { kind: oauth2, provider: client-credentials, clientId: a, clientSecret: b, mailbox: ${MAILBOX}, tokenUrl: "http://idp.example/token" } }`), /auth\.tokenUrl: must be https:\/\//);
  t.match(errorsOf(`{ host: smtp.example, tls: starttls, username: u, password: p, auth: ${microsoftAuth()} }`), /upstream\.username: use auth, or username and password, not both/);
});

t.test('a token endpoint with a certificate nobody trusts is refused: certificate checks stay on', async (t) => {
  const untrusted = await startTokenEndpoint({ clients: { 'app-secret': { secret: CLIENT_SECRET } }, tls: certs.selfSigned });
  t.teardown(() => untrusted.close());
  const trusted = await startTokenEndpoint({ clients: { 'app-secret': { secret: CLIENT_SECRET } }, tls: certs.server });
  t.teardown(() => trusted.close());
  const grantFor = (base: string, ca: string) => {
    const config = parseConfig(
      `smarthost: { host: 127.0.0.1, tls: starttls, auth: { kind: oauth2, provider: microsoft, tenantId: contoso.example, clientId: app-secret, clientSecret: x${CLIENT_SECRET.slice(1)}, mailbox: ${MAILBOX}, tokenUrl: "${base}/contoso.example/oauth2/v2.0/token"${ca} } }\n`.replace(`x${CLIENT_SECRET.slice(1)}`, CLIENT_SECRET),
      'relay.yaml',
      {},
    );
    const auth = (config.smarthost as SmtpUpstream).auth;
    if (auth?.kind !== 'oauth2') throw new Error('no grant');
    return auth.grant;
  };
  const tokens = new AccessTokens({ logger: createLogger('silent') });
  const refused = await tokens.get(grantFor(untrusted.base, ''), { upstream: 'smarthost' }).catch((e: Error) => e);
  t.match(refused, { code: 'ETOKEN', reason: 'unreachable', message: /SELF_SIGNED|self.signed/i });
  t.equal(untrusted.requests.length, 0, 'no secret sent to it');
  const issued = await tokens.get(grantFor(trusted.base, `, ca: ${certs.caFile}`), { upstream: 'smarthost' });
  t.ok(issued.accessToken, 'https with the private CA works');
});

t.test("tokens on a fake clock: cached while fresh, one refresh before expiry however many ask, the old one kept if the refresh fails", async (t) => {
  let now = Date.now();
  const tokens = new AccessTokens({ logger: createLogger('silent'), now: () => now });
  const config = parseConfig(`smarthost: { host: 127.0.0.1, tls: starttls, auth: ${microsoftAuth()} }\n`, 'relay.yaml', { SECRET: CLIENT_SECRET });
  const auth = (config.smarthost as SmtpUpstream).auth;
  if (auth?.kind !== 'oauth2') return t.fail('no grant');
  const who = { upstream: 'smarthost' };
  endpoint.expiresIn = 3600;
  const first = await Promise.all(Array.from({ length: 20 }, () => tokens.get(auth.grant, who)));
  t.equal(new Set(first.map((x) => x.accessToken)).size, 1);
  t.equal(endpoint.requests.length, 1, 'twenty callers at once: one request');
  now += 54 * 60_000;
  await tokens.get(auth.grant, who);
  t.equal(endpoint.requests.length, 1, 'still fresh six minutes before expiry');
  now += 2 * 60_000;
  const refreshed = await Promise.all(Array.from({ length: 5 }, () => tokens.get(auth.grant, who)));
  t.equal(endpoint.requests.length, 2, 'refreshed once, within five minutes of expiry');
  t.not(refreshed[0]?.accessToken, first[0]?.accessToken);
  now += 56 * 60_000;
  endpoint.behaviour = 'server-error';
  const kept = await tokens.get(auth.grant, who);
  t.equal(kept.accessToken, refreshed[0]?.accessToken, 'the endpoint failed: the old token, still valid, is used');
  t.same(tokens.facts(auth.grant)?.scopes, ['SMTP.SendAsApp']);
  now += 5 * 60_000;
  t.match(await tokens.get(auth.grant, who).catch((e: Error) => e), { code: 'ETOKEN', reason: 'temporarily_unavailable' }, 'expired and no new one: an error');
});

t.test('the ops endpoint POST /preflight checks a candidate upstream under the tenant-entered host policy, stores nothing', async (t) => {
  const upstream = await providerUpstream(t, 'microsoft');
  const candidate = {
    host: '127.0.0.1',
    port: upstream.port,
    tls: 'starttls',
    auth: { kind: 'oauth2', provider: 'microsoft', tenantId: 'contoso.example', clientId: 'app-secret', clientSecret: CLIENT_SECRET, mailbox: MAILBOX, tokenUrl: MICROSOFT_TOKEN_URL },
  };
  const strict = await startTestRelay(`ops: { port: 0, token: ops-token-0123456789 }\nsmarthost: { host: 127.0.0.1, port: 9, tls: none }\n`);
  t.teardown(() => strict.close());
  const post = (relay: TestRelay, body: unknown, token: string | null = 'ops-token-0123456789') =>
    fetch(`http://127.0.0.1:${relay.relay.opsPort}/preflight`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
  t.equal((await post(strict, { upstream: candidate }, null)).status, 401, 'no token: 401');
  t.equal((await post(strict, { upstream: candidate }, 'wrong-token-0123456789')).status, 401, 'a wrong token: 401');
  const otherPort = await post(strict, { upstream: candidate });
  t.equal(otherPort.status, 400);
  t.match(await otherPort.json(), { ok: false, problems: [/^port: \d+ is not a port the upstream host policy allows \(25, 465, 587, 2525\)$/] }, 'only the ports mail uses');
  const forbidden = await post(strict, { upstream: { ...candidate, port: 587 } });
  t.equal(forbidden.status, 200);
  t.match(await forbidden.json(), { ok: false, reachable: false, category: 'host-forbidden', error: /127\.0\.0\.1, which the upstream host policy forbids/ }, 'loopback is not a host a tenant may type in');
  const bad = await post(strict, { upstream: { host: 'smtp.office365.com', tls: 'none', auth: candidate.auth } });
  t.equal(bad.status, 400);
  t.match(await bad.json(), { ok: false, problems: [/tls: OAuth2 access tokens would travel in cleartext/] });

  // A platform whose tenants may name loopback hosts (as its tenant source allows), as a real process
  // that trusts the test CA the way operators add one (NODE_EXTRA_CA_CERTS): the whole check runs.
  const file = path.join(dir, 'ops-preflight.yaml');
  fs.writeFileSync(
    file,
    `listen: [{ host: 127.0.0.1, port: 0 }]\nops: { port: 0, token: ops-token-0123456789 }\ndelivery: { mode: passthrough }\nsmarthost: { host: 127.0.0.1, port: 9, tls: none }\ntenantSource: { url: "http://127.0.0.1:9/relay", token: t, upstreamHosts: { allow: [127.0.0.1/32], ports: [] } }\n`,
  );
  const serve = spawnCli(['serve', '--config', file], { env: { NODE_EXTRA_CA_CERTS: certs.caFile } });
  t.teardown(() => {
    serve.child.kill('SIGTERM');
    return serve.done;
  });
  const opsPort = await listeningPort(serve.child, 'ops');
  const answer = await fetch(`http://127.0.0.1:${opsPort}/preflight`, { method: 'POST', headers: { authorization: 'Bearer ops-token-0123456789' }, body: JSON.stringify({ upstream: candidate }) });
  t.equal(answer.status, 200);
  const report = (await answer.json()) as Record<string, unknown>;
  t.match(report, { authKind: 'oauth2', reachable: true, tlsVersion: 'TLSv1.3', token: { expires: String, scopes: ['SMTP.SendAsApp'] }, auth: 'ok', ok: true }, JSON.stringify(report));
  t.notOk(JSON.stringify(report).includes(CLIENT_SECRET) || endpoint.issued.some((tok) => JSON.stringify(report).includes(tok)), 'neither secret nor token in the answer');
  const off = await startTestRelay(`ops: { port: 0 }\nsmarthost: { host: 127.0.0.1, port: 9, tls: none }\n`);
  t.teardown(() => off.close());
  t.equal((await post(off, { upstream: candidate })).status, 404, 'without ops.token the admin endpoints are off');
  t.equal(upstream.received.length, 0);
});
