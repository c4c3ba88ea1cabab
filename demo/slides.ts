/**
 * The tutorial's two scenarios (openacid/paxoskv, paxos_slides_case_test.go):
 * slide 32, one proposer without conflict, and slide 33, two proposers where
 * Y overrides X and X, retrying, must propose Y's value. Same ballots, same
 * acceptor sets, same checks as the seed's tests; each step says which
 * function of the library runs it.
 *
 * The scenarios use the library only (no Deno API): the terminal demo and
 * the web page run the same steps.
 *
 * @module
 */
import { PaxosProposer } from "../proposer.ts";
import { quorumOf } from "../quorum.ts";
import { traceAcceptors, type TraceEvent } from "../trace.ts";
import type { AcceptorClient } from "../transport.ts";
import {
  type Acceptor,
  formatBallot,
  type PaxosInstanceId,
  type Value,
  ZERO_BALLOT,
} from "../types.ts";

/** The proposers of the slides. */
export type ProposerName = "X" | "Y";

/** One event of a step, with the proposer whose message it is. */
export interface SlideEvent {
  /** Milliseconds since the scenario started. */
  readonly at: number;
  readonly proposer: ProposerName;
  readonly event: TraceEvent;
}

/** What one step did. */
export interface StepResult {
  /** The step's number, from 1. */
  readonly n: number;
  /** What the step does, e.g. `X: Phase1 at ballot (1,10) on A0, A1`. */
  readonly title: string;
  /** The library's functions that run it. */
  readonly code: string;
  readonly proposer: ProposerName;
  /** The messages of the step, in time order. */
  readonly events: readonly SlideEvent[];
  /** What came of it, in words. */
  readonly outcome: string;
  /** Each acceptor's state for the instance after the step (a read-only Prepare). */
  readonly states: readonly Acceptor[];
}

/** A scenario's name and what it shows. */
export interface Slide {
  readonly name: "slide-32" | "slide-33";
  readonly title: string;
  readonly proposers: readonly ProposerName[];
  /** The value the scenario ends with, chosen by a majority. */
  readonly chosen: Value;
}

/** The two scenarios. */
export const SLIDES: Readonly<Record<Slide["name"], Slide>> = {
  "slide-32": {
    name: "slide-32",
    title: "slide 32: one proposer, three acceptors, two of them involved; no conflict",
    proposers: ["X"],
    chosen: { Vi64: 10n },
  },
  "slide-33": {
    name: "slide-33",
    title: "slide 33: Y overrides X and chooses its value; X retries and must propose Y's value",
    proposers: ["X", "Y"],
    chosen: { Vi64: 200n },
  },
};

/** The instance both slides decide: `i`, version 0 (the seed's i₀). */
export const SLIDE_INSTANCE = { Key: "i", Ver: 0n } as const;

const PHASE1 = "PaxosProposer.phase1 (proposer.ts) -> PaxosAcceptor.prepare (acceptor.ts)";
const PHASE2 = "PaxosProposer.phase2 (proposer.ts) -> PaxosAcceptor.accept (acceptor.ts)";

/**
 * An acceptor's state for an instance (default the slides' `i`@0), read
 * without changing it: a Prepare at the zero ballot, which promises nothing
 * (as `PaxosProposer.peekChosen` sends).
 */
export function readState(
  a: AcceptorClient,
  id: PaxosInstanceId = SLIDE_INSTANCE,
): Promise<Acceptor> {
  return a.request("Prepare", { Id: id, Bal: ZERO_BALLOT, Val: null });
}

/** The value a majority of `states` voted for, or null. */
export function chosenOf(states: readonly Acceptor[]): Value | null {
  const need = quorumOf(states.length);
  for (const s of states) {
    if (s.Val === null) continue;
    const same = states.filter((t) => t.Val !== null && sameValue(t.Val, s.Val!)).length;
    if (same >= need) return s.Val;
  }
  return null;
}

function sameValue(a: Value, b: Value): boolean {
  return "Vi64" in a && "Vi64" in b && a.Vi64 === b.Vi64;
}

function show(v: Value | null): string {
  return v === null ? "nothing" : "Vi64" in v ? `${v.Vi64}` : JSON.stringify(v);
}

/**
 * Runs a scenario on three acceptors (`acceptors[0..2]` are the slides' A0,
 * A1, A2, which must hold nothing for `i`@0), calling `onStep` after each
 * step. Throws an Error when a step does not end as the slide says (a bug:
 * the seed's test would fail too).
 */
export async function runSlide(
  slide: Slide,
  acceptors: readonly AcceptorClient[],
  onStep: (step: StepResult) => void | Promise<void>,
  opts: {
    /** The key of the instance decided (default the slides' `i`; version 0). */
    readonly key?: string;
    readonly now?: () => number;
  } = {},
): Promise<Value | null> {
  const now = opts.now ?? (() => performance.now());
  const id: PaxosInstanceId = { Key: opts.key ?? SLIDE_INSTANCE.Key, Ver: 0n };
  if (acceptors.length !== 3) {
    throw new RangeError(`a slide needs 3 acceptors, got ${acceptors.length}`);
  }
  const t0 = now();
  let log: SlideEvent[] = [];
  const traced = (proposer: ProposerName) =>
    traceAcceptors(acceptors, { event: (event) => log.push({ at: now() - t0, proposer, event }) });
  const viaX = traced("X");
  const viaY = traced("Y");
  const quorum = 2;
  let n = 0;

  const step = async (
    proposer: ProposerName,
    title: string,
    code: string,
    run: () => Promise<string>,
  ) => {
    log = [];
    const outcome = await run();
    const events = log;
    const states = await Promise.all(acceptors.map((a) => readState(a, id)));
    await onStep({
      n: ++n,
      title: `${proposer}: ${title}`,
      code,
      proposer,
      events,
      outcome,
      states,
    });
  };
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new Error(`${slide.name}: ${what}`);
  };
  const names = (ids: readonly number[]) => ids.map((i) => `A${i}`).join(", ");

  const px = new PaxosProposer({ Id: id, Bal: { N: 0n, ProposerId: 10n } });
  const py = new PaxosProposer({ Id: id, Bal: { N: 2n, ProposerId: 11n } });
  const nameOf = (p: PaxosProposer): ProposerName => p === px ? "X" : "Y";
  const via = (p: PaxosProposer, ids: readonly number[]) =>
    ids.map((i) => (p === px ? viaX : viaY)[i]!);

  // Phase1 of `p` on acceptors `ids`; returns the value it found voted.
  const phase1 = async (p: PaxosProposer, ids: number[]): Promise<Value | null> => {
    let found: Value | null = null;
    const title = `Phase1 at ballot ${formatBallot(p.Bal)} on ${names(ids)}`;
    await step(nameOf(p), title, PHASE1, async () => {
      const r = await p.phase1(via(p, ids), quorum);
      check(r.err === null, `${title} should reach a quorum`);
      found = r.latestVal;
      return found === null
        ? "a quorum promised, nothing voted yet: it may propose its own value"
        : `a quorum promised; ${show(found)} was voted: it must propose ${show(found)}`;
    });
    return found;
  };
  const phase2 = async (p: PaxosProposer, ids: number[], expectOk: boolean): Promise<void> => {
    const title = `Phase2 of ${show(p.Val)} at ballot ${formatBallot(p.Bal)} on ${names(ids)}`;
    await step(nameOf(p), title, PHASE2, async () => {
      const r = await p.phase2(via(p, ids), quorum);
      check((r.err === null) === expectOk, `${title} should ${expectOk ? "" : "not "}succeed`);
      return r.err === null
        ? `a quorum voted: ${show(p.Val)} is chosen`
        : `refused: ${formatBallot(r.higherBal)} was promised since; ${show(p.Val)} is not chosen`;
    });
  };

  if (slide.name === "slide-32") {
    check(await phase1(px, [0, 1]) === null, "X should find nothing voted");
    px.Val = { Vi64: 10n };
    await phase2(px, [0, 1], true);
  } else {
    px.Bal = { N: 1n, ProposerId: 10n };
    check(await phase1(px, [0, 1]) === null, "X should find nothing voted");
    check(await phase1(py, [1, 2]) === null, "Y should find nothing voted");
    px.Val = { Vi64: 100n };
    await phase2(px, [0, 1], false);
    py.Val = { Vi64: 200n };
    await phase2(py, [1, 2], true);
    px.Val = null;
    px.Bal = { N: 3n, ProposerId: 10n };
    const seen = await phase1(px, [0, 1]);
    check(seen !== null && sameValue(seen, py.Val), "X should find Y's value voted");
    px.Val = seen;
    await phase2(px, [0, 1], true);
  }
  const chosen = chosenOf(await Promise.all(acceptors.map((a) => readState(a, id))));
  check(
    chosen !== null && sameValue(chosen, slide.chosen),
    `chose ${show(chosen)}, not ${show(slide.chosen)}`,
  );
  return chosen;
}
