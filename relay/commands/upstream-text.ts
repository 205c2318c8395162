// How check and explain name an upstream and its login: kinds and who, never a secret or a token.
import type { Upstream } from '../../config/types.js';

/** none, password (user), or oauth2 <provider> (mailbox). */
export function authText(u: Upstream): string {
  if (u.kind !== 'smtp' || !u.auth) return 'none';
  return u.auth.kind === 'password' ? `password (${u.auth.user})` : `oauth2 ${u.auth.grant.provider} (${u.auth.user})`;
}

export function describeUpstream(u: Upstream): string {
  return `${u.name} (${u.kind === 'maildir' ? `maildir ${u.path}` : `${u.host}:${u.port} tls=${u.tls} auth=${authText(u)}`})`;
}
