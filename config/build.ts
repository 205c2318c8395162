// Turns the checked raw values into the frozen snapshot: defaults that depend on other keys, files read,
// indexes built. Problems found here (an unreadable CA file) are added to `problems` by key path.
import fs from 'node:fs';
import path from 'node:path';
import { TenantDirectory } from './directory.js';
import type { RawConfig, RawUpstream } from './schema.js';
import type { Config, InboundUser, Tenant, Upstream } from './types.js';
import type { PathIssue } from './validate.js';

const DEFAULT_PORT = { implicit: 465, starttls: 587, none: 25 } as const;

export function buildConfig(raw: RawConfig, source: string, problems: PathIssue[]): Config {
  const tenants = raw.tenants.map((t, i): Tenant => {
    const { upstream, ...rest } = t;
    const built = upstream && buildUpstream(upstream, t.id, ['tenants', i, 'upstream'], problems);
    return deepFreeze({ ...rest, ...(built ? { upstream: built } : {}) });
  });
  const users = new Map<string, InboundUser>(raw.inbound.users.map((u) => [u.username, Object.freeze({ ...u })]));
  return Object.freeze({
    source,
    hostname: raw.hostname,
    listen: deepFreeze(raw.listen),
    maxMessageSizeBytes: raw.maxMessageSizeBytes,
    inbound: Object.freeze({ allowUnauthenticatedFrom: Object.freeze([...raw.inbound.allowUnauthenticatedFrom]), users }),
    identification: deepFreeze(raw.identification),
    smarthost: buildUpstream(raw.smarthost, 'smarthost', ['smarthost'], problems),
    tenants: Object.freeze(tenants),
    directory: new TenantDirectory(tenants),
  });
}

function buildUpstream(u: RawUpstream, name: string, at: (string | number)[], problems: PathIssue[]): Upstream {
  if (u.kind === 'maildir') {
    // Relative paths are relative to the working directory, like every other path the relay is given.
    return Object.freeze({ kind: 'maildir', name, path: path.resolve(u.path ?? path.join('var', 'mail', name)) });
  }
  let ca: string | undefined;
  if (u.ca !== undefined) {
    try {
      ca = fs.readFileSync(path.resolve(u.ca), 'utf8');
    } catch (err) {
      problems.push({ path: [...at, 'ca'], message: `cannot read CA file ${u.ca}: ${(err as NodeJS.ErrnoException).code ?? err}` });
    }
  }
  return deepFreeze({
    kind: 'smtp',
    name,
    host: u.host,
    port: u.port ?? DEFAULT_PORT[u.tls],
    tls: u.tls,
    ...(u.username !== undefined && u.password !== undefined ? { auth: { user: u.username, pass: u.password } } : {}),
    ...(ca !== undefined ? { ca } : {}),
    ...(u.servername !== undefined ? { servername: u.servername } : {}),
    allowInsecureAuth: u.allowInsecureAuth,
    timeoutMs: Math.round(u.timeoutSeconds * 1000),
    connectTimeoutMs: Math.round(u.connectTimeoutSeconds * 1000),
    maxConnections: u.maxConnections,
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
