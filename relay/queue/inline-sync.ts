// Where the journal's fsync runs. In the thread pool, the main thread goes on serving other sessions while
// the disk works, and their commits join the next fsync (group commit); the hand-off costs two thread
// wake-ups a commit. With one client session and nothing beside it, there is nobody to serve or to group
// with: the fsync is made on the main thread, which would only have slept through it. Measured on the
// bench machine (a 1.5 KB record, fsync each): 35 us of CPU a commit inline against 75 in the pool, and
// the relay at one message per connection, one client, flipping between the two every second: 0.89 to
// 1.00 of the pool's CPU a message (four runs of 60 s, 0.94 on average).
//
// Inline blocks everything else on the thread (a delivery's reply, the ops listener) for as long as the
// disk takes, so only while the disk is fast: the smoothed time of the last fsyncs, inline or not, under
// INLINE_SYNC_MAX_MS. A disk that slows down sends the fsyncs back to the pool at once.

/** Inline only while fsyncs take less than this, smoothed. */
export const INLINE_SYNC_MAX_MS = 2;
/** Weight of the newest fsync in the smoothed time. */
const WEIGHT = 0.25;

export class InlineSync {
  /** Starts at the bound: the first fsyncs go to the pool and show how fast the disk is. */
  #smoothedMs = INLINE_SYNC_MAX_MS;

  /** Whether the next fsync runs inline: nobody else waits on this thread, and the disk is fast. */
  chooses(alone: boolean): boolean {
    return alone && this.#smoothedMs < INLINE_SYNC_MAX_MS;
  }

  /** An fsync took this long (ms). */
  took(ms: number): void {
    this.#smoothedMs += WEIGHT * (ms - this.#smoothedMs);
  }

  get smoothedMs(): number {
    return this.#smoothedMs;
  }
}
