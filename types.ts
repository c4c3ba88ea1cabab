/**
 * The Paxos data structures, mirroring the seed's `paxoskv.proto` field for
 * field (the names are the wire's map keys, see docs/protocol.md), and the seed's
 * ballot comparison `GE`.
 *
 * Every int64 of the proto is a `bigint` here, so that values beyond 2^53
 * survive exactly.
 *
 * @module
 */

/**
 * A ballot number: a monotonically growing `N` made unique by the proposer's
 * id. A ballot that was never set is `{N: 0n, ProposerId: 0n}`.
 *
 * @example
 * ```ts
 * import type { BallotNum } from "./types.ts";
 * const bal: BallotNum = { N: 1n, ProposerId: 10n };
 * ```
 */
export interface BallotNum {
  /** The round number; a proposer retries with a higher one. */
  readonly N: bigint;
  /** The id of the proposer that owns this ballot, unique among proposers. */
  readonly ProposerId: bigint;
}

/**
 * Any value MessagePack can carry, as it looks in JavaScript after decoding:
 * integers beyond 32 bits arrive as `bigint`, binary as `Uint8Array`.
 */
export type DataValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly DataValue[]
  | { readonly [key: string]: DataValue };

/**
 * The value part of a record. The seed's only field is `Vi64`; our extension
 * `Data` carries any MessagePack value, and the kv extension's `Del` marks a
 * version that deletes its key (a tombstone). A Value holds exactly one of
 * the three. The kv extension may add `Wid`, the id of the write that
 * proposed it, so that a writer can tell its own write from an equal one.
 *
 * @example
 * ```ts
 * import type { Value } from "./types.ts";
 * const a: Value = { Vi64: 5n };
 * const b: Value = { Data: "hello" };
 * const c: Value = { Del: true, Wid: 42n };
 * ```
 */
export type Value =
  & ({ readonly Vi64: bigint } | { readonly Data: DataValue } | { readonly Del: true })
  & { readonly Wid?: bigint };

/**
 * Which Paxos instance a request is for: one instance decides one version of
 * one key.
 */
export interface PaxosInstanceId {
  /** The key of the record. */
  readonly Key: string;
  /** The version of the record this instance decides. */
  readonly Ver: bigint;
}

/**
 * The state of an acceptor for one instance; also the reply to Prepare and
 * Accept (an Accept reply carries only `LastBal`).
 */
export interface Acceptor {
  /** The highest ballot this acceptor has promised (seen in a request). */
  readonly LastBal: BallotNum;
  /** The value this acceptor voted for, or null when it has not voted. */
  readonly Val: Value | null;
  /** The ballot at which it voted for `Val`. */
  readonly VBal: BallotNum;
  /**
   * kv extension, in an Accept reply: the acceptor also promised the
   * request's ballot for the next version (see {@link Proposer.Next}).
   */
  readonly NextOk?: true;
}

/**
 * The state of a proposer for one instance; also the request of Prepare and
 * Accept (Prepare ignores `Val`).
 */
export interface Proposer {
  /** The instance this proposer runs on. */
  readonly Id: PaxosInstanceId;
  /** The proposer's ballot. */
  readonly Bal: BallotNum;
  /** The value it proposes in phase 2; null in phase 1. */
  readonly Val: Value | null;
  /**
   * kv extension, on an Accept: if the acceptor votes, it also promises
   * `Bal` for version `Ver + 1` when nobody has touched that version yet,
   * and says so with `NextOk`. A proposer that gets this from a majority has
   * done phase 1 of the next version already.
   */
  readonly Next?: true;
}

/** The two requests of Paxos that an acceptor serves. */
export type Op = "Prepare" | "Accept";

/** What a store knows of the versions of one key. */
export interface KeyVersions {
  /** The highest version of the key voted in, or -1n. */
  readonly Ver: bigint;
  /** The lowest version still kept: versions below were compacted away. */
  readonly Floor: bigint;
}

/**
 * The reply to the kv extension's `Latest` request: what an acceptor knows of
 * the versions of one key, and its vote in the highest of them. When a
 * majority reports the same vote there, that version is chosen and a reader
 * needs nothing more.
 */
export interface LatestReply extends KeyVersions {
  /** The vote at version `Ver` (null when `Ver` is -1n). */
  readonly Val: Value | null;
  /** The ballot of that vote. */
  readonly VBal: BallotNum;
  /**
   * kv extension, when the request carried a ballot (`Bal`): the promise
   * this acceptor held at version `Ver + 1` before the request, as a
   * Prepare at `Bal` there would have replied it (there is never a vote
   * there: `Ver` is the highest version voted in). `Bal` was promised there
   * when it is at least `NextBal`. Absent when the acceptor did not serve
   * that Prepare (it does not know the field, or `Ver + 1` is out of reach).
   */
  readonly NextBal?: BallotNum;
}

/**
 * The reply to the kv extension's `Keys` request: a page of the keys an
 * acceptor holds any state for, ascending.
 */
export interface KeysReply {
  /** The keys of this page, ascending (JavaScript string order). */
  readonly Keys: readonly string[];
  /** Whether keys within the asked range remain after this page. */
  readonly More: boolean;
}

/** Smallest int64, the lower bound of every int64 field. */
export const INT64_MIN: bigint = -(2n ** 63n);
/** Largest int64, the upper bound of every int64 field. */
export const INT64_MAX: bigint = 2n ** 63n - 1n;
/**
 * Tells whether an integer fits an int64 field.
 *
 * @example
 * ```ts
 * import { isInt64 } from "./types.ts";
 * isInt64(2n ** 63n - 1n); // true
 * isInt64(2n ** 63n); // false
 * ```
 */
export function isInt64(n: bigint): boolean {
  return n >= INT64_MIN && n <= INT64_MAX;
}

/**
 * The ballot that was never set: `{N: 0n, ProposerId: 0n}`.
 */
export const ZERO_BALLOT: BallotNum = Object.freeze({ N: 0n, ProposerId: 0n });

/**
 * The ballot a first write votes at (kv extension, `Latest` with `Val`):
 * `N` 0, under every ballot a Prepare or Accept uses, and the write's own
 * `ProposerId`. These "round 0" votes follow Fast Paxos's rule rather than
 * the seed's: such a vote chooses its value only when every acceptor holds
 * it (a majority is not enough), because each acceptor casts at most one,
 * and only in a key it holds nothing of. So a later Phase1 that adopts the
 * highest vote it finds stays safe: a value chosen at round 0 is the only
 * round-0 vote any acceptor holds.
 *
 * @example
 * ```ts
 * import { firstWriteBallot, isFirstWriteBallot } from "./types.ts";
 * const b = firstWriteBallot({ N: 1n, ProposerId: 7n }); // { N: 0n, ProposerId: 7n }
 * isFirstWriteBallot(b); // true
 * ```
 */
export function firstWriteBallot(bal: BallotNum): BallotNum {
  return { N: 0n, ProposerId: bal.ProposerId };
}

/**
 * Whether a vote's ballot is a first write's ({@link firstWriteBallot}):
 * then a quorum of votes at it does not make it chosen, only all the
 * acceptors' do.
 */
export function isFirstWriteBallot(b: BallotNum): boolean {
  return b.N === 0n && b.ProposerId !== 0n;
}

/**
 * The value that `replies`, a quorum's `Latest` replies (kv extension),
 * show chosen at their top version without another round trip: when each
 * holds a vote there at one same ballot. For a first write's round-0
 * ballot that needs the replies of all `acceptors`. Otherwise null (which
 * says nothing: a read must look).
 *
 * @example
 * ```ts
 * import { chosenAtTop } from "./types.ts";
 * const r = { Ver: 0n, Floor: 0n, Val: { Vi64: 1n }, VBal: { N: 1n, ProposerId: 2n } };
 * chosenAtTop([r, r], 3)?.Vi64; // 1n
 * chosenAtTop([r, { ...r, VBal: { N: 0n, ProposerId: 2n } }], 3); // null
 * ```
 */
export function chosenAtTop(replies: readonly LatestReply[], acceptors: number): Value | null {
  const first = replies[0];
  if (first === undefined || first.Val === null || first.Ver < 0n) return null;
  for (const r of replies) {
    if (r.Ver !== first.Ver || r.Val === null || !ballotEquals(r.VBal, first.VBal)) return null;
  }
  if (isFirstWriteBallot(first.VBal) && replies.length < acceptors) return null;
  return first.Val;
}

/**
 * GE compares two ballots and tells whether `a >= b`: first by `N`, then by
 * `ProposerId`. This order is what lets a later proposer override an earlier
 * one.
 *
 * @example
 * ```ts
 * import { GE } from "./types.ts";
 * GE({ N: 2n, ProposerId: 1n }, { N: 1n, ProposerId: 9n }); // true
 * GE({ N: 1n, ProposerId: 1n }, { N: 1n, ProposerId: 2n }); // false
 * ```
 */
export function GE(a: BallotNum, b: BallotNum): boolean {
  if (a.N > b.N) return true;
  if (a.N < b.N) return false;
  return a.ProposerId >= b.ProposerId;
}

/**
 * The most a request may raise an acceptor's promised `N` at once (2^48).
 * An acceptor refuses a ballot further above its promise (`Err`
 * `BallotTooFar`), and a proposer raises its own `N` by at most this much
 * per round, so that no single message can take a key's ballots out of the
 * reach of correct proposers, or to the end of int64.
 */
export const MAX_BALLOT_STEP: bigint = 2n ** 48n;

/**
 * Tells whether two ballots are the same ballot.
 *
 * @example
 * ```ts
 * import { ballotEquals } from "./types.ts";
 * ballotEquals({ N: 1n, ProposerId: 2n }, { N: 1n, ProposerId: 2n }); // true
 * ```
 */
export function ballotEquals(a: BallotNum, b: BallotNum): boolean {
  return a.N === b.N && a.ProposerId === b.ProposerId;
}

/**
 * Renders a ballot for messages and logs, as `(N,ProposerId)`.
 *
 * @example
 * ```ts
 * import { formatBallot } from "./types.ts";
 * formatBallot({ N: 3n, ProposerId: 10n }); // "(3,10)"
 * ```
 */
export function formatBallot(b: BallotNum): string {
  return `(${b.N},${b.ProposerId})`;
}

/** The fresh state of an acceptor for an instance it has never seen. */
export const EMPTY_ACCEPTOR: Acceptor = Object.freeze({
  LastBal: ZERO_BALLOT,
  Val: null,
  VBal: ZERO_BALLOT,
});
