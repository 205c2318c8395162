// JSON lines on stderr. Secrets are never passed to the logger; the redact list is the second line of defence.
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      level,
      base: { service: 'tenant-relay' },
      redact: { paths: ['password', '*.password', '*.pass', 'auth.pass', '*.auth.pass', 'token', '*.token'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination(2),
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
