// LruMap: the order of last use, against a model, through enough changes
// that the Map under it rebuilds its table many times.
import assert from "node:assert/strict";
import { LruMap } from "../lru.ts";
import { seededRandom } from "../clock.ts";

Deno.test("LruMap takes out entries least recently set first, as a list model does", () => {
  const random = seededRandom(14);
  const lru = new LruMap<number, number>();
  // The model: keys, least recently set first.
  let model: number[] = [];
  const values = new Map<number, number>();
  for (let step = 0; step < 200_000; step++) {
    const r = random.next();
    const key = Math.floor(random.next() * 3000);
    if (r < 0.55) {
      lru.set(key, step);
      model = model.filter((k) => k !== key);
      model.push(key);
      values.set(key, step);
    } else if (r < 0.65) {
      assert.equal(lru.delete(key), values.has(key));
      model = model.filter((k) => k !== key);
      values.delete(key);
    } else if (r < 0.99999) {
      const oldest = model.shift();
      assert.deepEqual(
        lru.shift(),
        oldest === undefined ? undefined : [oldest, values.get(oldest)],
      );
      if (oldest !== undefined) values.delete(oldest);
    } else {
      lru.clear();
      model = [];
      values.clear();
    }
    assert.equal(lru.size, model.length);
    assert.equal(lru.get(key), values.get(key));
    assert.equal(lru.has(key), values.has(key));
  }
});

Deno.test("LruMap.shift on an empty map is undefined, and sees entries set after", () => {
  const lru = new LruMap<string, number>();
  assert.equal(lru.shift(), undefined);
  lru.set("a", 1);
  lru.set("b", 2);
  assert.deepEqual(lru.shift(), ["a", 1]);
  assert.deepEqual(lru.shift(), ["b", 2]);
  assert.equal(lru.shift(), undefined);
  lru.set("c", 3);
  lru.set("b", 4);
  lru.set("c", 5);
  assert.deepEqual(lru.shift(), ["b", 4]);
  assert.deepEqual(lru.shift(), ["c", 5]);
  assert.equal(lru.size, 0);
});
