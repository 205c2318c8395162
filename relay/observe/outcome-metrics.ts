// The metrics of message outcomes, one subscriber: refusals by reply id, messages accepted by tenant and
// mode, each delivery attempt's recipients and time, and each time a limit held a message.
import type { RelayMetrics } from '../ops/metrics.js';
import type { Outcomes } from './outcomes.js';

export function countOutcomes(outcomes: Outcomes, metrics: RelayMetrics): void {
  outcomes.on('refusal', (reply) => metrics.countRefusal(reply));
  outcomes.on('answered', (e) => {
    if (e.reply.code === 250) metrics.accepted.inc({ tenant: metrics.tenant(e.tx.tenant), mode: e.mode });
  });
  outcomes.on('attempted', (e) => {
    if (e.tried) metrics.recordDelivery(e.message.tenant, { upstream: e.upstream, outcomes: e.outcomes }, e.ms / 1000);
  });
  outcomes.on('held', (e) => metrics.rateHeld.inc({ tenant: metrics.tenant(e.message.tenant) }));
  // The provider's replies this relay heard: a cool-down another relay told it of is counted there.
  outcomes.on('paced', (e) => {
    if (e.heardBy === 'this relay') metrics.providerPacing.inc({ upstream: metrics.upstream(e.upstream), signal: e.signal });
  });
}
