/**
 * The proposer: the seed's `Phase1`, `Phase2` and `RunPaxos`.
 *
 * Requests go to every acceptor in parallel, and a phase returns as soon as a
 * quorum has answered (or as soon as a quorum can no longer answer), so a dead
 * or slow acceptor costs at most its request timeout.
 *
 * @module
 */
import type { Acceptor, BallotNum, PaxosInstanceId, Proposer, Value } from "./types.ts";
import {
  formatBallot,
  GE,
  INT64_MAX,
  isFirstWriteBallot,
  MAX_BALLOT_STEP,
  ZERO_BALLOT,
} from "./types.ts";
import { AcceptorError, isStaleMembership, NotEnoughQuorumError } from "./errors.ts";
import type { AcceptorClient } from "./transport.ts";
import {
  askQuorum,
  majority,
  quorumNeed,
  quorumOf,
  type QuorumOutcome,
  type QuorumSystem,
} from "./quorum.ts";
import type { Clock, Random } from "./clock.ts";
import { backoff, mathRandom, systemClock } from "./clock.ts";
import type { Tracer } from "./trace.ts";

/**
 * What {@link PaxosProposer.phase1} found, as the seed's three return
 * values: on success `err` and `higherBal` are null; on failure `err` says
 * why and `higherBal` is the highest ballot seen (at least the proposer's
 * own).
 */
export type Phase1Result =
  | {
    /** The value voted at the highest ballot among the quorum, or null. */
    readonly latestVal: Value | null;
    readonly higherBal: null;
    readonly err: null;
  }
  | {
    readonly latestVal: null;
    /** The highest ballot seen, to retry above. */
    readonly higherBal: BallotNum;
    /** Why the phase failed. */
    readonly err: NotEnoughQuorumError;
  };

/**
 * What {@link PaxosProposer.phase2} found, as the seed's two return values:
 * on success both are null; on failure `err` says why and `higherBal` is
 * the highest ballot seen (at least the proposer's own).
 */
export type Phase2Result =
  | {
    readonly higherBal: null;
    readonly err: null;
    /**
     * kv extension: with `promiseNext`, whether the quorum also promised
     * this ballot for the next version, with nothing voted there.
     */
    readonly nextPromised?: boolean;
  }
  | {
    /** The highest ballot seen, to retry above. */
    readonly higherBal: BallotNum;
    /** Why the phase failed. */
    readonly err: NotEnoughQuorumError;
  };

/** Options of {@link PaxosProposer.phase1}. */
export interface PhaseOptions {
  /** Clock time at which the phase gives up (default: it waits for every reply or timeout). */
  readonly deadline?: number;
}

/** Options of {@link PaxosProposer.phase2}. */
export interface Phase2Options extends PhaseOptions {
  /**
   * kv extension: ask the acceptors to promise this ballot for version
   * `Ver + 1` too (`Next`), so that the next write of the key can skip
   * phase 1.
   */
  readonly promiseNext?: boolean;
  /**
   * Called once for each acceptor that refuses to vote (it promised a
   * higher ballot), also for replies that arrive after phase 2 returned:
   * when every acceptor refused, none of them holds `Val`.
   */
  readonly onRefused?: () => void;
}

/** Options of a {@link PaxosProposer}. */
export interface ProposerOptions {
  /** Time source for deadlines and backoff (default: the system clock). */
  readonly clock?: Clock;
  /** Randomness for backoff (default: Math.random). */
  readonly random?: Random;
  /**
   * Told when a phase reaches its quorum or fails, when the ballot is
   * raised and when the proposer backs off (see trace.ts; wrap the
   * acceptors with `traceAcceptors` to see each message too). Default: none,
   * at no cost.
   */
  readonly tracer?: Tracer | undefined;
}

/** Options of {@link PaxosProposer.runPaxos}. */
export interface RunPaxosOptions extends Omit<Phase2Options, "deadline"> {
  /** Give up with a {@link NotEnoughQuorumError} after this many ms (default 10000). */
  readonly deadlineMs?: number;
  /** Longest backoff between two rounds, in ms (default 100). */
  readonly maxBackoffMs?: number;
  /**
   * Which acceptors make a quorum (default: a majority of them); while the
   * membership changes, a joint one (`jointMajority` of quorum.ts).
   */
  readonly quorum?: QuorumSystem;
}

/**
 * A proposer for one Paxos instance. Its public fields are the seed's
 * `Proposer` message: the instance `Id`, its ballot `Bal`, and the value
 * `Val` it proposes in phase 2.
 *
 * @example
 * ```ts
 * import { PaxosAcceptor } from "./acceptor.ts";
 * import { PaxosProposer } from "./proposer.ts";
 * const acceptors = [new PaxosAcceptor(), new PaxosAcceptor(), new PaxosAcceptor()];
 * const p = new PaxosProposer({ Id: { Key: "foo", Ver: 0n }, Bal: { N: 0n, ProposerId: 2n } });
 * await p.runPaxos(acceptors, { Vi64: 5n }); // { Vi64: 5n }
 * ```
 */
export class PaxosProposer {
  /** The instance this proposer decides. */
  Id: PaxosInstanceId;
  /** The ballot it runs with; raised above any higher ballot it meets. */
  Bal: BallotNum;
  /** The value it proposes in phase 2. */
  Val: Value | null;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #tracer: Tracer | undefined;
  #nextPromised = false;

  /** Builds a proposer from its state (`Val` defaults to null). */
  constructor(
    state: { Id: PaxosInstanceId; Bal: BallotNum; Val?: Value | null },
    opts: ProposerOptions = {},
  ) {
    this.Id = state.Id;
    this.Bal = state.Bal;
    this.Val = state.Val ?? null;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? mathRandom;
    this.#tracer = opts.tracer;
  }

  /**
   * RunPaxos runs phase 1 and phase 2 until a value is chosen, and returns
   * it: the caller's `val`, or a value some proposer got voted before, which
   * must then be chosen instead.
   *
   * With `val` null it reads: it returns null when phase 1 finds no voted
   * value, and otherwise finishes phase 2 with the voted value, so that what
   * it returns is chosen and stays chosen.
   *
   * When a phase fails it retries with a ballot above the highest it saw,
   * after a short random backoff so that dueling proposers stop dueling.
   * Throws a {@link NotEnoughQuorumError} when no value is chosen before the
   * deadline, and an acceptor's {@link AcceptorError} at once when retrying
   * cannot help (the instance was compacted, the request is refused).
   *
   * A ballot (`N`, `ProposerId`) must never be used twice with different
   * values: give every proposer its own `ProposerId`.
   */
  async runPaxos(
    acceptors: readonly AcceptorClient[],
    val: Value | null,
    opts: RunPaxosOptions = {},
  ): Promise<Value | null> {
    const quorum = opts.quorum ?? quorumOf(acceptors.length);
    const deadlineMs = opts.deadlineMs ?? 10_000;
    const deadline = this.#clock.now() + deadlineMs;
    const maxBackoffMs = opts.maxBackoffMs ?? 100;
    this.#nextPromised = false;

    for (let round = 1;; round++) {
      this.Val = null;

      const p1 = await this.phase1(acceptors, quorum, { deadline });
      if (p1.err !== null) {
        this.#raiseAbove(p1.higherBal);
        await this.#backoff(round, deadline, deadlineMs, maxBackoffMs, p1.err);
        continue;
      }
      // A voted value must be proposed again: it may already be chosen.
      if (p1.latestVal !== null) val = p1.latestVal;
      if (val === null) return null; // a read that found nothing voted

      this.Val = val;
      const p2 = await this.phase2(acceptors, quorum, { ...opts, deadline });
      if (p2.err === null) {
        this.#nextPromised = p2.nextPromised === true;
        return this.Val;
      }
      this.#raiseAbove(p2.higherBal);
      await this.#backoff(round, deadline, deadlineMs, maxBackoffMs, p2.err);
    }
  }

  /**
   * kv extension: whether the phase 2 that ended the last
   * {@link PaxosProposer.runPaxos} (run with `promiseNext`) also got a
   * quorum's promise of `Bal` for the next version.
   */
  get nextPromised(): boolean {
    return this.#nextPromised;
  }

  /**
   * Looks for a value that is already chosen, without changing any state:
   * a Prepare at the zero ballot (which promises nothing) to every acceptor.
   * When a quorum reports a vote at one same ballot, that vote's value is
   * chosen, and it is returned; otherwise (or when too few answer) null,
   * which says nothing: run {@link PaxosProposer.runPaxos} to know.
   */
  async peekChosen(
    acceptors: readonly AcceptorClient[],
    quorum: QuorumSystem = majority(acceptors.length),
  ): Promise<Value | null> {
    const req: Proposer = { Id: this.Id, Bal: ZERO_BALLOT, Val: null };
    const out = await askQuorum(acceptors, (a) => a.request("Prepare", req), {
      need: quorum,
      clock: this.#clock,
      // Only votes count, and only a quorum of votes at one ballot (not a
      // first write's round-0 ballot: only every acceptor's votes choose it).
      judge: (rep) =>
        rep.Val === null
          ? "no vote"
          : isFirstWriteBallot(rep.VBal)
          ? "a first write's vote (chosen only by every acceptor's)"
          : true,
      groupOf: (rep) => formatBallot(rep.VBal),
    });
    this.#tracer?.event({
      kind: "quorum",
      phase: "Peek",
      key: this.Id.Key,
      ver: this.Id.Ver,
      ok: out.ok,
      count: out.replies.length,
      need: quorumOf(acceptors.length),
    });
    return out.ok ? out.replies[0]!.Val : null;
  }

  /**
   * Phase1 sends Prepare to the acceptors. It succeeds when a quorum replied
   * with a last ballot not above ours (they promised ours), and returns the
   * value voted at the highest ballot among them, or null. Otherwise it
   * returns the highest ballot seen and a {@link NotEnoughQuorumError}.
   */
  async phase1(
    acceptors: readonly AcceptorClient[],
    quorum: number | QuorumSystem,
    opts: PhaseOptions = {},
  ): Promise<Phase1Result> {
    const bal = this.Bal;
    let higherBal = bal;
    let maxVoted: Acceptor | null = null;
    const req: Proposer = { Id: this.Id, Bal: bal, Val: null };
    const out = await askQuorum(acceptors, (a) => a.request("Prepare", req), {
      need: quorum,
      deadline: opts.deadline ?? Infinity,
      clock: this.#clock,
      judge: (rep, from) => {
        // The seed's counting rule: a reply whose last ballot is above ours
        // promised a higher ballot; remember the highest, to retry above it.
        if (!GE(bal, rep.LastBal)) {
          if (GE(rep.LastBal, higherBal)) higherBal = rep.LastBal;
          return `${from} has promised ${formatBallot(rep.LastBal)}`;
        }
        // Any other reply promised ours: it counts. Keep the value voted at
        // the highest ballot among them.
        if (rep.Val !== null && (maxVoted === null || GE(rep.VBal, maxVoted.VBal))) maxVoted = rep;
        return true;
      },
    });
    this.#tracer?.event({
      kind: "quorum",
      phase: "Phase1",
      key: this.Id.Key,
      ver: this.Id.Ver,
      bal,
      ok: out.ok,
      count: out.replies.length,
      need: quorumNeed(quorum),
    });
    if (!out.ok) {
      return {
        latestVal: null,
        higherBal,
        err: this.#notEnough("Prepare", acceptors.length, quorum, out),
      };
    }
    return { latestVal: (maxVoted as Acceptor | null)?.Val ?? null, higherBal: null, err: null };
  }

  /**
   * Phase2 sends Accept with `Val` to the acceptors. It succeeds when a
   * quorum replied with a last ballot not above ours (they voted for `Val`).
   * Otherwise it returns the highest ballot seen and a
   * {@link NotEnoughQuorumError}.
   */
  async phase2(
    acceptors: readonly AcceptorClient[],
    quorum: number | QuorumSystem,
    opts: Phase2Options = {},
  ): Promise<Phase2Result> {
    if (this.Val === null) throw new TypeError("phase2 needs a value to propose: Val is null");
    const bal = this.Bal;
    let higherBal = bal;
    const next = opts.promiseNext === true;
    const req: Proposer = { Id: this.Id, Bal: bal, Val: this.Val, ...(next ? { Next: true } : {}) };
    const out = await askQuorum(acceptors, (a) => a.request("Accept", req), {
      need: quorum,
      deadline: opts.deadline ?? Infinity,
      clock: this.#clock,
      judge: (rep, from) => {
        // The seed's counting rule, as in phase 1: a higher last ballot
        // refused our value; any other reply voted for it.
        if (!GE(bal, rep.LastBal)) {
          if (GE(rep.LastBal, higherBal)) higherBal = rep.LastBal;
          return `${from} has promised ${formatBallot(rep.LastBal)}`;
        }
        return true;
      },
      // Refusals are told also after the phase returned.
      onReply: (rep) => {
        if (!GE(bal, rep.LastBal)) opts.onRefused?.();
      },
    });
    this.#tracer?.event({
      kind: "quorum",
      phase: "Phase2",
      key: this.Id.Key,
      ver: this.Id.Ver,
      bal,
      ok: out.ok,
      count: out.replies.length,
      need: quorumNeed(quorum),
    });
    if (!out.ok) {
      return { higherBal, err: this.#notEnough("Accept", acceptors.length, quorum, out) };
    }
    if (!next) return { higherBal: null, err: null };
    const promised = out.from.filter((_, i) => out.replies[i]!.NextOk === true);
    const nextPromised = typeof quorum === "number"
      ? promised.length >= quorum
      : quorum.isQuorum(promised);
    return { higherBal: null, err: null, nextPromised };
  }

  #notEnough(
    op: string,
    acceptorsCount: number,
    quorum: number | QuorumSystem,
    out: QuorumOutcome<Acceptor>,
  ): NotEnoughQuorumError {
    // An acceptor that refused the request outright: retrying cannot help.
    // Except a member refusing as stale while the acceptors that did not
    // fail (they answered, lost to a higher ballot, or are still to answer)
    // could make a quorum: a new member that missed the joint configuration
    // serves nothing yet, and a retry with the others can succeed.
    const failed = new Set(out.errorsFrom);
    const rest = Array.from({ length: acceptorsCount }, (_, i) => i).filter((i) => !failed.has(i));
    const staleOnly = out.errors.some(isStaleMembership) &&
      (typeof quorum === "number" ? rest.length >= quorum : quorum.isQuorum(rest));
    const cause = out.errors.findLast((e) =>
      e instanceof AcceptorError && e.isFinal && !(staleOnly && e.code === "StaleMembership")
    );
    return new NotEnoughQuorumError(
      `not enough quorum for ${op} of ${JSON.stringify(this.Id.Key)}@${this.Id.Ver} at ballot ` +
        `${
          formatBallot(this.Bal)
        }: ${out.replies.length} of ${acceptorsCount} acceptors accepted, ` +
        `${quorumNeed(quorum)} needed` +
        (out.why ? `; ${out.why}` : "") +
        (out.failures.length ? `; ${out.failures.join("; ")}` : ""),
      cause === undefined ? undefined : { cause },
    );
  }

  // The next round's ballot: above the highest seen, but at most
  // MAX_BALLOT_STEP above our own, which is as far as an acceptor lets one
  // request raise its promise: a proposer that must climb far (above a
  // ballot some client raised one acceptor to) gets there in steps, each
  // step promised by the acceptors it will need next.
  #raiseAbove(higherBal: BallotNum): void {
    const step = this.Bal.N + MAX_BALLOT_STEP;
    const N = higherBal.N < step ? higherBal.N + 1n : step;
    if (N > INT64_MAX) {
      throw new NotEnoughQuorumError(
        `no ballot is left for ${JSON.stringify(this.Id.Key)}@${this.Id.Ver}: ` +
          `${formatBallot(higherBal)} is the highest there is`,
      );
    }
    const from = this.Bal;
    this.Bal = { N, ProposerId: this.Bal.ProposerId };
    this.#tracer?.event({
      kind: "raise",
      key: this.Id.Key,
      ver: this.Id.Ver,
      from,
      to: this.Bal,
      seen: higherBal,
    });
  }

  async #backoff(
    round: number,
    deadline: number,
    deadlineMs: number,
    maxBackoffMs: number,
    err: NotEnoughQuorumError,
  ): Promise<void> {
    if (err.cause instanceof AcceptorError) throw err.cause;
    const left = deadline - this.#clock.now();
    if (left <= 0) {
      throw new NotEnoughQuorumError(
        `no value chosen for ${JSON.stringify(this.Id.Key)}@${this.Id.Ver} within ${
          Math.round(deadlineMs)
        } ms ` +
          `(${round} rounds); last: ${err.message}`,
      );
    }
    // The first retry goes at once, above the ballot that beat us: most
    // conflicts are with a proposer that has already finished. Then wait a
    // random, growing time, so that proposers that keep meeting stop dueling.
    if (round === 1) return;
    const delay = backoff(round - 1, { baseMs: 1, maxMs: maxBackoffMs }, this.#random);
    const ms = Math.min(left, delay);
    this.#tracer?.event({ kind: "backoff", key: this.Id.Key, ver: this.Id.Ver, round, ms });
    await this.#clock.sleep(ms);
  }
}
