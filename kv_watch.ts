/**
 * Watching keys: the chosen versions of some keys (or of every key under a
 * prefix), each key's in version order, without gaps or duplicates, as an
 * async iterator. It needs no wire op of its own: the client polls.
 *
 * For each watched key the watch keeps the next version to deliver, `v`,
 * and asks a quorum of acceptors for the highest version each voted in (the
 * kv extension's `Latest`). Every chosen version was voted in by a quorum,
 * and two quorums share an acceptor: while the highest answer is below `v`,
 * `v` is not chosen. Otherwise it reads `v`: a quorum holding one vote at one
 * ballot (no write at all, a `Prepare` at the zero ballot, which changes
 * nothing); or, when a vote above `v` shows that `v` is chosen (the KV writes
 * `v + 1` only after `v` is chosen) or the same vote stays unsettled over a
 * few polls, a Paxos read, which finishes a half-written version. A version
 * is delivered only once chosen, so what is delivered stays chosen. A poll
 * that finds nothing new waits before the next, longer each time up to
 * `maxPollMs`; a quorum that does not answer is waited for the same way.
 *
 * @module
 */
import { backoff, type Clock, type Random } from "./clock.ts";
import { NotEnoughQuorumError } from "./errors.ts";
import type { DataValue, LatestReply, Value } from "./types.ts";
import { chosenAtTop } from "./types.ts";

/**
 * One chosen version of a watched key: its value, or that it is a deletion
 * (a tombstone). A `bigint` value was stored as an int64.
 */
export type KvWatchEvent =
  | {
    readonly key: string;
    readonly version: bigint;
    readonly deleted: false;
    readonly value: Exclude<DataValue, null>;
  }
  | { readonly key: string; readonly version: bigint; readonly deleted: true };

/** What {@link KvWatchIterator} watches: some keys, or every key under a prefix. */
export type KvWatchSelector = readonly string[] | { readonly prefix: string };

/** Options of a watch. */
export interface KvWatchOptions {
  /**
   * The first version of each key to deliver. Default: the versions chosen
   * after the watch starts (for a key a prefix watch finds later, from 0).
   */
  readonly fromVersion?: bigint;
  /** Ends the watch: the iterator finishes (it does not throw). */
  readonly signal?: AbortSignal;
  /** The longest wait between two polls of a quiet key, in ms (default 100). */
  readonly maxPollMs?: number;
  /** How often a prefix watch lists the keys again to find new ones, in ms (default 1000). */
  readonly relistMs?: number;
}

/** The reads a watch makes, given by the KV ({@link KvWatchIterator}'s constructor). */
export interface WatchSource {
  /** The clock for waits. */
  readonly clock: Clock;
  /** Randomness for the jitter of waits. */
  readonly random: Random;
  /** A quorum's `Latest` replies for a key; a {@link NotEnoughQuorumError} when none answers. */
  latest(key: string): Promise<readonly LatestReply[]>;
  /** How many acceptors there are (see `chosenAtTop`). */
  readonly acceptors: number;
  /** The value a quorum holds at one ballot at a version (chosen), or null: no write. */
  peek(key: string, version: bigint): Promise<Value | null>;
  /** A Paxos read of a version: the chosen value (finished first), or null when none was voted. */
  read(key: string, version: bigint): Promise<Value | null>;
  /** The latest chosen version of a key (-1n: none), linearizable. */
  latestVersion(key: string): Promise<bigint>;
  /** For a prefix watch: the keys under it now; null for a watch of given keys. */
  keys: (() => AsyncGenerator<string>) | null;
  /** The error for a version the acceptors no longer keep. */
  compacted(key: string, version: bigint): Error;
}

// Polls of one key at an unsettled top vote before a Paxos read settles it.
const STUCK_POLLS = 2;
// Keys polled at once.
const BATCH_KEYS = 64;
// Versions of one key peeked at once.
const PEEKS_AT_ONCE = 32;

// Waits for every one of `work`; then throws the first failure, if any.
async function settled<T>(work: readonly Promise<T>[]): Promise<T[]> {
  const out = await Promise.allSettled(work);
  const failed = out.find((r) => r.status === "rejected");
  if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  return out.map((r) => (r as PromiseFulfilledResult<T>).value);
}

function eventOf(key: string, version: bigint, v: Value): KvWatchEvent {
  if ("Del" in v) return { key, version, deleted: true };
  // (A write id, `Wid`, is the KV's own bookkeeping: never shown.)
  const value = ("Vi64" in v ? v.Vi64 : v.Data) as Exclude<DataValue, null>;
  return { key, version, deleted: false, value };
}

/**
 * The chosen versions of watched keys as they are chosen: each key's in
 * version order, without gaps or duplicates (across keys, in no promised
 * order). It ends when the signal aborts or `return()` is called; it throws
 * the KV's `CompactedError` when a version to deliver is one the acceptors no
 * longer keep (`--keep-versions`), rather than skip it, and the error of
 * anything else that asking again cannot help.
 */
export class KvWatchIterator implements AsyncIterableIterator<KvWatchEvent> {
  readonly #src: WatchSource;
  readonly #from: bigint | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #maxPollMs: number;
  readonly #relistMs: number;
  readonly #given: readonly string[];
  // Per key: the next version to deliver, and polls stuck at an unsettled vote.
  readonly #next = new Map<string, bigint>();
  readonly #stuck = new Map<string, number>();
  #ready: KvWatchEvent[] = [];
  #started = false;
  #done = false;
  #idle = 0;
  #listedAt = -Infinity;
  #wake: (() => void) | null = null;
  // The call of next() under way: calls wait for the one before them.
  #turn: Promise<unknown> = Promise.resolve();

  /** Builds the watch of `keys` (or of the source's prefix, with `keys` empty). */
  constructor(src: WatchSource, keys: readonly string[], opts: KvWatchOptions = {}) {
    this.#src = src;
    this.#given = keys;
    this.#from = opts.fromVersion;
    this.#signal = opts.signal;
    this.#maxPollMs = opts.maxPollMs ?? 100;
    this.#relistMs = opts.relistMs ?? 1000;
  }

  /**
   * The next chosen version of a watched key, waiting for one. Calls made
   * before the last one resolved are answered in turn.
   */
  next(): Promise<IteratorResult<KvWatchEvent>> {
    const mine = this.#turn.then(() => this.#nextInTurn());
    this.#turn = mine.catch(() => {});
    return mine;
  }

  async #nextInTurn(): Promise<IteratorResult<KvWatchEvent>> {
    try {
      while (!this.#done && this.#signal?.aborted !== true) {
        const e = this.#ready.shift();
        if (e !== undefined) return { done: false, value: e };
        let news = false;
        try {
          news = await this.#poll();
        } catch (err) {
          // A quorum did not answer: a minority of acceptors may be down,
          // or all of them for a while. Wait and ask again.
          if (!(err instanceof NotEnoughQuorumError)) throw err;
        }
        if (news) this.#idle = 0;
        else {await this.#sleep(
            backoff(this.#idle++, { baseMs: 2, maxMs: this.#maxPollMs }, this.#src.random),
          );}
      }
    } catch (err) {
      await this.return();
      throw err;
    }
    await this.return();
    return { done: true, value: undefined };
  }

  /** Ends the watch. */
  return(): Promise<IteratorResult<KvWatchEvent>> {
    this.#done = true;
    this.#ready = [];
    this.#wake?.();
    return Promise.resolve({ done: true, value: undefined });
  }

  /** This iterator. */
  [Symbol.asyncIterator](): KvWatchIterator {
    return this;
  }

  // One poll of every key; whether it found a version to deliver.
  async #poll(): Promise<boolean> {
    if (!this.#started) {
      await this.#addAll(this.#given, true);
      this.#started = true;
    }
    const list = this.#src.keys;
    if (list !== null && this.#src.clock.now() - this.#listedAt >= this.#relistMs) {
      const found: string[] = [];
      for await (const k of list()) {
        if (this.#done) return false;
        if (!this.#next.has(k)) found.push(k);
      }
      await this.#addAll(found, this.#listedAt === -Infinity);
      this.#listedAt = this.#src.clock.now();
    }
    const keys = [...this.#next.keys()];
    let news = false;
    for (let i = 0; i < keys.length && !this.#done; i += BATCH_KEYS) {
      const got = await settled(keys.slice(i, i + BATCH_KEYS).map((k) => this.#advance(k)));
      if (got.some((n) => n > 0)) news = true;
    }
    return news;
  }

  // Starts watching keys: from the given version; else, for a key there at
  // the start, after its latest version; for one found later, from 0.
  async #addAll(keys: readonly string[], atStart: boolean): Promise<void> {
    for (let i = 0; i < keys.length; i += BATCH_KEYS) {
      await settled(
        keys.slice(i, i + BATCH_KEYS).map(async (key) => {
          if (this.#next.has(key)) return;
          const from = this.#from ?? (atStart ? (await this.#src.latestVersion(key)) + 1n : 0n);
          this.#next.set(key, from);
        }),
      );
    }
  }

  // Makes ready the versions of `key` from the next one to deliver that are
  // chosen now, each as soon as it is read (so that a failure after some
  // leaves no gap); returns how many.
  async #advance(key: string): Promise<number> {
    let v = this.#next.get(key)!;
    const replies = await this.#src.latest(key);
    let top = -1n;
    let floor = 0n;
    for (const r of replies) {
      if (r.Ver > top) top = r.Ver;
      if (r.Floor > floor) floor = r.Floor;
    }
    let n = 0;
    const atTop = chosenAtTop(replies, this.#src.acceptors);
    while (v <= top && !this.#done) {
      // Versions at or above the floor, up to PEEKS_AT_ONCE, peeked at once.
      const end = v + BigInt(PEEKS_AT_ONCE) - 1n < top ? v + BigInt(PEEKS_AT_ONCE) - 1n : top;
      const peeked = v < floor ? [] : await Promise.all(
        Array.from({ length: Number(end - v) + 1 }, (_, i) => {
          const ver = v + BigInt(i);
          // The whole quorum voted it at one ballot: chosen.
          if (ver === top && atTop !== null) return Promise.resolve(atTop);
          return this.#src.peek(key, ver);
        }),
      );
      for (let i = 0; v <= end && !this.#done; v++, i++) {
        let val: Value | null;
        if (v < floor) {
          // Some acceptor dropped it: the others may still hold it.
          val = await this.#src.read(key, v);
          if (val === null) throw this.#src.compacted(key, v);
        } else {
          val = peeked[i] ?? null;
          if (val === null) {
            const stuck = (this.#stuck.get(key) ?? 0) + 1;
            if (v < top || stuck > STUCK_POLLS) val = await this.#src.read(key, v);
            if (val === null) {
              this.#stuck.set(key, stuck);
              return n; // Not chosen yet.
            }
          }
        }
        this.#stuck.delete(key);
        if (this.#done) return n;
        this.#ready.push(eventOf(key, v, val));
        this.#next.set(key, v + 1n);
        n++;
        if (v < floor) {
          v++;
          break; // (Peek again from here.)
        }
      }
    }
    return n;
  }

  // Waits `ms`, or less when the watch ends.
  #sleep(ms: number): Promise<void> {
    const clock = this.#src.clock;
    const signal = this.#signal;
    return new Promise((resolve) => {
      if (signal?.aborted || this.#done) return resolve();
      const done = () => {
        clock.clearTimer(timer);
        signal?.removeEventListener("abort", done);
        this.#wake = null;
        resolve();
      };
      const timer = clock.setTimer(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      this.#wake = done;
    });
  }
}
