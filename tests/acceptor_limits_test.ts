// The acceptor's own bounds: requests waiting per key and per peer, served in
// turn across peers, and the reply budget a caller (a connection) gives its
// requests (refusals are Overloaded, before anything changes); the quota and
// the store's key limit (refusals are QuotaExceeded, nothing written).
import assert from "node:assert/strict";
import { type Caller, DEFAULT_MEMORY_QUOTA_BYTES, PaxosAcceptor } from "../acceptor.ts";
import { LogStore } from "../log_store.ts";
import { AcceptorError } from "../errors.ts";
import { dataBytes, keyBytes, MAX_KEYS_IN_MEMORY, MemoryStore, type Written } from "../store.ts";
import type { Acceptor, PaxosInstanceId } from "../types.ts";
import { EMPTY_ACCEPTOR } from "../types.ts";
import { bal, inst, req, state } from "./builders.ts";

// A store whose writes wait until released, all at once.
class HeldStore extends MemoryStore {
  #release: () => void = () => {};
  #held = new Promise<void>((resolve) => this.#release = resolve);
  override put(id: PaxosInstanceId, s: Acceptor): Written {
    return this.#held.then(() => super.put(id, s));
  }
  release(): void {
    this.#release();
  }
}

async function overloaded(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AcceptorError, String(e));
    assert.equal(e.code, "Overloaded", e.message);
    return e.message;
  }
  return assert.fail("served, expected Overloaded");
}

Deno.test("at most maxQueuedPerKey requests wait on a key; more are refused at once, changing nothing", async () => {
  const store = new HeldStore();
  const a = new PaxosAcceptor(store, "a", { maxQueuedPerKey: 8 });
  const id = inst("hot");
  // One served (its write waits), eight waiting behind it.
  const queued = Array.from({ length: 9 }, (_, i) => a.prepare(req(id, bal(i + 1, 1))));
  // The next is refused without waiting, and never runs.
  assert.match(await overloaded(a.prepare(req(id, bal(100, 1)))), /8 requests are already waiting/);
  assert.match(
    await overloaded(a.accept(req(inst("hot", 5), bal(100, 1), { Vi64: 1n }))),
    /already waiting on this key/,
  );
  // A Latest with a ballot is answered, without its promise (no NextBal):
  // the writer then runs Prepare itself.
  assert.deepEqual(await a.latest("hot", bal(100, 1)), {
    Ver: -1n,
    Floor: 0n,
    Val: null,
    VBal: bal(0, 0),
  });
  // Another key is served as usual.
  const other = a.prepare(req(inst("cold"), bal(1, 1)));
  store.release();
  assert.deepEqual(await other, EMPTY_ACCEPTOR);
  const replies = await Promise.all(queued);
  assert.deepEqual(replies[8], state(bal(8, 1)));
  assert.deepEqual(store.get(id), state(bal(9, 1)), "the refused ballot 100 was never promised");
  assert.equal(store.get(inst("hot", 5)), undefined);
  // Once the queue drains, the key takes requests again.
  assert.deepEqual(await a.prepare(req(id, bal(10, 1))), state(bal(9, 1)));
  assert.throws(() => new PaxosAcceptor(store, "b", { maxQueuedPerKey: 0 }), RangeError);
  assert.throws(() => new PaxosAcceptor(store, "b", { maxQueuedPerPeer: 1.5 }), RangeError);
});

// A store whose writes each wait for their own release, in order.
class SteppedStore extends MemoryStore {
  readonly order: string[] = [];
  readonly #waiting: (() => void)[] = [];
  override put(id: PaxosInstanceId, s: Acceptor): Written {
    return new Promise<void>((resolve) => this.#waiting.push(resolve)).then(() => {
      this.order.push(`${s.LastBal.ProposerId}:${s.LastBal.N}`);
      super.put(id, s);
    });
  }
  // Lets the oldest write finish, once it is there.
  async step(): Promise<void> {
    while (this.#waiting.length === 0) await new Promise((r) => setTimeout(r, 0));
    this.#waiting.shift()!();
    await new Promise((r) => setTimeout(r, 0));
  }
}

Deno.test("requests waiting on a key are served in turn across peers, at most maxQueuedPerPeer of one", async () => {
  const store = new SteppedStore();
  const a = new PaxosAcceptor(store, "a", { maxQueuedPerPeer: 50 });
  const flood: Caller = { peer: {}, take: () => true };
  const normal: Caller = { peer: {}, take: () => true };
  const id = inst("contended");
  // The flood: 1 served at once (its write waits), 50 waiting, 950 refused.
  const flooding = Array.from({ length: 1001 }, (_, i) => a.prepare(req(id, bal(i + 1, 1)), flood));
  const refused = await Promise.allSettled(flooding.slice(51));
  assert.ok(refused.every((r) => r.status === "rejected"));
  await overloaded(flooding[51]!);
  // A request of another peer waits behind one of the flood's, not fifty.
  const mine = a.prepare(req(id, bal(5000, 2)), normal);
  await store.step(); // the flood's first
  await store.step(); // the flood's second: it was waiting before ours
  await store.step(); // ours
  assert.deepEqual(store.order, ["1:1", "1:2", "2:5000"]);
  assert.deepEqual((await mine).LastBal, bal(2, 1));
  // The flood's others come after it, in their order; below the promised
  // ballot now, they write nothing, and see ours.
  const rest = await Promise.all(flooding.slice(2, 51));
  assert.ok(rest.every((r) => r.LastBal.N === 5000n));
  assert.equal(store.order.length, 3);
});

function budget(bytes: number): Caller & { left: number } {
  const b = {
    peer: {},
    left: bytes,
    take(n: number) {
      if (n > b.left) return false;
      b.left -= n;
      return true;
    },
  };
  return b;
}

Deno.test("a reply that does not fit the caller's budget is refused before the request changes anything", async () => {
  const a = new PaxosAcceptor();
  const id = inst("big");
  const value = { Data: new Uint8Array(10_000) };
  await a.accept(req(id, bal(1, 1), value));
  // Prepare's reply carries the 10 KB vote.
  const small = budget(5_000);
  await overloaded(a.prepare(req(id, bal(2, 1)), small));
  assert.equal(small.left, 5_000);
  assert.deepEqual(a.store.get(id)?.LastBal, bal(1, 1), "ballot 2 was not promised");
  await overloaded(a.latest("big", undefined, undefined, small));
  const large = budget(25_000);
  assert.deepEqual((await a.prepare(req(id, bal(2, 1)), large)).Val, value);
  assert.ok(large.left < 15_000 && large.left > 14_000, `left ${large.left}`);
  assert.deepEqual((await a.latest("big", undefined, undefined, large)).Val, value);
  assert.ok(large.left < 5_000, `left ${large.left}`);
  // An Accept's reply is small, but it still has to fit.
  await overloaded(a.accept(req(id, bal(3, 1), { Vi64: 1n }), budget(10)));
  assert.deepEqual(a.store.get(id)?.Val, value, "no vote");
  // Without a budget (in process), nothing is limited.
  assert.deepEqual((await a.prepare(req(id, bal(3, 1)))).Val, value);
});

async function quotaExceeded(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AcceptorError, String(e));
    assert.equal(e.code, "QuotaExceeded", e.message);
    assert.ok(e.isFinal, "asking again at once cannot help");
    return e.message;
  }
  return assert.fail("served, expected QuotaExceeded");
}

Deno.test("past the quota, writes that grow the data are refused, naming the quota; others go on", async () => {
  const store = new MemoryStore();
  const a = new PaxosAcceptor(store, "a", { quotaBytes: 4096 });
  const big = { Data: "x".repeat(1000) };
  // Three values of about 1 KB fit; the fourth does not.
  for (let i = 0; i < 3; i++) {
    await a.prepare(req(inst(`k${i}`), bal(1, 1)));
    await a.accept(req(inst(`k${i}`), bal(1, 1), big));
  }
  const used = store.usedBytes;
  assert.ok(used > 3000 && used <= 4096, `${used}`);
  await a.prepare(req(inst("k3"), bal(1, 1)));
  const msg = await quotaExceeded(a.accept(req(inst("k3"), bal(1, 1), big)));
  assert.match(msg, /"k3"@0 would grow the data to \d+ bytes, over the quota of 4096 bytes/);
  assert.deepEqual(store.get(inst("k3")), state(bal(1, 1)), "nothing was voted");
  // What does not grow the data goes on: a higher promise on an instance
  // held, a vote no larger than the one it replaces, reads.
  await a.prepare(req(inst("k0"), bal(2, 1)));
  await a.accept(req(inst("k0"), bal(2, 1), { Data: "y".repeat(1000) }));
  assert.equal((await a.latest("k1")).Val, big);
  // A delete of an existing key (Prepare of its next version, then a
  // tombstone) uses the reserve above the quota.
  await a.prepare(req(inst("k1", 1), bal(1, 1)));
  await a.accept(req(inst("k1", 1), bal(1, 1), { Del: true }));
  assert.deepEqual((await a.latest("k1")).Val, { Del: true });
  // New keys are refused from their Prepare on, and do not make it into the store.
  let n = 0;
  while (
    n < 100 && await a.prepare(req(inst(`new${n}`), bal(1, 1))).then(() => true, () => false)
  ) {
    n++;
  }
  assert.ok(n < 100, "a Prepare of a new key was refused");
  await quotaExceeded(a.prepare(req(inst(`new${n}`), bal(1, 1))));
  assert.equal(store.get(inst(`new${n}`)), undefined);
  assert.ok(store.usedBytes <= 4096 + 4096 / 16);
  // No promise ahead past the quota: the next version waits for a Prepare.
  const r = await a.accept({ ...req(inst("k2"), bal(1, 1), big), Next: true });
  assert.equal(r.NextOk, undefined);
  assert.throws(() => new PaxosAcceptor(store, "b", { quotaBytes: 0 }), RangeError);
});

Deno.test("a flood of Prepares on distinct keys stops at the quota", async () => {
  const store = new MemoryStore();
  const a = new PaxosAcceptor(store, "a", { quotaBytes: 64 * 1024 });
  let refused = 0;
  for (let i = 0; i < 5000; i++) {
    await a.prepare(req(inst(`flood-${i}`), bal(1, 1))).catch((e) => {
      assert.equal((e as AcceptorError).code, "QuotaExceeded");
      refused++;
    });
  }
  assert.ok(store.usedBytes <= 64 * 1024, `${store.usedBytes}`);
  assert.ok(refused > 4000, `${refused} refused`);
  assert.ok(store.size < 1000, `${store.size} instances held`);
});

Deno.test("retention frees what a delete replaces: writes fit again under the quota", async () => {
  const store = new MemoryStore();
  const a = new PaxosAcceptor(store, "a", { quotaBytes: 4096, keepVersions: 1 });
  const big = { Data: "x".repeat(1500) };
  for (const k of ["a", "b"]) {
    await a.prepare(req(inst(k), bal(1, 1)));
    await a.accept(req(inst(k), bal(1, 1), big));
  }
  await a.prepare(req(inst("c"), bal(1, 1)));
  await quotaExceeded(a.accept(req(inst("c"), bal(1, 1), big)));
  await a.prepare(req(inst("a", 1), bal(1, 1)));
  await a.accept(req(inst("a", 1), bal(1, 1), { Del: true }));
  await a.accept(req(inst("c"), bal(1, 1), big));
  assert.deepEqual((await a.latest("c")).Val, big);
  assert.ok(store.usedBytes <= 4096);
});

Deno.test("the data a store holds is counted as states are written, replaced and compacted", () => {
  const store = new MemoryStore();
  assert.equal(store.usedBytes, 0);
  store.put(inst("k"), state(bal(1, 1)));
  const one = store.usedBytes;
  assert.equal(one, keyBytes("k") + dataBytes(EMPTY_ACCEPTOR));
  store.put(inst("k"), state(bal(1, 1), { Data: "v".repeat(100) }, bal(1, 1)));
  assert.ok(store.usedBytes > one + 100);
  store.put(inst("k", 1), state(bal(1, 1)));
  store.put(inst("k", 1000), state(bal(1, 1))); // a version far off (kept apart)
  store.compact("k", 2000n);
  assert.equal(store.usedBytes, keyBytes("k"));
});

Deno.test("past the store's key limit a new key is refused QuotaExceeded, by Prepare, Accept and Latest with a ballot (and a first write's value); the keys held keep working, also reopened", async () => {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-maxkeys-" });
  try {
    let store = await LogStore.open(dir, { maxKeys: 5 });
    let a = new PaxosAcceptor(store, "a");
    // Four keys with a value, and "p" with only a promise: five keys.
    for (let i = 0; i < 4; i++) {
      await a.prepare(req(inst(`k${i}`), bal(1, 1)));
      await a.accept(req(inst(`k${i}`), bal(1, 1), { Vi64: BigInt(i) }));
    }
    await a.prepare(req(inst("p"), bal(1, 1)));
    assert.equal(store.keyCount, 5);
    const logBytes = store.stats.logBytes;
    const refused = async (s: LogStore, b: PaxosAcceptor, max: number) => {
      const msg = await quotaExceeded(b.prepare(req(inst("new"), bal(1, 1))));
      assert.match(msg, new RegExp(`"new"@0 would add a key past the limit of ${max} keys`));
      assert.match(msg, /--max-keys/);
      assert.match(msg, /--engine sqlite, which keeps its keys on disk/);
      await quotaExceeded(b.accept(req(inst("new", 3), bal(1, 1), { Vi64: 1n })));
      // The folded phase 1 answers a plain Latest, without its promise; so
      // does a first write's Latest, without its round-0 vote.
      for (const first of [undefined, { Vi64: 1n }]) {
        assert.deepEqual(await b.latest("new", bal(1, 1), first), {
          Ver: -1n,
          Floor: 0n,
          Val: null,
          VBal: bal(0, 0),
        });
      }
      assert.equal(s.get(inst("new")), undefined);
      assert.equal(s.get(inst("new", 3)), undefined);
    };
    await refused(store, a, 5);
    assert.equal(store.stats.logBytes, logBytes, "nothing written");
    assert.equal(store.keyCount, 5);
    // The keys held: the promised one takes its vote, the others a new
    // version (with the next one promised ahead), a folded phase 1, a delete.
    await a.prepare(req(inst("p"), bal(2, 1)));
    const first = await a.accept({ ...req(inst("p"), bal(2, 1), { Vi64: 9n }), Next: true });
    assert.equal(first.NextOk, true, "its next version promised ahead");
    await a.prepare(req(inst("k0", 1), bal(1, 1)));
    const r = await a.accept({ ...req(inst("k0", 1), bal(1, 1), { Vi64: 10n }), Next: true });
    assert.equal(r.NextOk, true);
    assert.deepEqual((await a.latest("k1", bal(5, 1))).NextBal, bal(0, 0));
    await a.accept(req(inst("k1", 1), bal(5, 1), { Del: true }));
    assert.deepEqual((await a.latest("k1")).Val, { Del: true });
    assert.equal(store.keyCount, 5);
    await store.close();

    // Reopened: the same keys, the same limit.
    store = await LogStore.open(dir, { maxKeys: 5 });
    a = new PaxosAcceptor(store, "a");
    assert.equal(store.keyCount, 5);
    assert.deepEqual((await a.latest("p")).Val, { Vi64: 9n });
    await refused(store, a, 5);
    await store.close();

    // A limit lowered below the keys held: it opens, the keys held work,
    // new ones are refused.
    store = await LogStore.open(dir, { maxKeys: 2 });
    a = new PaxosAcceptor(store, "a");
    assert.equal(store.keyCount, 5);
    await a.prepare(req(inst("k2", 1), bal(1, 1)));
    await a.accept(req(inst("k2", 1), bal(1, 1), { Vi64: 11n }));
    assert.deepEqual((await a.latest("k2")).Val, { Vi64: 11n });
    await refused(store, a, 2);
    await store.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("new keys written at once stop at the key limit: those of writes under way count", async () => {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-maxkeys-" });
  const store = await LogStore.open(dir, { maxKeys: 5 });
  try {
    const a = new PaxosAcceptor(store, "a");
    // Ten Prepares of new keys in one tick: all in one group commit.
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => a.prepare(req(inst(`c${i}`), bal(1, 1)))),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 5);
    for (const r of results) {
      if (r.status === "rejected") assert.equal((r.reason as AcceptorError).code, "QuotaExceeded");
    }
    assert.equal(store.keyCount, 5);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a memory store has a key limit too; at the default memory quota it is never reached", async () => {
  const store = new MemoryStore({ maxKeys: 2 });
  const a = new PaxosAcceptor(store, "a");
  await a.prepare(req(inst("x"), bal(1, 1)));
  await a.prepare(req(inst("y"), bal(1, 1)));
  assert.match(
    await quotaExceeded(a.prepare(req(inst("z"), bal(1, 1)))),
    /past the limit of 2 keys/,
  );
  assert.equal(store.keyCount, 2);
  // Its keys are in a Map (at most 2^24 entries): the default limit is below
  // that, and the default quota, charging at least 112 bytes a key, holds
  // fewer keys still.
  const fresh = new MemoryStore();
  assert.equal(fresh.maxKeys, MAX_KEYS_IN_MEMORY);
  assert.ok(MAX_KEYS_IN_MEMORY < 2 ** 24);
  const minKeyCharge = keyBytes("") + dataBytes(EMPTY_ACCEPTOR);
  assert.equal(minKeyCharge, 112);
  assert.ok(Math.floor(DEFAULT_MEMORY_QUOTA_BYTES / minKeyCharge) < MAX_KEYS_IN_MEMORY);
  assert.throws(() => new MemoryStore({ maxKeys: 0 }), /maxKeys must be an integer .* got 0/);
  assert.throws(
    () => new MemoryStore({ maxKeys: MAX_KEYS_IN_MEMORY + 1 }),
    /from 1 to 16000000 .* got 16000001/,
  );
});
