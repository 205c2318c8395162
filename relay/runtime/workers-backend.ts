// The ops listener's backend in the primary of workers: /metrics summed over the workers (prom-client's
// cluster aggregation) and the primary's own, /readyz when every worker is ready, send-test outcomes
// from whichever worker holds them, drain and undrain of every worker, the trace of every worker's spool,
// and the provider events (verified here, linked by the workers).
import type { Worker } from 'node:cluster';
import fs from 'node:fs';
import prometheus from 'prom-client';
import type { Config } from '../../config/types.js';
import type { Logger } from '../log.js';
import type { SendTestRecord } from '../observe/send-tests.js';
import { spoolQueueView } from '../queue/queue-view.js';
import { SpoolLayout } from '../queue/spool-layout.js';
import type { TraceQuery } from '../reporting/trace-read.js';
import { openSuppressions } from '../suppression/open.js';
import type { SuppressionStore } from '../suppression/store.js';
import type { DrainStatus } from './drain.js';
import { ask, type Question } from './ipc.js';
import { type OpsBackend, renderedOnce } from './ops-routes.js';
import type { EventLinker } from './provider-event-routes.js';

/** A SendGrid batch of thousands of events is linked event by event in every worker. */
const LINK_TIMEOUT_MS = 20_000;

export interface WorkersView {
  /** The workers running now. */
  workers(): readonly Worker[];
  /** How many workers the config asks for. */
  readonly count: number;
  stopping(): boolean;
  config(): Config;
  readonly logger: Logger;
  /** The primary's own metrics (restarts, workers running). */
  readonly registry: prometheus.Registry;
}

export function workersBackend(view: WorkersView): OpsBackend {
  const aggregator = new prometheus.AggregatorRegistry();
  const root = view.config().delivery.spool.path;
  const everyWorker = async (question: Question) => (await ask(view.workers(), question)) as DrainStatus[];
  let suppressions: SuppressionStore | undefined;
  // Kept by whichever worker the message went through.
  const sendTest = async (token: string) => ((await ask(view.workers(), { what: 'send-test', token })).find((a) => a !== null) as SendTestRecord | undefined) ?? undefined;
  return {
    providerEvents: workersLinker(view),
    metrics: renderedOnce(async () => ({ contentType: view.registry.contentType, text: `${await aggregator.clusterMetrics()}\n${await view.registry.metrics()}` })),
    readiness: async () => {
      const answers = (await ask(view.workers(), { what: 'ready' })) as { ready: boolean }[];
      const ready = answers.filter((a) => a?.ready).length;
      return { ready: ready >= view.count && !view.stopping(), checks: { config: 'loaded', workers: `${ready} of ${view.count} ready`, stopping: view.stopping() } };
    },
    sendTest,
    preflight: async (body) => (await import('../delivery/preflight.js')).preflightEndpoint({ method: 'POST', body }, view.config(), view.logger),
    drain: async (ms) => drainAnswer(await everyWorker({ what: 'drain', seconds: ms / 1000 })),
    undrain: async () => drainAnswer(await everyWorker({ what: 'undrain' })),
    drainStatus: async () => drainAnswer(await everyWorker({ what: 'drain-status' })),
    trace: view.config().trace.enabled ? async (query, limit, tenant) => (await allTraces(root))(query, limit, tenant) : undefined,
    console: {
      ...(view.config().trace.enabled
        ? {
            trace: {
              search: async (search, scope) => (await import('../reporting/trace-search.js')).searchTraces(traceFiles(root), search, scope),
              message: async (id, scope) => (await allTraces(root))({ queueId: id }, 1, scope)[0],
            },
          }
        : {}),
      queue: spoolQueueView(() => root),
      // Each worker applies them at its next scan (delivery.scanSeconds).
      applyRequests: async () => {},
      logger: view.logger,
      config: view.config,
      // The workers share the configured port.
      smtpPort: () => view.config().listen[0]?.port,
      sendTestOutcome: sendTest,
      // Opened when first asked for: the primary takes no mail itself.
      suppression: () => (suppressions ??= openSuppressions(view.config(), view.logger).store),
    },
  };
}

/** Linking is done by the workers (each has its own trace); a worker that does not answer may hold the message. */
export function workersLinker(view: Pick<WorkersView, 'workers' | 'config' | 'logger'>): EventLinker {
  const everyWorker = async (question: Question): Promise<unknown[]> => {
    const workers = view.workers().filter((w) => w.isConnected());
    const answers = await ask(workers, question, LINK_TIMEOUT_MS);
    if (workers.length === 0 || answers.length < workers.length || answers.includes(null)) throw new Error(`${answers.length} of ${workers.length} workers answered`);
    return answers;
  };
  return {
    config: view.config,
    logger: view.logger,
    count: (provider, result, n) => {
      const first = view.workers().find((w) => w.isConnected());
      if (n > 0 && first) void ask([first], { what: 'count-events', provider, result, n });
    },
    link: async (events) => {
      const answers = (await everyWorker({ what: 'link-events', events })) as boolean[][];
      return events.map((_, i) => answers.some((a) => a[i] === true));
    },
    linkBounce: async (queueId, reported) => ((await everyWorker({ what: 'link-bounce', queueId, reported })) as number[]).reduce((a, b) => a + b, 0),
  };
}

/** Every worker's drain, as one: draining when all are, their queues and attempts summed. */
function drainAnswer(answers: readonly DrainStatus[]) {
  const sum = (key: 'queued' | 'inFlight') => answers.reduce((n, a) => n + (a?.[key] ?? 0), 0);
  return { draining: answers.length > 0 && answers.every((a) => a.draining), queued: sum('queued'), inFlight: sum('inFlight'), workers: answers.length };
}

/** A search over every worker's trace file under the spool root. */
async function allTraces(root: string) {
  const { findInTraces } = await import('../reporting/trace-read.js');
  const files = traceFiles(root);
  return (query: TraceQuery, limit: number, tenant?: string) => findInTraces(files, query, limit, tenant);
}

/** Every worker's trace file under the spool root. */
function traceFiles(root: string): string[] {
  return SpoolLayout.spoolsUnder(root)
    .map((s) => new SpoolLayout(s.path).traceFile)
    .filter((f) => fs.existsSync(f));
}
