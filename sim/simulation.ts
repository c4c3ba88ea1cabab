/**
 * One deterministic simulation run: three acceptor nodes, KV clients running
 * the real {@link Kv}, {@link PaxosProposer} and {@link PaxosAcceptor} code,
 * a simulated clock and network, and faults, all driven by one seeded PRNG.
 * The same seed replays the same run exactly.
 *
 * Checked on every run, each violation named by its {@link ViolationKind}:
 * - every state an acceptor writes keeps its rules: promises never go down,
 *   votes are never taken back, a vote is never below the promise held;
 * - at most one value is ever chosen per (Key, Ver), and it never changes;
 * - acceptor promises and votes never go back: after every restart (and at
 *   the end) each node's durable state covers every promise and vote it
 *   acknowledged, and a Prepare reply reports the vote the node holds;
 * - the KV history is linearizable (the checker of the KV tests);
 * - liveness: once the network heals and every node is up, every operation
 *   completes, within {@link LIVENESS_BOUND_MS}.
 *
 * With `membership` (sim/sim_membership.ts), the membership changes during
 * the fault phase (replace, grow 3 to 5, shrink 5 to 3) with the real
 * `changeMembership`; nodes are named by member id; a value is chosen when
 * the nodes that voted for it at one ballot are a quorum of the membership
 * its proposer was bound to (joint during a change); a node whose disk died
 * (replaced) is not checked for what it acknowledged; after the heal a
 * client may be refused (`StaleMembership`) at most {@link STALE_AFTER_HEAL}
 * times while the change under way finishes, and that change must finish.
 *
 * @module
 */
import { type Random, seededRandom } from "../clock.ts";
import { isStaleMembership, NotEnoughQuorumError, TrustError } from "../errors.ts";
import type { MemberConfig } from "../identity.ts";
import { Kv, UnknownOutcomeError } from "../kv.ts";
import type { KvAcceptorClient } from "../transport.ts";
import type { Acceptor, BallotNum, Op, PaxosInstanceId, Proposer, Value } from "../types.ts";
import { ballotEquals, formatBallot, GE, isFirstWriteBallot } from "../types.ts";
import { checkKv, type KvInput, type KvOperation } from "../check/linearizability.ts";
import { runKvOp } from "../check/kv_ops.ts";
import { SimClock } from "./sim_clock.ts";
import { SimNetwork, SimNode, type Variant } from "./sim_world.ts";
import { SimChanger, simConnectMembers, simIdentity, simUrl } from "./sim_membership.ts";

/** Options of {@link runSimulation}. */
export interface SimOptions {
  /** The seed of the run's PRNG. */
  readonly seed: number;
  /** KV operations to issue in all (default 200). */
  readonly steps?: number;
  /** Which acceptor/proposer/store to run (default "correct"). */
  readonly variant?: Variant;
  /** Inject faults before the heal point (default true). */
  readonly faults?: boolean;
  /** KV clients (default 4). */
  readonly clients?: number;
  /** Keys the clients fight over (default 2). */
  readonly keys?: number;
  /**
   * Run the acceptors with retention: each keeps only the last
   * `keepVersions` versions of a key (default: off, every version kept).
   */
  readonly keepVersions?: number;
  /** The liveness bound to check (default {@link LIVENESS_BOUND_MS}). */
  readonly livenessBoundMs?: number;
  /**
   * Change the membership during the fault phase (replace, grow 3 to 5,
   * shrink 5 to 3), with the real `changeMembership` (default false: a
   * seed replays as without the option).
   */
  readonly membership?: boolean;
}

/** The kinds of violation a run can find, each named by the check that finds it. */
export type ViolationKind =
  /** The store: a node wrote a promise lower than the one it held. */
  | "promise went back"
  /** The store: a node wrote away a vote, or replaced it with a lower one. */
  | "vote taken back"
  /** The store: a node voted at a ballot below the promise it held. */
  | "vote below its promise"
  /** A Prepare reply did not report the vote the node held. */
  | "Prepare hid a vote"
  /** Two Accepts at one ballot carried different values. */
  | "ballot with two values"
  /** A quorum voted for two different values of one instance. */
  | "two values chosen"
  /** At a restart or the end, a node's durable state lacked a promise or vote it acknowledged. */
  | "acknowledged state lost"
  /** A KV call failed with an error that is not a network failure: a bug. */
  | "KV call threw"
  /** A membership change failed otherwise than for want of a quorum: a bug. */
  | "membership change failed"
  /** After the heal, an operation failed, never ended, or took longer than the bound. */
  | "liveness"
  /** The KV history is not linearizable. */
  | "not linearizable"
  /** The linearizability checker gave up: nothing is known. */
  | "checker timed out";

/** What a run found. */
export interface SimResult {
  readonly seed: number;
  readonly variant: Variant;
  /** No safety or liveness violation. */
  readonly ok: boolean;
  /** What was violated, first found first (at most 20). */
  readonly violations: string[];
  /** The kinds of all violations found, each once, first found first. */
  readonly kinds: ViolationKind[];
  /** Operations issued, completed with a known outcome, and with an unknown one. */
  readonly ops: number;
  readonly completed: number;
  readonly unknown: number;
  /** Crashes and partitions injected. */
  readonly crashes: number;
  readonly partitions: number;
  /** Simulated time of the heal, and of the end, in ms. */
  readonly healAtMs: number;
  readonly endMs: number;
  /** The longest an operation took to complete after the heal (simulated ms). */
  readonly maxAfterHealMs: number;
  /** With `keepVersions`: writes whose outcome was lost to compaction (`UnknownOutcomeError`). */
  readonly compactedAway: number;
  /** The highest floor any node keeps for any key (0 without `keepVersions`). */
  readonly maxFloor: number;
  /** With `membership`: the changes finished, in words, with the simulated time. */
  readonly changes: string[];
  /** With `membership`: runs of the changer killed in the middle, and runs that failed and were run again. */
  readonly changerKills: number;
  readonly changerFailedRuns: number;
  /** With `membership`: runs that resumed a catch-up from the cursor an earlier run saved. */
  readonly changerResumes: number;
  /** The members at the end. */
  readonly members: number[];
  /** KV operations refused as `StaleMembership` (the client then connected again). */
  readonly staleRefusals: number;
  /** Connects of KV clients that failed (no majority, or refused) and were tried again. */
  readonly connectRefusals: number;
}

/** How long one KV operation may take before it fails (the clients' deadline, simulated ms). */
export const KV_DEADLINE_MS = 1_000;

/**
 * Once healed, every operation must complete within this (simulated ms).
 * It is below {@link KV_DEADLINE_MS}, so that an operation can take longer
 * than the bound without failing: the check can be hit. (Over seeds 1-2000,
 * the longest after the heal was about 200 ms.)
 */
export const LIVENESS_BOUND_MS = 500;

const QUORUM = 2;
const NODES = 3;

/** After the heal, how many times a client may be refused as `StaleMembership` (the change under way finishing). */
export const STALE_AFTER_HEAL = 3;

// Whether `nodes` (member ids) are a quorum of `config`: a majority of its
// members, and during a change of its old members too.
// A first write's round-0 vote (N 0) chooses only when every member cast
// it (Fast Paxos's rule, see firstWriteBallot).
function choosesAt(bal: BallotNum, config: MemberConfig | undefined, nodes: ReadonlySet<number>) {
  if (isFirstWriteBallot(bal)) {
    const all = config === undefined
      ? Array.from({ length: NODES }, (_, i) => i)
      : [...config.members, ...(config.joint ?? [])];
    return all.every((m) => nodes.has(m));
  }
  return config === undefined ? nodes.size >= QUORUM : isQuorumOf(config, nodes);
}

function isQuorumOf(config: MemberConfig, nodes: ReadonlySet<number>): boolean {
  const majority = (ms: readonly number[]) =>
    ms.filter((m) => nodes.has(m)).length >= Math.floor(ms.length / 2) + 1;
  return majority(config.members) && (config.joint === undefined || majority(config.joint));
}

function valueKey(v: Value | null): string {
  return JSON.stringify(v, (_, x) => typeof x === "bigint" ? `${x}n` : x);
}

// The safety checks that watch every reply as a node sends it.
class Safety {
  readonly violations: string[] = [];
  readonly kinds: ViolationKind[] = [];
  // instance -> ballot -> {value, nodes that voted}
  readonly #votes = new Map<
    string,
    Map<string, { value: string; nodes: Set<number>; epoch: number | undefined }>
  >();
  // Membership: every configuration a node kept, by epoch.
  readonly configs = new Map<number, MemberConfig>();
  readonly #chosen = new Map<string, string>();
  // node/instance -> highest acknowledged promise and vote
  readonly #promised = new Map<string, Proposer["Bal"]>();
  readonly #voted = new Map<string, Proposer["Bal"]>();

  constructor(readonly nodes: () => SimNode[]) {}

  violate(kind: ViolationKind, what: string): void {
    if (!this.kinds.includes(kind)) this.kinds.push(kind);
    if (this.violations.length < 20) this.violations.push(what);
  }

  // The acceptor's own rules, on every state it writes: a promise never goes
  // down, a vote is never taken back, and a new vote is never below the
  // promise held.
  stored(node: number, id: PaxosInstanceId, before: Acceptor | undefined, after: Acceptor): void {
    if (before === undefined) return;
    const at = `node${node} ${id.Key}@${id.Ver}`;
    if (!GE(after.LastBal, before.LastBal)) {
      this.violate(
        "promise went back",
        `${at}: promise went back from ${formatBallot(before.LastBal)} to ${
          formatBallot(after.LastBal)
        } (store)`,
      );
    }
    if (ballotEquals(after.VBal, before.VBal)) return;
    if (!GE(after.VBal, before.VBal)) {
      this.violate(
        "vote taken back",
        `${at}: vote at ${formatBallot(before.VBal)} taken back (now ${
          formatBallot(after.VBal)
        }) (store)`,
      );
    } else if (!GE(after.VBal, before.LastBal)) {
      this.violate(
        "vote below its promise",
        `${at}: voted at ${formatBallot(after.VBal)}, below its promise ${
          formatBallot(before.LastBal)
        } (store)`,
      );
    }
  }

  configured(_node: number, config: MemberConfig): void {
    // One epoch, one membership (the cursor may move on).
    if (!this.configs.has(config.epoch)) this.configs.set(config.epoch, config);
  }

  replied(node: number, op: Op, req: Proposer, rep: Acceptor, epoch?: number): void {
    const inst = `${req.Id.Key}@${req.Id.Ver}`;
    const acked = GE(req.Bal, rep.LastBal);
    const nk = `${node}/${inst}`;
    if (op === "Prepare" && acked) {
      // A Prepare reply reports the vote the node holds from before it.
      const cur = this.nodes()[node]!.storeView(req.Id);
      if (
        cur !== undefined && cur.Val !== null && !GE(cur.VBal, req.Bal) && !GE(rep.VBal, cur.VBal)
      ) {
        this.violate(
          "Prepare hid a vote",
          `node${node} Prepare ${inst} at ${formatBallot(req.Bal)} hid its vote at ${
            formatBallot(cur.VBal)
          }`,
        );
      }
    }
    // A Prepare at the zero ballot (a peek) promises nothing.
    if (!acked || (req.Bal.N === 0n && req.Bal.ProposerId === 0n)) return;
    const p = this.#promised.get(nk);
    if (p === undefined || GE(req.Bal, p)) this.#promised.set(nk, req.Bal);
    if (op !== "Accept") return;
    const v = this.#voted.get(nk);
    if (v === undefined || GE(req.Bal, v)) this.#voted.set(nk, req.Bal);
    // Chosen: a quorum voted for the same ballot.
    let byBallot = this.#votes.get(inst);
    if (byBallot === undefined) this.#votes.set(inst, byBallot = new Map());
    const bk = formatBallot(req.Bal);
    const value = valueKey(req.Val);
    let vote = byBallot.get(bk);
    if (vote === undefined) byBallot.set(bk, vote = { value, nodes: new Set(), epoch });
    if (vote.value !== value) {
      this.violate(
        "ballot with two values",
        `${inst}: two values proposed at ballot ${bk}: ${vote.value} and ${value}`,
      );
    }
    vote.nodes.add(node);
    const config = vote.epoch === undefined ? undefined : this.configs.get(vote.epoch);
    if (choosesAt(req.Bal, config, vote.nodes)) {
      const before = this.#chosen.get(inst);
      if (before === undefined) this.#chosen.set(inst, value);
      else if (before !== value) {
        this.violate(
          "two values chosen",
          `${inst}: chosen ${before}, then ${value} was chosen too`,
        );
      }
    }
  }

  // Promises never go back: what a node acknowledged is in its durable state.
  checkDurable(node: SimNode): void {
    if (node.destroyed) return; // its disk died: nothing of it is kept, nor promised
    for (const [nk, bal] of this.#promised) {
      const [n, inst] = nk.split("/", 2) as [string, string];
      if (Number(n) !== node.id) continue;
      const at = inst.lastIndexOf("@");
      const id = { Key: inst.slice(0, at), Ver: BigInt(inst.slice(at + 1)) };
      const floor = node.durableLatest(id.Key).Floor;
      if (floor > 0n && id.Ver < floor) continue; // forgotten on purpose
      const s = node.durableGet(id);
      if (s === undefined || !GE(s.LastBal, bal)) {
        this.violate(
          "acknowledged state lost",
          `node${node.id} ${inst}: promise ${formatBallot(bal)} acknowledged, durable ${
            s === undefined ? "nothing" : formatBallot(s.LastBal)
          } (promise went back)`,
        );
      }
      const v = this.#voted.get(nk);
      if (v !== undefined && (s === undefined || !GE(s.VBal, v))) {
        this.violate(
          "acknowledged state lost",
          `node${node.id} ${inst}: vote at ${formatBallot(v)} acknowledged, then lost`,
        );
      }
    }
  }
}

function pick<T>(random: Random, xs: readonly T[]): T {
  return xs[Math.floor(random.next() * xs.length)]!;
}

/** Runs one simulation and checks it. */
export async function runSimulation(opts: SimOptions): Promise<SimResult> {
  const seed = opts.seed;
  const variant = opts.variant ?? "correct";
  const steps = opts.steps ?? 200;
  const faults = opts.faults ?? true;
  const nClients = opts.clients ?? 4;
  const keys = Array.from({ length: opts.keys ?? 2 }, (_, i) => `k${i}`);
  const random = seededRandom(seed);
  const clock = new SimClock();
  let nodes: SimNode[] = [];
  const safety = new Safety(() => nodes);
  const acceptorOptions = opts.keepVersions === undefined
    ? {}
    : { keepVersions: opts.keepVersions };
  const membership = opts.membership ?? false;
  if (membership && variant !== "correct" && variant !== "final-before-catch-up") {
    throw new RangeError(
      `membership changes run with the correct code or final-before-catch-up, not ${variant}`,
    );
  }
  if (!membership && variant === "final-before-catch-up") {
    throw new RangeError(`the planted bug ${variant} needs membership changes (membership: true)`);
  }
  const initial = Array.from({ length: NODES }, (_, i) => i);
  if (membership) safety.configured(-1, { epoch: 0, members: initial });
  nodes = initial.map((i) =>
    new SimNode(
      i,
      clock,
      random,
      variant,
      safety,
      acceptorOptions,
      membership ? simIdentity(i, initial) : null,
    )
  );
  const net = new SimNetwork(clock, random, nodes);
  const urls = () => nodes.filter((n) => !n.destroyed).map((n) => simUrl(n.id));

  const history: KvOperation[] = [];
  // Writes whose outcome the KV could not know because their version was
  // compacted: the KV's documented answer under retention, not a failure.
  const compactedAway = new Set<KvOperation>();
  // Operations refused as StaleMembership (membership).
  const staleOps = new Set<KvOperation>();
  let issued = 0;
  let finished = 0;
  let crashes = 0;
  let partitions = 0;
  let staleRefusals = 0;
  const connectRefusals: string[] = [];
  const staleAfterHeal = new Map<number, number>();
  const healAfterOps = faults ? Math.floor(steps * 0.7) : 0;
  let healAtMs = faults ? Infinity : 0;

  const heal = () => {
    healAtMs = clock.now();
    net.heal();
    net.faults = { drop: 0, duplicate: 0, minMs: 0.05, maxMs: 0.5 };
    for (const n of nodes) {
      if (!n.up && !n.destroyed) {
        n.restart();
        safety.checkDurable(n);
      }
    }
  };

  // Faults until the heal: crashes and restarts, partitions, lossy links.
  const injectFault = () => {
    if (healAtMs !== Infinity) return;
    const r = random.next();
    if (r < 0.25) {
      const down = nodes.filter((n) => !n.up && !n.destroyed).length;
      const n = pick(random, nodes);
      if (n.destroyed) {
        // a dead disk stays dead
      } else if (n.up && down < 2) {
        n.crash();
        crashes++;
      } else if (!n.up) {
        n.restart();
        safety.checkDurable(n);
      }
    } else if (r < 0.45) {
      net.cut(
        // With membership, the changer's links are cut too.
        Math.floor(random.next() * (membership ? nClients + 1 : nClients)),
        Math.floor(random.next() * nodes.length),
        clock.now() + 5 + random.next() * 50,
      );
      partitions++;
    } else if (r < 0.6) {
      net.faults = {
        drop: random.next() * 0.15,
        duplicate: random.next() * 0.15,
        minMs: 0.05,
        maxMs: 0.5 + random.next() * 5,
      };
    }
    clock.setTimer(injectFault, 2 + random.next() * 10);
  };
  if (faults) clock.setTimer(injectFault, random.next() * 5);

  // With membership, a client connects to the members of the newest
  // membership it finds, bound to it, and connects again when refused.
  const connect = async (c: number): Promise<Kv> => {
    for (;;) {
      try {
        const conn = await simConnectMembers({ net, client: c, timeoutMs: 20 }, urls());
        return new Kv(conn.clients, {
          clock,
          random,
          deadlineMs: KV_DEADLINE_MS,
          quorum: conn.quorum,
        });
      } catch (e) {
        // No majority answered, or the membership moved on between the
        // look and the connect: look again.
        if (!(e instanceof NotEnoughQuorumError || e instanceof TrustError)) throw e;
        connectRefusals.push(`${clock.now().toFixed(1)} ms: ${e.message}`);
        await clock.sleep(1 + random.next() * 5);
      }
    }
  };

  const client = async (c: number) => {
    let kv: Kv;
    if (membership) kv = await connect(c);
    else {
      const links: KvAcceptorClient[] = variant === "quorum-of-one"
        ? [net.link(c, c % NODES, 20)]
        : nodes.map((_, n) => net.link(c, n, 20));
      kv = new Kv(links, { clock, random, deadlineMs: KV_DEADLINE_MS });
    }
    let lastSeen = -1n;
    while (issued < steps) {
      const id = issued++;
      if (faults && id === healAfterOps) heal();
      const key = pick(random, keys);
      const r = random.next();
      const input: KvInput = r < 0.35
        ? { op: "set", value: `c${c}-${id}` }
        : r < 0.65
        ? { op: "get" }
        : r < 0.85
        ? {
          op: "cas",
          ifVersion: random.next() < 0.7 ? lastSeen : lastSeen + 1n,
          value: `c${c}-${id}`,
        }
        : r < 0.93
        ? { op: "create", value: `c${c}-${id}` }
        : { op: "delete" };
      const call = clock.now();
      let stale = false;
      const { output, error } = await runKvOp(kv, key, input).catch((e) => {
        // Refused by a member of a newer membership: the outcome is unknown
        // (a part may have been written), and the client connects again.
        if (!(membership && isStaleMembership(e))) throw e;
        stale = true;
        return { output: { ok: false as const, unknown: true as const }, error: e as Error };
      });
      if ("version" in output) lastSeen = output.version;
      else if ("actual" in output) lastSeen = output.actual;
      const ret = clock.now();
      const op: KvOperation = { client: c, key, input, output, call, ret };
      history.push(op);
      if (error instanceof UnknownOutcomeError) compactedAway.add(op);
      if (stale) {
        staleRefusals++;
        staleOps.add(op);
        if (call >= healAtMs) staleAfterHeal.set(c, (staleAfterHeal.get(c) ?? 0) + 1);
        kv = await connect(c);
      }
      finished++;
      // Think time, so operations interleave in many ways.
      await clock.sleep(random.next() * 2);
    }
  };

  // The membership changer: its own process, with the client number after the KV clients'.
  const changer = membership
    ? new SimChanger({
      clock,
      random,
      net,
      nodes,
      variant,
      client: nClients,
      addNode: () => {
        const id = nodes.length;
        const n = new SimNode(
          id,
          clock,
          random,
          variant,
          safety,
          acceptorOptions,
          simIdentity(id, [], true),
        );
        nodes.push(n);
        return n;
      },
      faulty: () => healAtMs === Infinity,
      violate: (kind, what) => safety.violate(kind, what),
    }, initial)
    : null;
  let changerDone = changer === null;
  changer?.run().then(() => changerDone = true, (e) => {
    safety.violate(
      "KV call threw",
      `the membership changer threw ${e instanceof Error ? e.stack : e}`,
    );
    changerDone = true;
  });

  let clientsDone = false;
  let done = false;
  Promise.all(Array.from({ length: nClients }, (_, c) => client(c))).then(
    () => clientsDone = true,
    (e) => {
      // Not a network failure (those are outcomes): a bug, and the end of the run.
      safety.violate("KV call threw", `a KV operation threw ${e instanceof Error ? e.stack : e}`);
      clientsDone = done = true;
    },
  );
  const isDone = () => done || (clientsDone && changerDone);
  await clock.run(isDone, 600_000);
  done = isDone();
  const endMs = clock.now();
  if (!clientsDone) {
    safety.violate(
      "liveness",
      `liveness: ${issued - finished} operations never completed (at ${endMs} ms)`,
    );
  }

  if (!changerDone) {
    safety.violate("liveness", `liveness: the membership change never finished (at ${endMs} ms)`);
  }

  for (const n of nodes) {
    if (!n.up) n.restart();
    safety.checkDurable(n);
  }

  // Liveness after the heal.
  let maxAfterHealMs = 0;
  for (const op of history) {
    if (op.ret < healAtMs) continue;
    const took = op.ret - Math.max(op.call, healAtMs);
    maxAfterHealMs = Math.max(maxAfterHealMs, took);
    if (
      "unknown" in op.output && op.call >= healAtMs && !compactedAway.has(op) && !staleOps.has(op)
    ) {
      safety.violate("liveness", `liveness: ${op.input.op} on ${op.key} failed after the heal`);
    }
  }
  for (const [c, n] of staleAfterHeal) {
    if (n > STALE_AFTER_HEAL) {
      safety.violate(
        "liveness",
        `liveness: client ${c} was refused as stale ${n} times after the heal`,
      );
    }
  }
  if (maxAfterHealMs > (opts.livenessBoundMs ?? LIVENESS_BOUND_MS)) {
    safety.violate("liveness", `liveness: an operation took ${maxAfterHealMs} ms after the heal`);
  }

  const lin = checkKv(history, { timeoutMs: 10_000 });
  if (!lin.ok) {
    safety.violate(
      lin.timedOut ? "checker timed out" : "not linearizable",
      lin.timedOut
        ? `linearizability check timed out on ${lin.key}`
        : `history of ${lin.key} is not linearizable: ${lin.reason}`,
    );
  }

  return {
    seed,
    variant,
    ok: safety.violations.length === 0,
    violations: safety.violations,
    kinds: safety.kinds,
    ops: history.length,
    completed: history.filter((o) => !("unknown" in o.output)).length,
    unknown: history.filter((o) => "unknown" in o.output).length,
    crashes,
    partitions,
    healAtMs,
    endMs,
    maxAfterHealMs,
    compactedAway: compactedAway.size,
    maxFloor: Math.max(
      0,
      ...nodes.flatMap((n) => keys.map((k) => Number(n.durableLatest(k).Floor))),
    ),
    changes: changer?.log ?? [],
    changerKills: changer?.kills ?? 0,
    changerFailedRuns: changer?.failedRuns ?? 0,
    changerResumes: changer?.resumed ?? 0,
    members: [...(changer?.members ?? initial)],
    staleRefusals,
    connectRefusals: connectRefusals.length,
  };
}
