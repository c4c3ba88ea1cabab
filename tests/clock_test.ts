// The clock module's helpers: the seeded random source, backoff, and
// timers on one timer.
import assert from "node:assert/strict";
import { backoff, oneTimer, seededRandom } from "../clock.ts";
import { SimClock } from "../sim/sim_clock.ts";

Deno.test("seededRandom repeats its sequence for a seed, in [0, 1)", () => {
  const a = seededRandom(42), b = seededRandom(42);
  for (let i = 0; i < 1000; i++) {
    const x = a.next();
    assert.equal(x, b.next());
    assert.ok(x >= 0 && x < 1);
  }
});

Deno.test("backoff doubles its ceiling per attempt up to the cap, within its jitter", () => {
  const lowest = { next: () => 0 };
  const highest = { next: () => 1 - 2 ** -53 };
  const policy = { baseMs: 50, maxMs: 2000 };
  assert.deepEqual([0, 1, 2, 5, 6, 40].map((n) => backoff(n, policy, lowest)), [0, 0, 0, 0, 0, 0]);
  const tops = [0, 1, 2, 5, 6, 40].map((n) => Math.round(backoff(n, policy, highest)));
  assert.deepEqual(tops, [50, 100, 200, 1600, 2000, 2000]);
  // With minShare 0.5, at least half of the ceiling is waited.
  const half = { ...policy, minShare: 0.5 };
  assert.deepEqual([0, 3, 9].map((n) => backoff(n, half, lowest)), [25, 200, 1000]);
  const r = seededRandom(7);
  for (let n = 0; n < 50; n++) {
    const ms = backoff(n, half, r);
    const ceiling = Math.min(2000, 50 * 2 ** n);
    assert.ok(ms >= ceiling / 2 && ms < ceiling, `attempt ${n}: ${ms}`);
  }
});

Deno.test("oneTimer: every timer rides on one timer of the clock below, fires in order of time, and a cleared one never", async () => {
  const base = new SimClock();
  const clock = oneTimer(base);
  const fired: string[] = [];
  const at = (name: string) => () => fired.push(`${name}@${clock.now()}`);
  clock.setTimer(at("c"), 30);
  clock.setTimer(at("a"), 10);
  const dropped = clock.setTimer(at("x"), 5);
  clock.setTimer(at("b"), 10);
  clock.setTimer(at("d"), 30);
  // Five timers, one below (set for the earliest).
  assert.equal(base.pending, 1);
  clock.clearTimer(dropped);
  clock.clearTimer(dropped); // twice: a no-op
  // A timer set while one fires, for later than the rest.
  clock.setTimer(() => clock.setTimer(at("e"), 5), 30);
  await base.run(() => false, 1000);
  assert.deepEqual(fired, ["a@10", "b@10", "c@30", "d@30", "e@35"]);
  assert.equal(base.pending, 0);
  // Clearing every timer clears the one below: nothing keeps a process up.
  const t1 = clock.setTimer(at("y"), 10);
  const t2 = clock.setTimer(at("z"), 20);
  assert.equal(base.pending, 1);
  clock.clearTimer(t2);
  assert.equal(base.pending, 1);
  clock.clearTimer(t1);
  assert.equal(base.pending, 0);
  const slept = clock.sleep(3).then(() => fired.push(`slept@${clock.now()}`));
  await base.run(() => false, 1000);
  await slept;
  assert.deepEqual(fired.slice(5), ["slept@38"]);
});

Deno.test("oneTimer: a timer that throws does not keep the others due with it from running", async () => {
  const base = new SimClock();
  const clock = oneTimer(base);
  const errors: unknown[] = [];
  const onError = (e: ErrorEvent) => {
    errors.push(e.error);
    e.preventDefault();
  };
  globalThis.addEventListener("error", onError);
  try {
    const fired: number[] = [];
    clock.setTimer(() => fired.push(1), 1);
    clock.setTimer(() => {
      throw new Error("boom");
    }, 1);
    clock.setTimer(() => fired.push(3), 1);
    await base.run(() => false, 1000);
    // (The error is thrown again in a microtask, as the runtime reports it.)
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.deepEqual(fired, [1, 3]);
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /boom/);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});
