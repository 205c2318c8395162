// The config is parsed once into a frozen snapshot; every problem is reported as file:line:column,
// the key path and what is wrong, and the relay refuses to start on it.
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { z } from 'zod';
import { ConfigError, loadConfigFile, parseConfig } from '../config/load.js';
import { configSchema } from '../config/schema.js';

const SMARTHOST = 'smarthost: { host: 127.0.0.1, tls: none }\n';

/** The error lines a config text produces, or [] when it loads. */
function errorsOf(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(text, 'relay.yaml', env);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.message.split('\n');
  }
}

const exampleEnv = {
  ACME_APP_PASSWORD_HASH: 'scrypt$16384$8$1$c2FsdA==$a2V5',
  SMARTHOST_PASSWORD: 'smarthost-secret',
  ACME_SMTP_PASSWORD: 'acme-secret',
  PLATFORM_DKIM_KEY: generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
};

t.test('relay.example.yaml loads', async (t) => {
  const config = loadConfigFile(path.resolve('relay.example.yaml'), exampleEnv);
  t.equal(config.tenants.length, 2);
  t.match(config.smarthost, { kind: 'smtp', host: 'smtp.platform.example', port: 587, tls: 'starttls', auth: { pass: 'smarthost-secret' } });
  t.match(config.tenants[0], { id: 'acme', upstream: { port: 465, tls: 'implicit' }, dkim: { selector: 'relay2026' } });
});

t.test('relay.example.yaml mentions every key the schema knows', async (t) => {
  const text = fs.readFileSync('relay.example.yaml', 'utf8');
  const keys = new Set<string>();
  const walk = (node: unknown): void => {
    if (!node || typeof node !== 'object') return;
    const properties = (node as { properties?: Record<string, unknown> }).properties;
    for (const [k, v] of Object.entries(properties ?? {})) {
      keys.add(k);
      walk(v);
    }
    for (const v of Object.values(node)) if (typeof v === 'object') walk(v);
  };
  walk(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }));
  t.ok(keys.size > 30, `found ${keys.size} keys`);
  for (const key of keys) t.match(text, new RegExp(`^\\s*#?\\s*(- )?${key}:`, 'm'), `documents ${key}`);
});

t.test('the snapshot is frozen', async (t) => {
  const config = parseConfig(`${SMARTHOST}tenants: [{ id: a, match: { domains: [a.test] } }]\n`, 'relay.yaml', {});
  t.ok(Object.isFrozen(config));
  t.ok(Object.isFrozen(config.tenants[0]?.match.domains));
  t.throws(() => {
    (config.smarthost as { host: string }).host = 'evil.test';
  });
});

t.test('an unknown key is refused with its line and full key path', async (t) => {
  const errors = errorsOf(`${SMARTHOST}tenants:\n  - id: a\n    upstream:\n      host: x.test\n      tls: none\n      prot: 25\n`);
  t.same(errors, ['relay.yaml:7:7: tenants[0].upstream.prot: unknown key (did you mean port?)']);
});

t.test('a wrong type is refused', async (t) => {
  t.same(errorsOf('smarthost: { host: a.test, tls: none, port: "25" }\n'), ['relay.yaml:1:39: smarthost.port: Invalid input: expected number, received string']);
  t.match(errorsOf(`${SMARTHOST}tenants: [{ id: a, dkim: { disablePlatformDkim: "yes" } }]\n`), [/tenants\[0\]\.dkim\.disablePlatformDkim: .*expected boolean/]);
});

t.test('a missing required key is named', async (t) => {
  t.same(errorsOf('tenants: []\n'), ['relay.yaml:1:1: smarthost: is required']);
  t.match(errorsOf('smarthost: { host: a.test }\n'), [/^relay\.yaml:1:1: smarthost\.tls: Invalid option: expected one of "implicit"\|"starttls"\|"none"/]);
});

t.test('ports outside 1-65535 are refused', async (t) => {
  t.same(errorsOf('smarthost: { host: a.test, tls: none, port: 0 }\n'), ['relay.yaml:1:39: smarthost.port: must be between 1 and 65535']);
  t.same(errorsOf('smarthost: { host: a.test, tls: none, port: 65536 }\n'), ['relay.yaml:1:39: smarthost.port: must be between 1 and 65535']);
  t.same(errorsOf(`listen: [{ port: 70000 }]\n${SMARTHOST}`), ['relay.yaml:1:12: listen[0].port: must be between 0 and 65535']);
});

t.test('two tenants claiming the same address, domain or AUTH user are refused, naming the first owner', async (t) => {
  const errors = errorsOf(`inbound:
  users: [{ username: app, passwordHash: "scrypt$1$1$1$a$b" }]
${SMARTHOST}tenants:
  - id: a
    match: { authUsers: [app], addresses: [x@a.test], domains: [a.test] }
  - id: b
    match:
      authUsers: [app]
      addresses: [X@A.test]
      domains: [A.TEST]
`);
  t.same(errors, [
    'relay.yaml:9:19: tenants[1].match.authUsers[0]: AUTH user "app" is already claimed by tenant "a"',
    'relay.yaml:10:19: tenants[1].match.addresses[0]: address "x@a.test" is already claimed by tenant "a"',
    'relay.yaml:11:17: tenants[1].match.domains[0]: domain "a.test" is already claimed by tenant "a"',
  ]);
});

t.test('a tenant id used twice and an undeclared AUTH user are refused', async (t) => {
  t.same(errorsOf(`${SMARTHOST}tenants: [{ id: a, match: { authUsers: [ghost] } }, { id: a }]\n`), [
    'relay.yaml:2:41: tenants[0].match.authUsers[0]: user "ghost" is not declared under inbound.users',
    'relay.yaml:2:55: tenants[1].id: tenant id "a" is used twice',
  ]);
});

t.test('a password without TLS is refused unless allowInsecureAuth: true', async (t) => {
  const upstream = (extra: string) => `smarthost: { host: a.test, tls: none, username: u, password: p${extra} }\n`;
  t.same(errorsOf(upstream('')), [
    'relay.yaml:1:52: smarthost.password: credentials would travel in cleartext with tls: none; use starttls or implicit, or set allowInsecureAuth: true',
  ]);
  t.same(errorsOf(upstream(', allowInsecureAuth: true')), []);
  t.same(errorsOf('smarthost: { host: a.test, tls: starttls, username: u }\n'), ['relay.yaml:1:1: smarthost.password: username and password go together']);
});

t.test('chunking: false keeps an upstream on DATA; left out, BDAT is used where offered; anything else is refused', async (t) => {
  t.match(parseConfig('smarthost: { host: a.test, tls: starttls, chunking: false }\n', 'relay.yaml', {}).smarthost, { chunking: false });
  t.notOk('chunking' in (parseConfig('smarthost: { host: a.test, tls: starttls }\n', 'relay.yaml', {}).smarthost ?? {}));
  t.match(errorsOf('smarthost: { host: a.test, tls: starttls, chunking: maybe }\n'), [/smarthost\.chunking: .*boolean/]);
});

t.test('${ENV} and ${file:...} supply secrets; a missing one is an error naming it', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'secrets-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true }));
  fs.writeFileSync(path.join(dir, 'pw'), 'from-file\n');
  const text = (password: string) => `smarthost: { host: a.test, tls: starttls, username: "\${SMTP_USER}", password: "${password}" }\n`;
  const config = parseConfig(text(`\${file:${dir}/pw}`), 'relay.yaml', { SMTP_USER: 'relay' });
  t.match(config.smarthost, { auth: { user: 'relay', pass: 'from-file' } });
  t.same(errorsOf(text('${SMTP_PASSWORD}'), { SMTP_USER: 'relay' }), ['relay.yaml:1:69: smarthost.password: environment variable SMTP_PASSWORD is not set']);
  t.same(errorsOf(text(`\${file:${dir}/nope}`), { SMTP_USER: 'relay' }), [`relay.yaml:1:69: smarthost.password: cannot read secret file ${dir}/nope: ENOENT`]);
  t.match(parseConfig(text('pa$${x}'), 'relay.yaml', { SMTP_USER: 'u' }).smarthost, { auth: { pass: 'pa${x}' } });
});

t.test('a copied relay.example.yaml with no variables set names every missing variable at once, and nothing else', async (t) => {
  const errors = errorsOf(fs.readFileSync('relay.example.yaml', 'utf8'));
  const named = errors.map((e) => /environment variable (\w+) is not set/.exec(e)?.[1]);
  t.same(named.sort(), ['ACME_APP_PASSWORD_HASH', 'ACME_SMTP_PASSWORD', 'PLATFORM_DKIM_KEY', 'SMARTHOST_PASSWORD'], errors.join('\n'));
  t.notMatch(errors.join('\n'), /must be a hash made by|PEM|is required/, 'no second complaint about a value that was never read');
});

t.test('one missing secret file is one error, however many checks would read its value', async (t) => {
  const errors = errorsOf(`inbound: { users: [{ username: app, passwordHash: "\${file:/nonexistent/hash}" }] }
smarthost: { host: a.test, tls: starttls, username: u, password: "\${file:/nonexistent/pw}" }
dkim: { selector: s, privateKey: "\${file:/nonexistent/key}" }
`);
  t.same(errors, [
    'relay.yaml:1:37: inbound.users[0].passwordHash: cannot read secret file /nonexistent/hash: ENOENT',
    'relay.yaml:2:56: smarthost.password: cannot read secret file /nonexistent/pw: ENOENT',
    'relay.yaml:3:22: dkim.privateKey: cannot read secret file /nonexistent/key: ENOENT',
  ]);
});

t.test('an unknown key that is a typo or a different case of a known one says which was meant', async (t) => {
  t.same(errorsOf(`${SMARTHOST}tenants:\n  - id: a\n    identity: { from: a@a.test, displayname: A }\n`), [
    'relay.yaml:4:33: tenants[0].identity.displayname: unknown key (did you mean displayName?)',
  ]);
  t.same(errorsOf('smarthost: { host: a.test, tls: none, prot: 25 }\n'), ['relay.yaml:1:39: smarthost.prot: unknown key (did you mean port?)']);
  t.same(errorsOf(`${SMARTHOST}frobnicate: 1\n`), ['relay.yaml:2:1: frobnicate: unknown key'], 'nothing near: no guess');
});

t.test('YAML syntax errors and duplicate keys are reported with their line', async (t) => {
  t.match(errorsOf('smarthost:\n  host: [a\n'), [/^relay\.yaml:3:1: /]);
  t.same(errorsOf(`${SMARTHOST}smarthost: {}\n`), ['relay.yaml:2:1: Map keys must be unique']);
});

t.test('an unreadable CA file and a bad network range are refused', async (t) => {
  t.same(errorsOf(`inbound: { allowUnauthenticatedFrom: [10.0.0.0/33] }\nsmarthost: { host: a.test, tls: starttls, ca: /nonexistent/ca.pem }\n`), [
    'relay.yaml:1:39: inbound.allowUnauthenticatedFrom[0]: must be an address or CIDR range like 10.0.0.0/8',
    'relay.yaml:2:43: smarthost.ca: cannot read CA file /nonexistent/ca.pem: ENOENT',
  ]);
});

t.test('a missing file is an error naming it', async (t) => {
  t.throws(() => loadConfigFile('/nonexistent/relay.yaml'), { name: 'ConfigError', message: /^\/nonexistent\/relay\.yaml:0:0: cannot read/ });
});

t.test('tenantSource: its URL must be https unless it is on this machine, and must carry no query', async (t) => {
  t.same(errorsOf(`${SMARTHOST}tenantSource: { url: "http://platform.internal/relay" }\n`), [
    'relay.yaml:2:17: tenantSource.url: must be https:// (plain http only to a loopback address: tenant credentials travel over it)',
  ]);
  t.same(errorsOf(`${SMARTHOST}tenantSource: { url: "https://platform.internal/relay?x=1" }\n`), [
    'relay.yaml:2:17: tenantSource.url: must be an http(s) URL without query, like https://platform.internal/relay',
  ]);
  t.same(errorsOf(`${SMARTHOST}tenantSource: { url: "http://127.0.0.1:8080/relay" }\n`), []);
  t.same(errorsOf(`${SMARTHOST}tenantSource: { url: "https://platform.internal", upstreamHosts: { allow: [nope] } }\n`), [
    'relay.yaml:2:76: tenantSource.upstreamHosts.allow[0]: must be an address or CIDR range like 10.0.0.0/8',
  ]);
});
