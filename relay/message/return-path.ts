// VERP: mail through the platform's smarthost leaves with a return path of its own per message,
// <localPart>+<queue id>-<mac>@<bounce domain>, so a bounce that comes back by mail names the message it
// is about. The mac (an HMAC under bounces.signingKey) means nobody can make a return path for a message
// the relay did not send, and so cannot forge a bounce that suppresses someone's address.
import { queueIdOfSigned, signedQueueId } from './signed-queue-id.js';

export interface ReturnPathSettings {
  readonly domain: string;
  readonly localPart: string;
  readonly signingKey: string;
}

export function returnPathOf(queueId: string, s: ReturnPathSettings): string {
  return `${s.localPart}+${signedQueueId('return-path', queueId, s.signingKey)}@${s.domain}`;
}

/** The queue id a return path names, if it is one the relay made; else undefined. */
export function queueIdOfReturnPath(address: string, s: ReturnPathSettings): string | undefined {
  const at = address.lastIndexOf('@');
  if (at < 0 || address.slice(at + 1).toLowerCase() !== s.domain) return undefined;
  const m = /^([^+]+)\+(.+)$/.exec(address.slice(0, at));
  if (!m || m[1]?.toLowerCase() !== s.localPart.toLowerCase()) return undefined;
  return queueIdOfSigned('return-path', m[2] ?? '', s.signingKey);
}
