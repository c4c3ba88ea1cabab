/**
 * Tests of the acceptor: the seed's Prepare/Accept semantics called directly,
 * per-key serialization and storage failures.
 */
import assert from "node:assert/strict";
import { PaxosAcceptor } from "../acceptor.ts";
import { AcceptorError } from "../errors.ts";
import { MemoryStore, type Store, type Written } from "../store.ts";
import type { Acceptor, BallotNum, KeyVersions, PaxosInstanceId, Value } from "../types.ts";
import { EMPTY_ACCEPTOR, MAX_BALLOT_STEP, ZERO_BALLOT } from "../types.ts";
import { acceptReply, bal, inst, req, state } from "./builders.ts";
import { errorOf, settle } from "./waits.ts";

// ---------------------------------------------------------------------------
// Helpers.

/** A put held until the test releases or fails it. */
interface HeldPut {
  readonly id: PaxosInstanceId;
  readonly state: Acceptor;
  release(): Promise<void>;
  fail(e: Error): void;
}

/**
 * A Store whose puts wait for the test to release them, one by one; puts
 * that `gated` lets through are written at once, as a memory store does.
 */
class GatedStore implements Store {
  readonly inner = new MemoryStore();
  readonly puts: HeldPut[] = [];
  #waiters: (() => void)[] = [];

  constructor(readonly gated: (id: PaxosInstanceId) => boolean = () => true) {}

  get(id: PaxosInstanceId): Acceptor | undefined {
    return this.inner.get(id);
  }

  latest(key: string): KeyVersions {
    return this.inner.latest(key);
  }

  get usedBytes(): number {
    return this.inner.usedBytes;
  }

  compact(key: string, floor: bigint): Promise<void> {
    return this.inner.compact(key, floor);
  }

  keys(from: string, limit: number, end?: string): string[] {
    return this.inner.keys(from, limit, end);
  }

  put(id: PaxosInstanceId, state: Acceptor): Written {
    if (!this.gated(id)) return this.inner.put(id, state);
    return new Promise((resolve, reject) => {
      this.puts.push({
        id,
        state,
        release: async () => {
          await this.inner.put(id, state);
          resolve();
        },
        fail: reject,
      });
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  /** Resolves once `n` puts have arrived in all. */
  async arrived(n: number): Promise<void> {
    while (this.puts.length < n) await new Promise<void>((r) => this.#waiters.push(r));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

// ---------------------------------------------------------------------------
// Semantics, called directly.

Deno.test("Prepare replies the state before and raises LastBal only when Bal >= LastBal", async () => {
  const a = new PaxosAcceptor();
  const id = inst("p");
  assert.deepEqual(await a.prepare(req(id, bal(5, 2))), EMPTY_ACCEPTOR);
  // Lower N, and same N with a lower ProposerId: replied, not raised.
  assert.deepEqual(await a.prepare(req(id, bal(4, 9))), state(bal(5, 2)));
  assert.deepEqual(await a.prepare(req(id, bal(5, 1))), state(bal(5, 2)));
  // Equal: replied, stays.
  assert.deepEqual(await a.prepare(req(id, bal(5, 2))), state(bal(5, 2)));
  // Same N, higher ProposerId: raised.
  assert.deepEqual(await a.prepare(req(id, bal(5, 3))), state(bal(5, 2)));
  assert.deepEqual(await a.prepare(req(id, bal(0, 0))), state(bal(5, 3)));
  // Ballots beyond 2^53 compare exactly (reached in steps of at most
  // MAX_BALLOT_STEP).
  const big = 2n ** 53n + 1n;
  for (let n = MAX_BALLOT_STEP; n < big; n += MAX_BALLOT_STEP) await a.prepare(req(id, bal(n, 0)));
  const below = (big / MAX_BALLOT_STEP) * MAX_BALLOT_STEP;
  assert.deepEqual(await a.prepare(req(id, bal(big, 0))), state(bal(below, 0)));
  assert.deepEqual(await a.prepare(req(id, bal(big - 1n, 7))), state(bal(big, 0)));
  assert.deepEqual(await a.prepare(req(id, bal(big, 1))), state(bal(big, 0)));
  assert.deepEqual(await a.prepare(req(id, bal(0, 0))), state(bal(big, 1)));
  // Prepare ignores a Val in the request.
  await a.prepare(req(id, bal(big + 1n, 0), { Vi64: 9n }));
  assert.deepEqual(await a.prepare(req(id, bal(0, 0))), state(bal(big + 1n, 0)));
});

Deno.test("Accept replies {LastBal before} only and votes only when Bal >= LastBal", async () => {
  const a = new PaxosAcceptor();
  const id = inst("a", 3);
  await a.prepare(req(id, bal(3, 1)));
  // Lower: replied, no vote, no raise.
  assert.deepEqual(await a.accept(req(id, bal(2, 9), { Vi64: 1n })), acceptReply(bal(3, 1)));
  assert.deepEqual(await a.prepare(req(id, bal(0, 0))), state(bal(3, 1)));
  // Equal: votes.
  assert.deepEqual(await a.accept(req(id, bal(3, 1), { Vi64: 7n })), acceptReply(bal(3, 1)));
  assert.deepEqual(await a.prepare(req(id, bal(0, 0))), state(bal(3, 1), { Vi64: 7n }, bal(3, 1)));
  // Prepare at a higher ballot reports the vote and raises LastBal only.
  assert.deepEqual(
    await a.prepare(req(id, bal(4, 0))),
    state(bal(3, 1), { Vi64: 7n }, bal(3, 1)),
  );
  // A lower Accept after that: the vote stays as it was.
  assert.deepEqual(await a.accept(req(id, bal(3, 2), { Vi64: 8n })), acceptReply(bal(4, 0)));
  assert.deepEqual(
    await a.prepare(req(id, bal(0, 0))),
    state(bal(4, 0), { Vi64: 7n }, bal(3, 1)),
  );
  // Higher without a Prepare: votes and raises, reply carries no vote.
  const data: Value = { Data: { s: "y", n: [1, 2n ** 60n] } };
  const r = await a.accept(req(id, bal(6, 0), data));
  assert.deepEqual(r, acceptReply(bal(4, 0)));
  assert.equal(r.Val, null);
  assert.deepEqual(await a.prepare(req(id, bal(0, 0))), state(bal(6, 0), data, bal(6, 0)));
  // request() dispatches by Op name.
  assert.deepEqual(
    await a.request("Accept", req(id, bal(7, 0), { Vi64: 1n })),
    acceptReply(bal(6, 0)),
  );
  assert.deepEqual(
    await a.request("Prepare", req(id, bal(7, 0))),
    state(bal(7, 0), { Vi64: 1n }, bal(7, 0)),
  );
});

Deno.test("no request raises a promise by more than MAX_BALLOT_STEP: BallotTooFar, nothing changes", async () => {
  const a = new PaxosAcceptor();
  const id = inst("step");
  const top = 2n ** 63n - 1n;
  for (const op of ["Prepare", "Accept"] as const) {
    await assert.rejects(a.request(op, req(id, bal(top, top), { Vi64: 1n })), (e: Error) => {
      assert.ok(e instanceof AcceptorError && e.code === "BallotTooFar", String(e));
      assert.equal(e.isFinal, false);
      return true;
    });
  }
  assert.deepEqual(await a.prepare(req(id, bal(0, 0))), EMPTY_ACCEPTOR);
  // Exactly one step is allowed; one more from there is again a step.
  assert.deepEqual(await a.prepare(req(id, bal(MAX_BALLOT_STEP, 1))), EMPTY_ACCEPTOR);
  await assert.rejects(a.prepare(req(id, bal(2n * MAX_BALLOT_STEP + 1n, 1))), AcceptorError);
  await a.accept(req(id, bal(2n * MAX_BALLOT_STEP, 1), { Vi64: 2n }));
  assert.deepEqual(
    await a.prepare(req(id, bal(0, 0))),
    state(bal(2n * MAX_BALLOT_STEP, 1), { Vi64: 2n }, bal(2n * MAX_BALLOT_STEP, 1)),
  );
});

// A memory store that hands back the very objects it was given (the memory
// store keeps their fields only), so that what the acceptor shares shows.
class KeepingStore extends MemoryStore {
  readonly #kept = new Map<string, Acceptor>();
  override get(id: PaxosInstanceId): Acceptor | undefined {
    return super.get(id) && this.#kept.get(`${id.Key}@${id.Ver}`);
  }
  override put(id: PaxosInstanceId, state: Acceptor): Written {
    this.#kept.set(`${id.Key}@${id.Ver}`, state);
    return super.put(id, state);
  }
}

Deno.test("a vote at the promised ballot shares the stored ballot and keeps no part of the request but its value", async () => {
  const store = new KeepingStore();
  const a = new PaxosAcceptor(store);
  const id = inst("share");
  await a.prepare(req(id, bal(3, 7)));
  const promised = store.get(id)!.LastBal;
  // An equal ballot in a new object, as every decoded request carries.
  const r = { ...req(id, bal(3, 7), { Vi64: 9n }), Next: true as const };
  assert.deepEqual(await a.accept(r), { ...acceptReply(bal(3, 7)), NextOk: true });
  const voted = store.get(id)!;
  assert.deepEqual(voted, state(bal(3, 7), { Vi64: 9n }, bal(3, 7)));
  assert.equal(voted.LastBal, promised);
  assert.equal(voted.VBal, promised);
  assert.equal(store.get(inst("share", 1))!.LastBal, promised, "the next version's promise too");
  assert.equal(voted.Val, r.Val, "the value is the request's own");
  // A higher ballot is a new ballot: the request's object is stored.
  const higher = req(id, bal(4, 1), { Vi64: 10n });
  await a.accept(higher);
  assert.equal(store.get(id)!.LastBal, higher.Bal);
});

Deno.test("Accept with Next promises version Ver+1 only when nobody touched it", async () => {
  const store = new MemoryStore();
  const a = new PaxosAcceptor(store);
  const next = (ver: number, b: BallotNum, val: Value = { Vi64: 1n }) =>
    a.accept({ ...req(inst("n", ver), b, val), Next: true });
  // Untouched: granted, and written.
  assert.deepEqual(await next(0, bal(2, 1)), { ...acceptReply(ZERO_BALLOT), NextOk: true });
  assert.deepEqual(store.get(inst("n", 1)), state(bal(2, 1)));
  // Promised at this very ballot, nothing voted: still ours, granted.
  assert.deepEqual(await next(0, bal(2, 1)), { ...acceptReply(bal(2, 1)), NextOk: true });
  // Promised at another ballot, lower or higher: withheld, and left as it was.
  await a.prepare(req(inst("n", 11), bal(1, 9)));
  assert.deepEqual(await next(10, bal(2, 1)), acceptReply(ZERO_BALLOT));
  assert.deepEqual(store.get(inst("n", 11)), state(bal(1, 9)));
  await a.prepare(req(inst("n", 21), bal(3, 9)));
  assert.deepEqual(await next(20, bal(2, 1)), acceptReply(ZERO_BALLOT));
  assert.deepEqual(store.get(inst("n", 21)), state(bal(3, 9)));
  // Voted, even at a lower ballot and even by this ballot: withheld; the
  // vote stays (a Prepare would have had to find it).
  await a.accept(req(inst("n", 31), bal(1, 9), { Vi64: 7n }));
  assert.deepEqual(await next(30, bal(2, 1)), acceptReply(ZERO_BALLOT));
  assert.deepEqual(store.get(inst("n", 31)), state(bal(1, 9), { Vi64: 7n }, bal(1, 9)));
  await a.accept(req(inst("n", 41), bal(2, 1), { Vi64: 8n }));
  assert.deepEqual(await next(40, bal(2, 1)), acceptReply(ZERO_BALLOT));
  assert.deepEqual(store.get(inst("n", 41)), state(bal(2, 1), { Vi64: 8n }, bal(2, 1)));
  // In every case the vote itself was made.
  for (const ver of [10, 20, 30, 40]) {
    assert.deepEqual(store.get(inst("n", ver)), state(bal(2, 1), { Vi64: 1n }, bal(2, 1)));
  }
  // A refused Accept promises nothing next.
  await a.prepare(req(inst("n", 50), bal(5, 5)));
  assert.deepEqual(await next(50, bal(2, 1)), acceptReply(bal(5, 5)));
  assert.equal(store.get(inst("n", 51)), undefined);
});

Deno.test("Latest with a ballot promises it at the version after the highest voted, as a Prepare there would", async () => {
  const store = new MemoryStore();
  const a = new PaxosAcceptor(store);
  const plain = { Ver: -1n, Floor: 0n, Val: null, VBal: ZERO_BALLOT };
  // A fresh key: promised at version 0, and stored by the time of the reply.
  assert.deepEqual(await a.latest("f", bal(2, 1)), { ...plain, NextBal: ZERO_BALLOT });
  assert.deepEqual(store.get(inst("f", 0)), state(bal(2, 1)));
  // The same ballot again: replied as promised, nothing to write.
  assert.deepEqual(await a.latest("f", bal(2, 1)), { ...plain, NextBal: bal(2, 1) });
  // A lower ballot: told the higher promise, which stays.
  assert.deepEqual(await a.latest("f", bal(1, 9)), { ...plain, NextBal: bal(2, 1) });
  assert.deepEqual(store.get(inst("f", 0)), state(bal(2, 1)));
  // The promise holds as a Prepare's: an Accept below it is refused.
  assert.deepEqual(
    await a.accept(req(inst("f", 0), bal(1, 9), { Vi64: 1n })),
    acceptReply(bal(2, 1)),
  );
  assert.equal(store.latest("f").Ver, -1n);
  // After a vote at version 0, the promise goes to version 1; a plain
  // Latest (no ballot) promises nothing and says nothing of it.
  await a.accept(req(inst("f", 0), bal(2, 1), { Vi64: 5n }));
  const voted = { Ver: 0n, Floor: 0n, Val: { Vi64: 5n }, VBal: bal(2, 1) };
  assert.deepEqual(await a.latest("f"), voted);
  assert.deepEqual(await a.latest("f", bal(3, 4)), { ...voted, NextBal: ZERO_BALLOT });
  assert.deepEqual(store.get(inst("f", 1)), state(bal(3, 4)));
  // A ballot too far above the promise there: a plain Latest, nothing promised.
  assert.deepEqual(await a.latest("f", bal(MAX_BALLOT_STEP + 10n, 1)), voted);
  assert.deepEqual(store.get(inst("f", 1)), state(bal(3, 4)));
});

Deno.test("Latest with a ballot waits its key's turn, and replies only once its promise is stored", async () => {
  const store = new GatedStore();
  const a = new PaxosAcceptor(store);
  let replied = false;
  // An Accept of version 0 is waiting for its write: the Latest waits behind
  // it, and then promises at version 1, not 0.
  const vote = a.accept(req(inst("q", 0), bal(1, 1), { Vi64: 1n }));
  const latest = a.latest("q", bal(1, 2)).then((r) => (replied = true, r));
  await store.arrived(1);
  await store.puts[0]!.release();
  await vote;
  await store.arrived(2);
  assert.deepEqual(store.puts[1]!.id, inst("q", 1));
  await settle();
  assert.equal(replied, false, "replied before its promise was stored");
  await store.puts[1]!.release();
  assert.deepEqual(await latest, {
    Ver: 0n,
    Floor: 0n,
    Val: { Vi64: 1n },
    VBal: bal(1, 1),
    NextBal: ZERO_BALLOT,
  });
  // A failed write of the promise fails the Latest: nothing is acknowledged.
  const failing = a.latest("q2", bal(1, 2));
  await store.arrived(3);
  store.puts[2]!.fail(new Error("disk gone"));
  const e = await errorOf(failing);
  assert.ok(e instanceof AcceptorError && e.code === "StorageError", String(e));
});

Deno.test("Latest with a ballot promises above the floor under retention, and nothing past the quota", async () => {
  // Retention: version 0 of "r" is compacted after votes at 0 and 1.
  const a = new PaxosAcceptor(new MemoryStore(), "a", { keepVersions: 1 });
  await a.accept(req(inst("r", 0), bal(1, 1), { Vi64: 1n }));
  await a.accept(req(inst("r", 1), bal(1, 1), { Vi64: 2n }));
  const r = await a.latest("r", bal(2, 2));
  assert.equal(r.Ver, 1n);
  assert.deepEqual(r.NextBal, ZERO_BALLOT, "version 2 is above the floor: promised");
  // A store at its quota: no room for a new promise, so none is made.
  const store = new MemoryStore();
  const full = new PaxosAcceptor(store, "full", { quotaBytes: 1 });
  assert.deepEqual(await full.latest("new", bal(1, 1)), {
    Ver: -1n,
    Floor: 0n,
    Val: null,
    VBal: ZERO_BALLOT,
  });
  assert.equal(store.get(inst("new", 0)), undefined);
});

Deno.test("Latest with a first write's value votes it at round 0 in a key it holds nothing of, and promises its ballot at versions 0 and 1", async () => {
  const store = new MemoryStore();
  const a = new PaxosAcceptor(store);
  const v = { Data: "first" };
  const round0 = bal(0, 7);
  // Nothing held: voted at (0,7), promised (1,7) over it, and (1,7) at
  // version 1; stored by the reply, which is the Latest after the vote.
  assert.deepEqual(await a.latest("f", bal(1, 7), v), {
    Ver: 0n,
    Floor: 0n,
    Val: v,
    VBal: round0,
    NextBal: ZERO_BALLOT,
  });
  assert.deepEqual(store.get(inst("f", 0)), state(bal(1, 7), v, round0));
  assert.deepEqual(store.get(inst("f", 1)), state(bal(1, 7)));
  // At most one round-0 vote per key: another first write (a higher ballot
  // even) only gets the folded phase 1, at version 1.
  const other = { Data: "other" };
  assert.deepEqual(await a.latest("f", bal(1, 9), other), {
    Ver: 0n,
    Floor: 0n,
    Val: v,
    VBal: round0,
    NextBal: bal(1, 7),
  });
  assert.deepEqual(store.get(inst("f", 0)), state(bal(1, 7), v, round0));
  // A key promised at version 0 (a Prepare, or another writer's Latest):
  // no round-0 vote, whatever the ballot; the promise is served as usual.
  await a.prepare(req(inst("p", 0), bal(1, 1)));
  const promised = { Ver: -1n, Floor: 0n, Val: null, VBal: ZERO_BALLOT };
  assert.deepEqual(await a.latest("p", bal(2, 2), v), { ...promised, NextBal: bal(1, 1) });
  assert.deepEqual(store.get(inst("p", 0)), state(bal(2, 2)));
  // A key with a vote in a later version only (written with an explicit
  // version): not a key it holds nothing of.
  await a.accept(req(inst("w", 3), bal(1, 1), { Vi64: 3n }));
  assert.equal((await a.latest("w", bal(1, 2), v)).Ver, 3n);
  assert.equal(store.get(inst("w", 0)), undefined);
  // Without a ballot the value is never voted (and the codec refuses it).
  assert.deepEqual(await a.latest("n", undefined, v), promised);
  assert.equal(store.get(inst("n", 0)), undefined);
});

Deno.test("Latest with a first write's value votes nothing past the quota, nor under a floor", async () => {
  const store = new MemoryStore();
  const full = new PaxosAcceptor(store, "full", { quotaBytes: 1 });
  assert.deepEqual(await full.latest("new", bal(1, 1), { Data: "x" }), {
    Ver: -1n,
    Floor: 0n,
    Val: null,
    VBal: ZERO_BALLOT,
  });
  assert.equal(store.get(inst("new", 0)), undefined);
  // A key whose versions were all compacted away: its floor says it had some.
  const kept = new MemoryStore();
  const a = new PaxosAcceptor(kept, "a", { keepVersions: 1 });
  await a.accept(req(inst("r", 0), bal(1, 1), { Vi64: 1n }));
  await a.accept(req(inst("r", 1), bal(1, 1), { Vi64: 2n }));
  await kept.compact("r", 2n);
  assert.equal(kept.latest("r").Floor, 2n);
  const r = await a.latest("r", bal(2, 2), { Data: "x" });
  assert.equal(r.Floor, 2n);
  assert.equal(kept.get(inst("r", 0)), undefined);
});

Deno.test("state is independent per (Key, Ver)", async () => {
  const a = new PaxosAcceptor();
  await a.accept(req(inst("k", 0), bal(2, 2), { Vi64: 1n }));
  for (const other of [inst("k", 1), inst("k", -1), inst("k2", 0), inst("", 0), inst("0:k", 0)]) {
    assert.deepEqual(
      await a.prepare(req(other, bal(1, 1))),
      EMPTY_ACCEPTOR,
      JSON.stringify(other.Key),
    );
  }
  // Keys that could be confused once joined with the version.
  await a.accept(req(inst("1:x", 2), bal(1, 1), { Vi64: 12n }));
  assert.deepEqual(await a.prepare(req(inst("2:1", 0), bal(0, 0))), EMPTY_ACCEPTOR);
  assert.deepEqual(await a.prepare(req(inst("x", 21), bal(0, 0))), EMPTY_ACCEPTOR);
  assert.deepEqual(
    await a.prepare(req(inst("k", 0), bal(0, 0))),
    state(bal(2, 2), { Vi64: 1n }, bal(2, 2)),
  );
  assert.deepEqual(
    await a.prepare(req(inst("1:x", 2), bal(0, 0))),
    state(bal(1, 1), { Vi64: 12n }, bal(1, 1)),
  );
});

Deno.test("requests on one key are served one at a time, after each put resolved", async () => {
  const store = new GatedStore();
  const a = new PaxosAcceptor(store);
  const id = inst("serial");
  const settled: string[] = [];
  const track = <T>(name: string, p: Promise<T>) => p.then((v) => (settled.push(name), v));
  const p1 = track("p1", a.prepare(req(id, bal(1, 1))));
  const p2 = track("p2", a.prepare(req(id, bal(2, 1))));
  const a3 = track("a3", a.accept(req(id, bal(2, 1), { Vi64: 5n })));
  // Another version of the same key queues behind them too.
  const v1 = track("v1", a.prepare(req(inst("serial", 1), bal(1, 1))));

  await store.arrived(1);
  await settle();
  // Only the first request reached the store; nobody replied before its put.
  assert.equal(store.puts.length, 1);
  assert.deepEqual([...settled], []);
  assert.deepEqual(store.puts[0]!.state, state(bal(1, 1)));

  // Other keys are not held up by this one.
  const other = track("other", a.prepare(req(inst("serial-2"), bal(1, 1))));
  await store.arrived(2);
  assert.deepEqual(store.puts[1]!.id, inst("serial-2"));
  await store.puts[1]!.release();
  assert.deepEqual(await other, EMPTY_ACCEPTOR);

  await store.puts[0]!.release();
  assert.deepEqual(await p1, EMPTY_ACCEPTOR);
  await store.arrived(3);
  await settle();
  assert.deepEqual([...settled].sort(), ["other", "p1"], "p2 waits for its put");
  // The second request saw the first one's stored state.
  await store.puts[2]!.release();
  assert.deepEqual(await p2, state(bal(1, 1)));
  await store.arrived(4);
  await settle();
  assert.deepEqual([...settled].sort(), ["other", "p1", "p2"], "a3 waits for its put");
  await store.puts[3]!.release();
  assert.deepEqual(await a3, acceptReply(bal(2, 1)));
  assert.deepEqual(store.inner.get(id), state(bal(2, 1), { Vi64: 5n }, bal(2, 1)));
  await store.arrived(5);
  assert.deepEqual(store.puts[4]!.id, inst("serial", 1), "version 1 came last");
  await store.puts[4]!.release();
  assert.deepEqual(await v1, EMPTY_ACCEPTOR);
  assert.equal(store.puts.length, 5);
});

Deno.test("with a store that writes at once, a request is served in its call, unless its key waits", async () => {
  const store = new GatedStore((id) => id.Ver === 0n);
  const a = new PaxosAcceptor(store);
  // Nothing queued on the key: the state is stored before prepare() returns.
  const first = a.prepare(req(inst("now", 1), bal(1, 1)));
  assert.deepEqual(store.inner.get(inst("now", 1)), state(bal(1, 1)));
  assert.deepEqual(await first, EMPTY_ACCEPTOR);

  // Version 0's write waits on the gate; version 1 must wait behind it, even
  // though its own write would be done at once.
  const settled: string[] = [];
  const p0 = a.prepare(req(inst("now", 0), bal(2, 1))).then(() => settled.push("p0"));
  const a1 = a.accept(req(inst("now", 1), bal(1, 1), { Vi64: 7n })).then((r) => {
    settled.push("a1");
    return r;
  });
  await store.arrived(1);
  await settle();
  assert.deepEqual(settled, []);
  assert.deepEqual(store.inner.get(inst("now", 1)), state(bal(1, 1)), "a1 has not run");

  await store.puts[0]!.release();
  assert.deepEqual(await a1, acceptReply(bal(1, 1)));
  await p0;
  assert.deepEqual(settled, ["p0", "a1"]);
  assert.deepEqual(store.inner.get(inst("now", 1)), state(bal(1, 1), { Vi64: 7n }, bal(1, 1)));
  // Once the key's queue is empty, requests are served at once again.
  void a.prepare(req(inst("now", 2), bal(3, 1)));
  assert.deepEqual(store.inner.get(inst("now", 2)), state(bal(3, 1)));
});

Deno.test("a store put that rejects makes the request reject, changes nothing, and frees the instance", async () => {
  const store = new GatedStore();
  const a = new PaxosAcceptor(store);
  const id = inst("failing");
  const p1 = a.prepare(req(id, bal(1, 1)));
  const p2 = a.accept(req(id, bal(1, 1), { Vi64: 3n }));
  await store.arrived(1);
  store.puts[0]!.fail(new Error("disk on fire"));
  await assert.rejects(p1, /disk on fire/);
  assert.equal(store.get(id), undefined);
  // The next request runs, on the unchanged state.
  await store.arrived(2);
  await store.puts[1]!.release();
  assert.deepEqual(await p2, acceptReply(ZERO_BALLOT));
  assert.deepEqual(store.get(id), state(bal(1, 1), { Vi64: 3n }, bal(1, 1)));
});

Deno.test("an Accept with Next whose two puts both fail rejects once, and nothing is left unhandled", async () => {
  const store = new GatedStore();
  const a = new PaxosAcceptor(store);
  const id = inst("failing-next");
  const p = a.accept({ ...req(id, bal(1, 1), { Vi64: 3n }), Next: true });
  await store.arrived(2);
  store.puts[1]!.fail(new Error("disk on fire (next)"));
  store.puts[0]!.fail(new Error("disk on fire (vote)"));
  await assert.rejects(p, /disk on fire/);
  assert.equal(store.get(id), undefined);
  assert.equal(store.get(inst("failing-next", 1)), undefined);
});
