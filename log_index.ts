/**
 * The log store's index in memory: for every instance (Key, Ver) it holds,
 * where the bytes of its latest state are in the log (offset and length),
 * and for every key its highest voted version and its floor. States
 * themselves stay on disk.
 *
 * It is kept small: a key is one entry of a `Map` to a key number, and the
 * rest are typed arrays indexed by key number or by version entry (no object
 * per version). A key's versions are a list, newest first, so the versions a
 * KV touches (the last ones) are found at once, and a key's highest version
 * is kept so that a version past it is known absent without a walk.
 *
 * @module
 */
import type { KeyVersions } from "./types.ts";
import { keyBytes } from "./store.ts";

const NO_VERSIONS: KeyVersions = { Ver: -1n, Floor: 0n };

function grown<T extends Float64Array | BigInt64Array | Int32Array | Uint32Array>(
  a: T,
  need: number,
  make: (n: number) => T,
  fill?: number,
): T {
  if (need <= a.length) return a;
  const b = make(Math.max(need, a.length * 2, 1024));
  b.set(a as never);
  if (fill !== undefined) (b as Int32Array).fill(fill, a.length);
  return b;
}

/**
 * Where each instance's latest state is in the log.
 *
 * @example
 * ```ts
 * import { LogIndex } from "./log_index.ts";
 * const index = new LogIndex();
 * const e = index.set("k", 0n, true, 8, 40);
 * index.find("k", 0n) === e; // true
 * index.offset(e); // 8
 * index.latest("k").Ver; // 0n
 * ```
 */
export class LogIndex {
  readonly #ids = new Map<string, number>();
  #names: string[] = [];
  // By key number: the first entry of its list (-1: none), its highest
  // version held, highest voted version, floor.
  #head = new Int32Array(0);
  #top = new BigInt64Array(0);
  #voted = new BigInt64Array(0);
  #floor = new BigInt64Array(0);
  // By entry: the version, where its state's bytes are (-1: a free entry),
  // their length, the next entry of its key's list (-1: none), its key.
  #ver = new BigInt64Array(0);
  #off = new Float64Array(0);
  #len = new Uint32Array(0);
  #next = new Int32Array(0);
  #key = new Int32Array(0);
  #entries = 0;
  #free: number[] = [];
  #live = 0;
  #bytes = 0;

  /** How many instances it holds. */
  get size(): number {
    return this.#live;
  }

  /**
   * The bytes of data held: every state's length in the log, and
   * {@link keyBytes} for every key.
   */
  get usedBytes(): number {
    return this.#bytes;
  }

  /** Entry numbers run from 0 to this (free ones among them). */
  get entryLimit(): number {
    return this.#entries;
  }

  /** How many keys it holds. */
  get keyCount(): number {
    return this.#names.length;
  }

  /** The key of key number `k`. */
  keyName(k: number): string {
    return this.#names[k]!;
  }

  /** The entry of an instance, or -1 when none is held. */
  find(key: string, ver: bigint): number {
    const k = this.#ids.get(key);
    if (k === undefined || ver > this.#top[k]!) return -1;
    for (let e = this.#head[k]!; e >= 0; e = this.#next[e]!) {
      if (this.#ver[e] === ver) return e;
    }
    return -1;
  }

  /** Where the state of entry `e` is in the log (-1 for a free entry). */
  offset(e: number): number {
    return this.#off[e]!;
  }

  /** The length of the state of entry `e` in the log. */
  length(e: number): number {
    return this.#len[e]!;
  }

  /** The version of entry `e`. */
  version(e: number): bigint {
    return this.#ver[e]!;
  }

  /** The key of entry `e`. */
  keyOf(e: number): string {
    return this.#names[this.#key[e]!]!;
  }

  /** Moves the state of entry `e` (after a compaction rewrote the log). */
  move(e: number, offset: number): void {
    this.#off[e] = offset;
  }

  /**
   * Records that the latest state of (key, ver) is at `offset` for `length`
   * bytes, and whether it holds a vote; returns its entry, or -1 when the
   * version is below the key's floor (ignored).
   */
  set(key: string, ver: bigint, voted: boolean, offset: number, length: number): number {
    const k = this.#keyNumber(key);
    if (ver < this.#floor[k]!) return -1;
    let e = this.find(key, ver);
    if (e < 0) {
      e = this.#newEntry();
      this.#ver[e] = ver;
      this.#key[e] = k;
      this.#next[e] = this.#head[k]!;
      this.#head[k] = e;
      if (ver > this.#top[k]!) this.#top[k] = ver;
      this.#live++;
    } else {
      this.#bytes -= this.#len[e]!;
    }
    this.#off[e] = offset;
    this.#len[e] = length;
    this.#bytes += length;
    if (voted && ver > this.#voted[k]!) this.#voted[k] = ver;
    return e;
  }

  /** The highest voted version and the floor of a key. */
  latest(key: string): KeyVersions {
    const k = this.#ids.get(key);
    return k === undefined ? NO_VERSIONS : { Ver: this.#voted[k]!, Floor: this.#floor[k]! };
  }

  /** The floor of key number `k`. */
  floorOf(k: number): bigint {
    return this.#floor[k]!;
  }

  /**
   * Raises a key's floor and forgets the versions below it; returns the
   * entries freed.
   */
  compact(key: string, floor: bigint): number[] {
    const k = this.#keyNumber(key);
    if (floor <= this.#floor[k]!) return [];
    this.#floor[k] = floor;
    const freed: number[] = [];
    let prev = -1;
    for (let e = this.#head[k]!; e >= 0;) {
      const next = this.#next[e]!;
      if (this.#ver[e]! < floor) {
        if (prev < 0) this.#head[k] = next;
        else this.#next[prev] = next;
        this.#bytes -= this.#len[e]!;
        this.#off[e] = -1;
        this.#free.push(e);
        this.#live--;
        freed.push(e);
      } else {
        prev = e;
      }
      e = next;
    }
    return freed;
  }

  /** Every live entry: its key, version and entry number. */
  *entries(): IterableIterator<[string, bigint, number]> {
    for (let k = 0; k < this.#names.length; k++) {
      for (let e = this.#head[k]!; e >= 0; e = this.#next[e]!) {
        yield [this.#names[k]!, this.#ver[e]!, e];
      }
    }
  }

  #keyNumber(key: string): number {
    let k = this.#ids.get(key);
    if (k !== undefined) return k;
    k = this.#names.length;
    this.#names.push(key);
    this.#ids.set(key, k);
    const n = k + 1;
    this.#head = grown(this.#head, n, (m) => new Int32Array(m), -1);
    this.#top = grown(this.#top, n, (m) => new BigInt64Array(m));
    this.#voted = grown(this.#voted, n, (m) => new BigInt64Array(m));
    this.#floor = grown(this.#floor, n, (m) => new BigInt64Array(m));
    this.#head[k] = -1;
    this.#top[k] = -(2n ** 63n);
    this.#voted[k] = -1n;
    this.#floor[k] = 0n;
    this.#bytes += keyBytes(key);
    return k;
  }

  #newEntry(): number {
    const reused = this.#free.pop();
    if (reused !== undefined) return reused;
    const e = this.#entries++;
    const n = e + 1;
    this.#ver = grown(this.#ver, n, (m) => new BigInt64Array(m));
    this.#off = grown(this.#off, n, (m) => new Float64Array(m));
    this.#len = grown(this.#len, n, (m) => new Uint32Array(m));
    this.#next = grown(this.#next, n, (m) => new Int32Array(m));
    this.#key = grown(this.#key, n, (m) => new Int32Array(m));
    return e;
  }
}
