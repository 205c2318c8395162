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

t.test('lines of any length and script reach stderr whole, once and in order', async (t) => {
  // Short lines past the 64 KiB write threshold, multi-byte text, and lines longer than a buffer of lines.
  const child = logging(`
    const texts = ['plain', 'Grüße aus Köln', '日本語のメール', '😀 emoji'];
    let n = 0;
    for (let i = 0; i < 600; i++) logger.info({ event: 'line', n: n++, text: texts[i % texts.length].repeat(20) });
    logger.info({ event: 'line', n: n++, text: 'x'.repeat(200000) });
    logger.info({ event: 'line', n: n++, text: 'ü'.repeat(30000) });
    for (let i = 0; i < 50; i++) logger.info({ event: 'line', n: n++, text: texts[i % texts.length] });
    setTimeout(() => { logger.info({ event: 'line', n: n++, text: 'last' }); process.exit(0); }, 150);
  `);
  const chunks: Buffer[] = [];
  child.stderr.on('data', (d: Buffer) => chunks.push(d));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  t.equal(await within15s(exitOf(child)), 0);
  await closed;
  const lines = Buffer.concat(chunks).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as { n: number; text: string });
  t.same(lines.map((l) => l.n), [...Array(653).keys()], 'every line once, in order');
  t.equal(lines[0]?.text, 'plain'.repeat(20));
  t.equal(lines[1]?.text, 'Grüße aus Köln'.repeat(20));
  t.equal(lines[3]?.text, '😀 emoji'.repeat(20));
  t.equal(lines[600]?.text.length, 200000, 'a line longer than a buffer of lines');
  t.equal(lines[601]?.text, 'ü'.repeat(30000));
  t.equal(lines[652]?.text, 'last');
});

t.test('a line reaches stderr while the process runs on, not only when it exits', async (t) => {
  const child = logging(`logger.info({ event: 'running' }); setInterval(() => {}, 1000);`);
  t.teardown(() => child.kill('SIGKILL'));
  const seen = new Promise<string>((resolve) => {
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
      if (stderr.includes('\n')) resolve(stderr);
    });
  });
  t.match(await within15s(seen), /"event":"running"/, 'written within the sink\'s 100 ms, while the process is still up');
});
