/**
 * Storage for acceptor state: one {@link Acceptor} per Paxos instance
 * (Key, Ver), as the seed's `Storage map[string]Versions`.
 *
 * The acceptor reads through {@link Store.get} and writes through
 * {@link Store.put}, and sends its reply only after `put` has resolved: a
 * durable store resolves `put` once the state is on disk, so no reply ever
 * claims a change that a crash could lose.
 *
 * @module
 */
import { SortedKeys } from "./sorted_keys.ts";
import {
  type Acceptor,
  type KeyVersions,
  type PaxosInstanceId,
  type Value,
  ZERO_BALLOT,
} from "./types.ts";
import { valueBytes } from "./codec.ts";

/**
 * What {@link Store.put} returns: nothing when the write is already done,
 * or a promise of it.
 */
export type Written = Promise<void> | undefined;

/**
 * Where an acceptor keeps its state.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./store.ts";
 * const store = new MemoryStore();
 * const id = { Key: "foo", Ver: 0n };
 * await store.put(id, { LastBal: { N: 1n, ProposerId: 2n }, Val: null, VBal: { N: 0n, ProposerId: 0n } });
 * store.get(id)?.LastBal.N; // 1n
 * ```
 */
export interface Store {
  /** The state of an instance, or undefined when it was never written. */
  get(id: PaxosInstanceId): Acceptor | undefined;
  /**
   * Records the new state of an instance. Returns nothing when the state is
   * already as durable as this store makes it (a store in memory), or else a
   * promise that resolves once it is, and rejects when it could not be
   * stored: then the change must not be acknowledged.
   */
  put(id: PaxosInstanceId, state: Acceptor): Written;
  /**
   * What the store knows of a key's versions: the highest version with a
   * vote (-1n when none) and the lowest version still kept.
   */
  latest(key: string): KeyVersions;
  /**
   * Forgets every version of `key` below `floor`; from then on `latest`
   * reports the floor and the acceptor refuses those versions. Resolves once
   * that is as durable as the store makes it. A floor never goes down.
   */
  compact(key: string, floor: bigint): Promise<void>;
  /**
   * Up to `limit` of the keys the store holds any state for (a promise, a
   * vote or a floor), ascending in JavaScript's string order, from `from`
   * (included) to `end` (excluded; no bound when undefined). The page after
   * one that ended at `k` starts at `k + "\0"`.
   */
  keys(from: string, limit: number, end?: string): string[];
  /**
   * The bytes of data the store holds, as {@link dataBytes} counts them: what
   * a quota is measured against. It grows with every new instance, key and
   * larger value, and shrinks when versions are compacted away.
   */
  readonly usedBytes: number;
  /**
   * How many keys the store holds any state for, when it can tell at no cost
   * (for metrics, and for {@link Store.maxKeys}).
   */
  readonly keyCount?: number | undefined;
  /**
   * Most keys the store may hold, for a store that keeps every key in memory
   * (undefined: no limit of its own, its keys are on disk). A write that
   * would add a key past it is refused, and an acceptor answers it
   * `QuotaExceeded`; the keys already held (even more than this, when it was
   * lowered) keep working. At most {@link MAX_KEYS_IN_MEMORY}.
   */
  readonly maxKeys?: number | undefined;
  /** Releases the store's resources. */
  close(): Promise<void>;
}

// One key's versions. A KV writes a key's versions in order from 0, so their
// states sit in one array, FIELDS slots per version from `base` (see
// stateAt), which keeps no object per version or per ballot, nor any hash
// entry: a first write leaves a handful of objects on the heap instead of a
// dozen, and each costs the collector again and again. A version far
// outside the array (any int64 may come in a request) goes to `sparse`.
// Also the highest voted version (-1n when none) and the floor.
interface KeyRecord {
  base: number;
  dense: Slot[];
  sparse: Map<bigint, Acceptor> | null;
  voted: bigint;
  floor: bigint;
}

// A version's state in `dense`, from its first slot: LastBal.N,
// LastBal.ProposerId, VBal.N, VBal.ProposerId, Val. An unset version's first
// slot is undefined.
type Slot = bigint | Value | null | undefined;
const FIELDS = 5;

/** What {@link dataBytes} counts for one key, besides its characters. */
export const KEY_OVERHEAD = 64;
/** What {@link dataBytes} counts for one instance's state, besides its value. */
export const STATE_OVERHEAD = 48;

/**
 * The bytes a store is charged for one instance's state: its value's encoded
 * size ({@link valueBytes}) and a fixed {@link STATE_OVERHEAD} for its
 * version and ballots. (A key is charged once more, {@link KEY_OVERHEAD}
 * plus its length, by {@link keyBytes}.)
 *
 * @example
 * ```ts
 * import { dataBytes, STATE_OVERHEAD } from "./store.ts";
 * import { EMPTY_ACCEPTOR } from "./types.ts";
 * dataBytes(EMPTY_ACCEPTOR) === STATE_OVERHEAD; // true
 * ```
 */
export function dataBytes(state: Acceptor): number {
  return chargeFor(state.Val);
}

// What dataBytes charges for a state that holds `val`.
function chargeFor(val: Value | null): number {
  return STATE_OVERHEAD + (val === null ? 0 : valueBytes(val));
}

/**
 * The bytes a store is charged for holding a key at all.
 *
 * @example
 * ```ts
 * import { KEY_OVERHEAD, keyBytes } from "./store.ts";
 * keyBytes("foo") === KEY_OVERHEAD + 3; // true
 * ```
 */
export function keyBytes(key: string): number {
  return KEY_OVERHEAD + key.length;
}

/**
 * The most keys a store that keeps its keys in a JavaScript `Map` may be
 * given as {@link Store.maxKeys}: V8's `Map` holds at most 2^24 = 16,777,216
 * entries (one more throws `RangeError: Map maximum size exceeded`), and
 * this leaves a margin below that.
 */
export const MAX_KEYS_IN_MEMORY = 16_000_000;

/**
 * Checks a {@link Store.maxKeys} asked for: an integer from 1 to
 * {@link MAX_KEYS_IN_MEMORY}; throws a `RangeError` naming it otherwise.
 *
 * @example
 * ```ts
 * import { checkMaxKeys } from "./store.ts";
 * checkMaxKeys(1000); // 1000
 * ```
 */
export function checkMaxKeys(n: number): number {
  if (Number.isInteger(n) && n >= 1 && n <= MAX_KEYS_IN_MEMORY) return n;
  throw new RangeError(
    `maxKeys must be an integer from 1 to ${MAX_KEYS_IN_MEMORY} (a JavaScript Map holds at ` +
      `most 2^24 keys), got ${n}`,
  );
}

/**
 * The error of a store asked to add a key past its {@link Store.maxKeys}.
 *
 * @example
 * ```ts
 * import { keyLimitError } from "./store.ts";
 * keyLimitError("k", 5, 5).message.includes("5 keys"); // true
 * ```
 */
export function keyLimitError(key: string, count: number, max: number): RangeError {
  return new RangeError(
    `cannot add the key ${JSON.stringify(key)}: the store holds ${count} keys and may hold ` +
      `${max} (maxKeys)`,
  );
}

// How far past the end of `dense` a version's slots may start and still go
// into it, in slots: three versions. A KV writes a key's versions one after
// another (and promises the next one), so its versions always go in; one
// further ahead goes to `sparse`. The empty room a version inside the gap
// makes is heap the quota does not charge, which a peer may make key after
// key: with this gap the worst is about 4 bytes of heap per byte charged
// (the sparse Map's), so the memory store's default quota of 512 MiB stays
// well within V8's heap; a gap of 64 versions made it about 52, and 64
// slots about 12.
const DENSE_GAP = 15;
const NO_VERSIONS: KeyVersions = { Ver: -1n, Floor: 0n };

// `dense` copied into an array of room for `need` slots at least, and half
// again its length, in whole versions.
function grown(dense: Slot[], need: number): Slot[] {
  const slots = Math.max(need, dense.length + (dense.length >> 1));
  const to = new Array<Slot>(Math.ceil(slots / FIELDS) * FIELDS);
  for (let j = 0; j < dense.length; j++) to[j] = dense[j];
  return to;
}

// The state whose first slot in `dense` is `j`, or undefined when unset.
function stateAt(dense: readonly Slot[], j: number): Acceptor | undefined {
  const lastN = dense[j] as bigint | undefined;
  if (lastN === undefined) return undefined;
  const lastP = dense[j + 1] as bigint;
  const vN = dense[j + 2] as bigint;
  const vP = dense[j + 3] as bigint;
  const last = { N: lastN, ProposerId: lastP };
  // A vote is usually at the ballot promised, and a promise alone has none.
  const vBal = vN === lastN && vP === lastP
    ? last
    : vN === 0n && vP === 0n
    ? ZERO_BALLOT
    : { N: vN, ProposerId: vP };
  return { LastBal: last, Val: dense[j + 4] as Value | null, VBal: vBal };
}

// Writes `state` into `dense` from its first slot `j`.
function putAt(dense: Slot[], j: number, state: Acceptor): void {
  dense[j] = state.LastBal.N;
  dense[j + 1] = state.LastBal.ProposerId;
  dense[j + 2] = state.VBal.N;
  dense[j + 3] = state.VBal.ProposerId;
  dense[j + 4] = state.Val;
}

// What dataBytes charges for the state from slot `j` (0 when unset).
function bytesAt(dense: readonly Slot[], j: number): number {
  return dense[j] === undefined ? 0 : chargeFor(dense[j + 4] as Value | null);
}

// The version index of `ver` in `k.dense` (its first slot is FIELDS times
// that), or -1 when it is not there. `grow` also accepts a version a little
// past the end (the array grows to it). (A version outside the array is in
// `sparse`. One the array came to cover later stays there until it is set
// again, so `get` looks there too.)
function denseIndex(k: KeyRecord, ver: bigint, grow: boolean): number {
  const n = Number(ver);
  if (!Number.isSafeInteger(n)) return -1;
  const i = n - k.base;
  return i >= 0 && i * FIELDS < k.dense.length + (grow ? DENSE_GAP : 0) ? i : -1;
}

/**
 * The per-key bookkeeping both stores share: the states of each version, the
 * highest voted version and the floor below which versions are forgotten.
 */
export class Versions {
  readonly #keys = new Map<string, KeyRecord>();
  #ordered: SortedKeys | null = null;
  #bytes = 0;

  /** The bytes of data held, as {@link Store.usedBytes} counts them. */
  get usedBytes(): number {
    return this.#bytes;
  }

  /** The state of an instance, or undefined. */
  get(id: PaxosInstanceId): Acceptor | undefined {
    const k = this.#keys.get(id.Key);
    if (k === undefined) return undefined;
    const i = denseIndex(k, id.Ver, false);
    return (i >= 0 ? stateAt(k.dense, i * FIELDS) : undefined) ?? k.sparse?.get(id.Ver);
  }

  /** Records a state (one below the key's floor is ignored). */
  set(id: PaxosInstanceId, state: Acceptor): void {
    const k = this.#record(id.Key, id.Ver);
    if (id.Ver < k.floor) return;
    const i = denseIndex(k, id.Ver, true);
    const far = k.sparse?.get(id.Ver);
    let before = far === undefined ? 0 : dataBytes(far);
    if (i >= 0) {
      const j = i * FIELDS;
      if (j >= k.dense.length) k.dense = grown(k.dense, j + FIELDS);
      before += bytesAt(k.dense, j);
      putAt(k.dense, j, state);
      k.sparse?.delete(id.Ver); // a version is kept in one place only
    } else {
      (k.sparse ??= new Map()).set(id.Ver, state);
    }
    this.#bytes += dataBytes(state) - before;
    if (state.Val !== null && id.Ver > k.voted) k.voted = id.Ver;
  }

  // The record of `key`, made when missing with its array starting at `ver`.
  #record(key: string, ver: bigint): KeyRecord {
    let k = this.#keys.get(key);
    if (k === undefined) {
      const n = Number(ver);
      // Room for two versions: the usual key's first, and the promise of the next.
      const dense = new Array<Slot>(2 * FIELDS);
      k = { base: Number.isSafeInteger(n) ? n : 0, dense, sparse: null, voted: -1n, floor: 0n };
      this.#keys.set(key, k);
      this.#ordered?.add(key);
      this.#bytes += keyBytes(key);
    }
    return k;
  }

  /** The highest voted version and the floor of a key. */
  latest(key: string): KeyVersions {
    const k = this.#keys.get(key);
    return k === undefined ? NO_VERSIONS : { Ver: k.voted, Floor: k.floor };
  }

  /** Whether it holds any state for `key`. */
  has(key: string): boolean {
    return this.#keys.has(key);
  }

  /** A page of the keys held, in order (see {@link Store.keys}). */
  keys(from: string, limit: number, end?: string): string[] {
    // Ordered on first use: a store nobody lists pays nothing for it.
    if (this.#ordered === null) {
      this.#ordered = new SortedKeys();
      for (const key of this.#keys.keys()) this.#ordered.add(key);
    }
    return this.#ordered.page(from, limit, end);
  }

  /** Every instance and its state. */
  *entries(): IterableIterator<[PaxosInstanceId, Acceptor]> {
    for (const [Key, k] of this.#keys) {
      for (let j = 0; j < k.dense.length; j += FIELDS) {
        const state = stateAt(k.dense, j);
        if (state !== undefined) yield [{ Key, Ver: BigInt(k.base + j / FIELDS) }, state];
      }
      if (k.sparse !== null) { for (const [Ver, state] of k.sparse) yield [{ Key, Ver }, state]; }
    }
  }

  /** How many keys it holds any state for. */
  get keyCount(): number {
    return this.#keys.size;
  }

  /** How many instances have a state. */
  get size(): number {
    let n = 0;
    for (const k of this.#keys.values()) {
      for (let j = 0; j < k.dense.length; j += FIELDS) if (k.dense[j] !== undefined) n++;
      n += k.sparse?.size ?? 0;
    }
    return n;
  }

  /** The keys whose floor is above 0, with their floors. */
  *floors(): IterableIterator<[string, bigint]> {
    for (const [key, k] of this.#keys) if (k.floor > 0n) yield [key, k.floor];
  }

  /** A copy that shares nothing with this one (values are immutable). */
  clone(): Versions {
    const c = new Versions();
    c.#bytes = this.#bytes;
    for (const [key, k] of this.#keys) {
      c.#keys.set(key, {
        ...k,
        dense: [...k.dense],
        sparse: k.sparse === null ? null : new Map(k.sparse),
      });
    }
    return c;
  }

  /** Raises a key's floor and forgets the versions below it. */
  compact(key: string, floor: bigint): void {
    const k = this.#record(key, floor);
    if (floor <= k.floor) return;
    k.floor = floor;
    const n = Number(floor);
    const drop = Math.min(k.dense.length / FIELDS, n - k.base);
    if (drop > 0) {
      for (let j = 0; j < drop * FIELDS; j += FIELDS) this.#bytes -= bytesAt(k.dense, j);
      k.dense.splice(0, drop * FIELDS);
      k.base += drop;
    }
    if (k.dense.length === 0 && Number.isSafeInteger(n)) k.base = n;
    if (k.sparse !== null) {
      for (const [ver, state] of k.sparse) {
        if (ver < floor) {
          k.sparse.delete(ver);
          this.#bytes -= dataBytes(state);
        }
      }
    }
  }
}

/** Options of a {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Most keys it may hold ({@link Store.maxKeys}; default {@link MAX_KEYS_IN_MEMORY}). */
  readonly maxKeys?: number;
}

/**
 * A store in memory: fast, and forgets everything when the process ends. For
 * tests, demos and simulation; a real acceptor needs a durable store.
 *
 * Its keys are in a `Map`, so it holds at most {@link MAX_KEYS_IN_MEMORY} by
 * default. At an acceptor's default memory quota that is never reached:
 * each key is charged at least {@link KEY_OVERHEAD} + {@link STATE_OVERHEAD}
 * = 112 bytes, so 512 MiB hold at most 4,793,490 keys; only a raised quota
 * can meet the limit, and then the acceptor refuses new keys
 * (`QuotaExceeded`) instead of the `Map` throwing.
 */
export class MemoryStore implements Store {
  readonly #versions = new Versions();
  /** Most keys it may hold ({@link Store.maxKeys}). */
  readonly maxKeys: number;

  /** An empty store; throws a `RangeError` when `maxKeys` is not one {@link checkMaxKeys} allows. */
  constructor(opts: MemoryStoreOptions = {}) {
    this.maxKeys = checkMaxKeys(opts.maxKeys ?? MAX_KEYS_IN_MEMORY);
  }

  /** The state of an instance, or undefined when it was never written. */
  get(id: PaxosInstanceId): Acceptor | undefined {
    return this.#versions.get(id);
  }

  /**
   * Records the new state of an instance (in memory only): done at once; or
   * refuses a new key past {@link MemoryStore.maxKeys} (a rejected promise).
   */
  put(id: PaxosInstanceId, state: Acceptor): Written {
    const v = this.#versions;
    if (v.keyCount >= this.maxKeys && !v.has(id.Key)) {
      return Promise.reject(keyLimitError(id.Key, v.keyCount, this.maxKeys));
    }
    v.set(id, state);
    return undefined;
  }

  /** The highest voted version and the floor of a key. */
  latest(key: string): KeyVersions {
    return this.#versions.latest(key);
  }

  /** Forgets the versions of `key` below `floor` (a new key past {@link MemoryStore.maxKeys} is refused). */
  compact(key: string, floor: bigint): Promise<void> {
    const v = this.#versions;
    if (v.keyCount >= this.maxKeys && !v.has(key)) {
      return Promise.reject(keyLimitError(key, v.keyCount, this.maxKeys));
    }
    v.compact(key, floor);
    return Promise.resolve();
  }

  /** A page of the keys held, in order (see {@link Store.keys}). */
  keys(from: string, limit: number, end?: string): string[] {
    return this.#versions.keys(from, limit, end);
  }

  /** How many instances this store holds. */
  get size(): number {
    return this.#versions.size;
  }

  /** How many keys this store holds any state for. */
  get keyCount(): number {
    return this.#versions.keyCount;
  }

  /** The bytes of data held ({@link Store.usedBytes}). */
  get usedBytes(): number {
    return this.#versions.usedBytes;
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
