// tenant-relay drain: tells the running relay (through its ops listener) to stop taking mail (421 4.3.2)
// and deliver what it has queued now; waits until its spool is empty. For scaling in: a Kubernetes
// preStop hook runs it, and the pod stops once nothing is left on its disk.
import { parseArgs } from 'node:util';
import { loadFrom } from './config-file.js';
import type { CommandIo } from './io.js';

interface Status {
  readonly draining: boolean;
  readonly queued: number;
  readonly inFlight: number;
}

export async function drainCommand(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, 'timeout-seconds': { type: 'string', default: '300' }, json: { type: 'boolean' } } });
  const config = loadFrom(values);
  const seconds = Number(values['timeout-seconds']);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    io.err('tenant-relay drain: --timeout-seconds must be a positive number');
    return 2;
  }
  if (!config.ops.enabled || !config.ops.token) {
    io.err('tenant-relay drain: needs the ops listener with ops.token set (drain is one of its admin endpoints)');
    return 1;
  }
  const base = `http://${config.ops.host === '0.0.0.0' ? '127.0.0.1' : config.ops.host === '::' ? '[::1]' : config.ops.host}:${config.ops.port}/drain`;
  const ask = async (method: 'GET' | 'POST', query = ''): Promise<Status> => {
    const res = await fetch(`${base}${query}`, { method, headers: { authorization: `Bearer ${config.ops.token}` }, signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`the relay answered ${res.status} ${await res.text()}`);
    return (await res.json()) as Status;
  };
  const deadline = Date.now() + seconds * 1000;
  let status: Status;
  try {
    status = await ask('POST', `?seconds=${seconds}`);
    let said = '';
    while ((status.queued > 0 || status.inFlight > 0) && Date.now() < deadline) {
      const line = `draining: ${status.queued} queued, ${status.inFlight} being delivered`;
      if (line !== said && !values.json) io.out(line);
      said = line;
      await new Promise((r) => setTimeout(r, 500));
      status = await ask('GET');
    }
  } catch (err) {
    io.err(`tenant-relay drain: ${base}: ${(err as Error).message}`);
    return 1;
  }
  if (values.json) io.out(JSON.stringify(status));
  else io.out(status.queued === 0 ? 'drained: the spool is empty; new mail is refused (421 4.3.2) until the relay stops' : `not drained in ${seconds} s: ${status.queued} message(s) left in the spool (tenant-relay queue list)`);
  return status.queued === 0 ? 0 : 1;
}
