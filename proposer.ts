/**
 * The proposer: the seed's `Phase1`, `Phase2` and `RunPaxos`.
 *
 * Requests go to every acceptor in parallel, and a phase returns as soon as a
 * quorum has answered (or as soon as a quorum can no longer answer), so a dead
 * or slow acceptor costs at most its request timeout.
 *
 * @module
 */
import type { Acceptor, BallotNum, Op, PaxosInstanceId, Proposer, Value } from "./types.ts";
import { formatBallot, GE, ZERO_BALLOT } from "./types.ts";
import { type AcceptorClient, AcceptorError } from "./transport.ts";
import type { Clock, Random } from "./clock.ts";
import { mathRandom, systemClock } from "./clock.ts";

/**
 * A phase could not gather a quorum of acceptors that accept its ballot:
 * the seed's `NotEnoughQuorum`. From {@link PaxosProposer.runPaxos}, it means
 * no quorum was reached before the deadline.
 *
 * @example
 * ```ts
 * import { NotEnoughQuorumError } from "./proposer.ts";
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

// Err codes after which retrying cannot help: runPaxos gives up at once and
// throws the acceptor's error.
const FINAL_CODES = new Set(["Compacted", "BadRequest", "TooLarge", "UnknownOp"]);

function finalError(err: NotEnoughQuorumError): AcceptorError | null {
  return err.cause instanceof AcceptorError && FINAL_CODES.has(err.cause.code) ? err.cause : null;
}

/** What {@link PaxosProposer.phase1} found, as the seed's three return values. */
export interface Phase1Result {
  /** The value voted at the highest ballot among the quorum, or null. */
  readonly latestVal: Value | null;
  /** On failure, the highest ballot seen (at least the proposer's own); else null. */
  readonly higherBal: BallotNum | null;
  /** On failure, why; else null. */
  readonly err: NotEnoughQuorumError | null;
}

/** What {@link PaxosProposer.phase2} found, as the seed's two return values. */
export interface Phase2Result {
  /** On failure, the highest ballot seen (at least the proposer's own); else null. */
  readonly higherBal: BallotNum | null;
  /** On failure, why; else null. */
  readonly err: NotEnoughQuorumError | null;
  /**
   * kv extension: on success with `promiseNext`, whether the quorum also
   * promised this ballot for the next version, with nothing voted there.
   */
  readonly nextPromised?: boolean;
}

/** Options of {@link PaxosProposer.phase2}. */
export interface Phase2Options {
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
}

/** Options of {@link PaxosProposer.runPaxos}. */
export interface RunPaxosOptions extends Phase2Options {
  /** Give up with a {@link NotEnoughQuorumError} after this many ms (default 10000). */
  readonly deadlineMs?: number;
  /** Longest backoff between two rounds, in ms (default 100). */
  readonly maxBackoffMs?: number;
}

/**
 * The quorum for a set of acceptors: a majority, `floor(n/2)+1`.
 *
 * @example
 * ```ts
 * import { quorumOf } from "./proposer.ts";
 * quorumOf(3); // 2
 * ```
 */
export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1;
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
    const quorum = quorumOf(acceptors.length);
    const deadlineMs = opts.deadlineMs ?? 10_000;
    const deadline = this.#clock.now() + deadlineMs;
    const maxBackoffMs = opts.maxBackoffMs ?? 100;
    this.#nextPromised = false;

    for (let round = 1;; round++) {
      this.Val = null;

      const p1 = await this.#phase1(acceptors, quorum, deadline);
      if (p1.err === null) {
        // A voted value must be proposed again: it may already be chosen.
        if (p1.latestVal !== null) val = p1.latestVal;
        if (val === null) return null; // a read that found nothing voted

        this.Val = val;
        const p2 = await this.#phase2(acceptors, quorum, deadline, opts);
        if (p2.err === null) {
          this.#nextPromised = p2.nextPromised === true;
          return this.Val;
        }
        this.#raiseAbove(p2.higherBal!);
        await this.#backoff(round, deadline, deadlineMs, maxBackoffMs, p2.err);
      } else {
        this.#raiseAbove(p1.higherBal!);
        await this.#backoff(round, deadline, deadlineMs, maxBackoffMs, p1.err);
      }
    }
  }

  /**
   * Phase1 sends Prepare to the acceptors. It succeeds when a quorum replied
   * with a last ballot not above ours (they promised ours), and returns the
   * value voted at the highest ballot among them, or null. Otherwise it
   * returns the highest ballot seen and a {@link NotEnoughQuorumError}.
   */
  phase1(acceptors: readonly AcceptorClient[], quorum: number): Promise<Phase1Result> {
    return this.#phase1(acceptors, quorum, Infinity);
  }

  /**
   * Phase2 sends Accept with `Val` to the acceptors. It succeeds when a
   * quorum replied with a last ballot not above ours (they voted for `Val`).
   * Otherwise it returns the highest ballot seen and a
   * {@link NotEnoughQuorumError}.
   */
  phase2(
    acceptors: readonly AcceptorClient[],
    quorum: number,
    opts: Phase2Options = {},
  ): Promise<Phase2Result> {
    return this.#phase2(acceptors, quorum, Infinity, opts);
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
  peekChosen(acceptors: readonly AcceptorClient[]): Promise<Value | null> {
    const quorum = quorumOf(acceptors.length);
    const req: Proposer = { Id: this.Id, Bal: ZERO_BALLOT, Val: null };
    const votes = new Map<string, { n: number; val: Value }>();
    let settled = 0;
    return new Promise((resolve) => {
      let done = false;
      const finish = (v: Value | null) => {
        if (!done) resolve(v);
        done = true;
      };
      let best = 0;
      for (const a of acceptors) {
        a.request("Prepare", req).then((rep) => {
          if (rep.Val === null) return;
          const k = formatBallot(rep.VBal);
          const vote = votes.get(k) ?? { n: 0, val: rep.Val };
          votes.set(k, { n: vote.n + 1, val: vote.val });
          best = Math.max(best, vote.n + 1);
          if (vote.n + 1 >= quorum) finish(vote.val);
        }, () => {}).finally(() => {
          // No ballot can reach a quorum with the replies still to come.
          if (best + acceptors.length - ++settled < quorum) finish(null);
        });
      }
    });
  }

  async #phase1(
    acceptors: readonly AcceptorClient[],
    quorum: number,
    deadline: number,
  ): Promise<Phase1Result> {
    let maxVoted: Acceptor | null = null;
    const r = await this.#rpcToAll(acceptors, "Prepare", quorum, deadline, (rep) => {
      // Keep the voted value with the highest VBal.
      if (rep.Val !== null && (maxVoted === null || GE(rep.VBal, maxVoted.VBal))) maxVoted = rep;
    });
    if (r.err !== null) return { latestVal: null, higherBal: r.higherBal, err: r.err };
    return { latestVal: (maxVoted as Acceptor | null)?.Val ?? null, higherBal: null, err: null };
  }

  async #phase2(
    acceptors: readonly AcceptorClient[],
    quorum: number,
    deadline: number,
    opts: Phase2Options,
  ): Promise<Phase2Result> {
    if (this.Val === null) throw new TypeError("phase2 needs a value to propose: Val is null");
    let promised = 0;
    const next = opts.promiseNext === true;
    const r = await this.#rpcToAll(
      acceptors,
      "Accept",
      quorum,
      deadline,
      (rep) => {
        if (rep.NextOk) promised++;
      },
      next,
      opts.onRefused,
    );
    if (r.err !== null) return r;
    return next
      ? { higherBal: null, err: null, nextPromised: promised >= quorum }
      : { higherBal: null, err: null };
  }

  // rpcToAll sends the request to every acceptor at once and counts the
  // replies that accept our ballot (`Bal >= LastBal`). It resolves as soon as
  // `quorum` of them did, or as soon as that can no longer happen.
  #rpcToAll(
    acceptors: readonly AcceptorClient[],
    op: Op,
    quorum: number,
    deadline: number,
    onOk: (rep: Acceptor) => void,
    next = false,
    onRefused?: () => void,
  ): Promise<{ higherBal: BallotNum; err: NotEnoughQuorumError | null }> {
    const bal = this.Bal;
    const req: Proposer = op === "Accept"
      ? { Id: this.Id, Bal: bal, Val: this.Val, ...(next ? { Next: true } : {}) }
      : { Id: this.Id, Bal: bal, Val: null };
    let higherBal = bal;
    let ok = 0;
    let settled = 0;
    const failures: string[] = [];
    let cause: AcceptorError | undefined;

    return new Promise((resolve) => {
      let done = false;
      let timer: unknown = undefined;
      const finish = (err: NotEnoughQuorumError | null) => {
        if (done) return;
        done = true;
        if (timer !== undefined) this.#clock.clearTimer(timer);
        resolve({ higherBal, err });
      };
      const fail = (why: string) =>
        finish(
          new NotEnoughQuorumError(
            `not enough quorum for ${op} of ${this.Id.Key}@${this.Id.Ver} at ballot ` +
              `${formatBallot(bal)}: ${ok} of ${quorum} needed accepted` +
              (why ? `; ${why}` : "") + (failures.length ? `; ${failures.join("; ")}` : ""),
            cause === undefined ? undefined : { cause },
          ),
        );
      const check = () => {
        if (ok >= quorum) finish(null);
        else if (ok + (acceptors.length - settled) < quorum) fail("");
      };

      if (deadline !== Infinity) {
        timer = this.#clock.setTimer(
          () => fail("deadline reached"),
          Math.max(0, deadline - this.#clock.now()),
        );
      }
      check();
      for (const a of acceptors) {
        a.request(op, req).then((rep) => {
          settled++;
          const accepted = GE(bal, rep.LastBal);
          if (!accepted) onRefused?.();
          if (done) return;
          if (accepted) {
            onOk(rep);
            ok++;
          } else {
            if (GE(rep.LastBal, higherBal)) higherBal = rep.LastBal;
            failures.push(`${a.name} has promised ${formatBallot(rep.LastBal)}`);
          }
          check();
        }, (e: Error) => {
          settled++;
          if (done) return;
          failures.push(e.message);
          if (e instanceof AcceptorError && FINAL_CODES.has(e.code)) cause = e;
          check();
        });
      }
    });
  }

  #raiseAbove(higherBal: BallotNum): void {
    this.Bal = { N: higherBal.N + 1n, ProposerId: this.Bal.ProposerId };
  }

  async #backoff(
    round: number,
    deadline: number,
    deadlineMs: number,
    maxBackoffMs: number,
    err: NotEnoughQuorumError,
  ): Promise<void> {
    const final = finalError(err);
    if (final !== null) throw final;
    const left = deadline - this.#clock.now();
    if (left <= 0) {
      throw new NotEnoughQuorumError(
        `no value chosen for ${this.Id.Key}@${this.Id.Ver} within ${deadlineMs} ms ` +
          `(${round} rounds); last: ${err.message}`,
      );
    }
    // The first retry goes at once, above the ballot that beat us: most
    // conflicts are with a proposer that has already finished. Then wait a
    // random, growing time, so that proposers that keep meeting stop dueling.
    if (round === 1) return;
    const ceiling = Math.min(maxBackoffMs, 2 ** Math.min(round - 1, 20));
    await this.#clock.sleep(Math.min(left, this.#random.next() * ceiling));
  }
}
