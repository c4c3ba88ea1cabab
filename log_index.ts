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
import { SortedKeys } from "./sorted_keys.ts";

// The sections of a saved index, in order: by key, then by entry.
const HINT_MAGIC = 0x50584831; // "PXH1"

// The most entries a V8 Map holds (2^24); one more throws.
const MAP_MAX_SIZE = 2 ** 24;

const NO_VERSIONS: KeyVersions = { Ver: -1n, Floor: 0n };

function grown<T extends Float64Array | BigInt64Array | Int32Array | Uint32Array>(
  a: T,
  need: number,
  make: (n: number) => T,
  fill?: number,
): T {
  if (need <= a.length) return a;
  const b = make(Math.max(need, Math.ceil(a.length * 1.5), 1024));
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
  // The keys in order, made on the first listing (see keys()).
  #ordered: SortedKeys | null = null;
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
  // The part of #bytes that is keyBytes of the keys.
  #keyBytes = 0;

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

  /**
   * The bytes of the states held, in the log: what a compaction would keep
   * of it (besides the floors and the records' framing); the rest of the
   * log is states overwritten or compacted since.
   */
  get stateBytes(): number {
    return this.#bytes - this.#keyBytes;
  }

  /** Entry numbers run from 0 to this (free ones among them). */
  get entryLimit(): number {
    return this.#entries;
  }

  /** How many keys it holds. */
  get keyCount(): number {
    return this.#names.length;
  }

  /** Whether it holds `key` (any state or floor of it). */
  has(key: string): boolean {
    return this.#ids.has(key);
  }

  /** A page of the keys held, in order (see `Store.keys`). */
  keys(from: string, limit: number, end?: string): string[] {
    if (this.#ordered === null) {
      this.#ordered = new SortedKeys();
      for (const key of this.#names) this.#ordered.add(key);
    }
    return this.#ordered.page(from, limit, end);
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

  /**
   * The index as bytes, to be loaded back by {@link LogIndex.load}: a header,
   * the keys, and the typed arrays as they are in memory (this machine's
   * byte order, which the header records). Null when a key cannot be saved
   * (a string that is not well-formed UTF-16).
   */
  saveParts(): Uint8Array[] | null {
    const names = this.#names;
    const lengths = new Uint32Array(names.length);
    for (let k = 0; k < names.length; k++) {
      const name = names[k]!;
      if (!name.isWellFormed()) return null;
      lengths[k] = name.length;
    }
    const text = new TextEncoder().encode(names.join(""));
    const nk = names.length;
    const ne = this.#entries;
    const free = Int32Array.from(this.#free);
    const head = new Float64Array([
      HINT_MAGIC,
      new Uint8Array(new Uint16Array([1]).buffer)[0]!, // 1 on a little-endian machine
      nk,
      ne,
      free.length,
      text.length,
      this.#live,
      this.#bytes,
    ]);
    const parts: ArrayBufferView[] = [
      head,
      lengths,
      text,
      this.#head.subarray(0, nk),
      this.#top.subarray(0, nk),
      this.#voted.subarray(0, nk),
      this.#floor.subarray(0, nk),
      this.#ver.subarray(0, ne),
      this.#off.subarray(0, ne),
      this.#len.subarray(0, ne),
      this.#next.subarray(0, ne),
      this.#key.subarray(0, ne),
      free,
    ];
    // Each section starts at a multiple of 8 bytes, so it can be read in place.
    const out: Uint8Array[] = [];
    for (const p of parts) {
      const bytes = new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
      out.push(bytes);
      const pad = (8 - (bytes.length % 8)) % 8;
      if (pad > 0) out.push(new Uint8Array(pad));
    }
    return out;
  }

  /**
   * Loads an index saved by {@link LogIndex.saveParts}; throws a `RangeError` when
   * the bytes are not one (their checksum is the caller's).
   */
  static load(bytes: Uint8Array): LogIndex {
    if (bytes.byteOffset % 8 !== 0) bytes = bytes.slice();
    let at = 0;
    const take = <T>(
      n: number,
      size: number,
      make: (b: ArrayBuffer, o: number, n: number) => T,
    ) => {
      const end = at + n * size;
      if (end > bytes.length) throw new RangeError("a saved index cut short");
      const v = make(bytes.buffer as ArrayBuffer, bytes.byteOffset + at, n);
      at = end + ((8 - ((n * size) % 8)) % 8);
      return v;
    };
    const head = take(8, 8, (b, o, n) => new Float64Array(b, o, n));
    const le = new Uint8Array(new Uint16Array([1]).buffer)[0]!;
    if (head[0] !== HINT_MAGIC || head[1] !== le) throw new RangeError("not a saved index");
    const [nk, ne, nf, nt] = [head[2]!, head[3]!, head[4]!, head[5]!];
    const index = new LogIndex();
    const lengths = take(nk, 4, (b, o, n) => new Uint32Array(b, o, n));
    const text = new TextDecoder().decode(take(nt, 1, (b, o, n) => new Uint8Array(b, o, n)));
    const names: string[] = new Array(nk);
    let p = 0;
    for (let k = 0; k < nk; k++) {
      const name = text.slice(p, p += lengths[k]!);
      names[k] = name;
      index.#ids.set(name, k);
      index.#keyBytes += keyBytes(name);
    }
    if (p !== text.length) throw new RangeError("the keys of a saved index do not add up");
    index.#names = names;
    index.#head = take(nk, 4, (b, o, n) => new Int32Array(b, o, n));
    index.#top = take(nk, 8, (b, o, n) => new BigInt64Array(b, o, n));
    index.#voted = take(nk, 8, (b, o, n) => new BigInt64Array(b, o, n));
    index.#floor = take(nk, 8, (b, o, n) => new BigInt64Array(b, o, n));
    index.#ver = take(ne, 8, (b, o, n) => new BigInt64Array(b, o, n));
    index.#off = take(ne, 8, (b, o, n) => new Float64Array(b, o, n));
    index.#len = take(ne, 4, (b, o, n) => new Uint32Array(b, o, n));
    index.#next = take(ne, 4, (b, o, n) => new Int32Array(b, o, n));
    index.#key = take(ne, 4, (b, o, n) => new Int32Array(b, o, n));
    index.#free = Array.from(take(nf, 4, (b, o, n) => new Int32Array(b, o, n)));
    if (at !== bytes.length) throw new RangeError("a saved index with bytes left over");
    index.#entries = ne;
    index.#live = head[6]!;
    index.#bytes = head[7]!;
    return index;
  }

  #keyNumber(key: string): number {
    let k = this.#ids.get(key);
    if (k !== undefined) return k;
    k = this.#names.length;
    // Only a log written before the store had its key limit can get here:
    // say so rather than let the Map throw.
    if (k >= MAP_MAX_SIZE) {
      throw new RangeError(
        `the log holds more than ${MAP_MAX_SIZE} keys, the most its index (a JavaScript Map) ` +
          `can hold; ${JSON.stringify(key)} would be one more`,
      );
    }
    this.#names.push(key);
    this.#ids.set(key, k);
    this.#ordered?.add(key);
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
    this.#keyBytes += keyBytes(key);
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
