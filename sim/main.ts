/**
 * Runs simulations from the command line.
 *
 *   deno task sim --seed S [--steps N] [--variant V] [--keep-versions K] [--membership]
 *                                                      replay one run exactly
 *   deno task sim --seeds K [--from S] [--steps N]     run K seeds
 *   deno task soak                                     a long run of seeds
 *
 * `--keep-versions K` runs the acceptors with retention (the last K versions
 * of each key kept). `--membership` changes the membership during the fault
 * phase (replace, grow 3 to 5, shrink 5 to 3, with the real
 * `changeMembership`); its planted bug is `--variant final-before-catch-up`.
 * Prints one line per failing seed (with the command that
 * replays it) and a summary; exits 1 when any run violated safety or
 * liveness.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { runSimulation, type SimResult } from "./simulation.ts";
import { BROKEN_VARIANTS, MEMBERSHIP_VARIANTS, type Variant } from "./sim_world.ts";

const VARIANTS: readonly string[] = ["correct", ...BROKEN_VARIANTS];

function fail(message: string): never {
  // deno-lint-ignore no-console
  console.error(`sim: ${message}`);
  Deno.exit(2);
}

function int(name: string, s: string | undefined, fallback: number): number {
  if (s === undefined) return fallback;
  if (!/^[0-9]+$/.test(s)) {
    fail(`--${name} must be a non-negative integer, got ${JSON.stringify(s)}`);
  }
  return Number(s);
}

if (import.meta.main) {
  let args;
  try {
    args = parseArgs({
      args: Deno.args,
      options: {
        seed: { type: "string" },
        seeds: { type: "string" },
        from: { type: "string" },
        steps: { type: "string" },
        variant: { type: "string" },
        "keep-versions": { type: "string" },
        "no-faults": { type: "boolean" },
        membership: { type: "boolean" },
        verbose: { type: "boolean" },
      },
    }).values;
  } catch (e) {
    fail((e as Error).message);
  }
  const variant = (args.variant ?? "correct") as Variant;
  const membership = args.membership === true;
  const variants = membership ? MEMBERSHIP_VARIANTS : VARIANTS;
  if (!variants.includes(variant)) {
    fail(
      `unknown --variant ${variant}${membership ? " with --membership" : ""}: one of ` +
        `${variants.join(", ")}` +
        (!membership && MEMBERSHIP_VARIANTS.includes(variant) ? " (or give --membership)" : ""),
    );
  }
  const steps = int("steps", args.steps, 200);
  const keep = args["keep-versions"] === undefined
    ? undefined
    : int("keep-versions", args["keep-versions"], 0);
  if (keep === 0) fail("--keep-versions must be at least 1");
  const first = args.seed !== undefined ? int("seed", args.seed, 1) : int("from", args.from, 1);
  const count = args.seed !== undefined ? 1 : int("seeds", args.seeds, 100);
  const t0 = performance.now();
  let failed = 0;
  let worstAfterHeal = 0;
  let ops = 0;
  let unknown = 0;
  let changes = 0;
  let kills = 0;
  for (let seed = first; seed < first + count; seed++) {
    const r: SimResult = await runSimulation({
      seed,
      steps,
      variant,
      faults: !args["no-faults"],
      membership,
      ...(keep === undefined ? {} : { keepVersions: keep }),
    });
    ops += r.ops;
    unknown += r.unknown;
    changes += r.changes.length;
    kills += r.changerKills;
    worstAfterHeal = Math.max(worstAfterHeal, r.maxAfterHealMs);
    if (args.verbose || count === 1) {
      // deno-lint-ignore no-console
      console.log(JSON.stringify(r));
    }
    if (!r.ok) {
      failed++;
      // deno-lint-ignore no-console
      console.log(
        `FAIL seed ${seed}: ${
          r.violations[0]
        }\n  replay: deno task sim --seed ${seed} --steps ${steps}` +
          (variant === "correct" ? "" : ` --variant ${variant}`) +
          (membership ? " --membership" : "") +
          (keep === undefined ? "" : ` --keep-versions ${keep}`),
      );
    }
  }
  const secs = (performance.now() - t0) / 1000;
  // deno-lint-ignore no-console
  console.log(
    `${variant}: ${count - failed} of ${count} seeds passed (${first}..${first + count - 1}, ` +
      `${steps} ops each, ${ops} ops, ${unknown} with unknown outcome) in ${secs.toFixed(1)} s; ` +
      `longest operation after the heal: ${worstAfterHeal.toFixed(1)} simulated ms` +
      (membership ? `; ${changes} membership changes finished, ${kills} changer runs killed` : ""),
  );
  Deno.exit(failed > 0 ? 1 : 0);
}
