// The acceptor's own bounds: requests waiting per key, and the reply budget
// a caller (a connection) gives its requests. Both refuse with Overloaded
// before anything changes.
import assert from "node:assert/strict";
import { PaxosAcceptor, type ReplyBudget } from "../acceptor.ts";
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
  const queued = Array.from({ length: 8 }, (_, i) => a.prepare(req(id, bal(i + 1, 1))));
  // The ninth is refused without waiting, and never runs.
  assert.match(await overloaded(a.prepare(req(id, bal(100, 1)))), /8 requests are already waiting/);
  assert.match(await overloaded(a.accept(req(inst("hot", 5), bal(100, 1), { Vi64: 1n }))), /hot/);
  // Another key is served as usual.
  const other = a.prepare(req(inst("cold"), bal(1, 1)));
  store.release();
  assert.deepEqual(await other, EMPTY_ACCEPTOR);
  const replies = await Promise.all(queued);
  assert.deepEqual(replies[7], state(bal(7, 1)));
  assert.deepEqual(store.get(id), state(bal(8, 1)), "the refused ballot 100 was never promised");
  assert.equal(store.get(inst("hot", 5)), undefined);
  // Once the queue drains, the key takes requests again.
  assert.deepEqual(await a.prepare(req(id, bal(9, 1))), state(bal(8, 1)));
  assert.throws(() => new PaxosAcceptor(store, "b", { maxQueuedPerKey: 0 }), RangeError);
});

function budget(bytes: number): ReplyBudget & { left: number } {
  const b = {
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
