/**
 * The errors that cross layers: the codes an acceptor answers with, the
 * error a proposer gets when an acceptor refuses a request, and the error a
 * phase of Paxos ends with when it cannot gather a quorum.
 *
 * They live below the codec, the transport, the acceptor and the proposer,
 * so that each of those can throw or catch them without importing another.
 *
 * @module
 */

/**
 * The codes of an `Err` reply (docs/protocol.md, "Errors"):
 *
 * - `BadRequest`: a field is missing or of the wrong type;
 * - `UnknownOp`: an operation this acceptor does not serve;
 * - `TooLarge`: a key or value over its size limit;
 * - `StorageError`: the store could not record the change;
 * - `Compacted`: the version is older than the acceptor keeps (kv extension);
 * - `BallotTooFar`: the ballot is more than `MAX_BALLOT_STEP` above the
 *   acceptor's promise; a proposer gets there in steps;
 * - `Unauthorized`: the peer has not proved it knows the cluster's shared
 *   secret (trust extension); the connection is closed;
 * - `QuotaExceeded`: the write would grow the acceptor's data past its quota
 *   (`--quota-bytes`); nothing was applied. Reads, deletes and compaction
 *   still work, and an operator frees space or raises the quota;
 * - `StaleMembership`: the client uses an older membership than the
 *   acceptor's (membership extension); the message names the current one,
 *   and the connection is closed;
 * - `Overloaded`: the acceptor would not serve the request now (too much is
 *   waiting on its key or its connection); nothing was applied, and asking
 *   again later may succeed;
 * - `Internal`: a bug in the acceptor, or a code this client does not know.
 */
export type ErrorCode =
  | "BadRequest"
  | "UnknownOp"
  | "TooLarge"
  | "StorageError"
  | "Compacted"
  | "BallotTooFar"
  | "Overloaded"
  | "QuotaExceeded"
  | "Unauthorized"
  | "StaleMembership"
  | "Internal";

/** Every {@link ErrorCode}, in the order the type lists them. */
export const ALL_ERROR_CODES: readonly ErrorCode[] = [
  "BadRequest",
  "UnknownOp",
  "TooLarge",
  "StorageError",
  "Compacted",
  "BallotTooFar",
  "Overloaded",
  "QuotaExceeded",
  "Unauthorized",
  "StaleMembership",
  "Internal",
];
const ERROR_CODES: ReadonlySet<string> = new Set(ALL_ERROR_CODES);

/**
 * Tells whether a string is one of the {@link ErrorCode}s.
 *
 * @example
 * ```ts
 * import { isErrorCode } from "./errors.ts";
 * isErrorCode("Compacted"); // true
 * isErrorCode("Oops"); // false
 * ```
 */
export function isErrorCode(s: string): s is ErrorCode {
  return ERROR_CODES.has(s);
}

// The codes after which asking again cannot help: the request itself is
// refused (it is malformed, too large, for a forgotten version, or would
// grow an acceptor's data past its quota until an operator acts).
const FINAL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "Compacted",
  "QuotaExceeded",
  "BadRequest",
  "TooLarge",
  "UnknownOp",
  "StaleMembership",
]);

/**
 * An acceptor refused a request: it answered with an `Err` reply, or (in
 * process) threw it. `code` says why; the request changed nothing.
 *
 * @example
 * ```ts
 * import { AcceptorError } from "./errors.ts";
 * const e = new AcceptorError("StorageError", "disk full", "ws://127.0.0.1:3333/paxos");
 * e.code; // "StorageError"
 * e.isFinal; // false: another try may succeed
 * ```
 */
export class AcceptorError extends Error {
  /** Why the acceptor refused. */
  readonly code: ErrorCode;
  /** The acceptor's own explanation, without the acceptor's name. */
  readonly detail: string;
  /** Builds the error from the acceptor's code and message, and its name. */
  constructor(code: ErrorCode, detail: string, acceptor: string) {
    super(`${acceptor} answered ${code}: ${detail}`);
    this.name = "AcceptorError";
    this.code = code;
    this.detail = detail;
  }

  /** Whether retrying the same request cannot help (see {@link ErrorCode}). */
  get isFinal(): boolean {
    return FINAL_CODES.has(this.code);
  }
}

/**
 * Whether `e` is an acceptor's refusal of a client of an older membership
 * (`StaleMembership`): its connections are closed, and the client must
 * learn the newer membership.
 *
 * @example
 * ```ts
 * import { AcceptorError, isStaleMembership } from "./errors.ts";
 * isStaleMembership(new AcceptorError("StaleMembership", "epoch 2 > 1", "a")); // true
 * isStaleMembership(new AcceptorError("Compacted", "below 4", "a")); // false
 * ```
 */
export function isStaleMembership(e: unknown): e is AcceptorError {
  return e instanceof AcceptorError && e.code === "StaleMembership";
}

/**
 * A client refused to talk to acceptors, or an acceptor to a client, because
 * they do not belong together: a wrong or missing shared secret, acceptors of
 * different clusters, a list of acceptors that is not the membership, one
 * acceptor listed twice, a member that came back without its state. The
 * message names the acceptors and says what to do.
 *
 * @example
 * ```ts
 * import { TrustError } from "./errors.ts";
 * const e = new TrustError("ws://10.0.0.1:3333/paxos does not know the shared secret");
 * e.name; // "TrustError"
 * ```
 */
export class TrustError extends Error {
  /** Builds the error with a message naming who and what. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TrustError";
  }
}

/**
 * A phase could not gather a quorum of acceptors that accept its ballot:
 * the seed's `NotEnoughQuorum`. From a whole Paxos run it means that no
 * value was chosen before the deadline. When an acceptor refused the request
 * outright, its {@link AcceptorError} is the `cause`.
 *
 * @example
 * ```ts
 * import { NotEnoughQuorumError } from "./errors.ts";
 * const e = new NotEnoughQuorumError("not enough quorum: 1 of 2");
 * e instanceof Error; // true
 * ```
 */
export class NotEnoughQuorumError extends Error {
  /** Builds the error with a message saying what was missing. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NotEnoughQuorumError";
  }
}

/** The network failures the transport reports, by the name of Deno's error class. */
export type NetErrorKind =
  | "NotConnected"
  | "ConnectionRefused"
  | "ConnectionReset"
  | "TimedOut";

/**
 * A network failure as Deno reports it (`Deno.errors.TimedOut`, ...), or,
 * where there is no `Deno` (a browser page running the proposer), a plain
 * Error whose `name` is the kind.
 *
 * @example
 * ```ts
 * import { netError } from "./errors.ts";
 * const e = netError("TimedOut", "no reply within 1000 ms");
 * e.name; // "TimedOut"
 * ```
 */
export function netError(kind: NetErrorKind, message: string): Error {
  const deno = (globalThis as unknown as {
    Deno?: { errors: Record<NetErrorKind, new (message: string) => Error> };
  }).Deno;
  if (deno !== undefined) return new deno.errors[kind](message);
  const e = new Error(message);
  e.name = kind;
  return e;
}
