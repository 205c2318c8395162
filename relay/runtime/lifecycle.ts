// The parts of a running relay that a new config reaches and that a stop closes, in one list. Start adds
// them in the order they start; a reload applies the new snapshot to each in that order; a stop closes
// them in the reverse order: what takes mail first (the listeners), what holds it last (the spool).
import type { Config } from '../../config/types.js';

export interface Component {
  /** Takes a new config snapshot (a reload). */
  apply?(config: Config): void;
  close(): Promise<void> | void;
}

export class Lifecycle {
  readonly #components: Component[] = [];

  /** Adds a component that has started; returns it. */
  add<T extends Component>(component: T): T {
    this.#components.push(component);
    return component;
  }

  /** A closing function as a component (a file watcher, a certificate watcher). */
  onClose(close: () => void): void {
    this.#components.push({ close });
  }

  apply(config: Config): void {
    for (const c of this.#components) c.apply?.(config);
  }

  async close(): Promise<void> {
    for (const c of [...this.#components].reverse()) await c.close();
    this.#components.length = 0;
  }
}
