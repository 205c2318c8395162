// An OAuth2 access token belongs to the grant that obtained it. A tenant that copies another's public
// grant facts (Entra tenant id, client id, mailbox, a Google service account's name) with a wrong secret
// or key never sends with the other's token, never receives it, and cannot make the relay drop it.
// Real parts: a token endpoint that checks secrets and signatures as the providers do, the victim's
// upstream, and the attacker's own upstream that records every bearer token it is offered.
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { makeTestCerts } from './helpers/certs.js';
import { replyOf, sendThrough, startTestRelay, type TestRelay } from './helpers/relay.js';
import { startTokenEndpoint } from './helpers/token-endpoint.js';
import { startUpstream, type Upstream } from './helpers/upstream.js';

const certs = makeTestCerts();
const SECRET = 'Qx~8Q~victims-own-secret.Zk1';
const MAILBOX = 'notifications@victim.test';
const google = generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
const SERVICE_ACCOUNT = 'relay@victim-project.iam.gserviceaccount.com';
const pem = (k: typeof google) => k.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

const endpoint = await startTokenEndpoint({
  clients: {
    'shared-app': { secret: SECRET },
    [SERVICE_ACCOUNT]: { publicKey: google.publicKey.export({ type: 'spki', format: 'pem' }).toString() },
  },
});
t.teardown(() => endpoint.close());
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-isolation-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const keyFile = (name: string, text: string) => {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
};
const VICTIM_KEY = keyFile('victim.pem', pem(google));
const EVIL_KEY = keyFile('evil.pem', pem(other));

/** The victim's provider: takes only the tokens the endpoint issued. */
async function providerUpstream(t: Test): Promise<Upstream> {
  const u = await startUpstream({ tls: 'starttls', cert: certs.server, xoauth2: { accepts: (user, token) => user === MAILBOX && endpoint.valid.has(token), refuses: 'microsoft' } });
  t.teardown(() => u.close());
  return u;
}

/** The attacker's own server: takes any token, keeps a copy, or refuses every one (535). */
async function attackerUpstream(t: Test, seen: string[], refuse = false): Promise<Upstream> {
  const u = await startUpstream({
    tls: 'starttls',
    cert: certs.server,
    xoauth2: {
      accepts: (_user, token) => {
        seen.push(token);
        return !refuse;
      },
      refuses: 'microsoft',
    },
  });
  t.teardown(() => u.close());
  return u;
}

const microsoft = (secret: string) =>
  `{ kind: oauth2, provider: microsoft, tenantId: contoso.example, clientId: shared-app, clientSecret: "${secret}", mailbox: ${MAILBOX}, tokenUrl: "${endpoint.base}/contoso.example/oauth2/v2.0/token" }`;
const googleGrant = (keyFilePath: string) =>
  `{ kind: oauth2, provider: google, serviceAccount: ${SERVICE_ACCOUNT}, privateKey: "\${file:${keyFilePath}}", mailbox: ${MAILBOX}, tokenUrl: "${endpoint.base}/token" }`;

async function relayWith(t: Test, victim: { upstream: Upstream; auth: string }, evil: { upstream: Upstream; auth: string }): Promise<TestRelay> {
  const upstream = (u: Upstream, auth: string) => `{ host: 127.0.0.1, port: ${u.port}, tls: starttls, ca: ${certs.caFile}, timeoutSeconds: 5, connectTimeoutSeconds: 2, auth: ${auth} }`;
  const relay = await startTestRelay(`
smarthost: { host: 127.0.0.1, port: 9, tls: none }
tenants:
  - { id: victim, match: { domains: [victim.test] }, upstream: ${upstream(victim.upstream, victim.auth)} }
  - { id: evil, match: { domains: [evil.test] }, upstream: ${upstream(evil.upstream, evil.auth)} }
`);
  t.teardown(() => relay.close());
  return relay;
}

t.beforeEach(() => {
  endpoint.requests.length = 0;
  endpoint.behaviour = 'issue';
});

t.test("Microsoft: a tenant with the victim's tenant id, client id and mailbox but a wrong secret never gets the victim's token", async (t) => {
  const stolen: string[] = [];
  const victim = { upstream: await providerUpstream(t), auth: microsoft(SECRET) };
  const evil = { upstream: await attackerUpstream(t, stolen), auth: microsoft('a-wrong-secret-the-attacker-typed') };
  const relay = await relayWith(t, victim, evil);
  t.match((await sendThrough(relay.port, { from: 'app@victim.test', to: 'a@example.com' })).response, /^250 /, 'the victim sends');
  t.equal(endpoint.issued.length, 1);
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@evil.test', to: 'b@example.com' })), /^451 4\.7\.0 Upstream evil: no OAuth2 access token \(invalid_client AADSTS7000215\)/, "the attacker's own grant is refused");
  t.same(stolen, [], "no token reached the attacker's server");
  t.equal(evil.upstream.received.length, 0, 'the attacker sent nothing');
  t.match(endpoint.requests.map((r) => r.form.client_secret), [SECRET, 'a-wrong-secret-the-attacker-typed'], 'the attacker asked with its own secret');
});

t.test("Google: a service account's name and mailbox with another RSA key never get the victim's token", async (t) => {
  const stolen: string[] = [];
  const victim = { upstream: await providerUpstream(t), auth: googleGrant(VICTIM_KEY) };
  const evil = { upstream: await attackerUpstream(t, stolen), auth: googleGrant(EVIL_KEY) };
  const relay = await relayWith(t, victim, evil);
  t.match((await sendThrough(relay.port, { from: 'app@victim.test', to: 'a@example.com' })).response, /^250 /);
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@evil.test', to: 'b@example.com' })), /^451 4\.7\.0 Upstream evil: no OAuth2 access token \(invalid_grant\)/);
  t.same(stolen, []);
});

t.test("a token one tenant's server refuses is dropped for that tenant's grant only: the other's stays cached", async (t) => {
  // Two tenants with the very same grant (both know the secret): each gets its own token.
  const refused: string[] = [];
  const victim = { upstream: await providerUpstream(t), auth: microsoft(SECRET) };
  const other = { upstream: await attackerUpstream(t, refused, true), auth: microsoft(SECRET) };
  const relay = await relayWith(t, victim, other);
  await sendThrough(relay.port, { from: 'app@victim.test', to: 'a@example.com' });
  t.equal(endpoint.requests.length, 1);
  t.match(await replyOf(sendThrough(relay.port, { from: 'app@evil.test', to: 'b@example.com' })), /^451 4\.4\.0 /, 'its server refuses every token: deferred');
  t.equal(endpoint.requests.length, 3, 'a token of its own, and one renewal of it');
  t.notOk(refused.includes(endpoint.issued[0] ?? ''), "the victim's token was never offered to the other tenant's server");
  await victim.upstream.dropConnections();
  t.match((await sendThrough(relay.port, { from: 'app@victim.test', to: 'c@example.com' })).response, /^250 /);
  t.equal(endpoint.requests.length, 3, "the victim's token was not dropped: no new request");
  t.equal(victim.upstream.received.length, 2);
});
