// The deterministic simulation (sim/): the CI share of seeds must pass every
// safety and liveness check, a seed must replay exactly, and every planted
// bug must be caught.
import assert from "node:assert/strict";
import { LIVENESS_BOUND_MS, runSimulation } from "../sim/simulation.ts";
import { BROKEN_VARIANTS } from "../sim/sim_world.ts";
import { SimClock } from "../sim/sim_clock.ts";

const CI_SEEDS = 2000;
const STEPS = 100;

Deno.test("simulation: the simulated clock runs timers in time order, ties in setting order", async () => {
  const clock = new SimClock();
  const fired: string[] = [];
  clock.setTimer(() => fired.push("b@10"), 10);
  clock.setTimer(() => fired.push("a@5"), 5);
  const cancelled = clock.setTimer(() => fired.push("never"), 7);
  clock.setTimer(() => fired.push("c@10"), 10);
  clock.clearTimer(cancelled);
  clock.setTimer(() => clock.setTimer(() => fired.push("d@25"), 5), 20);
  await clock.run(() => false, 1000);
  assert.deepEqual(fired, ["a@5", "b@10", "c@10", "d@25"]);
  assert.equal(clock.now(), 25);
  assert.equal(clock.pending, 0);
});

Deno.test("simulation: a seed replays exactly", async () => {
  const a = await runSimulation({ seed: 42, steps: STEPS });
  const b = await runSimulation({ seed: 42, steps: STEPS });
  assert.deepEqual(a, b);
  assert.ok(a.crashes > 0 && a.partitions > 0, "faults were injected");
  const c = await runSimulation({ seed: 43, steps: STEPS });
  assert.notDeepEqual(a, c);
});

Deno.test(`simulation: ${CI_SEEDS} seeds with crashes, partitions, loss, duplication and delay`, async () => {
  let worst = 0;
  let ops = 0;
  let completed = 0;
  for (let seed = 1; seed <= CI_SEEDS; seed++) {
    const r = await runSimulation({ seed, steps: STEPS });
    assert.ok(
      r.ok,
      `seed ${seed} failed: ${r.violations.join("; ")}\n` +
        `replay: deno task sim --seed ${seed} --steps ${STEPS}`,
    );
    worst = Math.max(worst, r.maxAfterHealMs);
    ops += r.ops;
    completed += r.completed;
  }
  assert.ok(worst <= LIVENESS_BOUND_MS);
  // Faults must not make everything fail: most operations complete.
  assert.ok(completed > ops / 2, `only ${completed} of ${ops} operations completed`);
});

for (const variant of BROKEN_VARIANTS) {
  Deno.test(`simulation: the planted bug "${variant}" is caught`, async () => {
    // Each must be caught on most seeds; checked on the first 10, 200 operations each.
    let caught = 0;
    for (let seed = 1; seed <= 10; seed++) {
      const r = await runSimulation({ seed, steps: 200, variant });
      if (!r.ok) caught++;
    }
    assert.ok(caught >= 8, `${variant} caught on only ${caught} of 10 seeds`);
  });
}
