// A real redis-server for a test: its own process on an ephemeral loopback port, persistence off, that the
// test can kill (SIGKILL, as a crash) and start again on the same port. Skips where redis-server is
// missing, except in CI (.ci/run installs it).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { closedPort } from './upstream.js';

export interface TestRedis {
  readonly url: string;
  readonly port: number;
  /** A client for the test's own looks and publishes. */
  readonly client: Redis;
  kill(): Promise<void>;
  /** SIGSTOP: it keeps its connections and answers nothing (a hung Redis). */
  pause(): void;
  resume(): void;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export const hasRedis = spawnSync('redis-server', ['--version']).status === 0;
/** tap options for a test that needs Redis. */
export const needRedis = hasRedis ? {} : { skip: process.env.CI ? false : 'redis-server is not installed (apt-get install redis-server)' };

export async function startRedis(): Promise<TestRedis> {
  const port = await closedPort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {}); // refused while it starts: the loop below tries again
    for (let i = 0; i < 100; i++) {
      try {
        await probe.connect();
        await probe.ping();
        break;
      } catch {
        probe.disconnect();
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    probe.disconnect();
  };
  await start();
  const client = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  const kill = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((r) => running.once('exit', r));
    running.kill('SIGKILL');
    await exited;
  };
  return {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    client,
    kill,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    restart: start,
    close: async () => {
      client.disconnect();
      child?.kill('SIGCONT');
      await kill();
    },
  };
}
