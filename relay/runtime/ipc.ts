// What the primary and its workers say to each other over the cluster's IPC channel: the primary asks
// (is the worker ready, what does it hold for a send-test token, drain, how far is the drain), a worker
// answers, and tells when it listens. prom-client's metric requests share the channel under their own type.
import type { Worker } from 'node:cluster';
import type { ProviderEvent } from '../reporting/provider-events/event.js';
import type { ReportedRecipient } from '../suppression/bounce-report.js';

export type Question =
  | { readonly what: 'ready' }
  | { readonly what: 'send-test'; readonly token: string }
  | { readonly what: 'drain'; readonly seconds: number }
  | { readonly what: 'undrain' }
  | { readonly what: 'drain-status' }
  // Provider events and bounce reports the primary took: each worker links what its own trace holds.
  | { readonly what: 'link-events'; readonly events: readonly ProviderEvent[] }
  | { readonly what: 'link-bounce'; readonly queueId: string; readonly reported: readonly ReportedRecipient[] }
  // Counted by one worker, so /metrics (the workers' counters summed) has one series each.
  | { readonly what: 'count-events'; readonly provider: string; readonly result: string; readonly n: number };

// Each of ours carries `relayIpc`, its kind: what tells it from prom-client's on the same channel.
export type ToWorker = { readonly relayIpc: 'ask'; readonly id: number; readonly question: Question } | { readonly relayIpc: 'stop' };
export type FromWorker = { readonly relayIpc: 'answer'; readonly id: number; readonly value: unknown } | { readonly relayIpc: 'listening'; readonly addresses: readonly { host: string; port: number }[] };

export const isFromWorker = (m: unknown): m is FromWorker => !!m && typeof m === 'object' && ((m as FromWorker).relayIpc === 'answer' || (m as FromWorker).relayIpc === 'listening');
export const isToWorker = (m: unknown): m is Extract<ToWorker, { relayIpc: 'ask' }> => !!m && typeof m === 'object' && (m as ToWorker).relayIpc === 'ask';
/** The primary stops its workers by asking (a signal could meet one the worker got directly, and count twice). */
export const isStop = (m: unknown): boolean => !!m && typeof m === 'object' && (m as ToWorker).relayIpc === 'stop';

let nextId = 1;
const waiting = new Map<number, (value: unknown) => void>();

/** Called by the primary for each message a worker sends. */
export function answerArrived(message: FromWorker): void {
  if (message.relayIpc !== 'answer') return;
  waiting.get(message.id)?.(message.value);
  waiting.delete(message.id);
}

/** Asks each worker; resolves with the answers that came within `timeoutMs` (a dead or busy worker is left out). */
export async function ask(workers: readonly Worker[], question: Question, timeoutMs = 2000): Promise<unknown[]> {
  const answers = workers
    .filter((w) => w.isConnected())
    .map(
      (worker) =>
        new Promise<{ value: unknown } | undefined>((resolve) => {
          const id = nextId++;
          const timer = setTimeout(() => {
            waiting.delete(id);
            resolve(undefined);
          }, timeoutMs);
          waiting.set(id, (value) => {
            clearTimeout(timer);
            resolve({ value });
          });
          try {
            worker.send({ relayIpc: 'ask', id, question } satisfies ToWorker);
          } catch {
            clearTimeout(timer);
            waiting.delete(id);
            resolve(undefined);
          }
        }),
    );
  return (await Promise.all(answers)).filter((a): a is { value: unknown } => a !== undefined).map((a) => a.value);
}
