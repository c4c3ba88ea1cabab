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
import type { Acceptor, PaxosInstanceId } from "./types.ts";

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
   * Records the new state of an instance. Resolves once the state is as
   * durable as this store makes it; rejects when it could not be stored, and
   * then the change must not be acknowledged.
   */
  put(id: PaxosInstanceId, state: Acceptor): Promise<void>;
  /** Releases the store's resources. */
  close(): Promise<void>;
}

/**
 * A store in memory: fast, and forgets everything when the process ends. For
 * tests, demos and simulation; a real acceptor needs a durable store.
 */
export class MemoryStore implements Store {
  readonly #records = new Map<string, Map<bigint, Acceptor>>();

  /** The state of an instance, or undefined when it was never written. */
  get(id: PaxosInstanceId): Acceptor | undefined {
    return this.#records.get(id.Key)?.get(id.Ver);
  }

  /** Records the new state of an instance (in memory only). */
  put(id: PaxosInstanceId, state: Acceptor): Promise<void> {
    let versions = this.#records.get(id.Key);
    if (versions === undefined) {
      versions = new Map();
      this.#records.set(id.Key, versions);
    }
    versions.set(id.Ver, state);
    return Promise.resolve();
  }

  /** How many instances this store holds. */
  get size(): number {
    let n = 0;
    for (const versions of this.#records.values()) n += versions.size;
    return n;
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
