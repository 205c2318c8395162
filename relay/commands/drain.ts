// tenant-relay drain: tells the running relay (through its ops listener) to stop taking mail (421 4.3.2)
// and deliver what it has queued now; waits until its spool is empty. For scaling in: a Kubernetes
// preStop hook runs it, and the pod stops once nothing is left on its disk.
import { parseArgs } from 'node:util';
import { loadFrom } from './config-file.js';
import type { CommandIo } from './io.js';
import { askRelay, opsRefusal } from './ops-client.js';

interface Status {
  readonly draining: boolean;
  readonly queued: number;
  readonly inFlight: number;
}

export async function drainCommand(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, 'timeout-seconds': { type: 'string', default: '300' }, json: { type: 'boolean' } } });
  const config = loadFrom(values);
  const seconds = Number(values['timeout-seconds']);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) {
    io.err('tenant-relay drain: --timeout-seconds must be a number of seconds from 1 to 86400');
    return 2;
  }
  const refusal = opsRefusal(config, 'drain');
  if (refusal) {
    io.err(`tenant-relay drain: ${refusal} (drain is one of the ops listener's endpoints)`);
    return 1;
  }
  const ask = async (method: 'GET' | 'POST', query = ''): Promise<Status> => {
    const reply = await askRelay(config, 'drain', method, `/drain${query}`);
    if (reply.status !== 200) throw new Error(`the relay answered ${reply.status} ${JSON.stringify(reply.json)}`);
    return reply.json as Status;
  };
  const deadline = Date.now() + seconds * 1000;
  let status: Status;
  try {
    status = await ask('POST', `?seconds=${Math.ceil(seconds)}`);
    let said = '';
    while ((status.queued > 0 || status.inFlight > 0) && Date.now() < deadline) {
      const line = `draining: ${status.queued} queued, ${status.inFlight} being delivered`;
      if (line !== said && !values.json) io.out(line);
      said = line;
      await new Promise((r) => setTimeout(r, 500));
      status = await ask('GET');
    }
  } catch (err) {
    io.err(`tenant-relay drain: ${(err as Error).message}`);
    return 1;
  }
  if (values.json) io.out(JSON.stringify(status));
  else io.out(status.queued === 0 ? 'drained: the spool is empty; new mail is refused (421 4.3.2) until the relay stops or `tenant-relay undrain`' : `not drained in ${seconds} s: ${status.queued} message(s) left in the spool (tenant-relay queue list)`);
  return status.queued === 0 ? 0 : 1;
}

/** tenant-relay undrain: the relay takes mail again (a drain that was not followed by a stop). */
export async function undrainCommand(args: string[], io: CommandIo): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } } });
  const config = loadFrom(values);
  const refusal = opsRefusal(config, 'drain');
  if (refusal) {
    io.err(`tenant-relay undrain: ${refusal}`);
    return 1;
  }
  try {
    const reply = await askRelay(config, 'drain', 'POST', '/undrain');
    if (reply.status !== 200) throw new Error(`the relay answered ${reply.status} ${JSON.stringify(reply.json)}`);
    const status = reply.json as Status;
    io.out(values.json ? JSON.stringify(status) : status.draining ? 'still draining: the relay is stopping' : `taking mail again (${status.queued} queued)`);
    return status.draining ? 1 : 0;
  } catch (err) {
    io.err(`tenant-relay undrain: ${(err as Error).message}`);
    return 1;
  }
}
