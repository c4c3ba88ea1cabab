/**
 * The command line's exit statuses, and how a failure that stops a command
 * becomes one line on stderr and its status.
 *
 * @module
 */
import { AcceptorError, NotEnoughQuorumError, TrustError } from "../errors.ts";
import { CompactedError, NotFoundError, UnknownOutcomeError, VersionConflictError } from "../kv.ts";
import type { CliIo } from "./io.ts";

/** Exit status of a command that could not do its work. */
export const EXIT_FAILURE = 1;
/** Exit status of a command line that is wrong: unknown command or option, bad argument. */
export const EXIT_USAGE = 2;
/** Exit status of `get KEY` and `delete KEY` when the key has no value: never written, or deleted. */
export const EXIT_NOT_FOUND = 3;
/** Exit status of a conditional write (`--if-ver`, `--if-absent`) that found another version. */
export const EXIT_CONFLICT = 4;
/** Exit status when the version asked for is compacted (acceptors run with `--keep-versions`). */
export const EXIT_COMPACTED = 5;
/**
 * Exit status when a client and the acceptors do not belong together: a
 * wrong or missing secret, an untrusted certificate, acceptors of different
 * clusters, a list that is not exactly the membership, a member that came
 * back without its state.
 */
export const EXIT_REFUSED = 6;

/**
 * A command line the CLI cannot run; reported as one line, exit status
 * {@link EXIT_USAGE}.
 */
export class UsageError extends Error {
  /** Builds the error; the message says what is wrong, naming the argument. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Reports what stopped a command as one line on stderr and returns its exit
 * status; throws what is not a known failure (a bug).
 */
export function reportFailure(e: unknown, io: CliIo): number {
  const status = e instanceof VersionConflictError
    ? EXIT_CONFLICT
    : e instanceof NotFoundError
    ? EXIT_NOT_FOUND
    : e instanceof CompactedError
    ? EXIT_COMPACTED
    : e instanceof TrustError
    ? EXIT_REFUSED
    : e instanceof NotEnoughQuorumError || e instanceof AcceptorError ||
        e instanceof UnknownOutcomeError ||
        // What the KV cannot do with this key (no version left above the last int64).
        e instanceof RangeError
    ? EXIT_FAILURE
    : undefined;
  if (status === undefined) throw e;
  io.err(`paxoskv: ${(e as Error).message}`);
  return status;
}

/** The message of anything thrown. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
