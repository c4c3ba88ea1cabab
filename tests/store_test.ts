// Tests of store.ts: the per-key bookkeeping (`Versions`) that both stores
// share, and the memory store.
import assert from "node:assert/strict";
import { seededRandom } from "../clock.ts";
import { MemoryStore, Versions } from "../store.ts";
import type { Acceptor, PaxosInstanceId } from "../types.ts";
import { promised, voted } from "./builders.ts";

// A plain model of what Versions promises: a map per key, a highest voted
// version and a floor.
class Model {
  readonly states = new Map<string, Map<bigint, Acceptor>>();
  readonly voted = new Map<string, bigint>();
  readonly floors = new Map<string, bigint>();

  set(id: PaxosInstanceId, s: Acceptor): void {
    if (id.Ver < (this.floors.get(id.Key) ?? 0n)) return;
    if (!this.states.has(id.Key)) this.states.set(id.Key, new Map());
    this.states.get(id.Key)!.set(id.Ver, s);
    if (s.Val !== null && id.Ver > (this.voted.get(id.Key) ?? -1n)) this.voted.set(id.Key, id.Ver);
  }

  compact(key: string, floor: bigint): void {
    if (floor <= (this.floors.get(key) ?? 0n)) return;
    this.floors.set(key, floor);
    for (const v of this.states.get(key)?.keys() ?? []) {
      if (v < floor) this.states.get(key)!.delete(v);
    }
  }
}

Deno.test("Versions keeps exactly what a plain map per key would, for dense, far, negative and huge versions", () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rnd = seededRandom(seed);
    const pick = (n: number) => Math.floor(rnd.next() * n);
    const versions = new Versions();
    const model = new Model();
    const keys = ["a", "b", "c"];
    // Versions mostly in order from 0, as a KV writes them, with jumps far
    // ahead, behind, below zero and beyond 2^53.
    const next = new Map<string, bigint>();
    const touched = new Set<string>();
    const verOf = (key: string): bigint => {
      const r = pick(20);
      const at = next.get(key) ?? 0n;
      if (r < 12) return at;
      if (r < 14) return at + BigInt(pick(200));
      if (r < 16) return at - BigInt(pick(10));
      if (r < 17) return -BigInt(pick(5) + 1);
      if (r < 18) return 2n ** 53n + BigInt(pick(3));
      if (r < 19) return 2n ** 62n + BigInt(pick(3));
      return BigInt(pick(400));
    };
    for (let step = 0; step < 400; step++) {
      const key = keys[pick(keys.length)]!;
      if (pick(25) === 0) {
        const floor = BigInt(pick(Number(next.get(key) ?? 0n) + 5));
        versions.compact(key, floor);
        model.compact(key, floor);
        continue;
      }
      const ver = verOf(key);
      const s = pick(2) === 0 ? voted(step) : promised(step);
      versions.set({ Key: key, Ver: ver }, s);
      model.set({ Key: key, Ver: ver }, s);
      touched.add(`${key}@${ver}`);
      if (ver === (next.get(key) ?? 0n)) next.set(key, ver + 1n);
    }
    const where = `seed ${seed}`;
    // Every instance ever touched reads back as in the model.
    for (const t of touched) {
      const [key, ver] = t.split("@") as [string, string];
      const id = { Key: key, Ver: BigInt(ver) };
      assert.deepEqual(versions.get(id), model.states.get(key)?.get(id.Ver), `${where}: ${t}`);
    }
    // entries() lists each kept instance once, with its latest state.
    const listed = new Map<string, Acceptor>();
    for (const [id, s] of versions.entries()) {
      const k = `${id.Key}@${id.Ver}`;
      assert.ok(!listed.has(k), `${where}: ${k} listed twice`);
      listed.set(k, s);
    }
    const want = new Map<string, Acceptor>();
    for (const [key, m] of model.states) for (const [v, s] of m) want.set(`${key}@${v}`, s);
    assert.deepEqual(listed, want, where);
    let size = 0;
    for (const m of model.states.values()) size += m.size;
    assert.equal(versions.size, size, where);
    for (const key of keys) {
      assert.deepEqual(versions.latest(key), {
        Ver: model.voted.get(key) ?? -1n,
        Floor: model.floors.get(key) ?? 0n,
      }, `${where}: latest(${key})`);
    }
    assert.deepEqual(new Map(versions.floors()), model.floors, where);
    // A clone is equal and independent.
    const c = versions.clone();
    assert.deepEqual([...c.entries()], [...versions.entries()], where);
    c.set({ Key: "a", Ver: 0n }, voted(999_999));
    c.compact("b", 1_000n);
    assert.deepEqual(listedOf(versions), want, `${where}: the clone shares nothing`);
  }
});

function listedOf(v: Versions): Map<string, Acceptor> {
  return new Map([...v.entries()].map(([id, s]) => [`${id.Key}@${id.Ver}`, s]));
}

Deno.test("MemoryStore: a put is done at once, and a compacted version is gone", async () => {
  const store = new MemoryStore();
  const id = { Key: "k", Ver: 0n };
  assert.equal(store.put(id, voted(1)), undefined, "nothing to wait for");
  assert.deepEqual(store.get(id), voted(1));
  store.put({ Key: "k", Ver: 1n }, promised(2));
  assert.equal(store.size, 2);
  assert.deepEqual(store.latest("k"), { Ver: 0n, Floor: 0n }, "a promise is not a vote");
  await store.compact("k", 1n);
  assert.equal(store.get(id), undefined);
  assert.equal(store.size, 1);
  assert.deepEqual(store.latest("k"), { Ver: 0n, Floor: 1n });
  store.put(id, voted(3));
  assert.equal(store.get(id), undefined, "below the floor: ignored");
});

Deno.test("keys: a memory store pages through every key it holds any state for, in order", async () => {
  const store = new MemoryStore();
  const want: string[] = [];
  for (let i = 0; i < 50; i++) {
    const key = `k${String(i).padStart(2, "0")}`;
    want.push(key);
    // A promise alone, a vote, or only a floor: each makes the key held.
    if (i % 3 === 0) await store.put({ Key: key, Ver: 0n }, promised(1));
    else if (i % 3 === 1) await store.put({ Key: key, Ver: 4n }, voted(1, { Vi64: 1n }));
    else await store.compact(key, 2n);
  }
  assert.deepEqual(store.keys("", 1000), want);
  assert.deepEqual(store.keys("k10", 3), ["k10", "k11", "k12"]);
  assert.deepEqual(store.keys("k4", 100, "k42"), ["k40", "k41"]);
  // A key written after a page was read shows in the next one.
  await store.put({ Key: "k10a", Ver: 0n }, promised(1));
  assert.deepEqual(store.keys("k10\0", 2), ["k10a", "k11"]);
});

Deno.test("a version a little past a key's last one holds heap in proportion to what it is charged, whatever the jump", async () => {
  // A peer can send, key after key, versions just inside the distance that
  // still goes into a key's array: the empty room that makes is heap the
  // quota does not count. In a child process with V8's gc exposed, for each
  // jump from 1 to 70 versions: 2,000 keys, each given version 0 and then 8
  // promises, each `jump` versions past the last; heap held per byte charged.
  const code = `
    const { MemoryStore } = await import(${JSON.stringify(import.meta.resolve("../store.ts"))});
    const state = (i) => ({ LastBal: { N: 1n, ProposerId: BigInt(1e12 + i) }, Val: null,
      VBal: { N: 0n, ProposerId: 0n } });
    let worst = 0;
    for (let jump = 1; jump <= 70; jump++) {
      globalThis.gc();
      const before = Deno.memoryUsage().heapUsed;
      const store = new MemoryStore();
      for (let i = 0; i < 2000; i++) {
        for (let j = 0; j <= 8; j++) store.put({ Key: "k" + i, Ver: BigInt(j * jump) }, state(i));
      }
      globalThis.gc();
      const ratio = (Deno.memoryUsage().heapUsed - before) / store.usedBytes;
      if (store.size !== 18000) throw new Error("kept " + store.size + " states");
      worst = Math.max(worst, ratio);
    }
    console.log(worst);
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--v8-flags=--expose-gc", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const worst = Number(new TextDecoder().decode(out.stdout));
  // Under 8, so that the memory store's default quota (512 MiB) holds less
  // than V8's 4 GiB of heap: about 4 (versions far ahead go to the sparse
  // Map), where a gap of 64 versions held 52 and one of 64 slots 12.
  assert.ok(worst > 1 && worst < 8, `worst heap per byte charged: ${worst.toFixed(1)}`);
});
