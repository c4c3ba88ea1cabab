// The acceptor's own bounds: requests waiting per key and per peer, served in
// turn across peers, and the reply budget a caller (a connection) gives its
// requests. Refusals are Overloaded, before anything changes.
import assert from "node:assert/strict";
import { type Caller, PaxosAcceptor } from "../acceptor.ts";
import { AcceptorError } from "../errors.ts";
import { MemoryStore, type Written } from "../store.ts";
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
  await overloaded(a.latest("big", small));
  const large = budget(25_000);
  assert.deepEqual((await a.prepare(req(id, bal(2, 1)), large)).Val, value);
  assert.ok(large.left < 15_000 && large.left > 14_000, `left ${large.left}`);
  assert.deepEqual((await a.latest("big", large)).Val, value);
  assert.ok(large.left < 5_000, `left ${large.left}`);
  // An Accept's reply is small, but it still has to fit.
  await overloaded(a.accept(req(id, bal(3, 1), { Vi64: 1n }), budget(10)));
  assert.deepEqual(a.store.get(id)?.Val, value, "no vote");
  // Without a budget (in process), nothing is limited.
  assert.deepEqual((await a.prepare(req(id, bal(3, 1)))).Val, value);
});
