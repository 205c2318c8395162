// When each queued message is next due, in a binary heap: a round takes only what is due (O(k log n) for
// k due messages) instead of copying and sorting every queued entry, so a backlog of 100,000 deferred
// messages costs nothing while it waits. A message rescheduled or removed leaves its old heap node
// behind, recognised as stale when it surfaces (a generation number per message).

interface Node {
  readonly at: number;
  readonly id: string;
  readonly generation: number;
}

export class DueTimes {
  readonly #heap: Node[] = [];
  readonly #current = new Map<string, { at: number; generation: number }>();
  #generation = 0;

  get size(): number {
    return this.#current.size;
  }

  has(id: string): boolean {
    return this.#current.has(id);
  }

  /** When `id` is due; undefined if it is not scheduled. */
  at(id: string): number | undefined {
    return this.#current.get(id)?.at;
  }

  /** Schedules `id` at `at`, replacing any earlier schedule of it. */
  set(id: string, at: number): void {
    const generation = ++this.#generation;
    this.#current.set(id, { at, generation });
    this.#push({ at, id, generation });
    // Stale nodes are dropped as they surface; past twice the live count, rebuild so memory stays bounded.
    if (this.#heap.length > 2 * this.#current.size + 1024) this.#rebuild();
  }

  delete(id: string): void {
    this.#current.delete(id);
  }

  /** Takes every id due at `now` (earliest first): they are no longer scheduled. */
  takeDue(now: number): string[] {
    const due: string[] = [];
    for (let top = this.#heap[0]; top && top.at <= now; top = this.#heap[0]) {
      this.#pop();
      const live = this.#current.get(top.id);
      if (live?.generation !== top.generation) continue;
      this.#current.delete(top.id);
      due.push(top.id);
    }
    return due;
  }

  /** The earliest due time, or undefined when nothing is scheduled. */
  next(): number | undefined {
    for (let top = this.#heap[0]; top; top = this.#heap[0]) {
      if (this.#current.get(top.id)?.generation === top.generation) return top.at;
      this.#pop();
    }
    return undefined;
  }

  #rebuild(): void {
    this.#heap.length = 0;
    for (const [id, { at, generation }] of this.#current) this.#push({ at, id, generation });
  }

  #push(node: Node): void {
    const heap = this.#heap;
    heap.push(node);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Node;
      if (p.at <= node.at) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = node;
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (!last || heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && (heap[right] as Node).at < (heap[left] as Node).at ? right : left;
      if ((heap[child] as Node).at >= last.at) break;
      heap[i] = heap[child] as Node;
      i = child;
    }
    heap[i] = last;
  }
}
