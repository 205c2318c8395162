// When each queued message is next due, in a binary heap: a round takes only what is due (O(k log n) for
// k due messages) instead of copying and sorting every queued entry, so a backlog of 100,000 deferred
// messages costs nothing while it waits. A message rescheduled or removed leaves its old node behind,
// recognised as stale when it surfaces: the id's current node is another one, or none.
//
// A message scheduled for a time already passed at the last round (a fresh one, due at once; a retry
// asked for now) skips the heap: it waits in a list for the next round. Through the heap it would climb
// and then sink its whole height, 17 levels with 100,000 deferred messages, each a node far apart in
// memory: 5-8 us a message in CPU profiles of that backlog.

interface Node {
  readonly at: number;
  readonly id: string;
}

const earliestFirst = (a: Node, b: Node) => a.at - b.at;

export class DueTimes {
  readonly #heap: Node[] = [];
  /** Scheduled at or before `#lastRound`: due at the next round. */
  #overdue: Node[] = [];
  /** The node in force for each scheduled id. */
  readonly #current = new Map<string, Node>();
  /** The time the last round took what was due at. */
  #lastRound = -Infinity;

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
    const node = { at, id };
    this.#current.set(id, node);
    if (at <= this.#lastRound) {
      this.#overdue.push(node);
      return;
    }
    this.#push(node);
    // Stale nodes are dropped as they surface; past twice the live count, rebuild so memory stays bounded.
    if (this.#heap.length > 2 * this.#current.size + 1024) this.#rebuild();
  }

  delete(id: string): void {
    this.#current.delete(id);
  }

  /** Takes every id due at `now` (earliest first): they are no longer scheduled. */
  takeDue(now: number): string[] {
    this.#lastRound = now;
    const early = this.#takeOverdue(now);
    const due: string[] = [];
    let k = 0;
    for (let top = this.#heap[0]; top && top.at <= now; top = this.#heap[0]) {
      this.#pop();
      if (this.#current.get(top.id) !== top) continue;
      this.#current.delete(top.id);
      for (let e = early[k]; e && e.at <= top.at; e = early[++k]) due.push(e.id);
      due.push(top.id);
    }
    for (let e = early[k]; e; e = early[++k]) due.push(e.id);
    return due;
  }

  /** The earliest due time, or undefined when nothing is scheduled. */
  next(): number | undefined {
    let earliest: number | undefined;
    for (const node of this.#overdue) if (this.#current.get(node.id) === node && (earliest === undefined || node.at < earliest)) earliest = node.at;
    for (let top = this.#heap[0]; top; top = this.#heap[0]) {
      if (this.#current.get(top.id) === top) return earliest === undefined || top.at < earliest ? top.at : earliest;
      this.#pop();
    }
    return earliest;
  }

  /** The overdue list's live nodes due at `now`, earliest first, no longer scheduled; the rest (a clock set back) go to the heap. */
  #takeOverdue(now: number): Node[] {
    if (this.#overdue.length === 0) return [];
    const nodes = this.#overdue;
    this.#overdue = [];
    const due: Node[] = [];
    for (const node of nodes) {
      if (this.#current.get(node.id) !== node) continue;
      if (node.at > now) {
        this.#push(node);
        continue;
      }
      this.#current.delete(node.id);
      due.push(node);
    }
    return due.sort(earliestFirst);
  }

  #rebuild(): void {
    this.#heap.length = 0;
    this.#overdue = [];
    for (const node of this.#current.values()) this.#push(node);
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
