// Tests of the linearizability checker (check/linearizability.ts): hand-made
// histories it must accept or reject.
import assert from "node:assert/strict";
import { checkKv, type KvOperation } from "../check/linearizability.ts";
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
