// Upstreams that know the relay by a TLS client certificate (an Exchange Online inbound connector per
// tenant, New-InboundConnector -TlsSenderCertificateName): the certificate a tenant's upstream names is
// presented, renewed files are used without a reload, records name installed certificates (only their
// tenant's) and never carry one, and preflight and /metrics say how long each is valid.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parseConfig } from '../config/load.js';
import { parseTenantRecord } from '../config/tenant-record.js';
import type { Config } from '../config/types.js';
import { silentLogger } from '../relay/log.js';
import { startRelay } from '../relay/runtime/start-relay.js';
import { makeClientCertificate, makeTestCerts } from './helpers/certs.js';
import { runCli } from './helpers/cli.js';
import { replyOf, sendThrough, startTestRelay } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';
import { until } from './helpers/wait.js';

const certs = makeTestCerts();
const acme = makeClientCertificate('acme.test', 30);
const acmeRenewed = makeClientCertificate('acme.test', 90);
const globex = makeClientCertificate('globex.test', 30);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-client-certs-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

/** An upstream that takes mail only from a client presenting a certificate of the test CA. */
async function connectorUpstream(t: Test) {
  const upstream = await startUpstream({ tls: 'starttls', cert: certs.server, clientCa: certs.ca });
  t.teardown(() => upstream.close());
  return upstream;
}

const tenantWith = (port: number, tls: string) => `
smarthost: { host: 127.0.0.1, port: 9, tls: none }
tenants:
  - id: acme
    match: { domains: [acme.test] }
    upstream: { host: 127.0.0.1, port: ${port}, tls: ${tls}, ca: ${certs.caFile}, connectTimeoutSeconds: 2, timeoutSeconds: 5 }
`;

t.test('the upstream gets the certificate its tenant names; a relay presenting none is refused at TLS and sends nothing in cleartext', async (t) => {
  const upstream = await connectorUpstream(t);
  const relay = await startTestRelay(tenantWith(upstream.port, `{ mode: starttls, clientCertificate: ${acme.certFile}, clientKey: ${acme.keyFile} }`));
  t.teardown(() => relay.close());
  t.match((await sendThrough(relay.port, { from: 'app@acme.test', to: 'someone@example.com' })).response, /^250 /);
  t.equal(upstream.received.length, 1, 'delivered with no SMTP AUTH: the certificate is the login');
  t.same(upstream.clientCertificates.map((c) => c.cn), ['acme.test']);

  const without = await startTestRelay(tenantWith(upstream.port, 'starttls'));
  t.teardown(() => without.close());
  t.match(await replyOf(sendThrough(without.port, { from: 'app@acme.test', to: 'someone@example.com' })), /^451 4\.4\.0 TLS with upstream acme failed/);
  t.equal(upstream.received.length, 1, 'nothing more arrived');
});

t.test('a renewed certificate file is presented on the next connection, without a reload', async (t) => {
  const upstream = await connectorUpstream(t);
  const certFile = path.join(dir, 'acme.pem');
  const keyFile = path.join(dir, 'acme.key');
  fs.copyFileSync(acme.certFile, certFile);
  fs.copyFileSync(acme.keyFile, keyFile);
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, `listen: [{ host: 127.0.0.1, port: 0 }]\nops: { port: 0 }\ndelivery: { mode: passthrough, spool: { path: ${dir}/spool } }\n${tenantWith(upstream.port, `{ mode: starttls, clientCertificate: ${certFile}, clientKey: ${keyFile} }`)}`);
  const relay = await startRelay(parseConfig(fs.readFileSync(file, 'utf8'), file), { logger: silentLogger, configFile: file });
  t.teardown(() => relay.close(0));
  const port = relay.addresses[0]?.port ?? 0;
  await sendThrough(port, { from: 'app@acme.test', to: 'one@example.com' });
  const before = relay.config();
  // As a Kubernetes Secret or certbot renews it: the files replaced in place, key first.
  fs.copyFileSync(acmeRenewed.keyFile, keyFile);
  fs.copyFileSync(acmeRenewed.certFile, certFile);
  const presented = () => {
    const u = relay.config().tenants[0]?.upstream;
    return u?.kind === 'smtp' ? u.clientCertificate?.cert : undefined;
  };
  t.ok(await until(() => relay.config() !== before && presented() === acmeRenewed.cert, 5000), 'the new certificate is in the running snapshot within 5 s');
  await sendThrough(port, { from: 'app@acme.test', to: 'two@example.com' });
  const [first, second] = upstream.clientCertificates;
  t.ok(first && second && first.fingerprint !== second.fingerprint, 'the second message went with the renewed certificate');
  t.equal(upstream.received.length, 2);
});

function configWithInstalled(tenants = ''): Config {
  return parseConfig(
    `smarthost: { host: 127.0.0.1, port: 9, tls: none }
clientCertificates:
  acme-connector: { cert: ${acme.certFile}, key: ${acme.keyFile} }
  platform: { cert: ${globex.certFile}, key: ${globex.keyFile}, tenants: ["*"] }
${tenants}`,
    'relay.yaml',
  );
}

t.test("a platform record names an installed certificate of its own tenant; it never carries one, nor presents another tenant's", async (t) => {
  const config = configWithInstalled();
  const policy = { denySpecialAddresses: false, denyPrivateAddresses: false, allow: [], ports: [] };
  const record = (domain: string, tls: unknown) => ({ id: domain.split('.')[0], match: { domains: [domain] }, upstream: { host: 'smtp.example.com', tls } });
  const own = parseTenantRecord(record('acme.test', { mode: 'starttls', clientCertificateName: 'acme-connector' }), { by: 'id', value: 'acme' }, config, policy);
  t.ok(own.ok, 'acme names the certificate for acme.test');
  t.match(own.ok && own.tenant.upstream, { clientCertificate: { label: 'acme-connector', cert: acme.cert } });

  const other = parseTenantRecord(record('evil.test', { mode: 'starttls', clientCertificateName: 'acme-connector' }), { by: 'id', value: 'evil' }, config, policy);
  t.match(other, { ok: false, problems: [/^upstream\.tls\.clientCertificateName: is not a certificate of tenant "evil"/] }, "another tenant cannot present acme's connector certificate");
  const shared = parseTenantRecord(record('evil.test', { mode: 'starttls', clientCertificateName: 'platform' }), { by: 'id', value: 'evil' }, config, policy);
  t.ok(shared.ok, 'a certificate listed for every tenant is');

  const carried = parseTenantRecord(record('acme.test', { mode: 'starttls', clientCertificate: acme.certFile, clientKey: acme.keyFile }), { by: 'id', value: 'acme' }, config, policy);
  t.match(carried, { ok: false, problems: [/^upstream\.tls: clientCertificate and clientKey are local files, only for the config files/] });
  const unknown = parseTenantRecord(record('acme.test', { mode: 'starttls', clientCertificateName: 'nope' }), { by: 'id', value: 'acme' }, config, policy);
  t.match(unknown, { ok: false, problems: [/^upstream\.tls\.clientCertificateName: "nope" is not a certificate under clientCertificates/] });
});

t.test('config: a certificate-only upstream is valid; half a pair, a key of another certificate, or a certificate without TLS is refused at its key', async (t) => {
  t.doesNotThrow(() => configWithInstalled(`tenants:\n  - id: acme\n    match: { domains: [acme.test] }\n    upstream: { host: smtp.example.com, tls: { mode: starttls, clientCertificateName: acme-connector } }\n`));
  const bad = (tls: string) => {
    try {
      parseConfig(`smarthost: { host: smtp.example.com, tls: ${tls} }\n`, 'relay.yaml');
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  };
  t.match(bad(`{ mode: starttls, clientCertificate: ${acme.certFile} }`), /smarthost\.tls\.clientKey: clientCertificate and clientKey go together/);
  t.match(bad(`{ mode: starttls, clientCertificate: ${acme.certFile}, clientKey: ${globex.keyFile} }`), /smarthost\.tls\.clientKey: does not belong to the certificate/);
  t.match(bad(`{ mode: none, clientCertificate: ${acme.certFile}, clientKey: ${acme.keyFile} }`), /smarthost\.tls\.mode: a client certificate is presented in TLS: use starttls or implicit/);
  t.match(bad(`{ mode: starttls, clientCertificateName: acme-connector }`), /smarthost\.tls\.clientCertificateName: "acme-connector" is not a certificate under clientCertificates/);
});

t.test('preflight names the certificate, says whether it is the tenant\'s and how long it lasts; /metrics carries its expiry; its key is shown nowhere', async (t) => {
  const upstream = await connectorUpstream(t);
  const file = path.join(dir, 'preflight.yaml');
  fs.writeFileSync(file, `listen: [{ host: 127.0.0.1, port: 0 }]\nops: { port: 0 }\ndelivery: { mode: passthrough, spool: { path: ${dir}/spool-p } }\n${tenantWith(upstream.port, `{ mode: starttls, clientCertificate: ${acme.certFile}, clientKey: ${acme.keyFile} }`)}`);
  const r = await runCli(['preflight', '--config', file, '--tenant', 'acme']);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(r.stdout, new RegExp(`client certificate ${acme.certFile.replaceAll('.', '\\.')} for acme\\.test \\(acme\\.test is a domain of the tenant\\), expires in (29|30) days`));
  const json = await runCli(['preflight', '--config', file, '--tenant', 'acme', '--json']);
  t.match(JSON.parse(json.stdout), [{ clientCertificate: { names: ['acme.test'], tenantDomain: 'acme.test', daysLeft: Number } }]);
  t.notMatch(json.stdout + r.stdout, /PRIVATE KEY/, 'the key is not printed');

  const relay = await startRelay(parseConfig(fs.readFileSync(file, 'utf8'), file), { logger: silentLogger });
  t.teardown(() => relay.close(0));
  const metrics = await (await fetch(`http://127.0.0.1:${relay.opsPort}/metrics`)).text();
  const expiry = /tenant_relay_client_certificate_expiry_timestamp_seconds\{certificate="([^"]+)"\} (\d+)/.exec(metrics);
  t.equal(expiry?.[1], acme.certFile);
  t.ok(Number(expiry?.[2]) * 1000 - Date.now() > 28 * 86_400_000, 'about 30 days from now');
});
