// A change the codec cannot write (reachable only in process: the wire
// refuses such values) fails alone, and the store goes on.
import assert from "node:assert/strict";
import { LogStore } from "../log_store.ts";
import { bal, inst, state } from "./builders.ts";

Deno.test("a change that cannot be encoded fails alone; the changes beside and after it are stored", async () => {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-bad-change-" });
  try {
    const store = await LogStore.open(dir);
    const good = state(bal(1, 1), { Vi64: 1n }, bal(1, 1));
    // An integer beyond 64 bits: MessagePack cannot carry it.
    const bad = state(bal(1, 1), { Data: 2n ** 70n }, bal(1, 1));
    // The same tick: one group commit.
    const results = await Promise.allSettled([
      store.put(inst("good"), good),
      store.put(inst("bad"), bad),
      store.put(inst("good", 1), good),
    ]);
    assert.deepEqual(results.map((r) => r.status), ["fulfilled", "rejected", "fulfilled"]);
    const why = (results[1] as PromiseRejectedResult).reason as Error;
    assert.ok(why instanceof TypeError);
    assert.match(why.message, /"bad"@0/);
    assert.equal(store.get(inst("bad")), undefined);
    // Later changes are stored as usual.
    await store.put(inst("after"), good);
    await store.close();
    const again = await LogStore.open(dir);
    try {
      assert.deepEqual(again.get(inst("good")), good);
      assert.deepEqual(again.get(inst("good", 1)), good);
      assert.deepEqual(again.get(inst("after")), good);
      assert.equal(again.get(inst("bad")), undefined);
    } finally {
      await again.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
