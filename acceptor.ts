/**
 * The acceptor: the seed's `Prepare` and `Accept` handlers, one state per
 * Paxos instance (Key, Ver), kept in a {@link Store}.
 *
 * Both handlers reply with the state as it was *before* the request, then
 * update it when the request's ballot is at least the promised one. The
 * update is stored before the reply is returned.
 *
 * @module
 */
import type {
  Acceptor,
  BallotNum,
  KeysReply,
  KeyVersions,
  LatestReply,
  Op,
  PaxosInstanceId,
  Proposer,
  Value,
} from "./types.ts";
import {
  ballotEquals,
  EMPTY_ACCEPTOR,
  firstWriteBallot,
  formatBallot,
  GE,
  INT64_MAX,
  MAX_BALLOT_STEP,
  ZERO_BALLOT,
} from "./types.ts";
import { AcceptorError } from "./errors.ts";
import type { Store, Written } from "./store.ts";
import { dataBytes, keyBytes, MemoryStore } from "./store.ts";
import { MAX_KEYS_PAGE, valueBytes } from "./codec.ts";

// The requests waiting on one key while one of its requests waits for its
// write: by the peer they come from, in turn (a Map keeps the order in which
// peers were put in it), each peer's in arrival order.
interface KeyQueue {
  size: number;
  // Made when a first request has to wait (most writes have none behind).
  peers: Map<object, (() => Promise<unknown> | undefined)[]> | null;
}

/** Options of a {@link PaxosAcceptor}. */
export interface AcceptorOptions {
  /**
   * Retention: keep only the last `keepVersions` versions of each key (by
   * the highest version this acceptor voted in); older ones are forgotten
   * and refused with `Err` `Compacted`. Default: keep every version.
   */
  readonly keepVersions?: number;
  /** Told about background failures (a compaction that could not be stored). */
  readonly onError?: (message: string) => void;
  /**
   * Most requests waiting on one key (behind a write of that key); more are
   * refused with `Overloaded` and change nothing. Default
   * {@link DEFAULT_MAX_QUEUED_PER_KEY}.
   */
  readonly maxQueuedPerKey?: number;
  /**
   * Most requests of one peer ({@link Caller}) waiting on one key, so that
   * one peer cannot fill a key's queue; more are refused with `Overloaded`.
   * Default {@link DEFAULT_MAX_QUEUED_PER_PEER}.
   */
  readonly maxQueuedPerPeer?: number;
  /**
   * The quota: most bytes of data ({@link Store.usedBytes}) the store may
   * hold. A write that would grow the data past it is refused with
   * `QuotaExceeded` and changes nothing; writes that do not grow the data
   * (a new promise on an instance already held, a vote no larger than the
   * one it replaces) go on, and so do deletes of existing keys (a Prepare of
   * a key's next version, an Accept of a tombstone) up to a reserve of a
   * sixteenth of the quota above it, so that an operator can free space.
   * A write that would add a key past the store's key limit
   * ({@link Store.maxKeys}) is refused the same way; the keys held keep working.
   * Default: {@link DEFAULT_QUOTA_BYTES}, or
   * {@link DEFAULT_MEMORY_QUOTA_BYTES} on a {@link MemoryStore}.
   */
  readonly quotaBytes?: number;
}

/** The quota of an acceptor on a durable store, by default: 4 GiB. */
export const DEFAULT_QUOTA_BYTES = 4 * 1024 ** 3;
/** The quota of an acceptor on a {@link MemoryStore}, by default: 512 MiB. */
export const DEFAULT_MEMORY_QUOTA_BYTES = 512 * 1024 ** 2;

/** Most requests waiting on one key, by default. */
export const DEFAULT_MAX_QUEUED_PER_KEY = 1024;
/** Most requests of one peer waiting on one key, by default. */
export const DEFAULT_MAX_QUEUED_PER_PEER = 128;

/**
 * Who sends a request, when it comes from the network: a server passes one
 * with each request. Requests waiting on one key are served in turn across
 * peers (one peer's flood does not make another's request wait behind all
 * of it), and each reply's size is taken from the caller's budget before the
 * request changes anything: a request whose reply does not fit is refused
 * with `Overloaded`.
 *
 * @example
 * ```ts
 * import { type Caller, PaxosAcceptor } from "./acceptor.ts";
 * let left = 1000;
 * const caller: Caller = { peer: {}, take: (n) => n <= left && (left -= n, true) };
 * const a = new PaxosAcceptor();
 * const req = { Id: { Key: "i", Ver: 0n }, Bal: { N: 1n, ProposerId: 1n }, Val: null };
 * await a.prepare(req, caller); // takes the reply's size from `left`
 * ```
 */
export interface Caller {
  /** The peer the request comes from (a connection): any object, told apart by identity. */
  readonly peer: object;
  /** Takes `bytes` for a reply, or takes nothing and returns false when they are not there. */
  take(bytes: number): boolean;
}

// The peer of requests made in process, without a Caller.
const IN_PROCESS = {};

// What a reply takes besides its value: Rid, keys, ballots (an upper bound).
const REPLY_BYTES = 64;

/** About how many bytes of keys one `Keys` reply carries at most (one key more may pass it). */
export const KEYS_PAGE_BYTES = 64 * 1024;

// Whether a key with these versions may be new to the store: it holds no
// vote of it and never forgot one (it may hold a promise).
function mayBeNewKey(v: KeyVersions): boolean {
  return v.Ver < 0n && v.Floor === 0n;
}

/**
 * The reply to `Latest` from a store: the key's highest voted version, its
 * floor, and the vote held at that version.
 *
 * @example
 * ```ts
 * import { latestReply } from "./acceptor.ts";
 * import { MemoryStore } from "./store.ts";
 * latestReply(new MemoryStore(), "k").Ver; // -1n
 * ```
 */
export function latestReply(store: Store, key: string): LatestReply {
  const { Ver, Floor } = store.latest(key);
  const top = Ver < 0n ? undefined : store.get({ Key: key, Ver });
  return { Ver, Floor, Val: top?.Val ?? null, VBal: top?.VBal ?? ZERO_BALLOT };
}

/**
 * A Paxos acceptor. Requests for one key are served one at a time, in
 * arrival order (an Accept may also promise the key's next version, so the
 * unit is the key); requests for different keys run concurrently.
 *
 * @example
 * ```ts
 * import { PaxosAcceptor } from "./acceptor.ts";
 * const a = new PaxosAcceptor();
 * const req = { Id: { Key: "i", Ver: 0n }, Bal: { N: 1n, ProposerId: 10n }, Val: null };
 * const before = await a.prepare(req); // the empty state: nothing promised, no vote
 * before.LastBal.N; // 0n
 * ```
 */
export class PaxosAcceptor {
  /** A name for messages and logs. */
  readonly name: string;
  readonly #store: Store;
  // The keys with a request waiting for its write, and what waits behind it.
  readonly #queues = new Map<string, KeyQueue>();
  // Requests waiting behind another of their key, over all keys.
  #waiting = 0;
  readonly #keep: bigint | null;
  readonly #onError: (message: string) => void;
  readonly #maxQueued: number;
  readonly #maxPerPeer: number;
  readonly #quota: number;
  // The Overloaded refusals, made once: a flood of requests can be refused
  // by the hundred thousand, and an Error costs microseconds to make.
  readonly #refusals: Readonly<Record<"budget" | "key" | "peer", AcceptorError>>;

  /** Builds an acceptor on a store (a fresh {@link MemoryStore} by default). */
  constructor(store: Store = new MemoryStore(), name = "acceptor", opts: AcceptorOptions = {}) {
    this.#store = store;
    this.name = name;
    this.#keep = opts.keepVersions === undefined
      ? null
      : BigInt(positive("keepVersions", opts.keepVersions, 1));
    this.#onError = opts.onError ?? (() => {});
    this.#maxQueued = positive("maxQueuedPerKey", opts.maxQueuedPerKey, DEFAULT_MAX_QUEUED_PER_KEY);
    this.#maxPerPeer = positive(
      "maxQueuedPerPeer",
      opts.maxQueuedPerPeer,
      DEFAULT_MAX_QUEUED_PER_PEER,
    );
    this.#quota = positive(
      "quotaBytes",
      opts.quotaBytes,
      store instanceof MemoryStore ? DEFAULT_MEMORY_QUOTA_BYTES : DEFAULT_QUOTA_BYTES,
    );
    const overloaded = (why: string) => new AcceptorError("Overloaded", why, name);
    this.#refusals = {
      budget: overloaded(
        "the reply is over what may wait to be sent to this peer now: read the replies, " +
          "or ask for fewer values at a time",
      ),
      key: overloaded(`${this.#maxQueued} requests are already waiting on this key`),
      peer: overloaded(`${this.#maxPerPeer} requests of this peer are already waiting on this key`),
    };
  }

  /** The store behind this acceptor. */
  get store(): Store {
    return this.#store;
  }

  /** Requests waiting behind a write of their key, over all keys (a gauge for metrics). */
  get queued(): number {
    return this.#waiting;
  }

  /** The quota in bytes (see {@link AcceptorOptions.quotaBytes}). */
  get quotaBytes(): number {
    return this.#quota;
  }

  /**
   * Prepare handles a phase-1 request. It replies the whole state (the
   * promise and the vote) as it was before the request; then, if `r.Bal` is
   * at least the promised ballot, it promises `r.Bal`: never to accept a
   * lower ballot again.
   *
   * From a `caller`, the reply's size is taken from its budget first; when
   * it does not fit, the request is refused (`Overloaded`) and changes
   * nothing.
   */
  prepare(r: Proposer, caller?: Caller): Promise<Acceptor> {
    return this.#withKey(r.Id, caller, (v, held) => {
      this.#charge(caller, v.Val);
      const reply = v;
      // (The seed promises when r.Bal >= LastBal. At the ballot already
      // promised that changes nothing, so there is nothing to store.)
      if (GE(r.Bal, v.LastBal) && !ballotEquals(r.Bal, v.LastBal)) {
        this.#checkStep(r, v);
        const state = { LastBal: r.Bal, Val: v.Val, VBal: v.VBal };
        if (!held) this.#checkQuota(r.Id, state, true, false);
        const promise = this.#store.put(r.Id, state);
        return this.#afterWrites(promise, undefined, () => reply);
      }
      return reply;
    });
  }

  /**
   * Accept handles a phase-2 request. It replies only the promised ballot as
   * it was before the request; then, if `r.Bal` is at least that ballot, it
   * votes: it records `r.Val` as accepted at `r.Bal`. A `caller` is used
   * as by {@link PaxosAcceptor.prepare}.
   */
  accept(r: Proposer, caller?: Caller): Promise<Acceptor> {
    return this.#withKey(r.Id, caller, (v, held) => {
      this.#charge(caller, null);
      const reply: Acceptor = { LastBal: v.LastBal, Val: null, VBal: ZERO_BALLOT };
      if (!GE(r.Bal, v.LastBal)) return reply;
      this.#checkStep(r, v);
      // Stored states are never changed, so they may share parts: when r.Bal
      // is the ballot already promised here (the usual case), the new states
      // reuse the stored copy of it, and keep nothing of the request but its
      // value.
      const bal = ballotEquals(r.Bal, v.LastBal) ? v.LastBal : r.Bal;
      const state = { LastBal: bal, Val: r.Val, VBal: bal };
      const growth = dataBytes(state) - (held ? dataBytes(v) : 0);
      if (growth > 0) {
        this.#checkQuota(r.Id, state, r.Val !== null && "Del" in r.Val, held, growth);
      }
      const vote = this.#store.put(r.Id, state);
      // kv extension: the promise for the next version shares the sync.
      const next = r.Next === true ? this.#promiseNext(r.Id, bal) : NO_NEXT;
      return this.#afterWrites(vote, next.written, () => {
        this.#retain(r.Id);
        return next.made ? { ...reply, NextOk: true } : reply;
      });
    });
  }

  // No request raises the promise by more than MAX_BALLOT_STEP: one message
  // at the highest ballot would otherwise leave no higher ballot for
  // correct proposers, and the key could never be written again.
  #checkStep(r: Proposer, v: Acceptor): void {
    if (r.Bal.N - v.LastBal.N <= MAX_BALLOT_STEP) return;
    throw new AcceptorError(
      "BallotTooFar",
      `ballot ${formatBallot(r.Bal)} for ${JSON.stringify(r.Id.Key)}@${r.Id.Ver} is more than ` +
        `${MAX_BALLOT_STEP} above the promised ${formatBallot(v.LastBal)}`,
      this.name,
    );
  }

  // Quota: refuses a write that grows the data by `growth` bytes past the
  // quota, or that adds a key past the store's key limit. A deletion of a
  // key that has a version (`deleting`: a Prepare of a new version, which a
  // delete starts with, or an Accept of a tombstone) may use a reserve of a
  // sixteenth of the quota above it. (A key with neither a vote nor a floor
  // may be new: it is charged for, and at the key limit refused unless this
  // very instance is `held`.)
  #checkQuota(
    id: PaxosInstanceId,
    state: Acceptor,
    deleting: boolean,
    held: boolean,
    growth = dataBytes(state),
  ): void {
    const used = this.#store.usedBytes;
    const latest = this.#store.latest(id.Key);
    const newKey = mayBeNewKey(latest);
    if (newKey && !held && this.#atKeyLimit()) {
      throw new AcceptorError(
        "QuotaExceeded",
        `writing ${JSON.stringify(id.Key)}@${id.Ver} would add a key past the limit of ` +
          `${this.#store.maxKeys} keys (--max-keys), which this store keeps in memory; the keys ` +
          `it holds can still be read, written and deleted: raise --max-keys, or use ` +
          `--engine sqlite, which keeps its keys on disk`,
        this.name,
      );
    }
    const grown = used + growth + (newKey ? keyBytes(id.Key) : 0);
    if (grown <= this.#quota) return;
    if (deleting && latest.Ver >= 0n && grown <= this.#quota + this.#quota / 16) return;
    throw new AcceptorError(
      "QuotaExceeded",
      `writing ${JSON.stringify(id.Key)}@${id.Ver} would grow the data to ${grown} bytes, ` +
        `over the quota of ${this.#quota} bytes (--quota-bytes); reads and deletes still ` +
        `work: delete keys (their old versions are freed with --keep-versions) or raise the quota`,
      this.name,
    );
  }

  // Whether the store holds as many keys as it may (Store.maxKeys), so that
  // a new key must be refused. Keys of writes under way count (a LogStore's
  // keyCount has them), so concurrent new keys cannot pass the limit.
  #atKeyLimit(): boolean {
    const max = this.#store.maxKeys;
    return max !== undefined && (this.#store.keyCount ?? 0) >= max;
  }

  // Whether the quota, and for a key that may be new the key limit, leave
  // room for a new instance's promise.
  #roomFor(id: PaxosInstanceId, state: Acceptor, newKey: boolean): boolean {
    if (newKey && this.#atKeyLimit()) return false;
    return this.#store.usedBytes + dataBytes(state) + keyBytes(id.Key) <= this.#quota;
  }

  // Promises `bal` for version Ver+1 if nobody has touched it (or this very
  // ballot already holds it, unvoted): then it is as if a Prepare at `bal`
  // had found no vote there. Requests on one key are served one at a time,
  // so Ver+1 is ours to change.
  #promiseNext(id: PaxosInstanceId, bal: BallotNum): NextPromise {
    const next = { Key: id.Key, Ver: id.Ver + 1n };
    const n = this.#store.get(next) ?? EMPTY_ACCEPTOR;
    if (n.Val !== null) return NO_NEXT;
    if (ballotEquals(n.LastBal, bal)) return NEXT_HELD;
    if (!ballotEquals(n.LastBal, ZERO_BALLOT)) return NO_NEXT;
    const state = { LastBal: bal, Val: null, VBal: ZERO_BALLOT };
    // Past the quota, no promise ahead: the next write asks with a Prepare.
    // (The key is there: its vote is being written.)
    if (!this.#roomFor(next, state, false)) return NO_NEXT;
    return { made: true, written: this.#store.put(next, state) };
  }

  /**
   * Latest (kv extension) tells the highest version of a key this acceptor
   * voted in, and the lowest version it still keeps. Any version chosen was
   * voted in by a majority, so the highest answer among a majority is at
   * least the latest chosen version.
   *
   * With a ballot `promise` (the request's `Bal`), it also serves a Prepare
   * at that ballot for the version after the highest voted one, in the same
   * turn of the key and stored before the reply, and tells the promise it
   * held there before as `NextBal`: a writer's Latest and phase 1 in one
   * round trip. Where that Prepare would be refused (below the floor, past
   * the quota, a ballot too far, the key's queue full), the reply is a plain
   * Latest.
   *
   * With a `first` value as well, and nothing of the key held here, it
   * votes `first` in version 0 instead, at the round-0 ballot of `promise`
   * (see {@link PaxosAcceptor.acceptFirst}): the reply is the Latest after
   * that vote.
   */
  latest(
    key: string,
    promise?: BallotNum,
    first?: Value,
    caller?: Caller,
  ): Promise<LatestReply> {
    // (When the key's queue is full, the promise is left out rather than the
    // Latest refused: the writer then runs phase 1 itself, and retries it.)
    if (promise !== undefined && !this.#queueFull(key, caller)) {
      return this.#inTurn(
        key,
        caller,
        () =>
          (first === undefined ? null : this.acceptFirst(key, promise, first, caller)) ??
            this.#promiseAfterLatest(key, promise, caller),
      );
    }
    try {
      const reply = latestReply(this.#store, key);
      this.#charge(caller, reply.Val);
      return Promise.resolve(reply);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  // The folded phase 1: Latest, then a Prepare at `bal` of version Ver+1,
  // replied as Prepare replies (the promise held there before, `NextBal`;
  // no vote can be there, Ver being the highest voted). Served in the key's
  // turn, so that no vote lands between the two; the promise is stored
  // before the reply, as a Prepare's. Where a Prepare would be refused
  // (below the floor, past the quota, a ballot too far, no version left),
  // it answers a plain Latest: the writer then runs phase 1 itself.
  #promiseAfterLatest(
    key: string,
    bal: BallotNum,
    caller: Caller | undefined,
  ): LatestReply | Promise<LatestReply> {
    const latest = latestReply(this.#store, key);
    this.#charge(caller, latest.Val);
    const next = { Key: key, Ver: latest.Ver + 1n };
    if (next.Ver < latest.Floor || next.Ver > INT64_MAX) return latest;
    const held = this.#store.get(next);
    const n = held ?? EMPTY_ACCEPTOR;
    if (n.Val !== null || bal.N - n.LastBal.N > MAX_BALLOT_STEP) return latest;
    const reply = { ...latest, NextBal: n.LastBal };
    if (!GE(bal, n.LastBal) || ballotEquals(bal, n.LastBal)) return reply;
    const state = { LastBal: bal, Val: null, VBal: ZERO_BALLOT };
    if (held === undefined && !this.#roomFor(next, state, mayBeNewKey(latest))) return latest;
    return this.#afterWrites(this.#store.put(next, state), undefined, () => reply);
  }

  /**
   * The first write folded into its Latest (kv extension: a `Latest` with
   * `Bal` and `Val`). Where this acceptor holds nothing of the key (no vote
   * in any version, no floor, nothing promised at version 0), it votes
   * `val` in version 0 at the round-0 ballot of `bal`
   * ({@link firstWriteBallot}), promises `bal` there (as a Prepare at `bal`
   * after that vote would), and promises `bal` at version 1 (as an Accept
   * with `Next`), all in one sync. Each acceptor casts at most one round-0
   * vote per key, so when every acceptor holds the same one, it is chosen:
   * a first write in one round trip. When only a quorum votes, they
   * promised `bal` and hold no higher vote: the writer may Accept there at
   * `bal`. Returns the Latest reply after the vote, or null where it does
   * not vote: the request is then served as a plain folded phase 1.
   * Callers serve it in the key's turn.
   */
  acceptFirst(
    key: string,
    bal: BallotNum,
    val: Value,
    caller?: Caller,
  ): LatestReply | Promise<LatestReply> | null {
    const id = { Key: key, Ver: 0n };
    const untouched = mayBeNewKey(this.#store.latest(key)) && this.#store.get(id) === undefined;
    if (!untouched || bal.N < 1n || bal.N > MAX_BALLOT_STEP) return null;
    const vbal = firstWriteBallot(bal);
    const state = { LastBal: bal, Val: val, VBal: vbal };
    if (!this.#roomFor(id, state, true)) return null;
    this.#charge(caller, val);
    const vote = this.#store.put(id, state);
    const nextBal = this.#store.get({ Key: key, Ver: 1n })?.LastBal ?? ZERO_BALLOT;
    const next = this.#promiseNext(id, bal);
    const reply: LatestReply = { Ver: 0n, Floor: 0n, Val: val, VBal: vbal };
    return this.#afterWrites(vote, next.written, () => {
      this.#retain(id);
      return next.made ? { ...reply, NextBal: nextBal } : reply;
    });
  }

  /**
   * Keys (kv extension) tells a page of the keys this acceptor holds any
   * state for, ascending: what a listing and a membership catch-up walk
   * through. A page stops early, with `More`, once its keys pass
   * {@link KEYS_PAGE_BYTES}.
   */
  keys(from: string, limit: number, end?: string, caller?: Caller): Promise<KeysReply> {
    try {
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_KEYS_PAGE) {
        throw new RangeError(`limit must be an integer from 1 to ${MAX_KEYS_PAGE}, got ${limit}`);
      }
      // One more than asked tells whether more remain.
      const found = this.#store.keys(from, limit + 1, end);
      const page: string[] = [];
      let bytes = REPLY_BYTES;
      for (const k of found) {
        if (page.length === limit || (page.length > 0 && bytes > KEYS_PAGE_BYTES)) break;
        page.push(k);
        bytes += k.length * 3 + 5; // UTF-8 bytes at most, and the string header
      }
      if (caller !== undefined && !caller.take(bytes)) throw this.#refusals.budget;
      return Promise.resolve({ Keys: page, More: found.length > page.length });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  // Takes a reply's size from the caller's budget, or refuses the request.
  #charge(caller: Caller | undefined, val: Value | null): void {
    if (caller === undefined) return;
    const bytes = REPLY_BYTES + (val === null ? 0 : valueBytes(val));
    if (!caller.take(bytes)) throw this.#refusals.budget;
  }

  // Retention: after a vote at `id.Ver`, forget versions older than the last
  // `keepVersions`. It needs no waiting: a request for a forgotten version is
  // refused from the moment the floor is raised.
  #retain(id: PaxosInstanceId): void {
    if (this.#keep === null) return;
    const floor = id.Ver - this.#keep + 1n;
    if (floor <= this.#store.latest(id.Key).Floor) return;
    this.#store.compact(id.Key, floor).catch((e) =>
      this.#onError(
        `cannot compact ${JSON.stringify(id.Key)} below ${floor}: ${(e as Error).message}`,
      )
    );
  }

  /**
   * Serves one request by its operation name. This makes an acceptor usable
   * in-process wherever a proposer expects an `AcceptorClient`.
   */
  request(op: Op, r: Proposer, caller?: Caller): Promise<Acceptor> {
    return op === "Prepare" ? this.prepare(r, caller) : this.accept(r, caller);
  }

  // `then()` once both writes are stored: at once when neither has to wait
  // (a store that writes in memory), or else a promise of it. Both are
  // awaited even when one fails, so no failure goes unhandled; a failure is
  // a StorageError, and nothing is acknowledged.
  #afterWrites<T>(a: Written, b: Written, then: () => T): T | Promise<T> {
    if (a === undefined && b === undefined) return then();
    return Promise.all([a, b]).then(then, (e) => {
      throw new AcceptorError("StorageError", (e as Error).message, this.name);
    });
  }

  // Runs `fn` on the state of instance `id` once the request of its key that
  // waits for a write is done, so that a reply never reflects a state that
  // is not stored yet. With nothing waiting, it runs at once; a request that
  // waits for its store's write makes the key's later requests wait, and
  // they are then served in turn by peer.
  #withKey<T>(
    id: PaxosInstanceId,
    caller: Caller | undefined,
    fn: (state: Acceptor, held: boolean) => T | Promise<T>,
  ): Promise<T> {
    return this.#inTurn(id.Key, caller, () => this.#serve(id, fn));
  }

  // Whether a request of `caller` on `key` would be refused for the queue.
  #queueFull(key: string, caller: Caller | undefined): boolean {
    const q = this.#queues.get(key);
    if (q === undefined) return false;
    const mine = q.peers?.get(caller?.peer ?? IN_PROCESS)?.length ?? 0;
    return q.size >= this.#maxQueued || mine >= this.#maxPerPeer;
  }

  // Runs `serve` in the turn of `key` (see #withKey).
  #inTurn<T>(
    key: string,
    caller: Caller | undefined,
    serve: () => T | Promise<T>,
  ): Promise<T> {
    const q = this.#queues.get(key);
    if (q === undefined) {
      let out: T | Promise<T>;
      try {
        out = serve();
      } catch (e) {
        return Promise.reject(e);
      }
      if (!(out instanceof Promise)) return Promise.resolve(out);
      const queue: KeyQueue = { size: 0, peers: null };
      this.#queues.set(key, queue);
      const next = () => this.#next(key, queue);
      out.then(next, next);
      return out;
    }
    const peer = caller?.peer ?? IN_PROCESS;
    const mine = q.peers?.get(peer);
    if (q.size >= this.#maxQueued) return Promise.reject(this.#refusals.key);
    if ((mine?.length ?? 0) >= this.#maxPerPeer) return Promise.reject(this.#refusals.peer);
    return new Promise<T>((resolve, reject) => {
      // Serves the request; returns its write when it has to wait for it.
      const job = (): Promise<unknown> | undefined => {
        let out: T | Promise<T>;
        try {
          out = serve();
        } catch (e) {
          reject(e);
          return undefined;
        }
        if (!(out instanceof Promise)) return void resolve(out);
        out.then(resolve, reject);
        return out;
      };
      if (mine === undefined) (q.peers ??= new Map()).set(peer, [job]);
      else mine.push(job);
      q.size++;
      this.#waiting++;
    });
  }

  // Serves the key's waiting requests, the next peer's first, until one has
  // to wait for its write (then again when that is done) or none is left.
  #next(key: string, q: KeyQueue): void {
    for (;;) {
      const peers = q.peers;
      const turn = peers?.entries().next();
      if (peers === null || turn === undefined || turn.done) {
        this.#queues.delete(key);
        return;
      }
      const [peer, jobs] = turn.value;
      const job = jobs.shift()!;
      q.size--;
      this.#waiting--;
      // This peer goes to the back of the line.
      peers.delete(peer);
      if (jobs.length > 0) peers.set(peer, jobs);
      const writing = job();
      if (writing !== undefined) {
        const next = () => this.#next(key, q);
        writing.then(next, next);
        return;
      }
    }
  }

  // Runs `fn` on the stored state of `id` (and whether the store holds one);
  // a version below the key's floor was forgotten, and is refused.
  #serve<T>(id: PaxosInstanceId, fn: (state: Acceptor, held: boolean) => T): T {
    const floor = this.#store.latest(id.Key).Floor;
    if (floor > 0n && id.Ver < floor) {
      throw new AcceptorError(
        "Compacted",
        `${JSON.stringify(id.Key)}@${id.Ver} was compacted: versions of ${
          JSON.stringify(id.Key)
        } below ${floor} are no longer kept`,
        this.name,
      );
    }
    const state = this.#store.get(id);
    return fn(state ?? EMPTY_ACCEPTOR, state !== undefined);
  }
}

function positive(name: string, v: number | undefined, otherwise: number): number {
  if (v === undefined) return otherwise;
  if (!(Number.isSafeInteger(v) && v > 0)) {
    throw new RangeError(`${name} must be a positive integer, got ${v}`);
  }
  return v;
}

// The kv extension's promise for the next version: whether it was made, and
// the store's write of it (none when nothing had to be written).
interface NextPromise {
  readonly made: boolean;
  readonly written: Written;
}
const NO_NEXT: NextPromise = { made: false, written: undefined };
const NEXT_HELD: NextPromise = { made: true, written: undefined };
