// Which part a relay process plays: the one relay (`workers: 1`), one of N workers sharing the listen
// ports, or a process that only delivers a spool an earlier run left. The role decides the spool, whether
// it listens (and how), its share of the limits without a shared store, and whether it runs the ops
// listener (the primary runs it for its workers).
import type { Config } from '../../config/types.js';
import { SpoolLayout } from '../queue/spool-layout.js';

export type RelayRole =
  | { readonly kind: 'single' }
  | { readonly kind: 'worker'; readonly index: number }
  /** Delivers `spoolPath` and listens to nothing; `share` of each limit; says `startEvent` when started. */
  | { readonly kind: 'leftovers'; readonly spoolPath: string; readonly share: number; readonly startEvent: string };

export interface RoleSettings {
  readonly spoolPath: string;
  readonly listen: boolean;
  /** Each worker binds the SMTP ports itself (SO_REUSEPORT): see runtime/primary.ts. */
  readonly reusePort: boolean;
  /** Without a shared store: this process's part of every limit. */
  readonly limitShare: number;
  readonly ops: boolean;
  /** The name of the start line in the log. */
  readonly startEvent: string;
}

export function settingsOf(role: RelayRole, config: Config): RoleSettings {
  const root = config.delivery.spool.path;
  switch (role.kind) {
    case 'single':
      return { spoolPath: root, listen: true, reusePort: false, limitShare: 1, ops: true, startEvent: 'listening' };
    case 'worker':
      return { spoolPath: SpoolLayout.ofWorker(root, role.index), listen: true, reusePort: true, limitShare: 1 / config.workers, ops: false, startEvent: 'worker-listening' };
    case 'leftovers':
      return { spoolPath: role.spoolPath, listen: false, reusePort: false, limitShare: role.share, ops: false, startEvent: role.startEvent };
  }
}
