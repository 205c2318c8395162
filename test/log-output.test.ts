// Where the relay's log lines go: stderr, buffered off the hot path (relay/log-sink.ts). A line reaches
// stderr soon after it is logged and at the latest when the process exits; a stderr nobody reads any more
// (a log shipper that died, a terminal closed) costs the lines, never the process.
import { spawn } from 'node:child_process';
import path from 'node:path';
import t from 'tap';

const LOG = path.resolve('dist/relay/log.js');

/** A process that logs with the relay's logger: `script` runs with `logger` in scope. */
function logging(script: string) {
  return spawn(process.execPath, ['--input-type=module', '-e', `const { createLogger } = await import(${JSON.stringify(LOG)}); const logger = createLogger('info'); ${script}`], { stdio: ['ignore', 'pipe', 'pipe'] });
}

const exitOf = (child: ReturnType<typeof spawn>) => new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
/** Bounded, not timed: what matters is that it ends at all. */
const within15s = <T>(p: Promise<T>) => Promise.race([p, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 15_000).unref())]);

t.test('a line logged just before the process exits is on stderr', async (t) => {
  const child = logging(`logger.info({ event: 'first' }); setTimeout(() => { logger.info({ event: 'last' }); process.exit(0); }, 300);`);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  t.equal(await within15s(exitOf(child)), 0);
  await closed;
  t.same(
    stderr
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { event: string }).event),
    ['first', 'last'],
    'each line once, in order',
  );
});

t.test('a process whose stderr reader has gone logs on and exits; the lines are dropped', async (t) => {
  const child = logging(`setTimeout(() => { for (let i = 0; i < 3; i++) logger.info({ event: 'unread', i }); process.stdout.write('logged\\n'); process.exit(0); }, 300);`);
  child.stderr.destroy();
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d));
  const code = await within15s(exitOf(child));
  if (code === 'still running') child.kill('SIGKILL');
  t.equal(code, 0, 'it exits (pino.destination retried the failed write every 100 ms for ever)');
  t.match(stdout, /logged/);
});
