// A queue id the relay hands out to come back later (a VERP return path, Postmark's metadata), as
// `<queue id>-<mac>`: the mac, an HMAC under a key of the relay's bound to what the token is for, means
// nobody can make one for a message the relay did not send.
import { createHmac, timingSafeEqual } from 'node:crypto';

const macOf = (purpose: string, queueId: string, key: string) => createHmac('sha256', key).update(`${purpose}\0${queueId}`).digest('base64url').slice(0, 16);

export const signedQueueId = (purpose: string, queueId: string, key: string) => `${queueId}-${macOf(purpose, queueId, key)}`;

/** The queue id `token` names, if the relay made it for `purpose` under `key`; else undefined. */
export function queueIdOfSigned(purpose: string, token: string, key: string): string | undefined {
  const m = /^([a-z0-9]{1,64})-([A-Za-z0-9_-]{16})$/.exec(token);
  if (!m) return undefined;
  const [queueId = '', given = ''] = [m[1], m[2]];
  return timingSafeEqual(Buffer.from(given), Buffer.from(macOf(purpose, queueId, key))) ? queueId : undefined;
}
