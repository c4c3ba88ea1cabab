/**
 * A map that remembers the order its entries were last set in, for caches
 * that drop their least recently used entries: {@link LruMap}.
 *
 * Why not a plain `Map` and `map.keys().next()` for the oldest key? A
 * JavaScript Map keeps a deleted entry's slot, empty, until its table is
 * rebuilt, and every new iterator walks over those slots from the start. A
 * cache that drops its oldest entry each time it takes a new one deletes at
 * the front all the time: finding the oldest then walks over every entry
 * dropped since the last rebuild, tens of thousands of steps per lookup in
 * a cache of 65,536 states. An LruMap keeps one iterator alive instead,
 * which walks over each slot once: a Map iterator goes on through entries
 * set after it was made and skips deleted ones.
 *
 * @module
 */

/**
 * A Map of entries in the order they were last set (least recently set
 * first), that takes out its oldest entry in constant time on average.
 *
 * @example
 * ```ts
 * import { LruMap } from "./lru.ts";
 * const cache = new LruMap<string, number>();
 * cache.set("a", 1);
 * cache.set("b", 2);
 * cache.set("a", 3); // "a" is now the most recent
 * cache.shift(); // ["b", 2]
 * cache.size; // 1
 * ```
 */
export class LruMap<K, V> {
  readonly #map = new Map<K, V>();
  // Walks the entries oldest first. Every entry it went past was taken out
  // by shift (and, if set again since, is behind it now), so its next entry
  // is the oldest one. Once done it sees nothing new: made again then.
  #oldest: Iterator<[K, V], undefined> = this.#map.entries();

  /** How many entries it holds. */
  get size(): number {
    return this.#map.size;
  }

  /** The value of `key`, or undefined; it does not count as a use (see {@link LruMap.set}). */
  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  /** Whether it holds `key`. */
  has(key: K): boolean {
    return this.#map.has(key);
  }

  /** Sets `key` to `value`, as the most recent entry (also when it was held before). */
  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
  }

  /** Removes `key`; returns whether it was held. */
  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  /** Removes every entry. */
  clear(): void {
    this.#map.clear();
  }

  /** Removes and returns the least recently set entry, or undefined when empty. */
  shift(): [K, V] | undefined {
    let next = this.#oldest.next();
    if (next.done) {
      this.#oldest = this.#map.entries();
      next = this.#oldest.next();
      if (next.done) return undefined;
    }
    this.#map.delete(next.value[0]);
    return next.value;
  }
}
