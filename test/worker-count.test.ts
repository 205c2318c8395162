// `workers: auto` is one worker per core the relay may really use: a container's CPU quota caps the
// count of CPUs the node has.
import os from 'node:os';
import t from 'tap';
import { coresOfCpuMax, coresOfQuota } from '../config/cores.js';
import { parseConfig } from '../config/load.js';

t.test('a cgroup v2 cpu.max quota gives the cores, rounded up; no quota gives none', async (t) => {
  const cases: [string, number | undefined][] = [
    ['max 100000\n', undefined],
    ['200000 100000\n', 2],
    ['150000 100000', 2],
    ['50000 100000', 1],
    ['400000 50000', 8],
    ['', undefined],
  ];
  for (const [text, cores] of cases) t.equal(coresOfCpuMax(text), cores, JSON.stringify(text));
});

t.test('a cgroup v1 quota of -1 means none', async (t) => {
  t.equal(coresOfQuota(-1, 100_000), undefined);
  t.equal(coresOfQuota(300_000, 100_000), 3);
});

const withWorkers = (workers: string) => `workers: ${workers}\nsmarthost: { host: smtp.example.net, tls: starttls }\n`;

t.test('workers: auto is at least one and at most the CPUs the process may run on', async (t) => {
  const config = parseConfig(withWorkers('auto'), 'relay.yaml', {});
  t.ok(config.workers >= 1 && config.workers <= os.availableParallelism(), `${config.workers} workers`);
  t.equal(parseConfig(withWorkers('3'), 'relay.yaml', {}).workers, 3);
});
