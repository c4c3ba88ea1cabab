/**
 * Logging that a peer cannot turn against the server: lines are rate-limited
 * per cause ({@link RateLimitedLog}), and written without ever blocking the
 * event loop ({@link LineWriter}), whether or not anyone reads them.
 *
 * @module
 */
import { type Clock, systemClock } from "./clock.ts";

/** Options of a {@link RateLimitedLog}. */
export interface RateLimitOptions {
  /** Lines shown per cause in each window; the rest are counted (default 5). */
  readonly burst?: number;
  /** The window, in ms (default 10,000). */
  readonly windowMs?: number;
  /** The clock of the windows (default: the system's). */
  readonly clock?: Clock;
}

// One cause's window: when it started, lines shown in it, lines held back.
interface Window {
  start: number;
  shown: number;
  held: number;
}

/**
 * A log that shows at most `burst` lines per cause in each window, and then
 * one line with the count of those it held back: a flood of one kind of
 * event makes a bounded number of lines.
 *
 * @example
 * ```ts
 * import { RateLimitedLog } from "./log.ts";
 * const lines: string[] = [];
 * const log = new RateLimitedLog((l) => lines.push(l), { burst: 2 });
 * for (let i = 0; i < 100; i++) log.log("bad frame", `bad frame ${i}`);
 * log.close();
 * lines; // ["bad frame 0", "bad frame 1", "bad frame: 98 more not shown in the last 10 s"]
 * ```
 */
export class RateLimitedLog {
  readonly #sink: (line: string, cause: string, held?: number) => void;
  readonly #burst: number;
  readonly #windowMs: number;
  readonly #clock: Clock;
  readonly #windows = new Map<string, Window>();
  #timer: unknown = null;

  /**
   * Builds a log writing its lines to `sink`, with each line's cause, and
   * for a line that counts what was held back, that count.
   */
  constructor(
    sink: (line: string, cause: string, held?: number) => void,
    opts: RateLimitOptions = {},
  ) {
    this.#sink = sink;
    this.#burst = opts.burst ?? 5;
    this.#windowMs = opts.windowMs ?? 10_000;
    this.#clock = opts.clock ?? systemClock;
    if (!(Number.isSafeInteger(this.#burst) && this.#burst > 0)) {
      throw new RangeError(`burst must be a positive integer, got ${opts.burst}`);
    }
    if (!(this.#windowMs > 0)) {
      throw new RangeError(`windowMs must be positive, got ${opts.windowMs}`);
    }
  }

  /**
   * Shows `message`, or counts it when `cause` has had its lines in this
   * window. `cause` names a kind of event (a fixed string, not from a peer).
   */
  log(cause: string, message: string): void {
    const now = this.#clock.now();
    let w = this.#windows.get(cause);
    if (w === undefined) this.#windows.set(cause, w = { start: now, shown: 0, held: 0 });
    if (now - w.start >= this.#windowMs) {
      this.#report(cause, w);
      w.start = now;
      w.shown = 0;
    }
    if (w.shown < this.#burst) {
      w.shown++;
      this.#sink(message, cause);
      return;
    }
    w.held++;
    this.#timer ??= this.#clock.setTimer(() => this.#tick(), this.#windowMs);
  }

  /** Shows the counts of what was held back, and stops the timer. */
  close(): void {
    if (this.#timer !== null) this.#clock.clearTimer(this.#timer);
    this.#timer = null;
    for (const [cause, w] of this.#windows) this.#report(cause, w);
  }

  #report(cause: string, w: Window): void {
    if (w.held === 0) return;
    const s = Math.round(this.#windowMs / 1000);
    this.#sink(`${cause}: ${w.held} more not shown in the last ${s} s`, cause, w.held);
    w.held = 0;
  }

  // At most one window after the first line held back: report the counts,
  // and start the windows of the causes that were held back again.
  #tick(): void {
    this.#timer = null;
    const now = this.#clock.now();
    for (const [cause, w] of this.#windows) {
      if (w.held === 0) {
        if (now - w.start >= this.#windowMs) this.#windows.delete(cause);
        continue;
      }
      this.#report(cause, w);
      w.start = now;
      w.shown = this.#burst; // what comes in this window is counted, and reported at its end
      this.#timer ??= this.#clock.setTimer(() => this.#tick(), this.#windowMs);
    }
  }
}

/** Options of a {@link LineWriter}. */
export interface LineWriterOptions {
  /**
   * Most characters waiting to be written (about bytes); lines beyond are
   * dropped and counted (default 64 Ki).
   */
  readonly maxQueuedBytes?: number;
}

/**
 * Writes lines in the background: `line()` never blocks, even when nobody
 * reads the other end (a full pipe). At most `maxQueuedBytes` wait; lines
 * beyond are dropped, and once writing goes on again, one line says how many.
 *
 * @example
 * ```ts
 * import { LineWriter } from "./log.ts";
 * const err = new LineWriter((bytes) => Deno.stderr.write(bytes));
 * err.line("paxoskv: something worth saying");
 * await err.flush();
 * ```
 */
export class LineWriter {
  readonly #write: (bytes: Uint8Array) => Promise<number>;
  readonly #max: number;
  #queue: string[] = [];
  #queued = 0; // UTF-16 units: about the bytes, for the bound
  #dropped = 0;
  #writing: Promise<void> | null = null;
  #broken = false;

  /** Builds a writer on `write` (e.g. `Deno.stderr.write`). */
  constructor(write: (bytes: Uint8Array) => Promise<number>, opts: LineWriterOptions = {}) {
    this.#write = write;
    this.#max = opts.maxQueuedBytes ?? 64 * 1024;
  }

  /** Lines dropped so far because too much was waiting. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Queues one line (a newline is added), or drops it when too much waits. */
  line(text: string): void {
    if (this.#broken) return;
    if (this.#queued + text.length + 1 > this.#max) {
      this.#dropped++;
      return;
    }
    this.#queue.push(text + "\n");
    this.#queued += text.length + 1;
    this.#writing ??= this.#drain();
  }

  /** Resolves once what is queued is written, or after `timeoutMs` (default 1000). */
  async flush(timeoutMs = 1000): Promise<void> {
    if (this.#writing === null) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#writing,
      new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs)),
    ]);
    clearTimeout(timer);
  }

  async #drain(): Promise<void> {
    let reported = 0;
    try {
      while (this.#queue.length > 0) {
        const text = this.#queue.join("");
        this.#queue = [];
        const all = encoder.encode(text);
        let off = 0;
        while (off < all.length) off += await this.#write(all.subarray(off));
        this.#queued -= text.length;
        if (this.#dropped > reported && this.#queue.length === 0) {
          const n = this.#dropped - reported;
          reported = this.#dropped;
          const note = `(${n} log lines dropped: they came faster than written)\n`;
          this.#queue.push(note);
          this.#queued += note.length;
        }
      }
    } catch {
      // Nobody can read us any more (a closed pipe): stop writing.
      this.#broken = true;
      this.#queue = [];
      this.#queued = 0;
    } finally {
      this.#writing = null;
    }
  }
}

const encoder = new TextEncoder();
