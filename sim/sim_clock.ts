/**
 * A simulated clock: time moves only when the simulation runs the next timer,
 * so a run is as fast as the CPU allows and repeats exactly for a seed.
 *
 * @module
 */
import { setImmediate } from "node:timers";
import type { Clock } from "../clock.ts";

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
}

/**
 * A {@link Clock} whose time is advanced by {@link SimClock.run}. Timers
 * that fall due at the same time run in the order they were set.
 *
 * @example
 * ```ts
 * import { SimClock } from "./sim_clock.ts";
 * const clock = new SimClock();
 * let fired = 0;
 * clock.setTimer(() => fired = clock.now(), 50);
 * await clock.run(() => false, 1000);
 * fired; // 50
 * ```
 */
export class SimClock implements Clock {
  #now = 0;
  #seq = 0;
  readonly #heap: Timer[] = [];
  readonly #live = new Set<number>();

  /** The simulated time, in ms. */
  now(): number {
    return this.#now;
  }

  /** Runs `fn` `ms` simulated ms from now. */
  setTimer(fn: () => void, ms: number): number {
    const seq = ++this.#seq;
    this.#live.add(seq);
    this.#push({ at: this.#now + Math.max(0, ms), seq, fn });
    return seq;
  }

  /** Cancels a timer. */
  clearTimer(handle: unknown): void {
    this.#live.delete(handle as number);
  }

  /** Resolves after `ms` simulated ms. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimer(resolve, ms));
  }

  /** How many timers are waiting. */
  get pending(): number {
    return this.#live.size;
  }

  /**
   * Runs timers in time order, letting every promise reaction settle
   * between two timers, until `done()` holds, no timer is left, or the next
   * timer is past `until`.
   */
  async run(done: () => boolean, until: number): Promise<void> {
    for (;;) {
      // All microtasks (promise reactions) run before a macrotask.
      await new Promise((resolve) => setImmediate(resolve));
      if (done()) return;
      const next = this.#pop();
      if (next === undefined) return;
      if (next.at > until) {
        this.#live.add(next.seq);
        this.#push(next);
        return;
      }
      this.#now = next.at;
      next.fn();
    }
  }

  #pop(): Timer | undefined {
    for (;;) {
      const top = this.#heap[0];
      if (top === undefined) return undefined;
      const last = this.#heap.pop()!;
      if (this.#heap.length > 0) {
        this.#heap[0] = last;
        this.#down(0);
      }
      if (this.#live.delete(top.seq)) return top;
    }
  }

  #push(t: Timer): void {
    const h = this.#heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  #down(i: number): void {
    const h = this.#heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
