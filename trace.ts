/**
 * Watching Paxos run: a {@link Tracer} is told of every request a proposer
 * sends, every reply (or failure) it gets, and of what the proposer does with
 * them: a phase that reached its quorum or failed, a ballot raised, a backoff.
 *
 * A tracer is an option (`tracer` in the proposer's and the KV's options).
 * Without one, nothing is wrapped and no event is built: the proposer's
 * calls are `tracer?.event({...})`, whose argument is not even evaluated when
 * the tracer is undefined. With one, {@link traceAcceptors} wraps the
 * acceptor clients so that each request and reply is told as it happens.
 *
 * {@link TraceRecorder} keeps the events with their time since it was made,
 * for the CLI's `--trace` and the demos.
 *
 * @module
 */
import type { Acceptor, BallotNum, LatestReply, Op, Proposer, Value } from "./types.ts";
import { ballotEquals, firstWriteBallot, GE } from "./types.ts";
import type { AcceptorClient, KvAcceptorClient } from "./transport.ts";

/** A request a proposer sends: the seed's two, and the kv extension's `Latest`. */
export type TraceOp = Op | "Latest";

/** What a reply said, as the proposer counts it. */
export type TraceVerdict =
  /** A Prepare reply whose last ballot is not above the request's: it promised. */
  | "promised"
  /** An Accept reply whose last ballot is not above the request's (or a first write's Latest that voted): it voted. */
  | "voted"
  /** A reply whose last ballot is above the request's: it promised a higher one. */
  | "refused"
  /** A reply that promises nothing: a Latest, or a Prepare at the zero ballot (a read's peek). */
  | "answered";

/** The phases a proposer waits a quorum for (the seed's names, and the KV's). */
export type TracePhase = "Phase1" | "Phase2" | "Peek" | "Latest";

/** One thing that happened while a proposer ran. */
export type TraceEvent =
  | {
    /** A request went to an acceptor. */
    readonly kind: "send";
    /** The acceptor's name (its URL). */
    readonly acceptor: string;
    readonly op: TraceOp;
    readonly key: string;
    /** The instance's version (none for Latest). */
    readonly ver?: bigint;
    /** The request's ballot (none for Latest). */
    readonly bal?: BallotNum;
    /** The value an Accept proposes. */
    readonly val?: Value | null;
  }
  | {
    /** An acceptor replied. */
    readonly kind: "reply";
    readonly acceptor: string;
    readonly op: TraceOp;
    readonly key: string;
    readonly ver?: bigint;
    /** The request's ballot (none for Latest). */
    readonly bal?: BallotNum;
    readonly verdict: TraceVerdict;
    /** The ballot the acceptor had promised (Prepare, Accept). */
    readonly lastBal?: BallotNum;
    /** Its vote: the value and the ballot it voted at (Prepare, Latest). */
    readonly vBal?: BallotNum;
    readonly val?: Value | null;
    /** Latest: the highest version it voted in. */
    readonly latestVer?: bigint;
    /** Accept with `Next`: it also promised the ballot for the next version. */
    readonly nextOk?: boolean;
  }
  | {
    /** A request failed: an error reply, a timeout, a lost connection. */
    readonly kind: "error";
    readonly acceptor: string;
    readonly op: TraceOp;
    readonly key: string;
    readonly ver?: bigint;
    readonly message: string;
  }
  | {
    /** A phase ended: a quorum counted, or it no longer could, or the deadline passed. */
    readonly kind: "quorum";
    readonly phase: TracePhase;
    readonly key: string;
    readonly ver?: bigint;
    readonly bal?: BallotNum;
    readonly ok: boolean;
    /** How many replies counted, and how many were needed. */
    readonly count: number;
    readonly need: number | string;
  }
  | {
    /** The proposer raised its ballot above a higher one it saw. */
    readonly kind: "raise";
    readonly key: string;
    readonly ver: bigint;
    readonly from: BallotNum;
    readonly to: BallotNum;
    /** The highest ballot seen. */
    readonly seen: BallotNum;
  }
  | {
    /** The proposer waits before its next round. */
    readonly kind: "backoff";
    readonly key: string;
    readonly ver: bigint;
    /** The round that failed (the first is 1). */
    readonly round: number;
    readonly ms: number;
  };

/**
 * Told of each {@link TraceEvent} as it happens. It must not throw, and
 * should return quickly: it runs inside the proposer.
 *
 * @example
 * ```ts
 * import type { Tracer } from "./trace.ts";
 * const seen: string[] = [];
 * const tracer: Tracer = { event: (e) => seen.push(e.kind) };
 * ```
 */
export interface Tracer {
  /** Called once per event, in the order they happen. */
  event(e: TraceEvent): void;
}

/** A {@link TraceEvent} and when it happened. */
export interface TimedTraceEvent {
  /** Milliseconds since the recorder was made. */
  readonly at: number;
  /** What happened. */
  readonly event: TraceEvent;
}

/**
 * A {@link Tracer} that keeps every event with its time since the recorder
 * was made, in order.
 *
 * @example
 * ```ts
 * import { TraceRecorder } from "./trace.ts";
 * const rec = new TraceRecorder();
 * rec.event({ kind: "backoff", key: "k", ver: 0n, round: 2, ms: 3 });
 * rec.events.length; // 1
 * ```
 */
export class TraceRecorder implements Tracer {
  /** The events so far, oldest first. */
  readonly events: TimedTraceEvent[] = [];
  readonly #now: () => number;
  readonly #t0: number;

  /** Starts the clock (default `performance.now`). */
  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#t0 = now();
  }

  /** Keeps one event. */
  event(event: TraceEvent): void {
    this.events.push({ at: this.#now() - this.#t0, event });
  }
}

function verdictOf(op: Op, req: Proposer, rep: Acceptor): TraceVerdict {
  if (op === "Prepare" && req.Bal.N === 0n && req.Bal.ProposerId === 0n) return "answered";
  if (!GE(req.Bal, rep.LastBal)) return "refused";
  return op === "Accept" ? "voted" : "promised";
}

/** An acceptor client whose requests and replies are told to a tracer. */
class TracedClient implements KvAcceptorClient {
  readonly name: string;
  readonly #inner: AcceptorClient & Partial<Pick<KvAcceptorClient, "latest">>;
  readonly #tracer: Tracer;

  constructor(inner: AcceptorClient & Partial<Pick<KvAcceptorClient, "latest">>, tracer: Tracer) {
    this.name = inner.name;
    this.#inner = inner;
    this.#tracer = tracer;
  }

  request(op: Op, req: Proposer): Promise<Acceptor> {
    const acceptor = this.name;
    const { Key: key, Ver: ver } = req.Id;
    const bal = req.Bal;
    this.#tracer.event({
      kind: "send",
      acceptor,
      op,
      key,
      ver,
      bal,
      ...(op === "Accept" ? { val: req.Val } : {}),
    });
    return this.#inner.request(op, req).then((rep) => {
      this.#tracer.event({
        kind: "reply",
        acceptor,
        op,
        key,
        ver,
        bal,
        verdict: verdictOf(op, req, rep),
        lastBal: rep.LastBal,
        ...(op === "Prepare" ? { vBal: rep.VBal, val: rep.Val } : {}),
        ...(rep.NextOk === true ? { nextOk: true } : {}),
      });
      return rep;
    }, (e: Error) => {
      this.#tracer.event({ kind: "error", acceptor, op, key, ver, message: e.message });
      throw e;
    });
  }

  latest(key: string, promise?: BallotNum, first?: Value): Promise<LatestReply> {
    const acceptor = this.name;
    const inner = this.#inner;
    if (inner.latest === undefined) {
      return Promise.reject(new TypeError(`${acceptor} does not serve Latest`));
    }
    const bal = promise === undefined ? {} : { bal: promise };
    const val = first === undefined ? {} : { val: first };
    this.#tracer.event({ kind: "send", acceptor, op: "Latest", key, ...bal, ...val });
    return inner.latest(key, promise, first).then((rep) => {
      // With a ballot, the reply is also the Prepare of version Ver+1.
      const folded = promise === undefined || rep.NextBal === undefined
        ? {}
        : { bal: promise, lastBal: rep.NextBal };
      this.#tracer.event({
        kind: "reply",
        acceptor,
        op: "Latest",
        key,
        ...folded,
        // With a first value, a reply at version 0 with its round-0 ballot voted it.
        verdict: first !== undefined && promise !== undefined && rep.Ver === 0n &&
            ballotEquals(rep.VBal, firstWriteBallot(promise))
          ? "voted"
          : promise === undefined || rep.NextBal === undefined
          ? "answered"
          : GE(promise, rep.NextBal)
          ? "promised"
          : "refused",
        latestVer: rep.Ver,
        vBal: rep.VBal,
        val: rep.Val,
      });
      return rep;
    }, (e: Error) => {
      this.#tracer.event({ kind: "error", acceptor, op: "Latest", key, message: e.message });
      throw e;
    });
  }
}

/**
 * Wraps acceptor clients so that each request they send and each reply (or
 * failure) they get is told to `tracer` as it happens. The wrappers keep
 * the clients' names; closing stays the caller's business, on the clients
 * themselves.
 *
 * @example
 * ```ts
 * import { PaxosAcceptor } from "./acceptor.ts";
 * import { PaxosProposer } from "./proposer.ts";
 * import { traceAcceptors, TraceRecorder } from "./trace.ts";
 * const rec = new TraceRecorder();
 * const acceptors = traceAcceptors([new PaxosAcceptor(), new PaxosAcceptor()], rec);
 * const p = new PaxosProposer({ Id: { Key: "k", Ver: 0n }, Bal: { N: 1n, ProposerId: 1n } }, {
 *   tracer: rec,
 * });
 * await p.runPaxos(acceptors, { Vi64: 1n });
 * rec.events.map((e) => e.event.kind); // ["send", "send", "reply", "reply", "quorum", ...]
 * ```
 */
export function traceAcceptors(
  clients: readonly (AcceptorClient & Partial<Pick<KvAcceptorClient, "latest">>)[],
  tracer: Tracer,
): KvAcceptorClient[] {
  return clients.map((c) => new TracedClient(c, tracer));
}
