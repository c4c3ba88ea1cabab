/**
 * Builders of the Paxos structures for tests: ballots, instance ids,
 * requests, request envelopes and acceptor states, from plain numbers.
 *
 * @module
 */
import type { RequestEnvelope } from "../codec.ts";
import type { Acceptor, BallotNum, Op, PaxosInstanceId, Proposer, Value } from "../types.ts";
import { ZERO_BALLOT } from "../types.ts";
import { PaxosAcceptor } from "../acceptor.ts";
import { MemoryStore } from "../store.ts";

/** A ballot. */
export function bal(N: number | bigint, ProposerId: number | bigint): BallotNum {
  return { N: BigInt(N), ProposerId: BigInt(ProposerId) };
}

/** An instance id (version 0 by default). */
export function inst(Key: string, Ver: number | bigint = 0): PaxosInstanceId {
  return { Key, Ver: BigInt(Ver) };
}

/** A Prepare or Accept request: the proposer's state. */
export function req(id: PaxosInstanceId, b: BallotNum, Val: Value | null = null): Proposer {
  return { Id: id, Bal: b, Val };
}

/** An acceptor's state. */
export function state(LastBal: BallotNum, Val: Value | null = null, VBal = ZERO_BALLOT): Acceptor {
  return { LastBal, Val, VBal };
}

/** The state after a vote for `val` at ballot (n, 7). */
export function voted(n: number, val: Value | null = { Vi64: BigInt(n) }): Acceptor {
  return state(bal(n, 7), val, bal(n, 7));
}

/** The state after a promise of ballot (n, 7), with no vote. */
export function promised(n: number): Acceptor {
  return state(bal(n, 7));
}

/** The reply an Accept gives: only the promised ballot from before the request. */
export function acceptReply(LastBal: BallotNum): Acceptor {
  return { LastBal, Val: null, VBal: ZERO_BALLOT };
}

let nextRid = 1;
/** A request envelope with a fresh Rid (unique in this process). */
export function env(op: Op, r: Proposer): RequestEnvelope {
  return { Rid: nextRid++, Op: op, Req: r };
}

/** `n` memory acceptors named a0, a1, ..., keeping `keepVersions` versions when given. */
export function cluster(n = 3, keepVersions?: number): PaxosAcceptor[] {
  return Array.from(
    { length: n },
    (_, i) =>
      new PaxosAcceptor(
        new MemoryStore(),
        `a${i}`,
        keepVersions === undefined ? {} : { keepVersions },
      ),
  );
}
