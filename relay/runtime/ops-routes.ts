// The ops listener's one table of endpoints, over a backend that is this relay, or (workers: N) the
// primary asking its workers. Each route names the scope a token needs; what each exposes and who should
// reach it is in the README (Operations).
import type { TracedMessage, TraceQuery } from '../reporting/trace-read.js';
import { traceAnswer } from '../reporting/trace-query.js';
import type { OpsRoute, Readiness } from '../ops/http.js';
import type { SendTestRecord } from '../observe/send-tests.js';
import { type ConsoleBackend, consoleRoutes } from './console-routes.js';
import type { DrainStatus } from './drain.js';
import { type EventLinker, providerEventRoutes } from './provider-event-routes.js';

export interface OpsBackend {
  metrics(): Promise<{ readonly contentType: string; readonly text: string }>;
  readiness(): Promise<Readiness>;
  sendTest(token: string): Promise<SendTestRecord | undefined>;
  /** A candidate upstream a tenant admin typed in: checked and preflighted (POST /preflight). */
  preflight(body: unknown): Promise<{ readonly status: number; readonly body: unknown }>;
  /** Starts a drain of at most `deadlineMs` and answers at once with where it stands. */
  drain(deadlineMs: number): Promise<DrainStatus>;
  /** Takes mail again after a drain. */
  undrain(): Promise<DrainStatus>;
  drainStatus(): Promise<DrainStatus>;
  /** The trace's search (this relay's, or every worker's); undefined with the trace off. */
  readonly trace: ((query: TraceQuery, limit: number, tenant?: string) => Promise<TracedMessage[]> | TracedMessage[]) | undefined;
  /** The mail console's search, queue and actions (console-routes.ts). */
  readonly console: ConsoleBackend;
  /** The smarthost provider's event webhooks (a relay that takes mail itself; not the primary of workers). */
  readonly providerEvents?: EventLinker;
}

/** The longest drain one request may ask for (a day). */
const MAX_DRAIN_SECONDS = 86_400;

export function opsRoutes(backend: OpsBackend): OpsRoute[] {
  const trace: OpsRoute['handle'] = async (req) => traceAnswer(backend.trace, req);
  return [
    { path: '/healthz', methods: ['GET'], handle: async () => ({ status: 200, text: 'ok\n', contentType: 'text/plain' }) },
    {
      path: '/readyz',
      methods: ['GET'],
      handle: async () => {
        const r = await backend.readiness().catch((err: Error) => ({ ready: false, checks: { error: err.message } }));
        return { status: r.ready ? 200 : 503, body: r };
      },
    },
    { path: '/metrics', scope: 'metrics', methods: ['GET'], handle: async () => ({ status: 200, ...(await backend.metrics()) }) },
    {
      path: '/send-test/',
      scope: 'send-test',
      methods: ['GET'],
      handle: async (req) => {
        const token = /^\/send-test\/([A-Za-z0-9-]{8,64})$/.exec(req.path)?.[1];
        if (!token) return { status: 404, body: { error: 'no such send-test' } };
        const found = await backend.sendTest(token).catch(() => undefined);
        return found ? { status: 200, body: found } : { status: 404, body: { pending: true } };
      },
    },
    { path: '/preflight', scope: 'preflight', methods: ['POST'], handle: async (req) => backend.preflight(req.body) },
    {
      path: '/drain',
      scope: 'drain',
      methods: ['GET', 'POST'],
      handle: async (req) => {
        if (req.method === 'GET') return { status: 200, body: await backend.drainStatus() };
        const given = req.query.get('seconds');
        const seconds = given === null ? 3600 : /^\d{1,6}$/.test(given) ? Number(given) : Number.NaN;
        if (!(seconds >= 1 && seconds <= MAX_DRAIN_SECONDS)) return { status: 400, body: { error: `seconds must be a whole number from 1 to ${MAX_DRAIN_SECONDS}` } };
        return { status: 200, body: await backend.drain(seconds * 1000) };
      },
    },
    { path: '/undrain', scope: 'drain', methods: ['POST'], handle: async () => ({ status: 200, body: await backend.undrain() }) },
    { path: '/trace', scope: 'trace', methods: ['GET'], handle: trace },
    { path: '/trace/', scope: 'trace', methods: ['GET'], handle: trace },
    ...consoleRoutes(backend.console),
    ...(backend.providerEvents ? providerEventRoutes(backend.providerEvents) : []),
  ];
}

/**
 * Scrapes that arrive while one is being rendered share it: twenty dashboards scraping at once cost one
 * rendering, not twenty turns of the loop SMTP runs on.
 */
export function renderedOnce<T>(render: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | undefined;
  return () => {
    running ??= render().finally(() => {
      running = undefined;
    });
    return running;
  };
}
