// The spool's volume, as the relay spends it: free space as the file system last said (asked at most once
// a second), less what the relay wrote since and what the transactions being received may still write.
// Mail intake answers 452 4.3.1 before the volume reaches its floor (delivery.spool.minFreeMegabytes), and
// the writers beside the path (the trace, the webhooks' outboxes) stop writing under it, so the volume
// never fills from mail intake and the journal of accepted mail always has room.
import fs from 'node:fs/promises';

/** What one recipient costs besides the message: its state, its delivery events, its trace rows. */
export const RECIPIENT_BYTES = 2048;
/** The estimate of a message whose size is not declared, until the relay has seen some. */
const FIRST_ESTIMATE_BYTES = 64 * 1024;
const LOOK_EVERY_MS = 1000;

export class DiskSpace {
  readonly #path: string;
  readonly #floor: () => number;
  #free = Number.POSITIVE_INFINITY;
  #lookedAt = Number.NEGATIVE_INFINITY;
  #looking: Promise<void> | undefined;
  #writtenSince = 0;
  #reserved = 0;
  #average = FIRST_ESTIMATE_BYTES;
  readonly #timer: NodeJS.Timeout;

  readonly #statfs: (path: string) => Promise<{ bavail: number; bsize: number }>;

  /** `floor`: the bytes to keep free, from the snapshot in force. `statfs`: tests pass a volume of their own. */
  constructor(path: string, floor: () => number, statfs: (path: string) => Promise<{ bavail: number; bsize: number }> = (p) => fs.statfs(p)) {
    this.#path = path;
    this.#floor = floor;
    this.#statfs = statfs;
    // Kept fresh without a caller waiting: the writers beside the path ask belowFloor synchronously.
    this.#timer = setInterval(() => void this.#look(), LOOK_EVERY_MS).unref();
    void this.#look();
  }

  /** Free bytes as best known now. */
  get available(): number {
    return this.#free - this.#writtenSince - this.#reserved;
  }

  /** Under the floor: the trace and the outboxes write nothing. */
  get belowFloor(): boolean {
    return this.available < this.#floor();
  }

  /** Bytes the relay put on the volume (counted until the next look at the file system). */
  written(bytes: number): void {
    this.#writtenSince += bytes;
  }

  /**
   * A transaction about to be received: room for `declared` bytes (SIZE=), else for twice what a message
   * has taken lately, above the floor? If so, that much is held for it until `release` is called.
   */
  async reserve(declared: number | undefined, maxBytes: number): Promise<{ readonly release: () => void } | undefined> {
    if (performance.now() - this.#lookedAt >= LOOK_EVERY_MS) await this.#look();
    const want = Math.min(maxBytes, Math.max(declared ?? 0, 2 * this.#average));
    if (this.available - want < this.#floor()) return undefined;
    this.#reserved += want;
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        this.#reserved -= want;
      },
    };
  }

  /** A message accepted: its size and recipients steer the next estimate. */
  accepted(bytes: number, recipients: number): void {
    this.#average = 0.9 * this.#average + 0.1 * (bytes + recipients * RECIPIENT_BYTES);
  }

  close(): void {
    clearInterval(this.#timer);
  }

  #look(): Promise<void> {
    this.#looking ??= this.#statfs(this.#path)
      .then(
        (s) => {
          this.#free = s.bavail * s.bsize;
          this.#writtenSince = 0;
        },
        () => {
          // Not there yet (created at start), or unreadable: the last answer stands.
        },
      )
      .finally(() => {
        this.#lookedAt = performance.now();
        this.#looking = undefined;
      });
    return this.#looking;
  }
}
