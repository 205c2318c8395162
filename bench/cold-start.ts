// A cold start, as deploys and config errors cause it: fresh processes on a directory of 10,000 tenant
// files. `check` to its exit, and `serve` to its "listening" log line; the median of several runs each.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

export interface ColdStart {
  readonly tenants: number;
  readonly checkMs: number[];
  readonly serveMs: number[];
}

export function writeTenantFiles(dir: string, count: number): string {
  const tenants = path.join(dir, 'tenants.d');
  fs.mkdirSync(tenants, { recursive: true });
  for (let i = 0; i < count; i++) {
    fs.writeFileSync(
      path.join(tenants, `t${i}.yaml`),
      `id: t${i}\nmatch:\n  addresses: [noreply@mail${i}.example]\n  domains: [t${i}.example, "*.t${i}.example"]\nupstream: { host: smtp.t${i}.example, tls: starttls, username: u${i}, password: p${i} }\nidentity: { from: noreply@t${i}.example, displayName: Tenant ${i}, replyTo: help@t${i}.example }\n`,
    );
  }
  return tenants;
}

/** Milliseconds from spawning `cli ARGS` until `done(stderr so far)` says so, or the process exits. */
function timeProcess(args: string[], done?: (stderr: string) => boolean): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(path.resolve('bin/tenant-relay'), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stderr.on('data', (d) => {
      stderr += d;
      if (done?.(stderr)) {
        const ms = performance.now() - started;
        child.once('exit', () => resolve(ms));
        child.kill('SIGTERM');
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!done) return code === 0 ? resolve(performance.now() - started) : reject(new Error(`${args[0]} exited with ${code}: ${stderr}`));
    });
  });
}

export async function coldStart(tmp: string, count = 10_000, runs = 5): Promise<ColdStart> {
  const dir = fs.mkdtempSync(path.join(tmp, 'cold-'));
  try {
    const tenants = writeTenantFiles(dir, count);
    const file = path.join(dir, 'relay.yaml');
    fs.writeFileSync(
      file,
      `smarthost: { host: 127.0.0.1, tls: none }\ntenantFiles: [${tenants}]\nlisten: [{ host: 127.0.0.1, port: 0 }]\nops: { enabled: false }\ndelivery: { spool: { path: ${dir}/spool } }\n`,
    );
    const checkMs: number[] = [];
    const serveMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      checkMs.push(await timeProcess(['check', '--config', file]));
      serveMs.push(await timeProcess(['serve', '--config', file], (stderr) => stderr.includes('"event":"listening"')));
    }
    return { tenants: count, checkMs, serveMs };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The middle value; of an even count, the mean of the two middle ones. */
export function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? Number.NaN) + (sorted[mid] ?? Number.NaN)) / 2;
}
