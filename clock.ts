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

/** The real clock: `performance.now()` and the runtime's timers. */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as number),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

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
