// Tests of the linearizability checker (check/linearizability.ts): random
// valid histories from a simulated sequential execution, and mutations of
// those that break the model.
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { seededRandom } from "../clock.ts";
import {
  checkKv,
  type KvInput,
  type KvOperation,
  type KvOutput,
} from "../check/linearizability.ts";
import {
  assertAccepted,
  cas,
  conflict,
  create,
  del,
  found,
  get,
  notFound,
  set,
  unknown,
  wrote,
} from "./histories.ts";

// --- random valid histories -------------------------------------------------

interface ModelState {
  version: bigint;
  deleted: boolean;
  value: unknown;
}

const INITIAL: ModelState = { version: -1n, deleted: false, value: undefined };

/**
 * The sequential specification, written apart from the checker's: the state
 * after `input` and the output it gives (`next` is `s` itself when nothing
 * was written).
 */
function applyModel(s: ModelState, input: KvInput): { next: ModelState; output: KvOutput } {
  const absent = s.version === -1n || s.deleted;
  if (input.op === "get") {
    return { next: s, output: absent ? notFound(s.version) : found(s.version, s.value) };
  }
  const writes = input.op === "set" || input.op === "delete" ||
    (input.op === "cas" && input.ifVersion === s.version) ||
    (input.op === "create" && absent);
  if (!writes) return { next: s, output: conflict(s.version) };
  const next = {
    version: s.version + 1n,
    deleted: input.op === "delete",
    value: input.op === "delete" ? undefined : input.value,
  };
  return { next, output: wrote(next.version) };
}

interface Generated {
  history: KvOperation[];
  /** For each key, the value written by each version (undefined: tombstone). */
  versions: Map<string, Map<bigint, unknown>>;
}

/**
 * Simulates a sequential execution: operations take effect at increasing
 * linearization points, and each one's recorded [call, ret] is a random
 * interval around its point, without overlapping its client's previous
 * operation. Some outputs are unknown; half of those took effect, half not.
 */
function generate(
  seed: number,
  { ops = 100, clients = 4, keys = ["a", "b", "c"], spread = 20, unknownRate = 0.05 } = {},
): Generated {
  const rnd = seededRandom(seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd.next() * xs.length)] as T;
  const states = new Map<string, ModelState>();
  const versions = new Map<string, Map<bigint, unknown>>();
  const free = new Array<number>(clients).fill(-Infinity);
  const history: KvOperation[] = [];
  let t = 0;
  let n = 0;
  while (history.length < ops) {
    t += 1 + rnd.next() * 3;
    const idle = [...free.keys()].filter((c) => (free[c] as number) < t);
    if (idle.length === 0) continue;
    const client = pick(idle);
    const key = pick(keys);
    const s = states.get(key) ?? INITIAL;
    n++;
    // Unique values, some structured, to exercise the deep comparison.
    const value = n % 3 === 0
      ? { n: BigInt(n), bytes: new Uint8Array([n & 255, n >> 8]), tags: [key, n] }
      : `${key}-${n}`;
    let input: KvInput;
    const r = rnd.next();
    if (r < 0.3) input = set(value);
    else if (r < 0.55) input = get;
    else if (r < 0.75) {
      const ifVersion = rnd.next() < 0.6 ? s.version : s.version + pick([-1n, 1n, 2n]);
      input = cas(ifVersion < -1n ? -1n : ifVersion, value);
    } else if (r < 0.87) input = create(value);
    else input = del;

    const { next, output: modelOutput } = applyModel(s, input);
    let output = modelOutput;

    const call = free[client] === -Infinity || rnd.next() < 0.5
      ? Math.max(t - rnd.next() * spread, ((free[client] as number) + t) / 2)
      : ((free[client] as number) + t) / 2;
    const ret = t + rnd.next() * spread;
    free[client] = ret;
    let applied = true;
    if (rnd.next() < unknownRate) {
      output = unknown;
      applied = rnd.next() < 0.5;
    }
    if (applied && next !== s) {
      states.set(key, next);
      let vs = versions.get(key);
      if (vs === undefined) versions.set(key, vs = new Map());
      vs.set(next.version, next.value);
    }
    // The client gave up at `ret` on unknown outputs: the checker must treat
    // that as "any time later".
    history.push({ client, key, input, output, call, ret });
  }
  return { history, versions };
}

Deno.test("accepts a large random valid history quickly", () => {
  for (const seed of [1, 2, 3]) {
    const { history } = generate(seed, { ops: 300, clients: 6, spread: 25 });
    const r = assertAccepted(history);
    // The versioned model leaves little to guess: the search is close to
    // linear, not an exponential walk (a few steps per operation).
    assert.ok(r.explored < 10 * history.length, `explored ${r.explored} for seed ${seed}`);
  }
  // Ten times longer, with many unknown outcomes (each stays pending to the
  // end, so every step looks at them again): still far from exponential.
  const { history } = generate(4, { ops: 3000, clients: 8, spread: 30, unknownRate: 0.1 });
  const r = assertAccepted(history);
  assert.ok(r.explored < 100 * history.length, `explored ${r.explored}`);
});

// --- mutations of valid histories -------------------------------------------

Deno.test("rejects every corruption of a valid history that provably breaks the model", () => {
  let mutants = 0;
  for (let seed = 100; seed < 140; seed++) {
    const { history, versions } = generate(seed, { ops: 60, keys: ["a", "b"], spread: 15 });
    assertAccepted(history);
    history.forEach((op, i) => {
      const out = op.output;
      if (!out.ok && "unknown" in out) return;
      const corrupt = (output: KvOutput, why: string) => {
        mutants++;
        const mutant = history.with(i, { ...op, output });
        const r = checkKv(mutant);
        assert.equal(r.ok, false, `seed ${seed}, op #${i}: ${why} was accepted`);
        assert.equal(r.timedOut, undefined);
        assert.equal(r.key, op.key);
      };
      const far = BigInt(history.length) + 10n; // more versions than operations
      if (out.ok && "found" in out) {
        if (out.found) {
          corrupt(found(out.version, "never written"), "a read of a never-written value");
          // Values are unique per write: pair this version with another version's value.
          for (const [v, value] of versions.get(op.key) ?? []) {
            if (v !== out.version && value !== undefined) {
              corrupt(found(out.version, value), `a read of v${v}'s value as v${out.version}`);
              break;
            }
          }
        }
        corrupt({ ...out, version: far }, "a read of an unreachable version");
      } else if (out.ok) {
        corrupt(wrote(far), "a write of an unreachable version");
        // Two known writes cannot create the same version.
        const twin = history.find((p, j) =>
          j !== i && p.key === op.key && p.output.ok && !("found" in p.output) &&
          p.output.version !== out.version
        );
        if (twin !== undefined && twin.output.ok) {
          corrupt(wrote(twin.output.version), "a second write of the same version");
        }
      } else if ("conflict" in out) {
        corrupt(conflict(far), "a conflict with an unreachable version");
      }
    });
  }
  assert.ok(mutants > 4000, `only ${mutants} mutants`);
});

Deno.test("rejects most off-by-one corruptions of a valid history", () => {
  let mutants = 0;
  let rejected = 0;
  for (let seed = 200; seed < 230; seed++) {
    const { history } = generate(seed, { ops: 60, keys: ["a", "b"], spread: 15 });
    history.forEach((op, i) => {
      const out = op.output;
      let output: KvOutput;
      if (!out.ok) {
        if ("unknown" in out) return;
        output = conflict(out.actual + 1n);
      } else {
        output = { ...out, version: out.version + (i % 2 === 0 ? 1n : -1n) };
      }
      mutants++;
      const r = checkKv(history.with(i, { ...op, output }));
      assert.equal(r.timedOut, undefined);
      if (!r.ok) rejected++;
    });
  }
  // Some shifts stay linearizable (an overlapping operation can take the
  // other place), but most do not.
  assert.ok(rejected > 0.9 * mutants, `rejected ${rejected} of ${mutants}`);
});

// --- agreement with a brute-force search -----------------------------------

/**
 * The definition, checked the slow way: try every order of the operations
 * that keeps real-time order (a known operation that returned before another
 * was called comes first), leaving out any subset of those with unknown
 * outputs, and run each order through the model. For a handful of
 * operations on one key.
 */
function bruteForce(history: KvOperation[]): boolean {
  const isUnknown = (op: KvOperation) => !op.output.ok && "unknown" in op.output;
  const search = (remaining: KvOperation[], s: ModelState): boolean => {
    if (remaining.every(isUnknown)) return true;
    return remaining.some((x, i) => {
      const rest = remaining.filter((_, j) => j !== i);
      // Every known operation still to place must not have returned before x began.
      if (rest.some((y) => !isUnknown(y) && y.ret < x.call)) return false;
      const { next, output } = applyModel(s, x.input);
      if (!isUnknown(x) && !isDeepStrictEqual(output, x.output)) return false;
      return search(rest, next) || (isUnknown(x) && search(rest, s));
    });
  };
  return search(history, INITIAL);
}

Deno.test("agrees with a brute-force search on small valid and corrupted histories", () => {
  const rnd = seededRandom(7);
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd.next() * xs.length)] as T;
  const verdicts = { accepted: 0, rejected: 0 };
  for (let seed = 1000; seed < 2500; seed++) {
    const { history } = generate(seed, {
      ops: 8,
      clients: 3,
      keys: ["k"],
      spread: 8,
      unknownRate: 0.3,
    });
    // Corrupt one operation in most histories: an output, or its interval.
    const i = Math.floor(rnd.next() * history.length);
    const op = history[i] as KvOperation;
    const out = op.output;
    const shift = pick([-1n, 1n]);
    let output = out;
    const r = rnd.next();
    if (r < 0.2) {
      const call = op.call + (rnd.next() - 0.5) * 20;
      history[i] = { ...op, call, ret: call + rnd.next() * 10 };
    } else if (r < 0.8 && out.ok) {
      const other = pick(history.map((p) => "value" in p.input ? p.input.value : "x"));
      output = pick([
        { ...out, version: out.version + shift },
        "found" in out ? found(out.version, other) : wrote(out.version + shift),
        "found" in out && out.found ? notFound(out.version) : found(out.version, other),
      ]);
    } else if (r < 0.8 && "conflict" in out) {
      output = conflict(out.actual + shift);
    }
    if (output !== out && "found" in output !== "found" in out) output = out; // keep shapes valid
    history[i] = { ...(history[i] as KvOperation), output };

    const expected = bruteForce(history);
    const r2 = checkKv(history);
    assert.equal(r2.timedOut, undefined);
    assert.equal(
      r2.ok,
      expected,
      `seed ${seed}: checker says ${r2.ok}, brute force ${expected}: ${r2.reason}`,
    );
    verdicts[expected ? "accepted" : "rejected"]++;
  }
  // Both verdicts are well represented.
  assert.ok(verdicts.accepted > 400 && verdicts.rejected > 400, JSON.stringify(verdicts));
});
