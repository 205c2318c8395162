// Values the relays hand each other through a shared store (Redis) carry an HMAC under the key they share
// (limits.store.redis.signingKey): what comes back without a good one was written by someone else, and is
// ignored. The MAC binds the value's kind, so one kind of value cannot be replayed as another.
import { createHmac, timingSafeEqual } from 'node:crypto';

const MAC_CHARS = 43;

export function sign(key: string, kind: string, value: string): string {
  return `${mac(key, kind, value)}.${value}`;
}

/** The value, if it carries a good signature for `kind`; else undefined. */
export function verify(key: string, kind: string, signed: string): string | undefined {
  const dot = signed.indexOf('.');
  if (dot !== MAC_CHARS) return undefined;
  const value = signed.slice(dot + 1);
  const given = Buffer.from(signed.slice(0, dot));
  const wanted = Buffer.from(mac(key, kind, value));
  return given.length === wanted.length && timingSafeEqual(given, wanted) ? value : undefined;
}

/** The JSON value, if it carries a good signature for `kind` and parses; else undefined. */
export function verifyJson(key: string, kind: string, signed: string): unknown {
  const value = verify(key, kind, signed);
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return undefined;
  }
}

function mac(key: string, kind: string, value: string): string {
  return createHmac('sha256', key).update(kind).update('\0').update(value).digest('base64url');
}
