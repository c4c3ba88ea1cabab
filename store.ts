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
import type { Acceptor, KeyVersions, PaxosInstanceId } from "./types.ts";

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
  /** Releases the store's resources. */
  close(): Promise<void>;
}

/**
 * The per-key bookkeeping both stores share: the states of each version, the
 * highest voted version and the floor below which versions are forgotten.
 */
export class Versions {
  /** Each key's versions and their states. */
  readonly states = new Map<string, Map<bigint, Acceptor>>();
  readonly #voted = new Map<string, bigint>();
  readonly #floors = new Map<string, bigint>();

  /** The state of an instance, or undefined. */
  get(id: PaxosInstanceId): Acceptor | undefined {
    return this.states.get(id.Key)?.get(id.Ver);
  }

  /** Records a state (one below the key's floor is ignored). */
  set(id: PaxosInstanceId, state: Acceptor): void {
    const floor = this.#floors.get(id.Key);
    if (floor !== undefined && id.Ver < floor) return;
    let versions = this.states.get(id.Key);
    if (versions === undefined) {
      versions = new Map();
      this.states.set(id.Key, versions);
    }
    versions.set(id.Ver, state);
    if (state.Val !== null && id.Ver > (this.#voted.get(id.Key) ?? -1n)) {
      this.#voted.set(id.Key, id.Ver);
    }
  }

  /** The highest voted version and the floor of a key. */
  latest(key: string): KeyVersions {
    return { Ver: this.#voted.get(key) ?? -1n, Floor: this.#floors.get(key) ?? 0n };
  }

  /** The keys whose floor is above 0, with their floors. */
  floors(): IterableIterator<[string, bigint]> {
    return this.#floors.entries();
  }

  /** A copy that shares nothing with this one (states are immutable). */
  clone(): Versions {
    const c = new Versions();
    for (const [key, versions] of this.states) c.states.set(key, new Map(versions));
    for (const [key, ver] of this.#voted) c.#voted.set(key, ver);
    for (const [key, floor] of this.#floors) c.#floors.set(key, floor);
    return c;
  }

  /** Raises a key's floor and forgets the versions below it. */
  compact(key: string, floor: bigint): void {
    if (floor <= (this.#floors.get(key) ?? 0n)) return;
    this.#floors.set(key, floor);
    const versions = this.states.get(key);
    if (versions === undefined) return;
    for (const ver of versions.keys()) if (ver < floor) versions.delete(ver);
  }
}

/**
 * A store in memory: fast, and forgets everything when the process ends. For
 * tests, demos and simulation; a real acceptor needs a durable store.
 */
export class MemoryStore implements Store {
  readonly #versions = new Versions();

  /** The state of an instance, or undefined when it was never written. */
  get(id: PaxosInstanceId): Acceptor | undefined {
    return this.#versions.get(id);
  }

  /** Records the new state of an instance (in memory only): done at once. */
  put(id: PaxosInstanceId, state: Acceptor): Written {
    this.#versions.set(id, state);
    return undefined;
  }

  /** The highest voted version and the floor of a key. */
  latest(key: string): KeyVersions {
    return this.#versions.latest(key);
  }

  /** Forgets the versions of `key` below `floor`. */
  compact(key: string, floor: bigint): Promise<void> {
    this.#versions.compact(key, floor);
    return Promise.resolve();
  }

  /** How many instances this store holds. */
  get size(): number {
    let n = 0;
    for (const versions of this.#versions.states.values()) n += versions.size;
    return n;
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
