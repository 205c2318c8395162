// JSON lines on stderr. Secrets are never passed to the logger; redactSecrets is the second line of defence.
import pino, { type Logger } from 'pino';
import { isoTime } from './iso-time.js';
import { LogSink } from './log-sink.js';

export type { Logger } from 'pino';

/** `destination` is for tests; the relay's lines go to stderr, buffered (log-sink.ts). */
export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info', destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'tenant-relay' },
      formatters: { log: redactSecrets },
      // pino's own isoTime, made once a second (iso-time.ts): three lines a message.
      timestamp: () => `,"time":"${isoTime(Date.now())}"`,
    },
    destination ?? new LogSink(),
  );
}

/** Keys whose values are never written, at any of the first three levels of a log line's object. */
const SECRET_KEYS = new Set(['password', 'pass', 'token', 'clientSecret', 'privateKey', 'accessToken']);
const CENSOR = '[redacted]';
const REDACT_DEPTH = 3;

/**
 * The second line of defence. pino's own `redact` re-parsed its path list on every line: 2.9 % of the
 * relay's CPU at one message per connection (two lines a message). This walks the line's own object
 * (three levels, which covers `auth.pass` under any key) and copies only what it censors: the caller's
 * object is never changed.
 */
export function redactSecrets(line: Record<string, unknown>): Record<string, unknown> {
  return (censored(line, REDACT_DEPTH) as Record<string, unknown> | undefined) ?? line;
}

/** The value with its secrets censored, or undefined when it holds none (the common case: no copy). */
function censored(value: unknown, depth: number): unknown {
  if (depth === 0 || value === null || typeof value !== 'object' || ArrayBuffer.isView(value)) return undefined;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const inner = censored(value[i], depth - 1);
      if (inner === undefined) continue;
      copy ??= [...value];
      copy[i] = inner;
    }
    return copy;
  }
  let copy: object | undefined;
  for (const key of Object.keys(value)) {
    const v = (value as Record<string, unknown>)[key];
    const inner = SECRET_KEYS.has(key) && v !== undefined ? CENSOR : censored(v, depth - 1);
    if (inner === undefined) continue;
    // Its prototype and every property kept (an Error's message and stack, which are not enumerable);
    // frozen objects (the config) are copied unfrozen.
    copy ??= copyOf(value);
    Object.defineProperty(copy, key, { value: inner, enumerable: true, writable: true, configurable: true });
  }
  return copy;
}

function copyOf(value: object): object {
  const descriptors = Object.getOwnPropertyDescriptors(value);
  for (const d of Object.values(descriptors)) d.configurable = true;
  return Object.create(Object.getPrototypeOf(value) as object | null, descriptors) as object;
}

export const silentLogger: Logger = pino({ level: 'silent' });
