/**
 * The key-value store on top of Paxos: automatic versions, linearizable
 * reads of the latest version, compare-and-set, delete and history.
 *
 * Every version of a key is one Paxos instance, (Key, 0), (Key, 1), ... A
 * write proposes its value for the version after the latest chosen one; when
 * another writer got that version first, an unconditional write moves on to
 * the next. A delete writes a tombstone version (`{Del: true}`). To find the
 * latest version, the client asks a majority of acceptors for the highest
 * version each voted in (the kv extension's `Latest` request): every chosen
 * version was voted in by a majority, and two majorities share an acceptor,
 * so the highest answer is at least the latest chosen version. It then reads
 * downward from there with Paxos reads, which finish a half-written version
 * before returning it, so a value once returned stays chosen. A write's
 * `Latest` also carries a ballot, which each acceptor promises at the
 * version after its highest vote: when a majority agree on that version, the
 * write goes straight to Accept there (two round trips for a key this client
 * did not write last, one for a key it did).
 *
 * Versions are dense: the KV layer writes version n+1 only after version n is
 * chosen. The explicit-version calls ({@link Kv.setVersion},
 * {@link Kv.getVersion}) can leave gaps; keys written that way are not for
 * the automatic calls.
 *
 * @example
 * ```ts ignore
 * import { connect } from "./kv.ts";
 * const kv = await connect(["ws://127.0.0.1:3333/paxos", "ws://127.0.0.1:3334/paxos", "ws://127.0.0.1:3335/paxos"]);
 * const v0 = await kv.set("greeting", "hello"); // 0n
 * await kv.get("greeting"); // { found: true, version: 0n, value: "hello" }
 * await kv.cas("greeting", v0, "hi"); // 1n
 * await kv.delete("greeting"); // 2n
 * await kv.get("greeting"); // { found: false, version: 2n }
 * await kv.close();
 * ```
 *
 * @module
 */
import type { Clock, Random } from "./clock.ts";
import { mathRandom, systemClock } from "./clock.ts";
import {
  encodeFrame,
  keyBytesOverLimit,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  parseValue,
  WireError,
} from "./codec.ts";
import { AcceptorError, isStaleMembership, NotEnoughQuorumError } from "./errors.ts";
import { connectCluster, type ConnectOptions } from "./connect.ts";
import { PaxosProposer, type ProposerOptions } from "./proposer.ts";
import { askQuorum, majority, quorumNeed, type QuorumSystem } from "./quorum.ts";
import { type KeyRange, majorityKeys, prefixRange } from "./kv_list.ts";
import {
  type KvWatchEvent,
  KvWatchIterator,
  type KvWatchOptions,
  type KvWatchSelector,
} from "./kv_watch.ts";
import type { KvAcceptorClient } from "./transport.ts";
import { traceAcceptors, type Tracer } from "./trace.ts";
import type { BallotNum, DataValue, LatestReply, Value } from "./types.ts";
import {
  ballotEquals,
  chosenAtTop,
  firstWriteBallot,
  GE,
  INT64_MAX,
  isFirstWriteBallot,
  isInt64,
  MAX_BALLOT_STEP,
  ZERO_BALLOT,
} from "./types.ts";

export { type KvWatchEvent, KvWatchIterator, type KvWatchOptions, type KvWatchSelector };

/**
 * A value the KV stores: any MessagePack value but nil. A `bigint` is stored
 * as an int64 (`Vi64`) and read back as a `bigint`; anything else as `Data`
 * (numbers inside it read back as `number` up to 32 bits and `bigint`
 * beyond; binary as `Uint8Array`).
 */
export type KvValue = Exclude<DataValue, null>;

/** What {@link Kv.get} finds: the latest version and its value, or that there is none. */
export type KvEntry =
  | { readonly found: true; readonly version: bigint; readonly value: KvValue }
  | {
    readonly found: false;
    /** The version of the tombstone that deleted the key, or -1n when it was never written. */
    readonly version: bigint;
  };

/** One version in {@link Kv.history}. */
export type KvHistoryEntry =
  | { readonly version: bigint; readonly deleted: false; readonly value: KvValue }
  | { readonly version: bigint; readonly deleted: true };

/**
 * A conditional write found another latest version than it was given.
 *
 * @example
 * ```ts
 * import { VersionConflictError } from "./kv.ts";
 * const e = new VersionConflictError("k", 3n, 5n);
 * e.actual; // 5n
 * ```
 */
export class VersionConflictError extends Error {
  /** The key written. */
  readonly key: string;
  /** The latest version the write required (-1n: absent). */
  readonly expected: bigint;
  /** The latest version it found (-1n: the key has no version). */
  readonly actual: bigint;
  /** Builds the error; `expected` is null for a create-only write. */
  constructor(key: string, expected: bigint | null, actual: bigint) {
    super(
      expected === null
        ? `version conflict on ${JSON.stringify(key)}: it exists, at version ${actual}`
        : `version conflict on ${
          JSON.stringify(key)
        }: expected latest version ${expected}, found ${actual}`,
    );
    this.name = "VersionConflictError";
    this.key = key;
    this.expected = expected ?? -1n;
    this.actual = actual;
  }
}

/**
 * A version older than the acceptors keep (`--keep-versions`) was asked for.
 *
 * @example
 * ```ts
 * import { CompactedError } from "./kv.ts";
 * new CompactedError("k", 2n).message; // '"k"@2 is compacted: ...'
 * ```
 */
export class CompactedError extends Error {
  /** The key. */
  readonly key: string;
  /** The version asked for. */
  readonly version: bigint;
  /** Builds the error for a key and version. */
  constructor(key: string, version: bigint) {
    super(
      `${JSON.stringify(key)}@${version} is compacted: the acceptors no longer keep this version`,
    );
    this.name = "CompactedError";
    this.key = key;
    this.version = version;
  }
}

/**
 * A conditional delete (`ifPresent`) found no value to delete: the key was
 * never written, or is deleted already. Nothing was written.
 *
 * @example
 * ```ts
 * import { NotFoundError } from "./kv.ts";
 * const e = new NotFoundError("k", 4n);
 * e.message; // '"k": not found (deleted at version 4)'
 * ```
 */
export class NotFoundError extends Error {
  /** The key. */
  readonly key: string;
  /** The version of the tombstone that deleted it, or -1n when it was never written. */
  readonly version: bigint;
  /** Builds the error for a key and its latest version (-1n: none). */
  constructor(key: string, version: bigint) {
    super(
      `${JSON.stringify(key)}: not found` +
        (version >= 0n ? ` (deleted at version ${version})` : ""),
    );
    this.name = "NotFoundError";
    this.key = key;
    this.version = version;
  }
}

/**
 * A write may or may not have taken effect, and nobody can tell any more:
 * its value may have been chosen at a version the acceptors have since
 * forgotten. Read the key to see where it stands.
 *
 * @example
 * ```ts
 * import { UnknownOutcomeError } from "./kv.ts";
 * const e = new UnknownOutcomeError("k", 3n, "version 3 is compacted");
 * e.version; // 3n
 * ```
 */
export class UnknownOutcomeError extends Error {
  /** The key written. */
  readonly key: string;
  /** The version at which the write may have been chosen. */
  readonly version: bigint;
  /** Builds the error for a key, the version in doubt, and why it cannot be known. */
  constructor(key: string, version: bigint, why: string, options?: ErrorOptions) {
    super(
      `write of ${
        JSON.stringify(key)
      } has an unknown outcome: it may have been chosen at version ${version}; ${why}`,
      options,
    );
    this.name = "UnknownOutcomeError";
    this.key = key;
    this.version = version;
  }
}

/** Options of {@link connect} and {@link Kv}. */
export interface KvOptions extends ConnectOptions {
  /** How long one operation may take before it fails, in ms (default 10000). */
  readonly deadlineMs?: number;
  /**
   * Told of every request, reply, quorum, raised ballot and backoff of
   * every operation (see trace.ts). Default: none, at no cost.
   */
  readonly tracer?: Tracer | undefined;
  /**
   * Which of the acceptors make a quorum (default: a majority of them).
   * While the membership changes: a majority of the old members and of the
   * new ones (`jointMajority` of quorum.ts; docs/membership.md).
   */
  readonly quorum?: QuorumSystem;
  /**
   * How many keys' promises for their next version the client remembers,
   * so that its next write of each is one round trip (default 50,000, in
   * each of two generations: the client remembers the last 50,000 to
   * 100,000 keys it wrote, a few hundred bytes each). A key forgotten
   * costs its next write a second round trip, nothing else.
   */
  readonly promisedKeys?: number;
}

/** Options of {@link Kv.getVersion} and {@link Kv.setVersion}. */
export interface VersionOptions {
  /**
   * The proposer id of the run's ballot, a positive int64; concurrent
   * proposers need different ids (default: a random 62-bit id).
   */
  readonly proposerId?: bigint;
}

/** Options of a single write. */
export interface SetOptions {
  /** Write only if the latest version is this one (-1n: the key has none). */
  readonly ifVersion?: bigint;
  /** Write only if the key is absent (never written, or deleted). */
  readonly ifAbsent?: boolean;
  /**
   * Write only if the key has a value (it was written, and not deleted);
   * otherwise throw a {@link NotFoundError}. Meant for `delete`.
   */
  readonly ifPresent?: boolean;
}

/** Options of {@link Kv.history}. */
export interface HistoryOptions {
  /** At most this many versions, the latest ones (default 100). */
  readonly limit?: number;
  /** Only versions below this one (to page back from the oldest version a call returned). */
  readonly before?: bigint;
}

interface Latest {
  readonly version: bigint;
  readonly value: Value | null;
}

const ID_VIEW = new DataView(new ArrayBuffer(8));

function toWire(key: string, value: KvValue): Value {
  if (typeof value === "bigint") {
    if (!isInt64(value)) {
      throw new RangeError(`value of ${JSON.stringify(key)} is outside int64: ${value}`);
    }
    return { Vi64: value };
  }
  if (value === null || value === undefined) {
    throw new TypeError(
      `value of ${JSON.stringify(key)} is ${value}: the KV stores no nil, use delete`,
    );
  }
  try {
    // The same checks an acceptor makes: plain MessagePack types, size limit.
    return parseValue({ Data: value }, `value of ${JSON.stringify(key)}`);
  } catch (e) {
    if (e instanceof WireError && e.code === "TooLarge") {
      throw new RangeError(
        `value of ${JSON.stringify(key)} is ${
          encodeFrame(value).length
        } bytes, over the ${MAX_VALUE_BYTES}-byte limit`,
      );
    }
    throw new TypeError((e as Error).message);
  }
}

function fromWire(v: Value): KvValue | undefined {
  // (A write id, `Wid`, is the KV's own bookkeeping: never shown.)
  if ("Vi64" in v) return v.Vi64;
  if ("Del" in v) return undefined;
  return v.Data as KvValue;
}

function checkKey(key: string): void {
  if (typeof key !== "string") throw new TypeError(`a key is a string, got ${typeof key}`);
  if (keyBytesOverLimit(key) !== undefined) {
    throw new RangeError(
      `key is longer than ${MAX_KEY_BYTES} bytes: ${JSON.stringify(key.slice(0, 40))}...`,
    );
  }
  // A lone surrogate has no UTF-8 form: it would go out as U+FFFD, and two
  // different keys would name one.
  if (!key.isWellFormed()) {
    throw new TypeError(
      `key ${JSON.stringify(key)} is not well-formed Unicode (a lone surrogate): keys are ` +
        `UTF-8 on the wire`,
    );
  }
}

/**
 * A KV client over a set of acceptors. Build it with {@link connect}, or
 * directly over any {@link KvAcceptorClient}s (in-process acceptors work).
 */
export class Kv {
  readonly #acceptors: readonly KvAcceptorClient[];
  readonly #deadlineMs: number;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #tracer: Tracer | undefined;
  readonly #proposerOpts: ProposerOptions;
  readonly #close: () => Promise<void>;
  readonly #quorum: QuorumSystem;
  // Per key: a ballot a majority promised for one version (see #fastWrite).
  // Bounded: at most #promisedKeys keys in each of two generations; when
  // the newer is full it becomes the older, and the older is forgotten (a
  // key not written for that long takes the longer path on its next write).
  #promised = new Map<string, HeldPromise>();
  #promisedOlder = new Map<string, HeldPromise>();
  readonly #promisedKeys: number;
  // The refusal of an acceptor that serves v1 only (see #askLatest).
  #v1Only: AcceptorError | null = null;

  /** Builds a client; `close` releases what it holds (the connections). */
  constructor(
    acceptors: readonly KvAcceptorClient[],
    opts: KvOptions = {},
    close: () => Promise<void> = () => Promise.resolve(),
  ) {
    if (acceptors.length === 0) throw new RangeError("a KV needs at least one acceptor");
    this.#tracer = opts.tracer;
    this.#acceptors = opts.tracer === undefined
      ? acceptors
      : traceAcceptors(acceptors, opts.tracer);
    this.#deadlineMs = opts.deadlineMs ?? 10_000;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? mathRandom;
    this.#proposerOpts = { clock: this.#clock, random: this.#random, tracer: opts.tracer };
    this.#close = close;
    this.#quorum = opts.quorum ?? majority(acceptors.length);
    this.#promisedKeys = opts.promisedKeys ?? 50_000;
    if (!Number.isSafeInteger(this.#promisedKeys) || this.#promisedKeys < 1) {
      throw new RangeError(`promisedKeys must be a positive integer, not ${opts.promisedKeys}`);
    }
    if (this.#quorum.size !== acceptors.length) {
      throw new RangeError(
        `the quorum system spans ${this.#quorum.size} acceptors, but ${acceptors.length} are given`,
      );
    }
  }

  /**
   * The latest version of a key and its value: linearizable. It never
   * returns an older value than a write that completed before it started,
   * and a value it returns stays chosen.
   */
  async get(key: string): Promise<KvEntry> {
    checkKey(key);
    const l = await this.#latest(key, this.#clock.now() + this.#deadlineMs);
    if (l.value === null || "Del" in l.value) return { found: false, version: l.version };
    return { found: true, version: l.version, value: fromWire(l.value)! };
  }

  /**
   * Writes `value` as the next version of `key` and returns that version.
   * With `ifVersion` or `ifAbsent` it writes only if the key is in that
   * state, and throws a {@link VersionConflictError} otherwise.
   */
  async set(key: string, value: KvValue, opts: SetOptions = {}): Promise<bigint> {
    checkKey(key);
    return await this.#write(key, toWire(key, value), opts);
  }

  /** Compare-and-set: writes only if the latest version is `ifVersion` (-1n: none). */
  cas(key: string, ifVersion: bigint, value: KvValue): Promise<bigint> {
    return this.set(key, value, { ifVersion });
  }

  /**
   * Deletes a key: writes a tombstone version and returns it. With
   * `ifPresent`, a key that has no value is left as it is, and a
   * {@link NotFoundError} thrown.
   */
  async delete(key: string, opts: SetOptions = {}): Promise<bigint> {
    checkKey(key);
    return await this.#write(key, { Del: true }, opts);
  }

  /**
   * The versions of a key, oldest first: at most `limit` (default 100) of
   * the latest ones (below `before`, when given), without those the
   * acceptors no longer keep. Older versions may exist when the first one
   * returned is above 0: page back with `before` set to it.
   */
  async history(key: string, opts: HistoryOptions = {}): Promise<KvHistoryEntry[]> {
    checkKey(key);
    const limit = opts.limit ?? 100;
    if (!(Number.isSafeInteger(limit) && limit > 0)) {
      throw new RangeError(`limit must be a positive integer, got ${limit}`);
    }
    const deadline = this.#clock.now() + this.#deadlineMs;
    const latest = await this.#latest(key, deadline);
    const out: KvHistoryEntry[] = [];
    const top = opts.before !== undefined && opts.before <= latest.version
      ? opts.before - 1n
      : latest.version;
    const first = top - BigInt(limit) + 1n;
    for (let v = first < 0n ? 0n : first; v <= top; v++) {
      let val: Value | null;
      try {
        val = v === latest.version ? latest.value : await this.#run(key, v, null, deadline);
      } catch (e) {
        if (e instanceof CompactedError) continue;
        throw e;
      }
      if (val === null) continue;
      out.push(
        "Del" in val ? { version: v, deleted: true } : {
          version: v,
          deleted: false,
          value: fromWire(val)!,
        },
      );
    }
    return out;
  }

  /**
   * Reads one version by number: the seed's read. Returns the value chosen
   * there (a half-written one is finished first), or null when nothing was
   * voted.
   */
  async getVersion(key: string, version: bigint, opts: VersionOptions = {}): Promise<Value | null> {
    checkKey(key);
    const deadline = this.#clock.now() + this.#deadlineMs;
    return await this.#run(key, version, null, deadline, false, opts.proposerId);
  }

  /**
   * Writes one version by number: the seed's write. Returns the value chosen
   * there: `value`, or one chosen before. Versions written this way may
   * leave gaps, which the automatic calls do not expect: write a key either
   * way, not both.
   */
  async setVersion(
    key: string,
    version: bigint,
    value: Value,
    opts: VersionOptions = {},
  ): Promise<Value> {
    checkKey(key);
    const deadline = this.#clock.now() + this.#deadlineMs;
    return (await this.#run(key, version, value, deadline, false, opts.proposerId))!;
  }

  /**
   * The keys of a range and their latest values, in key order (JavaScript's
   * string order), as an async iterator: the keys that begin with `prefix`,
   * or those from `start` (included) to `end` (excluded). Deleted keys are
   * left out. `limit` stops after that many entries; `cursor` (the
   * iterator's {@link KvListIterator.cursor} after an entry) resumes after
   * that entry; `reverse` goes from the last key down.
   *
   * What it promises: every key that has a value for the whole listing is
   * listed (the keys come from a majority of the acceptors, which hold every
   * chosen key), and each entry's value is linearizable, as a {@link Kv.get}
   * during the listing. It is not a snapshot: keys are read one after
   * another, so a write during the listing may show for one key and not for
   * another, and a key written or deleted meanwhile may or may not be
   * listed. (`reverse` first gathers the range's keys, then reads them.)
   *
   * @example
   * ```ts ignore
   * for await (const e of kv.list({ prefix: "user/" }, { limit: 10 })) {
   *   console.log(e.key, e.version, e.value);
   * }
   * ```
   */
  list(selector: KvListSelector, opts: KvListOptions = {}): KvListIterator {
    const limit = opts.limit ?? Infinity;
    if (!(limit === Infinity || (Number.isSafeInteger(limit) && limit > 0))) {
      throw new RangeError(`limit must be a positive integer, got ${limit}`);
    }
    let range: KeyRange;
    if ("prefix" in selector) {
      checkKey(selector.prefix);
      range = prefixRange(selector.prefix);
    } else {
      const start = selector.start ?? "";
      if (start !== "") checkKey(start);
      if (selector.end !== undefined) checkKey(selector.end);
      range = { start, end: selector.end };
    }
    const reverse = opts.reverse === true;
    if (opts.cursor !== undefined) {
      const after = cursorKey(opts.cursor);
      if (after < range.start || (range.end !== undefined && after >= range.end)) {
        throw new RangeError(`cursor ${JSON.stringify(opts.cursor)} is not of this range`);
      }
      range = reverse
        ? { start: range.start, end: after }
        : { start: after + "\0", end: range.end };
    }
    const keys = majorityKeys(this.#acceptors, range, this.#clock, this.#deadlineMs);
    return new KvListIterator(keys, (k) => this.get(k), limit, reverse);
  }

  /**
   * The chosen versions of some keys, or of every key under a prefix, as
   * they are chosen: an async iterator of {@link KvWatchEvent}s, each key's
   * versions in version order, without gaps or duplicates (across keys, in
   * no promised order). A deletion comes as an event with `deleted: true`.
   * `fromVersion` starts each key there (default: after its latest version
   * when the watch starts; a key a prefix watch finds later, from 0). A
   * prefix watch lists the keys again every `relistMs` (default 1000 ms) to
   * find new ones.
   *
   * What it promises: a version is delivered only once it is chosen, so it
   * stays chosen, and it is what every {@link Kv.get} of that version reads.
   * It goes on through the loss and return of any minority of the acceptors
   * (and waits, polling, while no majority answers). A version the acceptors
   * no longer keep (`--keep-versions`) ends it with a {@link CompactedError}
   * rather than a silent gap. It polls: while a watched key is quiet, it is
   * asked of the acceptors (`Latest`) at random intervals of up to
   * `maxPollMs` (default 100 ms; half that on average), and a version is
   * delivered about that long after it is chosen, at worst. It
   * ends when `signal` aborts, or at `return()` (a `break` out of the loop).
   * Keys written with {@link Kv.setVersion} (which may leave gaps) are not
   * for it: it waits at a gap.
   *
   * @example
   * ```ts ignore
   * const stop = new AbortController();
   * for await (const e of kv.watch(["config"], { fromVersion: 0n, signal: stop.signal })) {
   *   console.log(e.key, e.version, e.deleted ? "(deleted)" : e.value);
   * }
   * ```
   */
  watch(selector: KvWatchSelector, opts: KvWatchOptions = {}): KvWatchIterator {
    let keys: string[] = [];
    let prefix: string | null = null;
    if (Array.isArray(selector)) {
      if (selector.length === 0) throw new RangeError("watch needs at least one key");
      for (const k of selector) checkKey(k);
      keys = [...new Set(selector as readonly string[])];
    } else {
      prefix = (selector as { readonly prefix: string }).prefix;
      checkKey(prefix);
    }
    const from = opts.fromVersion;
    if (from !== undefined && !(typeof from === "bigint" && from >= 0n && isInt64(from))) {
      throw new RangeError(`fromVersion must be a version (an int64 from 0), got ${from}`);
    }
    for (const name of ["maxPollMs", "relistMs"] as const) {
      const ms = opts[name];
      if (ms !== undefined && !(Number.isFinite(ms) && ms > 0)) {
        throw new RangeError(`${name} must be a positive number of ms, got ${ms}`);
      }
    }
    const deadline = () => this.#clock.now() + this.#deadlineMs;
    return new KvWatchIterator(
      {
        clock: this.#clock,
        random: this.#random,
        latest: (key) => this.#askLatest(key, deadline()),
        acceptors: this.#acceptors.length,
        peek: (key, ver) =>
          new PaxosProposer({ Id: { Key: key, Ver: ver }, Bal: ZERO_BALLOT }, this.#proposerOpts)
            .peekChosen(this.#acceptors, this.#quorum),
        read: (key, ver) => this.#run(key, ver, null, deadline()),
        latestVersion: async (key) => (await this.#latest(key, deadline())).version,
        keys: prefix === null
          ? null
          : () => majorityKeys(this.#acceptors, prefixRange(prefix), this.#clock, this.#deadlineMs),
        compacted: (key, ver) => new CompactedError(key, ver),
      },
      keys,
      opts,
    );
  }

  /** Resolves once a majority of the acceptors answer; throws a {@link NotEnoughQuorumError} otherwise. */
  async ping(): Promise<void> {
    await this.#askLatest(
      "",
      this.#clock.now() + this.#deadlineMs,
      "reach a majority of the acceptors",
    );
  }

  /** Closes the connections. */
  close(): Promise<void> {
    return this.#close();
  }

  async #write(key: string, value: Value, opts: SetOptions): Promise<bigint> {
    this.#refuseOverV1();
    const deadline = this.#clock.now() + this.#deadlineMs;
    // The write's id: the chosen value is ours only if it carries it. (Not
    // "if it equals ours": another writer may write an equal value, and a
    // reader may finish our write for us, at its own ballot.)
    const wid = this.#randomId();
    value = { ...value, Wid: wid };
    // When this client's last write of the key holds a majority's promise for
    // the version after it, and the write's condition (if any) is about that
    // last write, the write is one Accept round trip (see #fastWrite).
    const promised = this.#promiseOf(key);
    // A version where a fast write failed but may have left votes for our
    // value, which a reader could finish: it must be settled before we write
    // anywhere else, or the one write could be chosen twice.
    let unsettled: bigint | null = null;
    const refusals = { n: 0 };
    // The Latest replies of the first write, when the loop may go on from them.
    let look: FirstLook | null = null;
    if (
      promised !== undefined && opts.ifAbsent !== true && opts.ifPresent !== true &&
      (opts.ifVersion === undefined || opts.ifVersion === promised.ver - 1n)
    ) {
      if (await this.#fastWrite(key, promised.ver, value, refusals)) return promised.ver;
      unsettled = promised.ver;
    } else if (promised === undefined && opts.ifPresent !== true && opts.ifVersion === undefined) {
      // A key this client holds no promise of may be new: try the first
      // write (#writeFirst). When it may have left votes for our value in
      // version 0, that version is settled as a short write's would be.
      const first = await this.#writeFirst(key, value, deadline);
      if (first.chosen) return 0n;
      if (first.votes) unsettled = 0n;
      look = first.look;
    }
    for (;;) {
      // Latest, with phase 1 of the next version folded in (foldedPhase1);
      // or the first write's, which is one too.
      const bal = look?.bal ?? { N: 1n, ProposerId: this.#randomId() };
      const { latest, replies } = await this.#latestAsking(key, deadline, bal, look?.replies);
      look = null;
      if (latest.value?.Wid === wid) return latest.version;
      // Versions are dense: `unsettled` holds a chosen value. Ours? (Not if
      // every acceptor refused the short write, the usual case when another
      // client wrote the key meanwhile: then no acceptor voted for it.)
      if (
        unsettled !== null && unsettled < latest.version &&
        refusals.n < this.#acceptors.length &&
        (await this.#runOurs(key, unsettled, null, deadline))?.Wid === wid
      ) {
        return unsettled;
      }
      // (Else `unsettled` is the next version, which the run below settles.)
      unsettled = null;
      if (opts.ifVersion !== undefined && latest.version !== opts.ifVersion) {
        throw new VersionConflictError(key, opts.ifVersion, latest.version);
      }
      const absent = latest.value === null || "Del" in latest.value;
      if (opts.ifAbsent && !absent) throw new VersionConflictError(key, null, latest.version);
      if (opts.ifPresent && absent) throw new NotFoundError(key, latest.version);
      if (latest.version >= INT64_MAX) {
        // (Written with setVersion at the last int64: a version has no room above it.)
        throw new RangeError(
          `${JSON.stringify(key)} is at version ${latest.version}, the largest int64: ` +
            `there is no next version to write`,
        );
      }
      const next = latest.version + 1n;
      const folded = foldedPhase1(replies, bal) === next;
      if (folded) this.#promise(key, next, bal);
      if (await this.#fastWrite(key, next, value)) return next;
      // The full run takes the look's ballot on (see fallbackBallot), unless
      // an Accept went out at it (a ballot carries one value only).
      const chosen = await this.#runOurs(
        key,
        next,
        value,
        deadline,
        folded ? undefined : fallbackBallot(replies, bal, next),
      );
      if (chosen?.Wid === wid) return next;
      // Another writer got `next` first: look again. A conditional write
      // then finds its condition false (or, for a create, still true when the
      // other write was a delete).
    }
  }

  // The one-round-trip write (Gryadka's): when this client's last write of
  // the key, at version v, got a majority to promise its ballot for v+1 (the
  // kv extension's `Next`), or its look at the latest version v did
  // (foldedPhase1), phase 1 of v+1 is done, with nothing voted there,
  // so phase 2 alone chooses our value. It needs no look at the latest
  // version first: if phase 2 gets a majority, no other value was chosen at
  // v+1 (another proposer would have needed a majority's promise above ours),
  // and no version after v+1 can be chosen before v+1 is. So v was the latest
  // version, and v+1 is the next one, when our value was chosen. A promise is
  // used once; anything unexpected falls back to the full path (which will
  // find our vote if this one got partly through).
  // `refusals.n` counts the acceptors that refused to vote, also those that
  // answer after this returns.
  async #fastWrite(
    key: string,
    ver: bigint,
    value: Value,
    refusals = { n: 0 },
  ): Promise<boolean> {
    const promised = this.#promiseOf(key);
    if (promised === undefined || promised.ver !== ver) return false;
    this.#promised.delete(key);
    this.#promisedOlder.delete(key);
    const p = new PaxosProposer(
      { Id: { Key: key, Ver: ver }, Bal: promised.bal, Val: value },
      this.#proposerOpts,
    );
    const r = await p.phase2(this.#acceptors, this.#quorum, {
      promiseNext: true,
      onRefused: () => refusals.n++,
    });
    if (r.err !== null) {
      // A refusal no retry can help (a newer membership, the quota, a bad
      // value) is the write's answer: the full path would only meet it
      // again, or, after StaleMembership (whose connections the acceptors
      // close), retry them unreachable until the deadline. (Compacted is
      // left to the full path, which tells an unknown outcome.)
      const cause = r.err.cause;
      if (cause instanceof AcceptorError && cause.isFinal && cause.code !== "Compacted") {
        throw cause;
      }
      return false;
    }
    if (r.nextPromised) this.#promise(key, ver + 1n, p.Bal);
    return true;
  }

  // The first write of a key in one round trip (the kv extension's Latest
  // with `Val`, see PaxosAcceptor.acceptFirst): each acceptor that holds
  // nothing of the key votes our value in version 0 at the round-0 ballot
  // of `bal`, promising `bal` there and at version 1. Every acceptor's vote
  // chooses it (Fast Paxos: a round-0 vote counts only from all of them).
  // A quorum's votes are phase 1 of version 0 at `bal`, done, with our
  // value the highest vote: one Accept at `bal` chooses it (two round trips,
  // when an acceptor is down or slow). Otherwise the key is not new (or
  // another first write raced ours): the replies are then a folded phase 1
  // (each acceptor that did not vote promised `bal` after its highest
  // vote), which the write goes on from (`look`), unless an Accept went out
  // at `bal`. `votes`: ours may have round-0 votes, which a reader could
  // finish.
  async #writeFirst(
    key: string,
    value: Value,
    deadline: number,
  ): Promise<{ chosen: boolean; votes: boolean; look: FirstLook | null }> {
    const bal = { N: 1n, ProposerId: this.#randomId() };
    const round0 = firstWriteBallot(bal);
    const { replies, from } = await this.#askLatestFrom(key, deadline, undefined, bal, value);
    const ours = from.filter((_, i) => {
      const r = replies[i]!;
      return r.Ver === 0n && ballotEquals(r.VBal, round0);
    });
    if (ours.length === this.#acceptors.length) {
      // Each of them also promised `bal` at version 1, if nobody had.
      if (foldedPhase1(replies, bal) === 1n) this.#promise(key, 1n, bal);
      return { chosen: true, votes: true, look: null };
    }
    if (this.#quorum.isQuorum(ours)) {
      this.#promise(key, 0n, bal);
      const chosen = await this.#fastWrite(key, 0n, value);
      return { chosen, votes: true, look: null };
    }
    // (An acceptor that did not answer may have voted ours, unless version 0
    // was decided before: an answer from above it says so, versions being
    // dense.)
    const votes = ours.length > 0 ||
      (replies.length < this.#acceptors.length && replies.every((r) => r.Ver < 1n));
    return { chosen: false, votes, look: { bal, replies } };
  }

  // A run at a version where our write may have votes: the value chosen
  // there (with `val`, our write's full run; with null, a read that settles
  // a short write). When the acceptors no longer keep that version (other
  // writers went on past it), whether our write was chosen there can no
  // longer be known.
  async #runOurs(
    key: string,
    ver: bigint,
    val: Value | null,
    deadline: number,
    bal?: BallotNum,
  ): Promise<Value | null> {
    try {
      return await this.#run(key, ver, val, deadline, val !== null, bal?.ProposerId, bal?.N);
    } catch (e) {
      if (!(e instanceof CompactedError)) throw e;
      throw new UnknownOutcomeError(key, ver, "the acceptors no longer keep that version", {
        cause: e,
      });
    }
  }

  // The latest chosen version of a key. When the version being read was
  // compacted meanwhile (other writers went on, past the versions the
  // acceptors keep), the key has a newer chosen version: ask again, as long
  // as the highest version seen goes up.
  async #latest(key: string, deadline: number): Promise<Latest> {
    return (await this.#latestAsking(key, deadline)).latest;
  }

  // #latest, and the Latest replies it came from. With `promise`, the
  // Latest requests also ask for that ballot's promise at the version after
  // each acceptor's highest (the folded phase 1 of a write, see
  // foldedPhase1).
  async #latestAsking(
    key: string,
    deadline: number,
    promise?: BallotNum,
    asked?: readonly LatestReply[],
  ): Promise<{ latest: Latest; replies: readonly LatestReply[] }> {
    for (let seen = -2n;;) {
      const replies = asked ?? await this.#askLatest(key, deadline, undefined, promise);
      asked = undefined;
      const top = replies.reduce((max, r) => r.Ver > max ? r.Ver : max, -1n);
      try {
        return { latest: await this.#latestOf(key, replies, deadline), replies };
      } catch (e) {
        if (!(e instanceof CompactedError) || top <= seen) throw e;
        seen = top;
      }
    }
  }

  // The latest chosen version, from a majority's Latest replies: the highest
  // version they voted in, then downward until a version holds a chosen value.
  async #latestOf(
    key: string,
    replies: readonly LatestReply[],
    deadline: number,
  ): Promise<Latest> {
    let top = -1n;
    let floor = 0n;
    for (const r of replies) {
      if (r.Ver > top) top = r.Ver;
      if (r.Floor > floor) floor = r.Floor;
    }
    // The usual case: the whole quorum holds one vote, at one ballot, at
    // the top version. Then that value is chosen: nothing more to ask.
    // (`replies` are a quorum's: #askLatest returns no fewer.)
    const chosen = chosenAtTop(replies, this.#acceptors.length);
    if (chosen !== null) return { version: top, value: chosen };
    for (let v = top; v >= floor && v >= 0n; v--) {
      const value = await this.#run(key, v, null, deadline);
      if (value !== null) return { version: v, value };
    }
    return { version: -1n, value: null };
  }

  // Latest from a majority of the acceptors.
  //
  // An acceptor that answers Latest with UnknownOp serves v1 only, without
  // the kv extension. The KV cannot run over it, even beside others: it may
  // drop the write ids and tombstones of the values it votes for. From the
  // first such answer (also one that comes after a quorum of others), every
  // KV call fails with an AcceptorError naming that acceptor.
  async #askLatest(
    key: string,
    deadline: number,
    what?: string,
    promise?: BallotNum,
  ): Promise<readonly LatestReply[]> {
    return (await this.#askLatestFrom(key, deadline, what, promise)).replies;
  }

  // #askLatest, and the index of the acceptor each reply came from; with
  // `first`, a first write's value (see #writeFirst). When the replies hold
  // a first write's round-0 vote (or carry one), the replies still out are
  // waited for a little (see roundZeroGrace): only every acceptor's tells
  // whether that vote is chosen.
  async #askLatestFrom(
    key: string,
    deadline: number,
    // (What the call was for, in the error: built only then.)
    what?: string,
    promise?: BallotNum,
    first?: Value,
  ): Promise<{ replies: readonly LatestReply[]; from: readonly number[] }> {
    this.#refuseOverV1();
    const quorum = this.#quorum;
    // When the quorum is out of reach, the replies still out are waited
    // for, until one is a StaleMembership: that then wins over "too many
    // failed" also when the unreachable members failed first.
    const got = await askQuorum(this.#acceptors, (a) => a.latest(key, promise, first), {
      need: quorum,
      deadline,
      clock: this.#clock,
      explainsFailure: isStaleMembership,
      onError: this.#onLatestError,
      lingerMs: first === undefined ? roundZeroGrace : firstWriteGrace,
    });
    this.#tracer?.event({
      kind: "quorum",
      phase: "Latest",
      key,
      ok: got.ok,
      count: got.replies.length,
      need: quorumNeed(quorum),
    });
    this.#refuseOverV1();
    if (got.ok) return got;
    // A member of a newer membership refused this client: say so, naming it.
    const stale = got.errors.find(isStaleMembership);
    if (stale !== undefined) throw stale;
    const why = got.why === "" ? "too many failed" : "no quorum answered within the deadline";
    throw new NotEnoughQuorumError(
      `cannot ${
        what ?? `find the latest version of ${JSON.stringify(key)}`
      }: ${got.replies.length} of ${this.#acceptors.length} acceptors answered, ` +
        `${quorum.description} needed; ${why}${
          got.failures.length ? `; ${got.failures.join("; ")}` : ""
        }`,
    );
  }

  // An acceptor's refusal of Latest, also one after a quorum of others:
  // UnknownOp says it serves v1 only (see #askLatest).
  readonly #onLatestError = (e: Error, i: number): void => {
    if (!(e instanceof AcceptorError && e.code === "UnknownOp")) return;
    this.#v1Only ??= new AcceptorError(
      "UnknownOp",
      `${e.detail} (it serves v1 only, without the kv extension's Latest; the KV needs ` +
        `every acceptor to serve it; getVersion and setVersion need only v1)`,
      this.#acceptors[i]!.name,
    );
  };

  // The promise remembered for `key` (see #fastWrite), if any.
  #promiseOf(key: string): HeldPromise | undefined {
    return this.#promised.get(key) ?? this.#promisedOlder.get(key);
  }

  // Remembers that a majority promised `bal` for `key` at `ver`.
  #promise(key: string, ver: bigint, bal: BallotNum): void {
    this.#promisedOlder.delete(key);
    this.#promised.set(key, { ver, bal });
    if (this.#promised.size >= this.#promisedKeys) {
      this.#promisedOlder = this.#promised;
      this.#promised = new Map();
    }
  }

  #refuseOverV1(): void {
    if (this.#v1Only !== null) throw this.#v1Only;
  }

  // A random positive 62-bit id: hi * 2^31 + lo + 1 for two random 31-bit
  // numbers, put together in 32-bit halves (BigInt arithmetic is far slower).
  #randomId(): bigint {
    const hi = Math.floor(this.#random.next() * 2 ** 31);
    const low = (hi % 2) * 2 ** 31 + Math.floor(this.#random.next() * 2 ** 31) + 1;
    ID_VIEW.setUint32(0, Math.floor(hi / 2) + (low >= 2 ** 32 ? 1 : 0));
    ID_VIEW.setUint32(4, low % 2 ** 32);
    return ID_VIEW.getBigUint64(0);
  }

  // One Paxos run on (key, ver), with a ballot no other run uses: a random
  // 62-bit proposer id per run, unless the caller gives one.
  async #run(
    key: string,
    ver: bigint,
    val: Value | null,
    deadline: number,
    promiseNext = false,
    proposerId = this.#randomId(),
    n = 1n,
  ): Promise<Value | null> {
    const p = new PaxosProposer(
      { Id: { Key: key, Ver: ver }, Bal: { N: n, ProposerId: proposerId } },
      this.#proposerOpts,
    );
    try {
      // A read first looks for a value already chosen: no write, one round trip.
      if (val === null) {
        const chosen = await p.peekChosen(this.#acceptors, this.#quorum);
        if (chosen !== null) return chosen;
      }
      const left = Math.max(1, deadline - this.#clock.now());
      const chosen = await p.runPaxos(this.#acceptors, val, {
        deadlineMs: left,
        promiseNext,
        quorum: this.#quorum,
      });
      if (promiseNext && p.nextPromised && chosen === val) {
        this.#promise(key, ver + 1n, p.Bal);
      }
      return chosen;
    } catch (e) {
      if (e instanceof AcceptorError && e.code === "Compacted") throw new CompactedError(key, ver);
      throw e;
    }
  }
}

// A ballot a majority promised for one version of a key (see #fastWrite).
interface HeldPromise {
  readonly ver: bigint;
  readonly bal: BallotNum;
}

// A first write's Latest (see #writeFirst): its ballot and replies.
interface FirstLook {
  readonly bal: BallotNum;
  readonly replies: readonly LatestReply[];
}

// How long Latest waits, at least, for the replies still out after a
// quorum's when a first write's round-0 vote is in play (or twice as long
// as the quorum took, when longer): every acceptor's vote is needed to know
// it chosen. An acceptor down costs that wait, then the slower path. (With
// once as long, 6 to 11 first writes in 100 took the slower path at 256 in
// flight, three acceptor processes and the client sharing 2 cores: the last
// reply was just late, and the Accept round after it cost all four
// processes more than the wait, and took about as long; twice: 2 to 3.)
const FIRST_WRITE_GRACE_MS = 2;
const FIRST_WRITE_GRACE_FACTOR = 2;

// How long a Latest waits on for the replies still out after a quorum's
// (askQuorum's lingerMs): when a reply holds a round-0 vote, the grace
// above; otherwise not at all.
function roundZeroGrace(replies: readonly LatestReply[], elapsedMs: number): number {
  for (const r of replies) {
    if (isFirstWriteBallot(r.VBal)) return firstWriteGrace(replies, elapsedMs);
  }
  return 0;
}

// The same for a first write's Latest, which carries a round-0 vote itself.
function firstWriteGrace(_replies: readonly LatestReply[], elapsedMs: number): number {
  return Math.max(FIRST_WRITE_GRACE_MS, FIRST_WRITE_GRACE_FACTOR * elapsedMs);
}

// The folded phase 1 (kv extension: a Latest that carries a ballot): the
// version whose phase 1 at `bal` the Latest replies of a quorum complete,
// or null. Each acceptor promised `bal` (NextBal not above it) at the
// version after the highest it voted in. When all of them voted up to one
// same version `top`, that is a quorum's promise at top+1, and none of them
// voted there (its highest would be top+1): phase 1 done, no value found,
// so Accept may propose any value there. Replies that disagree on `top`
// (their promises are at different versions), or one without the promise
// (refused, or an acceptor that ignores the ballot), give null: the writer
// runs phase 1 itself. (`replies` are a quorum's: every one must agree.)
function foldedPhase1(replies: readonly LatestReply[], bal: BallotNum): bigint | null {
  const top = replies[0]?.Ver;
  if (top === undefined) return null;
  for (const r of replies) {
    if (r.Ver !== top || r.NextBal === undefined || !GE(bal, r.NextBal)) return null;
  }
  return top + 1n;
}

// The ballot of the full run at `next` when the look did not complete its
// phase 1 (and sent no Accept): the look's own, promised where it was (a
// Prepare at it there writes nothing); or, when a promise at `next` refused
// it (another writer's next-version promise, usually), the look's
// proposer id just above that promise, at most MAX_BALLOT_STEP above: a
// Prepare at the look's ballot would only be refused there.
function fallbackBallot(replies: readonly LatestReply[], bal: BallotNum, next: bigint): BallotNum {
  let n = bal.N;
  for (const r of replies) {
    const held = r.NextBal;
    if (held === undefined || r.Ver + 1n !== next || GE(bal, held) || held.N >= INT64_MAX) continue;
    const above = held.N + 1n < bal.N + MAX_BALLOT_STEP ? held.N + 1n : bal.N + MAX_BALLOT_STEP;
    if (above > n) n = above;
  }
  return { N: n, ProposerId: bal.ProposerId };
}

/** What {@link Kv.list} lists: the keys that begin with a prefix, or a range. */
export type KvListSelector =
  | { readonly prefix: string }
  | { readonly start?: string; readonly end?: string };

/** Options of {@link Kv.list}. */
export interface KvListOptions {
  /** Stop after this many entries (default: no limit). */
  readonly limit?: number;
  /** Resume after the entry this cursor was taken at ({@link KvListIterator.cursor}). */
  readonly cursor?: string;
  /** From the last key down. */
  readonly reverse?: boolean;
}

/** One key of a listing, with its latest version and value. */
export interface KvListEntry {
  /** The key. */
  readonly key: string;
  /** Its latest version. */
  readonly version: bigint;
  /** Its value there. */
  readonly value: KvValue;
}

const BATCH_READS = 32;

function cursorOf(key: string): string {
  let bin = "";
  for (const b of new TextEncoder().encode(key)) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function cursorKey(cursor: string): string {
  try {
    const b64 = cursor.replaceAll("-", "+").replaceAll("_", "/");
    const bin = atob(b64 + "=".repeat((4 - b64.length % 4) % 4));
    return new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(bin, (c) => c.charCodeAt(0)),
    );
  } catch {
    throw new TypeError(`cursor ${JSON.stringify(cursor)} is not a cursor of a listing`);
  }
}

/**
 * The entries of {@link Kv.list}, read as they are iterated: a batch of
 * keys from a majority, then a linearizable read of each.
 */
export class KvListIterator implements AsyncIterableIterator<KvListEntry> {
  readonly #keys: AsyncGenerator<string>;
  readonly #get: (key: string) => Promise<KvEntry>;
  readonly #limit: number;
  readonly #reverse: boolean;
  #ready: KvListEntry[] = [];
  #pending: string[] | null = null;
  #count = 0;
  #cursor = "";
  #done = false;

  /** Builds the iterator over keys in order, with a read for each. */
  constructor(
    keys: AsyncGenerator<string>,
    get: (key: string) => Promise<KvEntry>,
    limit: number,
    reverse: boolean,
  ) {
    this.#keys = keys;
    this.#get = get;
    this.#limit = limit;
    this.#reverse = reverse;
  }

  /**
   * Where the listing is: pass it as `cursor` to a later {@link Kv.list} of
   * the same range to resume after the last entry returned ("" before the
   * first).
   */
  get cursor(): string {
    return this.#cursor;
  }

  /** The next entry. */
  async next(): Promise<IteratorResult<KvListEntry>> {
    while (!this.#done && this.#count < this.#limit) {
      const e = this.#ready.shift();
      if (e !== undefined) {
        this.#count++;
        this.#cursor = cursorOf(e.key);
        return { done: false, value: e };
      }
      const batch = await this.#batch();
      if (batch.length === 0) break;
      const got = await Promise.all(batch.map((k) => this.#get(k)));
      batch.forEach((key, i) => {
        const g = got[i]!;
        if (g.found) this.#ready.push({ key, version: g.version, value: g.value });
      });
    }
    await this.return();
    return { done: true, value: undefined };
  }

  // The next keys to read, in the order of the listing.
  async #batch(): Promise<string[]> {
    if (this.#reverse) {
      if (this.#pending === null) {
        const all: string[] = [];
        for await (const k of this.#keys) all.push(k);
        this.#pending = all.reverse();
      }
      return this.#pending.splice(0, BATCH_READS);
    }
    const out: string[] = [];
    while (out.length < BATCH_READS) {
      const r = await this.#keys.next();
      if (r.done) break;
      out.push(r.value);
    }
    return out;
  }

  /** Stops the listing. */
  async return(): Promise<IteratorResult<KvListEntry>> {
    this.#done = true;
    this.#ready = [];
    await this.#keys.return(undefined);
    return { done: true, value: undefined };
  }

  /** This iterator. */
  [Symbol.asyncIterator](): KvListIterator {
    return this;
  }
}

/**
 * Connects to acceptors by URL and resolves once a majority of them
 * answered; throws a {@link NotEnoughQuorumError} when they cannot.
 *
 * @example
 * ```ts ignore
 * import { connect } from "./kv.ts";
 * const kv = await connect(["ws://127.0.0.1:3333/paxos", "ws://127.0.0.1:3334/paxos", "ws://127.0.0.1:3335/paxos"]);
 * await kv.set("k", "v");
 * await kv.close();
 * ```
 */
export async function connect(urls: readonly string[], opts: KvOptions = {}): Promise<Kv> {
  const { clients, quorum } = await connectCluster(urls, opts);
  const close = async () => {
    await Promise.all(clients.map((c) => c.close()));
  };
  // While the membership changes, a quorum is a majority of the old members
  // and of the new (the caller may not ask for less).
  const kv = new Kv(clients, { ...opts, quorum }, close);
  try {
    await kv.ping();
    return kv;
  } catch (e) {
    await close();
    throw e;
  }
}
