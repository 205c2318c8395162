// A worker's side: answers the primary's questions from its running relay, offers its metrics for the
// primary's one /metrics (prom-client's cluster aggregation), and says when it listens.
import prometheus from 'prom-client';
import type { RunningRelay } from '../relay.js';
import { isToWorker, type Question, type FromWorker } from './ipc.js';

export function serveThePrimary(relay: RunningRelay): void {
  // Constructing one in a worker installs prom-client's answer to the primary's metric requests.
  new prometheus.AggregatorRegistry();
  prometheus.AggregatorRegistry.setRegistries([relay.metrics.registry]);
  process.on('message', (message) => {
    if (!isToWorker(message)) return;
    void answer(relay, message.question).then(
      (value) => send({ tr: 'answer', id: message.id, value }),
      () => send({ tr: 'answer', id: message.id, value: null }),
    );
  });
  send({ tr: 'listening', addresses: relay.addresses });
}

async function answer(relay: RunningRelay, q: Question): Promise<unknown> {
  switch (q.what) {
    case 'ready':
      return relay.readiness();
    case 'send-test':
      return (await relay.sendTest(q.token)) ?? null;
    case 'drain':
      void relay.drain(q.seconds * 1000);
      return relay.drainStatus();
    case 'undrain':
      return relay.undrain();
    case 'drain-status':
      return relay.drainStatus();
  }
}

function send(message: FromWorker): void {
  if (process.connected) process.send?.(message);
}
