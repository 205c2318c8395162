// Tenants kept in files beside the config: a directory of YAML files (one tenant, or a list, per file)
// validated with the config as one snapshot, with errors pointing at the tenant file, line and key; found
// by AUTH user, address, domain and parent domain through indexes, however many there are.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError, loadConfigFile } from '../config/load.js';
import { startRelay } from '../relay/runtime/start-relay.js';
import { silentLogger } from '../relay/log.js';
import { decide } from '../relay/routing/decide.js';
import { sendThrough } from './helpers/relay.js';
import { startUpstream } from './helpers/upstream.js';

/** A config file and a tenants.d directory beside it, in a fresh temporary folder. */
function layout(t: Test, files: Record<string, string>, extra = '') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenant-relay-files-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'tenants.d'));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, 'tenants.d', name), text);
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, `smarthost: { host: 127.0.0.1, tls: none }\ntenantFiles: [${path.join(dir, 'tenants.d')}]\n${extra}`);
  return { dir, file, tenantsDir: path.join(dir, 'tenants.d') };
}

function errorsOf(file: string): string[] {
  try {
    loadConfigFile(file, {});
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.message.split('\n');
  }
}

t.test('a directory of tenant files loads with the config: one tenant or a list per file, *.yaml and *.yml, name order', async (t) => {
  const { file } = layout(
    t,
    {
      'acme.yaml': 'id: acme\nmatch: { domains: [acme.test, "*.acme.test"] }\n',
      'more.yml': '- id: globex\n  match: { addresses: [alerts@globex.test] }\n- id: initech\n  match: { domains: [initech.test] }\n',
      'README.txt': 'not a tenant',
      '.hidden.yaml': 'id: hidden',
    },
    'tenants:\n  - id: inline\n    match: { domains: [inline.test] }\n',
  );
  const config = loadConfigFile(file, {});
  t.same(
    config.tenants.map((x) => x.id),
    ['inline', 'acme', 'globex', 'initech'],
  );
  t.equal(config.directory.byDomain('mail.eu.acme.test')?.tenant.id, 'acme');
  t.equal(config.directory.byAddress('Alerts@Globex.test')?.id, 'globex');
  t.ok(Object.isFrozen(config.tenants[1]));
});

t.test('an error in a tenant file names that file, the line and the key within it', async (t) => {
  const { file, tenantsDir } = layout(t, {
    'acme.yaml': 'id: acme\nmatch: { domains: [acme.test] }\nupstream:\n  host: smtp.acme.test\n  port: 70000\n  tls: starttls\n',
    'list.yaml': '- id: ok\n- id: second\n  match: { domainz: [x.test] }\n',
  });
  t.same(errorsOf(file), [
    `${tenantsDir}/acme.yaml:5:3: upstream.port: must be between 1 and 65535`,
    `${tenantsDir}/list.yaml:3:12: [1].match.domainz: unknown key (did you mean domains?)`,
  ]);
});

t.test('a domain claimed in two tenant files is refused at the second claim', async (t) => {
  const { file, tenantsDir } = layout(t, {
    'a.yaml': 'id: a\nmatch: { domains: [shared.test] }\n',
    'b.yaml': 'id: b\nmatch:\n  domains: [other.test, shared.test]\n',
  });
  t.same(errorsOf(file), [`${tenantsDir}/b.yaml:3:25: match.domains[1]: domain "shared.test" is already claimed by tenant "a"`]);
});

t.test('the same tenant id in the config file and a tenant file is refused', async (t) => {
  const { file, tenantsDir } = layout(t, { 'acme.yaml': 'id: acme\n' }, 'tenants: [{ id: acme }]\n');
  t.same(errorsOf(file), [`${tenantsDir}/acme.yaml:1:1: id: tenant id "acme" is used twice`]);
});

t.test('a YAML syntax error in a tenant file, or a file that is not a tenant, is reported in that file', async (t) => {
  const { file, tenantsDir } = layout(t, { 'broken.yaml': 'id: acme\nmatch: { domains: [acme.test }\n', 'scalar.yaml': 'just words\n' });
  const errors = errorsOf(file);
  t.match(errors[0], new RegExp(`^${tenantsDir}/broken\\.yaml:2:\\d+: `));
  t.match(errors.at(-1), `${tenantsDir}/scalar.yaml:1:1: must hold one tenant (a mapping with an id) or a list of tenants`);
});

t.test('a tenantFiles entry that does not exist is reported at its line in the config file', async (t) => {
  const { file, dir } = layout(t, {});
  fs.writeFileSync(file, `smarthost: { host: 127.0.0.1, tls: none }\ntenantFiles:\n  - ${dir}/missing.d\n`);
  t.same(errorsOf(file), [`${file}:3:5: tenantFiles[0]: cannot read ${dir}/missing.d: ENOENT`]);
});

t.test('10,000 tenants in 10,000 files load, and each is found by AUTH user, address, domain and parent domain', async (t) => {
  const files: Record<string, string> = {};
  const users: string[] = [];
  for (let i = 0; i < 10_000; i++) {
    files[`t${String(i).padStart(5, '0')}.yaml`] =
      `id: t${i}\nmatch:\n  authUsers: [app${i}]\n  addresses: [noreply@mail${i}.example]\n  domains: [t${i}.example, "*.t${i}.example"]\nupstream: { host: smtp.t${i}.example, tls: starttls, username: u${i}, password: p${i} }\nidentity: { from: noreply@t${i}.example, displayName: Tenant ${i} }\n`;
    users.push(`{ username: app${i}, passwordHash: "scrypt$16384$8$1$c2FsdA==$a2V5" }`);
  }
  const { file } = layout(t, files, `inbound: { users: [${users.join(', ')}] }\n`);
  const config = loadConfigFile(file, {});
  t.equal(config.tenants.length, 10_000);
  for (const i of [0, 4321, 9999]) {
    t.equal(config.directory.byAuthUser(`app${i}`)?.id, `t${i}`);
    t.equal(config.directory.byAddress(`noreply@mail${i}.example`)?.id, `t${i}`);
    t.equal(config.directory.byDomain(`t${i}.example`)?.tenant.id, `t${i}`);
    t.equal(config.directory.byDomain(`a.b.t${i}.example`)?.tenant.id, `t${i}`);
    const decision = decide({ mailFrom: `someone@t${i}.example` }, undefined, config);
    t.match(decision, { kind: 'route', tenant: { id: `t${i}` }, route: { via: 'tenant', upstream: { host: `smtp.t${i}.example` } } });
  }
});

t.test('a running relay picks up a tenant file added to the directory, without a restart', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const { file, tenantsDir, dir } = layout(t, {});
  fs.writeFileSync(
    file,
    `listen: [{ host: 127.0.0.1, port: 0 }]\nops: { enabled: false }\ndelivery: { mode: passthrough, spool: { path: ${dir}/spool } }\nsmarthost: { host: 127.0.0.1, port: 1, tls: none }\ntenantFiles: [${tenantsDir}]\ntenantFileUpstreamHosts: { allow: [127.0.0.1/32], ports: [] }\n`,
  );
  const relay = await startRelay(loadConfigFile(file, {}), { logger: silentLogger, configFile: file, watchConfig: true });
  t.teardown(() => relay.close(0));
  fs.writeFileSync(path.join(tenantsDir, 'late.yaml'), `id: late\nmatch: { domains: [late.test] }\nupstream: { host: 127.0.0.1, port: ${upstream.port}, tls: none }\n`);
  for (let i = 0; i < 100 && relay.config().tenants.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(relay.config().tenants[0]?.id, 'late');
  t.match((await sendThrough(relay.addresses[0]?.port ?? 0, { from: 'a@late.test', to: 'x@example.com' })).response, /^250 /);
  t.equal(upstream.received.length, 1);
});

t.test("tenant files are held to a safe host policy by default: no loopback, private or metadata host, mail's ports only", async (t) => {
  const inside = layout(t, { 'inside.yaml': 'id: inside\nmatch: { domains: [inside.test] }\nupstream: { host: 169.254.169.254, port: 25, tls: none }\n' });
  const upstream = loadConfigFile(inside.file, {}).directory.byId('inside')?.upstream;
  t.match(upstream, { kind: 'smtp', hostPolicy: { denySpecialAddresses: true, denyPrivateAddresses: true, ports: [25, 465, 587, 2525] } }, 'the file tenant carries the policy delivery applies');
  const redis = layout(t, { 'redis.yaml': 'id: redis\nmatch: { domains: [redis.test] }\nupstream: { host: smtp.redis.test, port: 6379, tls: starttls }\n' });
  t.same(errorsOf(redis.file), [`${redis.tenantsDir}/redis.yaml:3:36: upstream.port: 6379 is not a port the upstream host policy allows (25, 465, 587, 2525)`]);
  const widened = layout(t, { 'redis.yaml': 'id: redis\nmatch: { domains: [redis.test] }\nupstream: { host: smtp.redis.test, port: 6379, tls: starttls }\n' }, 'tenantFileUpstreamHosts: { ports: [] }\n');
  t.same(errorsOf(widened.file), [], 'an operator may widen it');
});
