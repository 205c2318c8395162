// Where the relay's log lines go: stderr, buffered and written off the hot path. A write per line was a
// system call and a thread-pool job per line, four per message: lines collect up to 64 KiB and go out at
// least every 100 ms (a timer armed by a line, so an idle relay is not woken for nothing), and what is
// left goes out synchronously when the process exits. A line is copied into a buffer outside V8's heap
// as it comes: kept as a string for up to 100 ms, each line outlived a young collection or two and was
// copied, then promoted to the old generation, to die there (a third of what the relay kept alive at any
// moment, at one message at a time).
//
// Not pino.destination (sonic-boom 4.2): its synchronous flush retries a failed write every 100 ms forever
// unless the error is EAGAIN, so a relay whose stderr reader had gone (a log shipper that died, a
// terminal closed) hung at exit with a line pending, even on a second SIGTERM. Here a write that fails
// for any reason but EAGAIN ends the logging: the lines are dropped, the relay goes on and exits.
import fs from 'node:fs';

/** Write when this much has collected, */
const MIN_BYTES = 64 * 1024;
/** else this long after the first line. */
const FLUSH_MS = 100;
/** At exit, EAGAIN (a full non-blocking pipe) is waited out this many times, 10 ms each, then given up. */
const EXIT_RETRIES = 50;
/** What a buffer of lines holds: the write threshold, and a line that tops it up (a longer one gets its own). */
const BUFFER_BYTES = 2 * MIN_BYTES;

export class LogSink {
  readonly #fd: number;
  /** Filled buffers, and bytes put back after a short write, waiting to be written. */
  #pending: Buffer[] = [];
  /** The buffer being filled, and how much of it is. */
  #buffer = Buffer.allocUnsafeSlow(BUFFER_BYTES);
  #used = 0;
  #bytes = 0;
  /** The bytes handed to the thread pool and not yet written. */
  #inFlight: Buffer | undefined;
  #timer: NodeJS.Timeout | undefined;
  #broken = false;
  #waiting: (() => void)[] = [];

  constructor(fd = 2) {
    this.#fd = fd;
    process.once('exit', () => this.flushSync());
  }

  write(line: string): boolean {
    if (this.#broken) return true;
    // UTF-8 takes at most three bytes for each UTF-16 unit of the string.
    const most = line.length * 3;
    if (most > this.#buffer.length - this.#used) this.#seal();
    let bytes: number;
    if (most > this.#buffer.length) {
      const own = Buffer.from(line);
      this.#pending.push(own);
      bytes = own.length;
    } else {
      bytes = this.#buffer.write(line, this.#used);
      this.#used += bytes;
    }
    this.#bytes += bytes;
    if (this.#bytes >= MIN_BYTES) this.flush();
    else this.#timer ??= setTimeout(() => this.flush(), FLUSH_MS).unref();
    return true;
  }

  /** Writes what has collected; `done` is called once it is written (or dropped). */
  flush(done?: (err?: Error) => void): void {
    if (done) this.#waiting.push(done);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#inFlight) return;
    if (this.#broken || this.#bytes === 0) return this.#settle();
    const bytes = this.#take();
    this.#inFlight = bytes;
    fs.write(this.#fd, bytes, (err, written) => {
      this.#inFlight = undefined;
      if (err && (err as NodeJS.ErrnoException).code === 'EAGAIN') this.#requeue(bytes);
      else if (err) this.#broken = true;
      else if (written < bytes.length) this.#requeue(bytes.subarray(written));
      if (this.#broken || this.#bytes === 0) this.#settle();
      else if (this.#waiting.length > 0 || this.#bytes >= MIN_BYTES) this.flush();
      else this.#timer ??= setTimeout(() => this.flush(), FLUSH_MS).unref();
    });
  }

  /** At exit: what is left (and what was in flight, which may then appear twice), bounded in time. */
  flushSync(): void {
    clearTimeout(this.#timer);
    let bytes = Buffer.concat([this.#inFlight ?? Buffer.alloc(0), this.#take()]);
    this.#inFlight = undefined;
    for (let again = 0; bytes.length > 0 && !this.#broken && again <= EXIT_RETRIES; ) {
      try {
        bytes = bytes.subarray(fs.writeSync(this.#fd, bytes));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') this.#broken = true;
        again++;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      }
    }
  }

  /** What has collected, as one buffer; the collection starts again. */
  #take(): Buffer {
    this.#seal();
    const pending = this.#pending;
    this.#pending = [];
    this.#bytes = 0;
    return pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending);
  }

  /** The buffer filled so far joins those waiting; lines go into a new one. */
  #seal(): void {
    if (this.#used === 0) return;
    this.#pending.push(this.#buffer.subarray(0, this.#used));
    this.#buffer = Buffer.allocUnsafeSlow(BUFFER_BYTES);
    this.#used = 0;
  }

  #requeue(bytes: Buffer): void {
    // Before the lines that came while it was in flight: they are in #pending and #buffer, after it.
    this.#pending.unshift(bytes);
    this.#bytes += bytes.length;
  }

  #settle(): void {
    for (const done of this.#waiting.splice(0)) done();
  }
}
