// Loaded into a relay by BENCH_ONLY=flip (NODE_OPTIONS=--import): one relay measured against itself. Every
// BENCH_FLIP_MS it flips between two modes: the V8 flags in BENCH_FLIP_ON or BENCH_FLIP_OFF, and
// `globalThis.benchFlip` (true in the "on" mode; left unset with BENCH_FLIP_AA=1), which an experiment's
// code reads for a code path to compare. Each period's CPU (the whole process, all threads) and accepted connections go to
// BENCH_FLIP_OUT, one line a period: end time (ms since the epoch), mode (0 or 1), connections, CPU ms.
// Bench-only: it patches net.Server#emit to count connections, in the measured process alone.
import fs from 'node:fs';
import net from 'node:net';
import v8 from 'node:v8';

const out = process.env.BENCH_FLIP_OUT;
if (out && process.argv.includes('serve')) {
  const flags = (name: string) => (process.env[name] ?? '').split(' ').filter(Boolean);
  const on = flags('BENCH_FLIP_ON');
  const off = flags('BENCH_FLIP_OFF');
  let connections = 0;
  const emit = net.Server.prototype.emit as (this: net.Server, event: string | symbol, ...args: unknown[]) => boolean;
  net.Server.prototype.emit = function (this: net.Server, event: string | symbol, ...args: unknown[]) {
    if (event === 'connection') connections++;
    return emit.call(this, event, ...args);
  } as typeof net.Server.prototype.emit;
  let mode = 0;
  let cpuBefore = process.cpuUsage();
  let counted = 0;
  const flip = () => {
    const cpu = process.cpuUsage(cpuBefore);
    const line = `${Date.now()} ${mode} ${connections - counted} ${(cpu.user + cpu.system) / 1000}\n`;
    mode ^= 1;
    if (process.env.BENCH_FLIP_AA !== '1') (globalThis as { benchFlip?: boolean }).benchFlip = mode === 1;
    for (const flag of mode === 1 ? on : off) v8.setFlagsFromString(flag);
    counted = connections;
    fs.appendFileSync(out, line);
    cpuBefore = process.cpuUsage();
  };
  setInterval(flip, Number(process.env.BENCH_FLIP_MS ?? 1000)).unref();
}
