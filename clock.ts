/**
 * Time and randomness, the two things besides the network and storage that
 * the Paxos code depends on. They reach the proposer and the transport only
 * through these interfaces, so that a simulation can run the same code on a
 * simulated clock and a seeded random source.
 *
 * @module
 */

/**
 * A clock: the current time in milliseconds and timers.
 *
 * @example
 * ```ts
 * import { systemClock } from "./clock.ts";
 * const t0 = systemClock.now();
 * await systemClock.sleep(1);
 * systemClock.now() >= t0; // true
 * ```
 */
export interface Clock {
  /** Milliseconds since an arbitrary origin; never goes backwards. */
  now(): number;
  /** Calls `fn` after `ms` milliseconds; returns a handle for {@link Clock.clearTimer}. */
  setTimer(fn: () => void, ms: number): unknown;
  /** Cancels a timer set by {@link Clock.setTimer}; a no-op for one that already ran. */
  clearTimer(handle: unknown): void;
  /** Resolves after `ms` milliseconds. */
  sleep(ms: number): Promise<void>;
}

/**
 * A clock whose timers all ride on one timer of `base`, set for the
 * earliest: each timer of the runtime costs more than what a busy client
 * does per request, and a client under load sets and clears several per
 * request (a deadline per quorum asked, the wait for a first write's last
 * reply) that almost never fire. Timers due together run in the order of
 * their times, then of their setting; one that throws does not keep the
 * others from running (its error is thrown again in a microtask, as the
 * runtime would report it).
 *
 * @example
 * ```ts
 * import { oneTimer, systemClock } from "./clock.ts";
 * const clock = oneTimer(systemClock);
 * const order: number[] = [];
 * clock.setTimer(() => order.push(2), 2);
 * const dropped = clock.setTimer(() => order.push(0), 1);
 * clock.setTimer(() => order.push(1), 1);
 * clock.clearTimer(dropped);
 * await clock.sleep(5);
 * order; // [1, 2]
 * ```
 */
export function oneTimer(base: Clock): Clock {
  interface Timer {
    readonly at: number;
    readonly fn: () => void;
  }
  const timers = new Set<Timer>();
  let handle: unknown = null;
  let handleAt = Infinity;
  const disarm = () => {
    if (handle === null) return;
    base.clearTimer(handle);
    handle = null;
    handleAt = Infinity;
  };
  // The one timer, set for `at` unless it is set for as early already.
  const arm = (at: number) => {
    if (handle !== null && handleAt <= at) return;
    disarm();
    handleAt = at;
    handle = base.setTimer(fire, Math.max(0, at - base.now()));
  };
  const fire = () => {
    handle = null;
    handleAt = Infinity;
    const now = base.now();
    const due: Timer[] = [];
    let next = Infinity;
    for (const t of timers) {
      if (t.at <= now) due.push(t);
      else if (t.at < next) next = t.at;
    }
    for (const t of due) timers.delete(t);
    if (next < Infinity) arm(next);
    if (due.length > 1) due.sort((a, b) => a.at - b.at);
    for (const t of due) {
      try {
        t.fn();
      } catch (e) {
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  };
  const clock: Clock = {
    now: () => base.now(),
    setTimer(fn, ms) {
      const t: Timer = { at: base.now() + Math.max(0, ms), fn };
      timers.add(t);
      arm(t.at);
      return t;
    },
    clearTimer(t) {
      if (timers.delete(t as Timer) && timers.size === 0) disarm();
    },
    sleep: (ms) => new Promise((resolve) => clock.setTimer(resolve, ms)),
  };
  return clock;
}

/** The real clock: `performance.now()` and the runtime's timers, on one timer (see {@link oneTimer}). */
export const systemClock: Clock = oneTimer({
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as number),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
});

/**
 * A source of random numbers in [0, 1), used for backoff jitter.
 *
 * @example
 * ```ts
 * import { mathRandom } from "./clock.ts";
 * const x = mathRandom.next();
 * x >= 0 && x < 1; // true
 * ```
 */
export interface Random {
  /** A number in [0, 1). */
  next(): number;
}

/** Randomness from `Math.random()`. */
export const mathRandom: Random = { next: () => Math.random() };

/**
 * A seeded, repeatable random source (mulberry32), for tests and simulation.
 *
 * @example
 * ```ts
 * import { seededRandom } from "./clock.ts";
 * seededRandom(7).next() === seededRandom(7).next(); // true
 * ```
 */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return {
    next() {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    },
  };
}

/** How a {@link backoff} delay grows and how it is randomized. */
export interface BackoffPolicy {
  /** The ceiling of the first delay, in ms; each attempt doubles it. */
  readonly baseMs: number;
  /** The highest ceiling, in ms. */
  readonly maxMs: number;
  /**
   * The share of the ceiling always waited, in [0, 1]: 0 picks the delay
   * anywhere below the ceiling ("full jitter"), 0.5 in its upper half
   * (default 0).
   */
  readonly minShare?: number;
}

/**
 * The delay before a retry: exponential in `attempt` (0 for the first
 * retry), capped, and randomized so that clients that failed together do
 * not retry together.
 *
 * @example
 * ```ts
 * import { backoff, seededRandom } from "./clock.ts";
 * const ms = backoff(3, { baseMs: 50, maxMs: 2000, minShare: 0.5 }, seededRandom(1));
 * ms >= 200 && ms < 400; // true: in the upper half of 50 * 2^3
 * ```
 */
export function backoff(attempt: number, policy: BackoffPolicy, random: Random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempt, 30));
  const share = policy.minShare ?? 0;
  return ceiling * (share + (1 - share) * random.next());
}
