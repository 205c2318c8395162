// `workers: auto`: how many cores this process may really use. os.availableParallelism() counts the CPUs
// the process may be scheduled on, not a container's CPU quota: a pod limited to 2 CPUs on a 64-core node
// would start 64 workers that share 2 CPUs of time. The cgroup quota (v2 cpu.max, or v1 cfs_quota_us over
// cfs_period_us), rounded up, caps it.
import fs from 'node:fs';
import os from 'node:os';

/** Cores from a cgroup v2 `cpu.max` ("max 100000" or "200000 100000"); undefined when there is no quota. */
export function coresOfCpuMax(text: string): number | undefined {
  const [quota, period] = text.trim().split(/\s+/);
  return coresOfQuota(Number(quota), Number(period ?? 100_000));
}

export function coresOfQuota(quota: number, period: number): number | undefined {
  if (!Number.isFinite(quota) || !Number.isFinite(period) || quota <= 0 || period <= 0) return undefined;
  return Math.max(1, Math.ceil(quota / period));
}

function readOr(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function cgroupCores(): number | undefined {
  const v2 = readOr('/sys/fs/cgroup/cpu.max');
  if (v2 !== undefined) return coresOfCpuMax(v2);
  const quota = readOr('/sys/fs/cgroup/cpu/cpu.cfs_quota_us');
  const period = readOr('/sys/fs/cgroup/cpu/cpu.cfs_period_us');
  return quota && period ? coresOfQuota(Number(quota), Number(period)) : undefined;
}

export function usableCores(): number {
  const cpus = os.availableParallelism();
  return Math.min(cpus, cgroupCores() ?? cpus);
}
