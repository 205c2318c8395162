// The ops listener's backend in a relay that takes mail itself: its metrics, readiness, send-test
// outcomes, drain and trace. (The primary of workers has workers-backend.ts, which asks them over IPC.)
import type { Config } from '../../config/types.js';
import { preflightEndpoint } from '../delivery/preflight.js';
import type { Logger } from '../log.js';
import type { QueueView } from '../queue/queue-view.js';
import type { Outcomes } from '../observe/outcomes.js';
import type { SendTests } from '../observe/send-tests.js';
import type { Readiness } from '../ops/http.js';
import type { RelayMetrics } from '../ops/metrics.js';
import type { TraceStore } from '../reporting/trace-store.js';
import type { SuppressionStore } from '../suppression/store.js';
import type { Drain } from './drain.js';
import type { EventLinker } from './provider-event-routes.js';
import { type OpsBackend, renderedOnce } from './ops-routes.js';

export interface LocalParts {
  readonly metrics: RelayMetrics;
  /** Told before a scrape, so it counts every outcome so far (they come in batches). */
  readonly outcomes: Outcomes;
  readonly readiness: () => Promise<Readiness>;
  readonly sendTests: SendTests;
  readonly drain: Drain;
  readonly config: () => Config;
  readonly logger: Logger;
  readonly trace: TraceStore | undefined;
  /** This relay's queue, as its scheduler holds it. */
  readonly queue: QueueView;
  /** Applies the queue requests left in the spool now (the scheduler's). */
  readonly applyRequests: () => Promise<void>;
  /** Where the first SMTP listener is bound. */
  readonly smtpPort: () => number | undefined;
  readonly suppression: SuppressionStore;
  /** The smarthost provider's event webhooks (provider-event-routes.ts). */
  readonly providerEvents: EventLinker;
}

export function localBackend(p: LocalParts): OpsBackend {
  const { trace } = p;
  return {
    metrics: renderedOnce(async () => {
      p.outcomes.flush();
      return { contentType: p.metrics.registry.contentType, text: await p.metrics.registry.metrics() };
    }),
    readiness: p.readiness,
    sendTest: (token) => p.sendTests.get(token),
    // Candidate upstreams are typed by tenant admins: checked under the tenant-entered host policy.
    preflight: (body) => preflightEndpoint({ method: 'POST', body }, p.config(), p.logger),
    drain: async (ms) => {
      void p.drain.start(ms);
      return p.drain.status();
    },
    undrain: async () => p.drain.undrain(),
    drainStatus: async () => p.drain.status(),
    trace: trace && ((query, limit, tenant) => trace.find(query, limit, tenant)),
    console: {
      ...(trace ? { trace: { search: (search, scope) => trace.search(search, scope), message: (id, scope) => trace.find({ queueId: id }, 1, scope)[0] } } : {}),
      queue: p.queue,
      applyRequests: p.applyRequests,
      logger: p.logger,
      config: p.config,
      smtpPort: p.smtpPort,
      sendTestOutcome: (token) => p.sendTests.get(token),
      suppression: () => p.suppression,
    },
    providerEvents: p.providerEvents,
  };
}
