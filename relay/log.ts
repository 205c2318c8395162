// JSON lines on stderr. Secrets are never passed to the logger; the redact list is the second line of defence.
import pino, { type Logger } from 'pino';

export type { Logger } from 'pino';

/** How often buffered lines are written when fewer than 4 KiB have collected. */
const FLUSH_MS = 100;

export function createLogger(level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  // Buffered and written off the hot path: a write per line was a system call and a thread-pool job per
  // line, four per message. Lines collect up to 4 KiB and go out at least every 100 ms, so an idle relay's
  // line still appears promptly; they are flushed synchronously when the process exits.
  const stream = pino.destination({ dest: 2, sync: false, minLength: 4096 });
  let unwritten = false;
  const timer = setInterval(() => {
    if (!unwritten) return;
    unwritten = false;
    stream.flush();
  }, FLUSH_MS).unref();
  process.once('exit', () => {
    clearInterval(timer);
    stream.flushSync();
  });
  return pino(
    {
      level,
      base: { service: 'tenant-relay' },
      redact: {
        paths: ['password', '*.password', '*.pass', 'auth.pass', '*.auth.pass', 'token', '*.token', 'clientSecret', '*.clientSecret', 'privateKey', '*.privateKey', 'accessToken', '*.accessToken'],
        censor: '[redacted]',
      },
      timestamp: pino.stdTimeFunctions.isoTime,
      hooks: {
        streamWrite(line) {
          unwritten = true;
          return line;
        },
      },
    },
    stream,
  );
}

export const silentLogger: Logger = pino({ level: 'silent' });
