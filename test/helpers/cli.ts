// Running `tenant-relay` commands the way tests need them: in-process (the commands are functions that
// return an exit code and write through an io object), or, for one smoke test per command group, as a
// real child process running the built CLI, as production does.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { runCommand } from '../../relay/commands/index.js';
import { firstLine } from '../../relay/commands/io.js';

export interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runCli(args: readonly string[], stdin = ''): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const code = await runCommand(args, {
    out: (text) => {
      stdout += `${text}\n`;
    },
    err: (text) => {
      stderr += `${text}\n`;
    },
    stdin: () => stdin,
    secret: async () => firstLine(stdin),
  });
  return { code, stdout, stderr };
}

/**
 * The CLI a child process runs: the built one (dist/), so no child transpiles the sources again (0.3 s a
 * `serve`). `npm test` builds it first (npm's `pretest`: bin/build.js, which compiles only what changed);
 * the first child of a test file run on its own checks the same way.
 */
const CLI_BUILT = path.resolve('dist/relay/cli.js');
let built = false;
function builtCli(): string {
  if (!built) {
    const run = spawnSync(process.execPath, [path.resolve('bin/build.js')], { stdio: 'inherit' });
    if (run.status !== 0) throw new Error('bin/build.js failed: the CLI the tests run could not be built');
    built = true;
  }
  return CLI_BUILT;
}

/**
 * The environment of a child: this one without tap's NODE_OPTIONS (its loaders and coverage hooks), so the
 * child is the process production runs and its stderr holds only what the relay writes.
 */
export function childEnv(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

/** The command line of `tenant-relay ARGS` as a real process: the program, then its arguments. */
export function cliArgv(args: readonly string[]): [string, ...string[]] {
  return [process.execPath, builtCli(), ...args];
}

/** The Node flags bin/tenant-relay runs the relay with (read from it, so a test runs what production runs). */
export const LAUNCHER_NODE_FLAGS: readonly string[] = /^\s*\*\) flags=(.*) ;;$/m.exec(fs.readFileSync(path.resolve('bin/tenant-relay'), 'utf8'))?.[1]?.split(' ') ?? [];

/** `tenant-relay ARGS` as a real process; `done` resolves with what it printed when it exits. */
export function spawnCli(args: readonly string[], options: { cwd?: string; stdin?: string; env?: NodeJS.ProcessEnv; nodeFlags?: readonly string[] } = {}): { child: ChildProcess; done: Promise<CliRun> } {
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), builtCli(), ...args], { cwd: options.cwd ?? process.cwd(), stdio: 'pipe', env: childEnv(options.env) });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  child.stdin?.end(options.stdin ?? '');
  const done = new Promise<CliRun>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

/** The port a `serve` child listens on (or its ops port), read from its "listening" log line. */
export function listeningPort(child: ChildProcess, which: 'smtp' | 'ops' = 'smtp'): Promise<number> {
  return new Promise((resolve, reject) => {
    let seen = '';
    child.stderr?.on('data', (d) => {
      seen += d;
      const m = /"event":"listening","addresses":\[\{"host":"127\.0\.0\.1","port":(\d+)[^\]]*\],"ops":(\d+|null)/.exec(seen);
      if (m) resolve(Number(which === 'smtp' ? m[1] : m[2]));
    });
    child.once('close', () => reject(new Error(`serve exited early: ${seen}`)));
  });
}
