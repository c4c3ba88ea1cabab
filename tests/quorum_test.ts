// askQuorum: it returns at a quorum without waiting for the rest, fails as
// soon as a quorum can no longer count, at the deadline, and counts a quorum
// within one group only.
import assert from "node:assert/strict";
import { askQuorum, quorumOf } from "../quorum.ts";
import * as systems from "../quorum.ts";
import { systemClock } from "../clock.ts";
import { SimClock } from "../sim/sim_clock.ts";
import { settle } from "./waits.ts";

const names = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `a${i}` }));

/** A reply that never comes: the test must not wait for it. */
const never = () => new Promise<never>(() => {});

Deno.test("quorumOf is a majority", () => {
  assert.deepEqual([1, 2, 3, 4, 5].map(quorumOf), [1, 2, 2, 3, 3]);
});

Deno.test("askQuorum returns at a quorum, without waiting for the others", async () => {
  const out = await askQuorum(
    names(3),
    (a) => a.name === "a1" ? never() : Promise.resolve(a.name),
    { need: 2, clock: systemClock },
  );
  assert.equal(out.ok, true);
  assert.deepEqual(out.replies, ["a0", "a2"]);
});

Deno.test("askQuorum fails as soon as too many refused or failed, naming them in order", async () => {
  const out = await askQuorum(
    names(3),
    (a) =>
      a.name === "a0"
        ? Promise.reject(new Error("a0 is down"))
        : a.name === "a1"
        ? Promise.resolve("no")
        : never(),
    { need: 2, judge: (r, from) => r === "yes" || `${from} said ${r}`, clock: systemClock },
  );
  assert.equal(out.ok, false);
  assert.equal(out.why, "");
  assert.deepEqual(out.replies, []);
  assert.deepEqual(out.failures, ["a0 is down", "a1 said no"]);
  assert.equal(out.errors.length, 1);
});

Deno.test("askQuorum with explainsFailure waits for the replies still out once the quorum is out of reach, until one explains the failure", async () => {
  const explainsFailure = (e: Error) => e.message.includes("StaleMembership");
  // a0 and a1 fail at once; a2's refusal comes only when the test says so.
  let refuse!: () => void;
  const late = new Promise<never>((_, reject) => {
    refuse = () => reject(new Error("a2: StaleMembership"));
  });
  const ask = (a: { name: string }) =>
    a.name === "a2" ? late : Promise.reject(new Error(`${a.name} is down`));
  // Without: it fails without a2's answer.
  const quick = await askQuorum(names(3), ask, { need: 2, clock: systemClock });
  assert.equal(quick.ok, false);
  assert.deepEqual(quick.failures, ["a0 is down", "a1 is down"]);
  // With: still pending after both failures came; then fails with a2's refusal too.
  let outcome: systems.QuorumOutcome<never> | null = null;
  const p = askQuorum(names(3), ask, { need: 2, clock: systemClock, explainsFailure })
    .then((o) => outcome = o);
  await settle();
  assert.equal(outcome, null, "it failed before a2 answered");
  refuse();
  await p;
  assert.equal(outcome!.ok, false);
  assert.equal(outcome!.why, "");
  assert.deepEqual(outcome!.failures, ["a0 is down", "a1 is down", "a2: StaleMembership"]);
  // An explaining error in hand: it fails at once, without waiting for a2.
  const stale = await askQuorum(
    names(3),
    (a) => a.name === "a2" ? never() : Promise.reject(new Error(`${a.name}: StaleMembership`)),
    { need: 2, clock: systemClock, explainsFailure },
  );
  assert.deepEqual(stale.failures, ["a0: StaleMembership", "a1: StaleMembership"]);
});

Deno.test("askQuorum gives up at its deadline", async () => {
  const t0 = performance.now();
  const out = await askQuorum(names(3), (a) => a.name === "a0" ? Promise.resolve(1) : never(), {
    need: 2,
    deadline: systemClock.now() + 20,
    clock: systemClock,
  });
  assert.equal(out.ok, false);
  assert.equal(out.why, "deadline reached");
  assert.deepEqual(out.replies, [1]);
  assert.ok(performance.now() - t0 >= 19);
});

Deno.test("askQuorum with groups needs a quorum of one group, and waits while one may still come", async () => {
  // 5 acceptors: x, y, y, then x, x. Only the fifth reply makes a quorum (x).
  const replies = ["x", "y", "y", "x", "x"];
  const seen: string[] = [];
  const out = await askQuorum(names(5), (a) => Promise.resolve(replies[Number(a.name[1])]!), {
    need: 3,
    groupOf: (r) => r,
    onReply: (r) => seen.push(r),
    clock: systemClock,
  });
  assert.equal(out.ok, true);
  assert.deepEqual(out.replies, ["x", "x", "x"]);
  assert.equal(seen.length, 5);
  // Two groups of two among four acceptors: no group can reach three.
  const split = await askQuorum(names(4), (a) => Promise.resolve(Number(a.name[1]) % 2), {
    need: 3,
    groupOf: String,
    clock: systemClock,
  });
  assert.equal(split.ok, false);
});

Deno.test("askQuorum tells onReply of replies that come after the outcome", async () => {
  let release!: () => void;
  const late = new Promise<string>((resolve) => release = () => resolve("late"));
  const seen: string[] = [];
  const out = await askQuorum(
    names(3),
    (a) => a.name === "a2" ? late : Promise.resolve(a.name),
    { need: 2, onReply: (r) => seen.push(r), clock: systemClock },
  );
  assert.equal(out.ok, true);
  release();
  await late;
  await Promise.resolve();
  assert.deepEqual(seen, ["a0", "a1", "late"]);
  assert.deepEqual(out.replies, ["a0", "a1"], "the outcome does not change");
});

Deno.test("askQuorum fails at once when there are fewer acceptors than it needs", async () => {
  let asked = 0;
  const out = await askQuorum(names(1), () => {
    asked++;
    return never();
  }, { need: 2, clock: systemClock });
  assert.equal(out.ok, false);
  assert.equal(asked, 1);
});

Deno.test("askQuorum over a quorum system fails at once when not even all its acceptors make a quorum", async () => {
  // Two of the 6 members are among the 3 asked: 4 of 6 are needed, which
  // no replies can make. (The replies never come: it must not wait.)
  const out = await askQuorum(names(3), never, {
    need: systems.membersMajority(3, [0, 1], 6),
    clock: systemClock,
  });
  assert.equal(out.ok, false);
  assert.equal(out.why, "");
  // Three of 5 members asked: 3 of 5 needed, which only all of them make.
  const all = await askQuorum(names(3), (a) => Promise.resolve(a.name), {
    need: systems.membersMajority(3, [0, 1, 2], 5),
    clock: systemClock,
  });
  assert.equal(all.ok, true);
  assert.deepEqual(all.replies, ["a0", "a1", "a2"]);
});

Deno.test("quorum systems: a majority, a majority of some members, and a joint majority of old and new", () => {
  const { majority, membersMajority, jointMajority } = systems;
  assert.equal(majority(3).isQuorum([2, 0]), true);
  assert.equal(majority(4).isQuorum([0, 1]), false);
  // Acceptor 3 answers but is not a member.
  assert.equal(membersMajority(4, [0, 1, 2]).isQuorum([0, 3]), false);
  // Members 0..4, of which only 0..2 are among the acceptors asked: 3 needed.
  assert.equal(membersMajority(3, [0, 1, 2], 5).isQuorum([0, 1]), false);
  assert.equal(membersMajority(3, [0, 1, 2], 5).isQuorum([0, 1, 2]), true);
  // Replace 2 by 3: old 0,1,2 and new 0,1,3.
  const q = jointMajority(4, [0, 1, 2], [0, 1, 3]);
  assert.equal(q.isQuorum([0, 1]), true);
  assert.equal(q.isQuorum([0, 3]), false, "one old member only");
  assert.equal(q.isQuorum([0, 2]), false, "one new member only");
  // Grow 3 to 5: a majority of 3 and of 5.
  const g = jointMajority(5, [0, 1, 2], [0, 1, 2, 3, 4]);
  assert.equal(g.isQuorum([0, 3, 4]), false);
  assert.equal(g.isQuorum([0, 1, 3]), true);
  assert.throws(() => jointMajority(3, [0, 1, 5], [0]), RangeError);
});

Deno.test("askQuorum with a joint quorum waits for a majority of both, and fails once one is out of reach", async () => {
  const q = systems.jointMajority(4, [0, 1, 2], [0, 1, 3]);
  // 0 and 2 answer first (2 of old, 1 of new): not yet; 3 makes it.
  const order = [0, 2, 3];
  const acceptors = names(4);
  const out = await askQuorum(acceptors, (a) => {
    const i = Number(a.name.slice(1));
    const at = order.indexOf(i);
    return at < 0 ? never() : new Promise((r) => setTimeout(() => r(i), 5 * at));
  }, { need: q, clock: systemClock });
  assert.equal(out.ok, true);
  assert.deepEqual(out.from, [0, 2, 3]);
  // 1 and 3 fail: of the new members 0,1,3 only 0 is left, no majority.
  const bad = await askQuorum(
    acceptors,
    (a) =>
      a.name === "a1" || a.name === "a3"
        ? Promise.reject(new Error(`${a.name} down`))
        : Promise.resolve(a.name),
    { need: q, clock: systemClock },
  );
  assert.equal(bad.ok, false);
  assert.equal(bad.why, "");
});

Deno.test("askQuorum with lingerMs waits on after the quorum for the replies still out, until the time given", async () => {
  // a0 and a1 answer at once; a2 when the test says so, or never.
  let answer!: (r: string) => void;
  const late = new Promise<string>((resolve) => answer = resolve);
  const clock = new SimClock();
  const asked: Array<[readonly string[], number]> = [];
  const lingerMs = (replies: readonly string[], elapsed: number) => {
    asked.push([replies.slice(), elapsed]);
    return 10;
  };
  const ask = (a: { name: string }) => a.name === "a2" ? late : Promise.resolve(a.name);
  // a2 answers within the time: it counts too, and the call ends with it.
  let out: systems.QuorumOutcome<string> | null = null;
  const p = askQuorum(names(3), ask, { need: 2, clock, deadline: 1000, lingerMs })
    .then((o) => out = o);
  await clock.run(() => clock.now() >= 5, 5);
  assert.equal(out, null, "it ended at the quorum, without waiting");
  assert.deepEqual(asked, [[["a0", "a1"], 0]]);
  answer("a2");
  await p;
  assert.deepEqual(out!.replies, ["a0", "a1", "a2"]);
  assert.deepEqual(out!.from, [0, 1, 2]);
  assert.equal(clock.pending, 0, "its timer is cleared");
  // a2 never answers: it ends with the quorum once the time is up.
  const t = clock.now();
  const ends = askQuorum(names(3), (a) => a.name === "a2" ? never() : ask(a), {
    need: 2,
    clock,
    deadline: t + 1000,
    lingerMs,
  });
  await clock.run(() => false, t + 100);
  const quorum = await ends;
  assert.equal(quorum.ok, true);
  assert.deepEqual(quorum.replies, ["a0", "a1"]);
  assert.equal(clock.now(), t + 10);
  // Not past the deadline; and 0 is not at all.
  const t2 = clock.now();
  const short = askQuorum(names(3), (a) => a.name === "a2" ? never() : ask(a), {
    need: 2,
    clock,
    deadline: t2 + 4,
    lingerMs,
  });
  await clock.run(() => false, t2 + 100);
  assert.equal((await short).ok, true);
  assert.equal(clock.now(), t2 + 4);
  const none = await askQuorum(names(3), (a) => a.name === "a2" ? never() : ask(a), {
    need: 2,
    clock,
    lingerMs: () => 0,
  });
  assert.deepEqual(none.replies, ["a0", "a1"]);
});

Deno.test("askQuorum tells every reply and failure with its acceptor's index, also after the outcome", async () => {
  let fail!: () => void;
  const late = new Promise<never>((_, reject) => fail = () => reject(new Error("a2 is down")));
  const seen: string[] = [];
  const out = await askQuorum(
    names(3),
    (a) =>
      a.name === "a2"
        ? late
        : a.name === "a0"
        ? Promise.reject(new Error("a0 is down"))
        : Promise.resolve(a.name),
    {
      need: 1,
      clock: systemClock,
      onReply: (r, i) => seen.push(`${r}@${i}`),
      onError: (e, i) => seen.push(`${e.message}@${i}`),
    },
  );
  assert.equal(out.ok, true);
  fail();
  await settle();
  assert.deepEqual(seen, ["a0 is down@0", "a1@1", "a2 is down@2"]);
});

Deno.test("askQuorum rejects with the error a callback of the caller throws", async () => {
  const bug = new TypeError("cannot read the reply");
  const out = askQuorum(names(3), () => Promise.resolve(undefined), {
    need: 2,
    clock: systemClock,
    deadline: systemClock.now() + 5000,
    lingerMs: () => {
      throw bug;
    },
  });
  await assert.rejects(out, (e) => e === bug);
  await assert.rejects(
    askQuorum(names(3), () => Promise.resolve(1), {
      need: 2,
      clock: systemClock,
      judge: () => {
        throw bug;
      },
    }),
    (e) => e === bug,
  );
});
