// The processes the benchmark measures or feeds: the sink, the relay (one per scenario, so that its peak
// RSS is the scenario's), and Postfix when it is installed. Each is ended by the PID it was started with.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface Sink {
  readonly port: number;
  /** CPU time the sink has used so far, in seconds: on the direct path, the floor of one SMTP server in Node. */
  cpuSeconds(): number;
  count(): Promise<number>;
  stop(): Promise<void>;
}

export async function startSink(): Promise<Sink> {
  const { child, port } = await forkListening('./sink.js', []);
  return {
    port,
    cpuSeconds: () => cpuSecondsOf(child.pid ?? 0),
    count: () =>
      new Promise((resolve) => {
        child.once('message', (m: { count: number }) => resolve(m.count));
        child.send({ type: 'count' });
      }),
    stop: () => endChild(child),
  };
}

/**
 * The floor relay (floor-relay.ts) on the sink, its journal in `dir`, with the given library layers. On the
 * relay's Node and flags (bin/tenant-relay's choice), whatever Node runs the bench: a Node a major version
 * older costs a third more per message here.
 */
export async function startFloorRelay(sinkPort: number, dir: string, layers: readonly string[] = []): Promise<{ port: number; cpuSeconds(): number; stop(): Promise<void> }> {
  const projectNode = path.resolve('node_modules/.bin/node');
  const execPath = fs.existsSync(projectNode) ? projectNode : process.execPath;
  const { child, port } = await forkListening('./floor-relay.js', [String(sinkPort), dir, layers.join(',')], { execPath, execArgv: launcherFlags() });
  return { port, cpuSeconds: () => cpuSecondsOf(child.pid ?? 0), stop: () => endChild(child) };
}

/** The V8 flags bin/tenant-relay starts the relay with (every `--name=number` and `--no-name` in it), read from the launcher itself. */
function launcherFlags(): string[] {
  return [...new Set([...fs.readFileSync(path.resolve('bin/tenant-relay'), 'utf8').matchAll(/--(?:[a-z-]+=\d+|no-[a-z-]+)/g)].map((m) => m[0]))];
}

/** A bench process of this folder, forked (on this Node unless told); it sends { port } once it listens. */
async function forkListening(script: string, args: string[], node: { execPath?: string; execArgv?: string[] } = {}): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(new URL(script, import.meta.url), args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], ...node });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (m: { port: number }) => resolve(m.port));
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  return { child, port };
}

export interface RelayProcess {
  readonly port: number;
  readonly pid: number;
  /** Resident set size now and its peak since start (VmRSS, VmHWM), in MB. */
  memory(): { rssMb: number; peakMb: number };
  /** Starts a new peak (VmHWM) from the current RSS, so each scenario's peak is its own. */
  resetPeak(): void;
  /** CPU time used so far by the process (all its threads, user and system), in seconds. */
  cpuSeconds(): number;
  stop(): Promise<void>;
}

export async function startRelayProcess(
  dir: string,
  yaml: (port: number) => string,
  env: NodeJS.ProcessEnv = {},
  startTimeoutMs = 20_000,
  launcher = path.resolve('bin/tenant-relay'),
): Promise<RelayProcess> {
  const port = await freePort();
  const file = path.join(dir, 'relay.yaml');
  fs.writeFileSync(file, yaml(port));
  // Logs go to a file, as they would to a collector: the relay pays for them, the load generator does not.
  const log = fs.openSync(path.join(dir, 'relay.log'), 'w');
  // As operators run it: through the launcher, with its Node and its flags (it execs: the pid is the relay's).
  const profile = process.env.BENCH_PROFILE ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${path.resolve('bench/results/profiles')}` } : {};
  const child = spawn(launcher, ['serve', '--config', file], {
    stdio: ['ignore', log, log],
    env: { ...process.env, ...profile, ...env },
  });
  fs.closeSync(log);
  await waitForPort(port, child, startTimeoutMs);
  const pid = child.pid ?? 0;
  return {
    port,
    pid,
    // With `workers: N` the relay is the primary and its workers: each figure is their sum.
    memory: () => {
      let rssMb = 0;
      let peakMb = 0;
      for (const p of withWorkers(pid)) {
        const status = readProc(`/proc/${p}/status`);
        const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
        rssMb += kb('VmRSS') / 1024;
        peakMb += kb('VmHWM') / 1024;
      }
      return { rssMb, peakMb };
    },
    resetPeak: () => {
      for (const p of withWorkers(pid)) fs.writeFileSync(`/proc/${p}/clear_refs`, '5');
    },
    cpuSeconds: () => withWorkers(pid).reduce((sum, p) => sum + cpuSecondsOf(p), 0),
    // SIGTERM: the relay drains and exits by itself (and writes its CPU profile when asked to).
    stop: () => endChild(child, 'SIGTERM'),
  };
}

function readProc(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return ''; // the process ended between the listing and the read
  }
}

/** /proc/PID/stat after the command name: state is field 3, ppid 4, utime 14 and stime 15 (clock ticks, 100 a second). */
const statOf = (pid: number) => readProc(`/proc/${pid}/stat`).replace(/^.*\) /, '').split(' ');

function cpuSecondsOf(pid: number): number {
  const fields = statOf(pid);
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / 100;
}

/**
 * CPU seconds of a process and its children, those that ended too (a process's cutime and cstime count
 * the children it has reaped): Postfix's master and the smtpd, cleanup, qmgr and smtp processes it runs
 * and retires.
 */
export function treeCpuSeconds(pid: number): number {
  const fields = statOf(pid);
  const reaped = (Number(fields[13] ?? 0) + Number(fields[14] ?? 0)) / 100;
  return withWorkers(pid).reduce((sum, p) => sum + cpuSecondsOf(p), 0) + reaped;
}

/** The process and its children (a relay with workers: N forks them; they fork nothing). */
function withWorkers(pid: number): number[] {
  const children = fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((p) => Number(statOf(p)[1]) === pid);
  return [pid, ...children];
}

function endChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

export async function waitForPort(port: number, child?: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`process exited with ${child.exitCode} before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listening on ${port} after ${timeoutMs} ms`);
}
