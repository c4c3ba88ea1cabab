// Tests of sorted_keys.ts: pages of keys in order, against a sorted copy.
import assert from "node:assert/strict";
import { seededRandom } from "../clock.ts";
import { SortedKeys } from "../sorted_keys.ts";

// Every key in [from, end), ascending, as a plain sort gives them.
function expected(all: Set<string>, from: string, end?: string): string[] {
  return [...all].sort().filter((k) => k >= from && (end === undefined || k < end));
}

// Reads every key from `from` to `end`, `limit` at a time, resuming at last + "\0".
function walk(keys: SortedKeys, from: string, limit: number, end?: string): string[] {
  const out: string[] = [];
  for (;;) {
    const page = keys.page(from, limit, end);
    assert.ok(page.length <= limit, `a page of ${page.length} keys for a limit of ${limit}`);
    out.push(...page);
    if (page.length < limit) return out;
    from = page[page.length - 1]! + "\0";
  }
}

Deno.test("pages walk every key in order once, while keys keep arriving between pages", () => {
  const alphabet = ["", "a", "b", "\0", "\uffff", "\ud83d\ude00", "z", "é"];
  for (let seed = 1; seed <= 30; seed++) {
    const rnd = seededRandom(seed);
    const pick = <T>(xs: readonly T[]) => xs[Math.floor(rnd.next() * xs.length)]!;
    const word = () =>
      Array.from({ length: Math.floor(rnd.next() * 4) }, () => pick(alphabet)).join("");
    const keys = new SortedKeys();
    const all = new Set<string>();
    const add = (k: string) => {
      if (all.has(k)) return;
      all.add(k);
      keys.add(k);
    };
    for (let i = 0; i < 200; i++) {
      add(word());
      if (i % 37 === 0) {
        const from = word(), end = rnd.next() < 0.5 ? undefined : word();
        const limit = 1 + Math.floor(rnd.next() * 10);
        assert.deepEqual(walk(keys, from, limit, end), expected(all, from, end), `seed ${seed}`);
      }
    }
    assert.equal(keys.size, all.size);
    assert.deepEqual(walk(keys, "", 7), expected(all, ""), `seed ${seed}`);
  }
});

Deno.test("a page is bounded by its limit and its end, and empty past the last key", () => {
  const keys = new SortedKeys();
  for (const k of ["b", "a", "d", "c"]) keys.add(k);
  assert.deepEqual(keys.page("", 2), ["a", "b"]);
  assert.deepEqual(keys.page("b", 10, "d"), ["b", "c"]);
  assert.deepEqual(keys.page("b\0", 10), ["c", "d"]);
  assert.deepEqual(keys.page("e", 10), []);
  assert.deepEqual(keys.page("a", 10, "a"), []);
});
