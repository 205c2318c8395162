// How a process stops: the first SIGTERM or SIGINT (or, in a worker, the primary's request) begins a
// graceful stop, and the returned promise resolves when it is done; a second signal means "out now"
// (`hurry`). Workers take only the primary's request and SIGTERM: Ctrl-C reaches the whole process group,
// and the primary stops them once.
import type { Logger } from '../log.js';
import { isStop } from './ipc.js';

export interface StopHandlers {
  readonly signals: readonly NodeJS.Signals[];
  /** The graceful stop; the promise resolves when it is done. */
  readonly stop: (signal: string) => Promise<unknown>;
  /** A second signal during the stop. */
  readonly hurry: (signal: string) => void;
  /** Also stop when the primary asks (a worker). */
  readonly primaryMayAsk?: boolean;
}

export function untilStopped(h: StopHandlers): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (signal: string) => {
      // The primary's request, after a signal that already began the stop, is the same request.
      if (stopping && signal === 'primary') return;
      if (stopping) return h.hurry(signal);
      stopping = true;
      h.stop(signal).then(
        () => resolve(),
        () => resolve(),
      );
    };
    for (const signal of h.signals) process.on(signal, () => onSignal(signal));
    if (h.primaryMayAsk) {
      process.on('message', (m: unknown) => {
        if (isStop(m)) onSignal('primary');
      });
    }
  });
}

/** A second signal in a relay process: the operator wants out now. Queued mail is on disk; nothing accepted is lost. */
export function exitNow(logger: Logger): (signal: string) => void {
  return (signal) => {
    logger.warn({ event: 'stopping-now', signal });
    logger.flush();
    process.exit(1);
  };
}
