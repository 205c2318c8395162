// The bounce domain's listener, in the process that runs the ops listener: the one relay, or the primary
// of workers (whose linker asks every worker, since the message is in one worker's trace).
import type { BounceSettings } from '../../config/types.js';
import { startBounceListener } from '../inbound/bounce-listener.js';
import { listenFailed } from '../startup-error.js';
import { type EventLinker, takeBounceReport } from './provider-event-routes.js';

export async function listenForBounces(listen: BounceSettings['listen'], settings: () => BounceSettings | undefined, linker: EventLinker): Promise<{ readonly port: number; close(): Promise<void> }> {
  return startBounceListener(listen, { settings, logger: linker.logger, take: (queueId, reported) => takeBounceReport(linker, queueId, reported) }).catch((err: unknown) => {
    throw listenFailed(err, 'bounces.listen', listen.host, listen.port);
  });
}
