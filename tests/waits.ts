/**
 * Waiting in tests without hoping for timing: a bound that turns a lost
 * reply into a failure instead of a hang, the error a promise must reject
 * with, and one turn of the event loop.
 *
 * @module
 */
import assert from "node:assert/strict";

/** Rejects when `p` has not settled after `ms`, so a lost reply fails instead of hanging. */
export function within<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Settles `p` and returns its error, failing when it resolves. */
export async function errorOf(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new assert.AssertionError({ message: "expected a rejection" });
}

/**
 * Lets everything that can run, run: pending microtasks, and I/O callbacks
 * that are ready. (A check for "still pending" after it is sound only when
 * what is awaited is held by the test itself.)
 */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
