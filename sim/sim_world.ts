/**
 * The simulated world: acceptor nodes that crash and restart, a store that
 * loses exactly what was not yet synced, and a network that drops,
 * duplicates, delays, reorders and partitions messages. The acceptor and
 * proposer code running in it is the real code; only the clock, the network
 * and the store are simulated, behind the same interfaces.
 *
 * With membership (sim/sim_membership.ts), each node also holds a cluster
 * identity, served by the server's own {@link Membership}: it installs the
 * configurations `Config` brings (kept durably before it answers, so a
 * crash before the sync loses it) and refuses, as `StaleMembership`, the
 * requests of a client bound to an older membership, or of any client
 * while it is joining or once it was removed.
 *
 * The planted bugs (negative controls) live here too: the suite must catch
 * each of them.
 *
 * @module
 */
import { type AcceptorOptions, latestReply, PaxosAcceptor } from "../acceptor.ts";
import type { Random } from "../clock.ts";
import type { ConfigRequest } from "../codec.ts";
import { AcceptorError } from "../errors.ts";
import type { HelloReply } from "../handshake.ts";
import {
  checkConfig,
  type ClusterIdentity,
  configOf,
  helloCluster,
  type MemberConfig,
} from "../identity.ts";
import type { MemberClient } from "../reconfigure.ts";
import { Membership } from "../server.ts";
import { type Store, Versions } from "../store.ts";
import type { LatestRequest } from "../codec.ts";
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
} from "../types.ts";
import {
  ballotEquals,
  EMPTY_ACCEPTOR,
  firstWriteBallot,
  GE,
  isFirstWriteBallot,
  ZERO_BALLOT,
} from "../types.ts";
import type { SimClock } from "./sim_clock.ts";

/** The planted bugs a simulation can run with. */
export type Variant =
  | "correct"
  | "accept-ignores-ballot"
  | "prepare-hides-vote"
  | "quorum-of-one"
  | "reply-before-sync"
  | "next-promise-anyway"
  | "final-before-catch-up"
  | "latest-promise-unstored"
  | "latest-promise-unsynced"
  | "first-vote-over-promise"
  | "first-vote-twice";

/** The variants that must be caught (without membership changes). */
export const BROKEN_VARIANTS: readonly Variant[] = [
  "accept-ignores-ballot",
  "prepare-hides-vote",
  "quorum-of-one",
  "reply-before-sync",
  "next-promise-anyway",
  "latest-promise-unstored",
  "latest-promise-unsynced",
  "first-vote-over-promise",
  "first-vote-twice",
];

/**
 * The variants of runs with membership changes: the correct code, and the
 * planted bug `final-before-catch-up` (the changer installs the final
 * configuration right after the joint one, skipping the catch-up, so the
 * new members alone make quorums before every chosen value reached them).
 */
export const MEMBERSHIP_VARIANTS: readonly Variant[] = ["correct", "final-before-catch-up"];

/**
 * A store whose writes become durable after a simulated sync delay. A crash
 * loses every write not yet synced. With `replyBeforeSync` (a planted bug)
 * `put` resolves at once, before the write is durable. `onPut` is told of
 * every state written, with the state it replaces.
 */
export class SimStore implements Store {
  readonly #clock: SimClock;
  readonly #random: Random;
  readonly #durable: Versions;
  readonly #view: Versions;
  readonly #replyBeforeSync: boolean;
  readonly #onPut: (id: PaxosInstanceId, before: Acceptor | undefined, after: Acceptor) => void;
  #crashed = false;

  /** Builds a store on the durable state a previous incarnation left. */
  constructor(
    clock: SimClock,
    random: Random,
    durable: Versions,
    replyBeforeSync: boolean,
    onPut: (id: PaxosInstanceId, before: Acceptor | undefined, after: Acceptor) => void = () => {},
  ) {
    this.#clock = clock;
    this.#random = random;
    this.#durable = durable;
    this.#replyBeforeSync = replyBeforeSync;
    this.#onPut = onPut;
    this.#view = replyBeforeSync ? durable.clone() : durable;
  }

  /** What survives a crash. */
  get durable(): Versions {
    return this.#durable;
  }

  get(id: PaxosInstanceId): Acceptor | undefined {
    return this.#view.get(id);
  }

  latest(key: string): KeyVersions {
    return this.#view.latest(key);
  }

  keys(from: string, limit: number, end?: string): string[] {
    return this.#view.keys(from, limit, end);
  }

  get usedBytes(): number {
    return this.#view.usedBytes;
  }

  put(id: PaxosInstanceId, state: Acceptor): Promise<void> {
    this.#onPut(id, this.#view.get(id), state);
    return this.#write((v) => v.set(id, state));
  }

  compact(key: string, floor: bigint): Promise<void> {
    return this.#write((v) => v.compact(key, floor));
  }

  #write(change: (v: Versions) => void): Promise<void> {
    const syncMs = 0.05 + this.#random.next() * 0.5;
    if (this.#replyBeforeSync) {
      change(this.#view);
      this.#clock.setTimer(() => this.#crashed || change(this.#durable), syncMs);
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.#clock.setTimer(() => {
        if (this.#crashed) return; // never acknowledged
        change(this.#durable);
        resolve();
      }, syncMs);
    });
  }

  /** The process died: nothing more reaches the disk. */
  crash(): void {
    this.#crashed = true;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * The acceptor of the planted-bug variants: the seed's rules with one of
 * them broken. (The correct variant runs the real {@link PaxosAcceptor}.)
 * Like it, it serves the requests of one key one at a time, so that the
 * planted bug is its only one.
 */
class BrokenAcceptor {
  // Per key: the request being served; the next one waits for it.
  readonly #tails = new Map<string, Promise<unknown>>();

  constructor(readonly store: Store, readonly variant: Variant) {}

  request(op: Op, r: Proposer): Promise<Acceptor> {
    return this.#inTurn(r.Id.Key, () => this.#serve(op, r));
  }

  #inTurn<T>(key: string, serve: () => T | Promise<T>): Promise<T> {
    const run = (this.#tails.get(key) ?? Promise.resolve()).then(serve);
    const tail = run.then(noop, noop);
    this.#tails.set(key, tail);
    tail.then(() => this.#tails.get(key) === tail && this.#tails.delete(key));
    return run;
  }

  keys(): Promise<KeysReply> {
    return Promise.reject(new TypeError(`the ${this.variant} acceptor serves no Keys`));
  }

  async #serve(op: Op, r: Proposer): Promise<Acceptor> {
    const v = this.store.get(r.Id) ?? EMPTY_ACCEPTOR;
    if (op === "Prepare") {
      if (GE(r.Bal, v.LastBal)) await this.store.put(r.Id, { ...v, LastBal: r.Bal });
      // prepare-hides-vote: the reply forgets the vote.
      return this.variant === "prepare-hides-vote"
        ? { LastBal: v.LastBal, Val: null, VBal: ZERO_BALLOT }
        : v;
    }
    const reply: Acceptor = { LastBal: v.LastBal, Val: null, VBal: ZERO_BALLOT };
    // accept-ignores-ballot: votes whatever the promise says.
    if (!GE(r.Bal, v.LastBal) && this.variant !== "accept-ignores-ballot") return reply;
    const LastBal = GE(r.Bal, v.LastBal) ? r.Bal : v.LastBal;
    await this.store.put(r.Id, { LastBal, Val: r.Val, VBal: r.Bal });
    // next-promise-anyway: the kv extension's promise of version Ver+1,
    // granted without looking whether anybody touched that version (a
    // promise or a vote there). The other variants never grant it.
    if (r.Next === true && this.variant === "next-promise-anyway") {
      const next = { Key: r.Id.Key, Ver: r.Id.Ver + 1n };
      await this.store.put(next, { LastBal: r.Bal, Val: null, VBal: ZERO_BALLOT });
      return { ...reply, NextOk: true };
    }
    return reply;
  }

  // The folded phase 1 (a Latest with a ballot) is served by no variant but
  // latest-promise-unstored, which answers it as if it had promised the
  // ballot at the next version and stores nothing, and
  // latest-promise-unsynced, which replies before its promise is synced.
  // (The others ignore the ballot, as an acceptor that does not know the
  // field.) A first write's value (see #voteFirst) is voted by the
  // first-vote variants only.
  latest(key: string, promise?: BallotNum, first?: Value): Promise<LatestReply> {
    if (promise !== undefined && first !== undefined && this.variant.startsWith("first-vote")) {
      return this.#inTurn(key, () => this.#voteFirst(key, promise, first));
    }
    const unsynced = this.variant === "latest-promise-unsynced";
    if (promise === undefined || !(unsynced || this.variant === "latest-promise-unstored")) {
      return Promise.resolve(latestReply(this.store, key));
    }
    return this.#inTurn(key, () => {
      const reply = latestReply(this.store, key);
      const id = { Key: key, Ver: reply.Ver + 1n };
      const next = this.store.get(id) ?? EMPTY_ACCEPTOR;
      // latest-promise-unsynced: the promise is written, but not waited for.
      if (unsynced && GE(promise, next.LastBal) && next.Val === null) {
        this.store.put(id, { LastBal: promise, Val: null, VBal: ZERO_BALLOT });
      }
      return { ...reply, NextBal: next.LastBal };
    });
  }

  // The first write folded into Latest (acceptFirst), with one of its
  // conditions broken: first-vote-over-promise casts the round-0 vote in a
  // key it holds no vote of whatever was promised at version 0;
  // first-vote-twice casts it also where the key's only vote is a round-0
  // one, replacing it (so an acceptor may cast two round-0 votes).
  async #voteFirst(key: string, bal: BallotNum, val: Value): Promise<LatestReply> {
    const id = { Key: key, Ver: 0n };
    const v = this.store.get(id) ?? EMPTY_ACCEPTOR;
    const { Ver, Floor } = this.store.latest(key);
    const votes = Floor === 0n &&
      (this.variant === "first-vote-over-promise"
        ? Ver < 0n
        : (Ver < 0n && v.LastBal.N === 0n) || (Ver === 0n && isFirstWriteBallot(v.VBal)));
    if (votes) {
      const LastBal = GE(bal, v.LastBal) ? bal : v.LastBal;
      await this.store.put(id, { LastBal, Val: val, VBal: firstWriteBallot(bal) });
    }
    return latestReply(this.store, key);
  }
}

function noop(): void {}

type AnyAcceptor = Pick<PaxosAcceptor, "request" | "latest" | "keys">;

/** What a node saw itself do: every state it wrote and every reply it sent, for the safety checks. */
export interface Observer {
  /** Called when an acceptor writes the state of an instance, with the state it replaces. */
  stored(node: number, id: PaxosInstanceId, before: Acceptor | undefined, after: Acceptor): void;
  /**
   * Called when an acceptor replies to a request (at the moment it replies);
   * `epoch` is the membership the requesting client is bound to (undefined
   * without membership).
   */
  replied(node: number, op: Op, req: Proposer, rep: Acceptor, epoch?: number): void;
  /** Called when a node keeps a membership configuration (durably). */
  configured?(node: number, config: MemberConfig): void;
}

/** The requests a node serves: Paxos, the kv extension's, and the handshake and `Config` of the membership extension. */
export type SimOp = Op | "Latest" | "Keys" | "Hello" | "Config";

/**
 * What a node says of itself at the handshake (membership): the server's
 * `HelloReply`, with its cluster identity as the server states it.
 */
export function simHello(identity: ClusterIdentity): HelloReply {
  return {
    instance: identity.instance,
    peers: new Map(),
    cluster: helloCluster(identity),
  };
}

/**
 * One acceptor machine: it crashes (losing what was not synced) and restarts.
 * Its acceptor runs with `acceptorOptions` (retention), except in the
 * variants with a broken acceptor. With an `identity` it is a member of a
 * cluster whose membership can change; {@link SimNode.destroy} is a dead
 * disk: the node never comes back.
 */
export class SimNode {
  /** Whether the node is running. */
  up = true;
  /** Whether its disk is gone: it never restarts. */
  destroyed = false;
  /** Incarnation number: replies of an earlier incarnation are never sent. */
  epoch = 0;
  #store: SimStore;
  #acceptor: AnyAcceptor;
  #identity: ClusterIdentity | null;
  #membership: Membership | null = null;

  constructor(
    readonly id: number,
    readonly clock: SimClock,
    readonly random: Random,
    readonly variant: Variant,
    readonly observer: Observer,
    readonly acceptorOptions: AcceptorOptions = {},
    identity: ClusterIdentity | null = null,
  ) {
    this.#identity = identity;
    this.#store = this.#newStore(new Versions());
    this.#acceptor = this.#build();
  }

  #newStore(durable: Versions): SimStore {
    return new SimStore(
      this.clock,
      this.random,
      durable,
      this.variant === "reply-before-sync",
      (id, before, after) => this.observer.stored(this.id, id, before, after),
    );
  }

  #build(): AnyAcceptor {
    if (this.#identity !== null) {
      // The identity is kept (synced) before Config is answered; a crash
      // first loses it, and the Config is never answered.
      const incarnation = this.epoch;
      this.#membership = new Membership(this.#identity, (next) =>
        new Promise((resolve) => {
          this.clock.setTimer(() => {
            if (this.epoch !== incarnation) return;
            this.#identity = next;
            this.observer.configured?.(this.id, configOf(next));
            resolve();
          }, 0.05 + this.random.next() * 0.5);
        }));
    }
    return this.variant === "correct" || this.variant === "quorum-of-one" ||
        this.variant === "reply-before-sync" || this.variant === "final-before-catch-up"
      ? new PaxosAcceptor(this.#store, `node${this.id}`, this.acceptorOptions)
      : new BrokenAcceptor(this.#store, this.variant);
  }

  /** The membership configuration the node holds durably (null without membership). */
  get config(): MemberConfig | null {
    return this.#identity === null ? null : configOf(this.#identity);
  }

  /** The state the running acceptor sees (for the safety checks). */
  storeView(id: PaxosInstanceId): Acceptor | undefined {
    return this.#store.get(id);
  }

  /** What reached the disk. */
  durableGet(id: PaxosInstanceId): Acceptor | undefined {
    return this.#store.durable.get(id);
  }

  /** The durable highest vote and floor of a key. */
  durableLatest(key: string): KeyVersions {
    return this.#store.durable.latest(key);
  }

  /** Kills the process: pending writes and replies are lost. */
  crash(): void {
    if (!this.up) return;
    this.up = false;
    this.epoch++;
    this.#store.crash();
  }

  /** The disk died: the node is down for good. */
  destroy(): void {
    this.crash();
    this.destroyed = true;
  }

  /** Starts a new process on what reached the disk. */
  restart(): void {
    if (this.up || this.destroyed) return;
    this.#store = this.#newStore(this.#store.durable);
    this.#acceptor = this.#build();
    this.up = true;
  }

  /**
   * Serves a request of a client bound to membership `bound` (undefined: the
   * node's own, as a connection that did not say one); resolves with the
   * reply, or rejects with the acceptor's refusal (an `Err` reply), or never
   * settles when the node dies first.
   */
  handle(op: SimOp, req: unknown, bound?: number): Promise<unknown> | null {
    if (!this.up) return null;
    const epoch = this.epoch;
    const work = this.#serve(op, req, bound, epoch);
    // What a node that died meanwhile would have answered is never sent.
    const never = new Promise<never>(() => {});
    return work.then((rep) => this.epoch === epoch ? rep : never, (e) => {
      if (this.epoch !== epoch) return never;
      throw e;
    });
  }

  #serve(op: SimOp, req: unknown, bound: number | undefined, epoch: number): Promise<unknown> {
    const membership = this.#membership;
    const name = `node${this.id}`;
    if (op === "Hello") {
      if (membership === null) return Promise.reject(new TypeError(`${name} has no identity`));
      return Promise.resolve(simHello(membership.identity));
    }
    if (op === "Config") {
      if (membership === null) return Promise.reject(new TypeError(`${name} has no identity`));
      const c = req as ConfigRequest;
      return membership.install(checkConfig({
        epoch: c.Epoch,
        members: c.Members,
        ...(c.Joint === undefined ? {} : { joint: c.Joint }),
        ...(c.Urls === undefined ? {} : { urls: c.Urls }),
        ...(c.Cursor === undefined ? {} : { cursor: c.Cursor }),
      })).then((refused) => {
        if (refused !== null) throw new AcceptorError(refused.code, refused.msg, name);
      });
    }
    if (membership !== null) {
      const stale = membership.staleness(bound ?? membership.epoch);
      if (stale !== null) {
        return Promise.reject(new AcceptorError("StaleMembership", stale, name));
      }
    }
    if (op === "Latest") return this.#latest(req as LatestRequest, epoch, bound);
    if (op === "Keys") {
      const { from, limit, end } = req as { from: string; limit: number; end?: string };
      return this.#acceptor.keys(from, limit, end);
    }
    return this.#acceptor.request(op, req as Proposer).then((rep) => {
      if (this.epoch === epoch) this.observer.replied(this.id, op, req as Proposer, rep, bound);
      return rep;
    });
  }

  // A Latest; one with a ballot is shown to the observer as the Prepare of
  // the next version it folds in, when it answers with that promise, and
  // one with a first write's value as the Accept of version 0 at round 0
  // and the Prepare over it that it folds in, when the node voted it (its
  // vote there is at the request's round-0 ballot, which no other write
  // uses).
  #latest(req: LatestRequest, epoch: number, bound: number | undefined): Promise<LatestReply> {
    const bal = req.Bal;
    if (bal === undefined) return this.#acceptor.latest(req.Key);
    // (A member new in a joint configuration casts no round-0 vote, as the server.)
    const first = this.#membership?.catchingUp === true ? undefined : req.Val;
    return this.#acceptor.latest(req.Key, bal, first).then((rep) => {
      const zero = { Key: req.Key, Ver: 0n };
      const vote = first === undefined ? undefined : this.#store.get(zero);
      const round0 = firstWriteBallot(bal);
      if (this.epoch === epoch && vote !== undefined && ballotEquals(vote.VBal, round0)) {
        // The vote at round 0, then the promise of `bal` over it.
        const accepted: Acceptor = { LastBal: ZERO_BALLOT, Val: null, VBal: ZERO_BALLOT };
        const val = vote.Val;
        this.observer.replied(
          this.id,
          "Accept",
          { Id: zero, Bal: round0, Val: val },
          accepted,
          bound,
        );
        const promised: Acceptor = { LastBal: round0, Val: val, VBal: round0 };
        this.observer.replied(
          this.id,
          "Prepare",
          { Id: zero, Bal: bal, Val: null },
          promised,
          bound,
        );
      }
      if (this.epoch === epoch && rep.NextBal !== undefined) {
        const id = { Key: req.Key, Ver: rep.Ver + 1n };
        const prep: Acceptor = { LastBal: rep.NextBal, Val: null, VBal: ZERO_BALLOT };
        this.observer.replied(this.id, "Prepare", { Id: id, Bal: bal, Val: null }, prep, bound);
      }
      return rep;
    });
  }
}

/** Knobs of the simulated network. */
export interface NetFaults {
  /** Probability that a message is lost. */
  drop: number;
  /** Probability that a request is delivered twice. */
  duplicate: number;
  /** Delay of a message, uniform in [minMs, maxMs] (so messages reorder). */
  minMs: number;
  maxMs: number;
}

/**
 * The network between clients and nodes. `cut(client, node)` partitions a
 * link for a while.
 */
export class SimNetwork {
  faults: NetFaults = { drop: 0, duplicate: 0, minMs: 0.05, maxMs: 0.5 };
  readonly #cuts = new Map<string, number>();

  constructor(readonly clock: SimClock, readonly random: Random, readonly nodes: SimNode[]) {}

  /** Cuts the link between a client and a node until `untilMs`. */
  cut(client: number, node: number, untilMs: number): void {
    this.#cuts.set(`${client}/${node}`, untilMs);
  }

  /** Removes every partition. */
  heal(): void {
    this.#cuts.clear();
  }

  #isCut(client: number, node: number): boolean {
    const until = this.#cuts.get(`${client}/${node}`);
    return until !== undefined && this.clock.now() < until;
  }

  #delay(): number {
    const f = this.faults;
    return f.minMs + this.random.next() * (f.maxMs - f.minMs);
  }

  #lost(client: number, node: number): boolean {
    return this.#isCut(client, node) || this.random.next() < this.faults.drop;
  }

  /**
   * The link a client uses to talk to a node: a {@link MemberClient} (so a
   * KV client and the membership changer alike). With membership, `epoch` is
   * the membership the client is bound to, and `alive` tells whether the
   * client process still runs: a killed one sends nothing more.
   */
  link(
    client: number,
    node: number,
    timeoutMs: number,
    opts: { readonly epoch?: number; readonly alive?: () => boolean } = {},
  ): SimLink {
    const send = <T>(op: SimOp, req: unknown): Promise<T> =>
      new Promise<T>((resolve, reject) => {
        let settled = false;
        const timer = this.clock.setTimer(() => {
          settled = true;
          reject(new Deno.errors.TimedOut(`${op} to node${node}: no reply within ${timeoutMs} ms`));
        }, timeoutMs);
        const deliver = (answer: boolean) => {
          if (opts.alive?.() === false || this.#lost(client, node)) return;
          this.clock.setTimer(() => {
            const work = this.nodes[node]!.handle(op, req, opts.epoch);
            if (work === null) return;
            // The reply, or the refusal, travels back like any message.
            const answerWith = (settle: () => void) => {
              if (!answer || this.#lost(client, node)) return;
              this.clock.setTimer(() => {
                if (settled) return;
                settled = true;
                this.clock.clearTimer(timer);
                settle();
              }, this.#delay());
            };
            work.then(
              (rep) => answerWith(() => resolve(rep as T)),
              (e: Error) => answerWith(() => reject(e)),
            );
          }, this.#delay());
        };
        deliver(true);
        if (this.random.next() < this.faults.duplicate) deliver(false);
      });
    return {
      name: `node${node}`,
      request: (op, req) => send<Acceptor>(op, req),
      latest: (key, bal, first) =>
        send<LatestReply>(
          "Latest",
          bal === undefined
            ? { Key: key }
            : first === undefined
            ? { Key: key, Bal: bal }
            : { Key: key, Bal: bal, Val: first },
        ),
      keys: (from, limit, end) =>
        send<KeysReply>("Keys", end === undefined ? { from, limit } : { from, limit, end }),
      hello: () => send<HelloReply>("Hello", null),
      config: (req) => send<void>("Config", req),
      ready: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
  }
}

/** A client's link to one node: what the KV and the changer use, and the handshake. */
export interface SimLink extends MemberClient {
  /** Asks the node who it is (membership). */
  hello(): Promise<HelloReply>;
}
