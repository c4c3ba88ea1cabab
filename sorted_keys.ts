/**
 * The keys a store holds, in order, for paging through them: the `Keys`
 * request of the kv extension, which listings and membership catch-up use.
 *
 * Order is JavaScript's string order (UTF-16 code units, as `<` compares).
 * In that order the key right after `k` is `k + "\0"`, so a page that ended
 * at `k` resumes from `k + "\0"`.
 *
 * Keys are only added, never removed (a store keeps a key's floor after
 * compaction). New keys wait in a small unsorted batch that is sorted and
 * merged into the ordered array at the next query, so adding costs O(1) and a
 * query after n new keys costs O(n log n + total).
 *
 * @module
 */

/**
 * A set of keys that can be read in order, a page at a time.
 *
 * @example
 * ```ts
 * import { SortedKeys } from "./sorted_keys.ts";
 * const keys = new SortedKeys();
 * for (const k of ["b", "a", "c", "a"]) keys.add(k);
 * keys.page("a\0", 10); // ["b", "c"]
 * ```
 */
export class SortedKeys {
  #sorted: string[] = [];
  #fresh: string[] = [];

  /** Adds a key that the caller knows is not in the set yet. */
  add(key: string): void {
    this.#fresh.push(key);
  }

  /** How many keys the set holds. */
  get size(): number {
    return this.#sorted.length + this.#fresh.length;
  }

  /**
   * Up to `limit` keys `k` with `from <= k` (and `k < end` when `end` is
   * given), ascending.
   */
  page(from: string, limit: number, end?: string): string[] {
    const sorted = this.#settle();
    const out: string[] = [];
    for (let i = lowerBound(sorted, from); i < sorted.length && out.length < limit; i++) {
      const k = sorted[i]!;
      if (end !== undefined && k >= end) break;
      out.push(k);
    }
    return out;
  }

  // Merges the fresh keys into the ordered array.
  #settle(): string[] {
    if (this.#fresh.length === 0) return this.#sorted;
    const fresh = this.#fresh.sort(compare);
    this.#fresh = [];
    const old = this.#sorted;
    const merged = new Array<string>(old.length + fresh.length);
    let i = 0, j = 0, n = 0;
    while (i < old.length || j < fresh.length) {
      merged[n++] = j >= fresh.length || (i < old.length && old[i]! < fresh[j]!)
        ? old[i++]!
        : fresh[j++]!;
    }
    this.#sorted = merged;
    return merged;
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// The index of the first key not below `from`.
function lowerBound(sorted: readonly string[], from: string): number {
  let lo = 0, hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < from) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
