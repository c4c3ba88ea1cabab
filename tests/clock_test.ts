// The clock module's helpers: the seeded random source and backoff.
import assert from "node:assert/strict";
import { backoff, seededRandom } from "../clock.ts";

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
