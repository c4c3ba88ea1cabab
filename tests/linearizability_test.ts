// Tests of the linearizability checker (check/linearizability.ts): hand-made
// histories it must accept or reject, random valid histories from a simulated
// sequential execution, and mutations of those that break the model.
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
  assertRejected,
  cas,
  conflict,
  create,
  del,
  found,
  get,
  notFound,
  o,
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

// --- accepted histories -----------------------------------------------------

Deno.test("accepts an empty history", () => {
  assert.deepEqual(checkKv([]), { ok: true, explored: 0 });
});

Deno.test("accepts a sequential history of every operation", () => {
  assertAccepted([
    o(1, get, notFound(-1n), 0, 1),
    o(1, set("a"), wrote(0n), 2, 3),
    o(2, get, found(0n, "a"), 4, 5),
    o(1, set("b"), wrote(1n), 6, 7),
    o(2, cas(1n, "c"), wrote(2n), 8, 9),
    o(1, cas(1n, "d"), conflict(2n), 10, 11),
    o(2, create("e"), conflict(2n), 12, 13),
    o(1, get, found(2n, "c"), 14, 15),
    o(2, del, wrote(3n), 16, 17),
    o(1, get, notFound(3n), 18, 19),
    o(2, create("f"), wrote(4n), 20, 21),
    o(1, get, found(4n, "f"), 22, 23),
  ]);
});

Deno.test("accepts concurrent sets whose versions follow any order within their overlap", () => {
  // The later call got the earlier version: fine, they overlap.
  assertAccepted([
    o(1, set("a"), wrote(1n), 0, 10),
    o(2, set("b"), wrote(0n), 1, 5),
    o(3, get, found(1n, "a"), 11, 12),
  ]);
  // Three overlapping sets in the reverse of their call order.
  assertAccepted([
    o(1, set("a"), wrote(2n), 0, 10),
    o(2, set("b"), wrote(1n), 1, 10),
    o(3, set("c"), wrote(0n), 2, 10),
    o(1, get, found(2n, "a"), 11, 12),
  ]);
  // Touching intervals (one returns at the instant the other is called) count as concurrent.
  assertAccepted([
    o(1, set("a"), wrote(1n), 0, 5),
    o(2, set("b"), wrote(0n), 5, 6),
  ]);
});

Deno.test("accepts a get overlapping a set that sees either the old or the new value", () => {
  const before = o(1, set("old"), wrote(0n), 0, 1);
  const write = o(1, set("new"), wrote(1n), 2, 10);
  assertAccepted([before, write, o(2, get, found(0n, "old"), 3, 4)]);
  assertAccepted([before, write, o(2, get, found(1n, "new"), 3, 4)]);
  // Two overlapping reads may see old then new, but a read that starts after
  // one saw the new value must not see the old one (checked among the rejections).
  assertAccepted([
    before,
    write,
    o(2, get, found(0n, "old"), 3, 4),
    o(3, get, found(1n, "new"), 3.5, 5),
  ]);
});

Deno.test("accepts cas successes and conflicts", () => {
  assertAccepted([
    o(1, cas(-1n, "a"), wrote(0n), 0, 1), // cas on an absent key
    o(1, cas(-1n, "x"), conflict(0n), 2, 3),
    o(1, cas(0n, "b"), wrote(1n), 4, 5),
    o(2, cas(0n, "c"), conflict(1n), 6, 7),
    o(2, get, found(1n, "b"), 8, 9),
  ]);
  // Two concurrent cas on the same version: one wins, the other conflicts
  // with the winner's version, whichever was called first.
  assertAccepted([
    o(1, set("a"), wrote(0n), 0, 1),
    o(2, cas(0n, "b"), conflict(1n), 2, 6),
    o(3, cas(0n, "c"), wrote(1n), 3, 5),
    o(1, get, found(1n, "c"), 7, 8),
  ]);
  // cas on a tombstone's version succeeds.
  assertAccepted([
    o(1, del, wrote(0n), 0, 1),
    o(1, cas(0n, "a"), wrote(1n), 2, 3),
  ]);
});

Deno.test("accepts create on an absent key and after a delete, and refuses it otherwise", () => {
  assertAccepted([
    o(1, create("a"), wrote(0n), 0, 1),
    o(2, create("b"), conflict(0n), 2, 3),
    o(1, del, wrote(1n), 4, 5),
    o(2, create("c"), wrote(2n), 6, 7),
    o(1, get, found(2n, "c"), 8, 9),
  ]);
  // Two concurrent creates: exactly one wins.
  assertAccepted([
    o(1, create("a"), conflict(0n), 0, 10),
    o(2, create("b"), wrote(0n), 1, 9),
  ]);
});

Deno.test("accepts delete then get not found with the tombstone's version", () => {
  assertAccepted([
    o(1, get, notFound(-1n), 0, 1),
    o(1, del, wrote(0n), 2, 3), // deleting an absent key still makes a tombstone
    o(2, get, notFound(0n), 4, 5),
    o(1, set("a"), wrote(1n), 6, 7),
    o(1, del, wrote(2n), 8, 9),
    o(2, get, notFound(2n), 10, 11),
    o(2, del, wrote(3n), 12, 13),
    o(1, get, notFound(3n), 14, 15),
  ]);
});

Deno.test("accepts unknown outcomes that did take effect, even after the client gave up", () => {
  // The unknown set explains version 1, seen after the client stopped waiting.
  assertAccepted([
    o(1, set("a"), wrote(0n), 0, 1),
    o(2, set("b"), unknown, 2, 3),
    o(3, get, found(0n, "a"), 4, 5),
    o(3, get, found(1n, "b"), 6, 7),
    o(1, set("c"), wrote(2n), 8, 9),
  ]);
  // An unknown cas and an unknown delete that both took effect.
  assertAccepted([
    o(1, set("a"), wrote(0n), 0, 1),
    o(2, cas(0n, "b"), unknown, 2, Infinity),
    o(3, del, unknown, 3, 4),
    o(1, get, notFound(2n), 5, 6),
  ]);
});

Deno.test("accepts unknown outcomes that never took effect", () => {
  assertAccepted([
    o(1, set("a"), wrote(0n), 0, 1),
    o(2, set("b"), unknown, 2, 3),
    o(2, del, unknown, 3.5, Infinity),
    o(3, get, found(0n, "a"), 4, 5),
    o(1, set("c"), wrote(1n), 6, 7),
    o(3, get, found(1n, "c"), 8, 9),
  ]);
  // Only unknown outcomes: nothing to contradict.
  assertAccepted([
    o(1, set("a"), unknown, 0, 1),
    o(2, create("b"), unknown, 0, 1),
    o(3, get, unknown, 0, 1),
  ]);
});

Deno.test("an unknown write can fill a version gap that is a violation without it", () => {
  const ends = [o(1, set("a"), wrote(0n), 0, 1), o(1, set("c"), wrote(2n), 6, 7)];
  assertAccepted([...ends, o(2, set("b"), unknown, 2, 3)]);
  assertRejected(ends);
  // ...but not one that was called after the gap was seen.
  assertRejected([...ends, o(2, set("b"), unknown, 8, 9)]);
});

Deno.test("accepts histories across several keys, each with its own versions", () => {
  assertAccepted([
    o(1, set("a"), wrote(0n), 0, 1, "x"),
    o(2, set("b"), wrote(0n), 0, 1, "y"),
    o(1, set("c"), wrote(1n), 2, 3, "x"),
    o(2, get, notFound(-1n), 2, 3, "z"),
    o(3, get, found(0n, "b"), 4, 5, "y"),
    o(3, get, found(1n, "c"), 6, 7, "x"),
  ]);
});

Deno.test("compares values structurally: bigint, bytes, arrays, plain objects", () => {
  const written = { n: 5n, bytes: new Uint8Array([1, 2, 3]), list: [1, "two", null], x: {} };
  const same = { x: {}, list: [1, "two", null], bytes: new Uint8Array([1, 2, 3]), n: 5n };
  const history = (read: unknown) => [
    o(1, set(written), wrote(0n), 0, 1),
    o(2, get, found(0n, read), 2, 3),
  ];
  assertAccepted(history(same));
  assertRejected(history({ ...same, bytes: new Uint8Array([1, 2, 4]) }));
  assertRejected(history({ ...same, n: 5 })); // a number is not a bigint
  assertRejected(history({ ...same, list: [1, "two"] }));
  assertRejected(history({ ...same, extra: undefined }));
  assertAccepted([
    o(1, set(new Uint8Array()), wrote(0n), 0, 1),
    o(2, get, found(0n, new Uint8Array()), 2, 3),
  ]);
  assertRejected([o(1, set("1"), wrote(0n), 0, 1), o(2, get, found(0n, 1), 2, 3)]);
});

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

// --- rejected histories -----------------------------------------------------

Deno.test("rejects a stale read, and says which operation could not be placed", () => {
  const r = assertRejected([
    o(1, set("a"), wrote(0n), 0, 1),
    o(1, set("b"), wrote(1n), 2, 3),
    o(2, get, found(0n, "a"), 4, 5),
  ]);
  assert.deepEqual(r.linearized, [0, 1]);
  assert.deepEqual(r.unplaced, [2]);
  assert.match(r.reason ?? "", /#2 client 2 get -> found v0 "a" \[4, 5\] \(model: found v1 "b"\)/);
  assert.match(r.reason ?? "", /2 of 3 operations/);
});

Deno.test("rejects a read of a value never written", () => {
  assertRejected([
    o(1, set("a"), wrote(0n), 0, 1),
    o(2, get, found(0n, "zzz"), 0.5, 3),
  ]);
  assertRejected([o(2, get, found(0n, "zzz"), 0, 3)]);
});

Deno.test("rejects two writes returning the same version, even concurrent ones", () => {
  assertRejected([
    o(1, set("a"), wrote(0n), 0, 2),
    o(2, set("b"), wrote(0n), 1, 3),
  ]);
  assertRejected([
    o(1, set("a"), wrote(0n), 0, 2),
    o(2, del, wrote(1n), 3, 4),
    o(3, create("b"), wrote(1n), 3, 5),
  ]);
});

Deno.test("rejects a version gap", () => {
  assertRejected([
    o(1, set("a"), wrote(0n), 0, 1),
    o(1, set("b"), wrote(2n), 2, 3),
  ]);
  assertRejected([o(1, set("a"), wrote(1n), 0, 1)]);
  assertRejected([o(1, get, notFound(0n), 0, 1)]);
});

Deno.test("rejects a cas that succeeded although the version had moved", () => {
  assertRejected([
    o(1, set("a"), wrote(0n), 0, 1),
    o(2, set("b"), wrote(1n), 2, 3),
    o(1, cas(0n, "c"), wrote(2n), 4, 5),
  ]);
  // And a cas that conflicted although the version matched.
  assertRejected([
    o(1, set("a"), wrote(0n), 0, 1),
    o(1, cas(0n, "c"), conflict(0n), 2, 3),
  ]);
  // And a create that succeeded on a present key.
  assertRejected([
    o(1, set("a"), wrote(0n), 0, 1),
    o(1, create("c"), wrote(1n), 2, 3),
  ]);
});

Deno.test("rejects a conflict reporting a version that did not exist at that time", () => {
  assertRejected([
    o(1, set("a"), wrote(0n), 0, 1),
    o(2, cas(5n, "x"), conflict(3n), 2, 3),
  ]);
  // Version 1 exists only after the cas returned.
  assertRejected([
    o(1, set("a"), wrote(0n), 0, 1),
    o(2, cas(5n, "x"), conflict(1n), 2, 3),
    o(1, set("b"), wrote(1n), 4, 5),
  ]);
  // Version 0 was already replaced when the create began.
  assertRejected([
    o(1, set("a"), wrote(0n), 0, 1),
    o(1, set("b"), wrote(1n), 2, 3),
    o(2, create("x"), conflict(0n), 4, 5),
  ]);
});

Deno.test("rejects a get that finds the key after a delete completed", () => {
  const base = [o(1, set("a"), wrote(0n), 0, 1), o(1, del, wrote(1n), 2, 3)];
  assertRejected([...base, o(2, get, found(0n, "a"), 4, 5)]);
  assertRejected([...base, o(2, get, found(1n, "a"), 4, 5)]);
  assertRejected([...base, o(2, get, notFound(0n), 4, 5)]);
});

Deno.test("rejects a lost write", () => {
  // Set "b" was acknowledged as version 1, yet later reads never see it and
  // version 1 later holds another value.
  assertRejected([
    o(1, set("a"), wrote(0n), 0, 1),
    o(1, set("b"), wrote(1n), 2, 3),
    o(2, get, found(0n, "a"), 4, 5),
    o(3, set("c"), wrote(1n), 6, 7),
    o(2, get, found(1n, "c"), 8, 9),
  ]);
  // Same, seen only through versions: later writes continue from version 0.
  assertRejected([
    o(1, set("a"), wrote(0n), 0, 1),
    o(1, set("b"), wrote(1n), 2, 3),
    o(3, set("c"), wrote(2n), 6, 7),
    o(2, get, found(2n, "c"), 8, 9),
    o(2, cas(1n, "d"), conflict(2n), 10, 11),
    o(2, get, found(1n, "a"), 12, 13),
  ]);
});

Deno.test("rejects reads going backwards", () => {
  // Each read alone is fine (the set is still running), but B's read starts
  // after A's returned with the new value, and sees the old one.
  const r = assertRejected([
    o(1, set("a"), wrote(0n), 0, 1),
    o(1, set("b"), wrote(1n), 2, 10),
    o(2, get, found(1n, "b"), 3, 4),
    o(3, get, found(0n, "a"), 5, 6),
  ]);
  assert.deepEqual(r.unplaced, [3]);
});

Deno.test("names the failing key among several, checking each key on its own", () => {
  const r = assertRejected(
    [
      o(1, set("a"), wrote(0n), 0, 1, "k1"),
      o(1, set("a"), wrote(0n), 0, 1, "k2"),
      o(2, get, found(0n, "a"), 2, 3, "k1"),
      o(2, set("b"), wrote(1n), 2, 3, "k2"),
      o(3, get, found(0n, "a"), 4, 5, "k2"), // stale
      o(3, set("c"), wrote(1n), 4, 5, "k3"), // gap
    ],
    "k2",
  );
  // The prefix is of k2's operations, by their index in the whole history.
  assert.deepEqual(r.linearized, [1, 3]);
  assert.deepEqual(r.unplaced, [4]);
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

// --- limits and malformed input ---------------------------------------------

Deno.test("reports timedOut instead of searching forever", () => {
  // 40 overlapping unknown sets and a read of a version they cannot reach: a
  // full search would visit every subset of the sets.
  const history: KvOperation[] = [];
  for (let c = 0; c < 40; c++) history.push(o(c, set(`v${c}`), unknown, 0, 100));
  history.push(o(99, get, found(50n, "v1"), 1, 100));
  const r = checkKv(history, { timeoutMs: 100 });
  assert.equal(r.ok, false);
  assert.equal(r.timedOut, true);
  assert.equal(r.key, "k");
  assert.match(r.reason ?? "", /gave up after 100 ms/);
  assert.ok(r.explored > 0);

  // A zero budget gives up at once, even on an easy history.
  const easy = checkKv([o(1, set("a"), wrote(0n), 0, 1)], { timeoutMs: 0 });
  assert.equal(easy.timedOut, true);
  assert.throws(() => checkKv([], { timeoutMs: -1 }), RangeError);
});

Deno.test("refuses malformed operations with a TypeError or RangeError", () => {
  assert.throws(
    () => checkKv([o(1, set("a"), conflict(0n), 0, 1)]),
    (e) =>
      e instanceof TypeError && /history\[0\]: a set cannot have output conflict/.test(e.message),
  );
  assert.throws(() => checkKv([o(1, get, wrote(0n), 0, 1)]), TypeError);
  assert.throws(() => checkKv([o(1, set("a"), found(0n, "a"), 0, 1)]), TypeError);
  assert.throws(() => checkKv([o(1, set(new Map()), wrote(0n), 0, 1)]), TypeError);
  assert.throws(
    () => checkKv([o(1, set("a"), { ok: true, version: 0 as unknown as bigint }, 0, 1)]),
    TypeError,
  );
  assert.throws(() => checkKv([o(1, set("a"), wrote(0n), 2, 1)]), RangeError);
  assert.throws(() => checkKv([o(1, set("a"), wrote(0n), NaN, 1)]), RangeError);
});
