/**
 * Membership changes in the deterministic simulation: the real
 * {@link changeMembership} of reconfigure.ts, run over the simulated network
 * through its {@link ChangeLinks} seam, by a changer process that can be
 * killed in the middle of a change and run again (as an operator reruns
 * `member replace` after a crash), while the KV clients follow the
 * membership as real ones do: bound to the membership they connected with,
 * refused (`StaleMembership`) once it changed, and connecting again.
 *
 * The changer runs plans picked by the seeded PRNG: **replace** (a member's
 * disk dies and a fresh, empty node takes its place under a new id),
 * **grow** from 3 to 5 members (two adds), and **shrink** from 5 to 3 (two
 * removes).
 *
 * @module
 */
import type { Random } from "../clock.ts";
import { quorumFor } from "../connect.ts";
import type { DiscoveredCluster } from "../connect.ts";
import { ClusterView, configOfHello } from "../cluster_view.ts";
import { AcceptorError, NotEnoughQuorumError, TrustError } from "../errors.ts";
import { allMembers, type ClusterIdentity, makeIdentity, type MemberConfig } from "../identity.ts";
import { askQuorum, membersMajority, quorumOf, type QuorumSystem } from "../quorum.ts";
import {
  type ChangeLinks,
  changeMembership,
  type ChangeProgress,
  describeChange,
  type MemberChange,
  type MemberClient,
} from "../reconfigure.ts";
import type { SimClock } from "./sim_clock.ts";
import type { SimLink, SimNetwork, SimNode, Variant } from "./sim_world.ts";

const CLUSTER_ID = "5a".repeat(16);

/** The URL of node `i` in the simulation. */
export function simUrl(i: number): string {
  return `sim://node${i}`;
}

function nodeOf(url: string): number {
  const m = /^sim:\/\/node(\d+)$/.exec(url);
  if (m === null) throw new RangeError(`not a simulated node's URL: ${url}`);
  return Number(m[1]);
}

/**
 * The identity of simulated member `member`: of the initial membership
 * `members` (every URL known), or a would-be member (`joining`, as
 * `acceptor --init --join` starts one).
 */
export function simIdentity(
  member: number,
  members: readonly number[],
  joining = false,
): ClusterIdentity {
  return makeIdentity({
    cluster: "sim",
    clusterId: CLUSTER_ID,
    member,
    members: joining ? [member] : members,
    keepVersions: null,
    instance: member.toString(16).padStart(32, "0"),
    ...(joining ? { joining: true } : { urls: new Map(members.map((m) => [m, simUrl(m)])) }),
  });
}

/** How a simulated process reaches the nodes: its client number (for partitions), and whether it still runs. */
export interface SimReach {
  readonly net: SimNetwork;
  readonly client: number;
  readonly timeoutMs: number;
  readonly alive?: () => boolean;
}

function linkTo(r: SimReach, url: string, epoch?: number): SimLink {
  return r.net.link(r.client, nodeOf(url), r.timeoutMs, {
    ...(epoch === undefined ? {} : { epoch }),
    ...(r.alive === undefined ? {} : { alive: r.alive }),
  });
}

/**
 * Asks the nodes at `urls` who they are, as `discoverCluster` does: the
 * newest configuration a member states, the members that answered, and the
 * would-be members.
 */
export async function simDiscover(
  r: SimReach,
  urls: readonly string[],
): Promise<DiscoveredCluster> {
  const answers = await Promise.allSettled(urls.map((u) => linkTo(r, u).hello()));
  let config: MemberConfig | null = null;
  const members = new Map<number, string>();
  const epochs = new Map<number, number>();
  const joining = new Map<number, string>();
  const unanswered: string[] = [];
  const failures: string[] = [];
  answers.forEach((a, i) => {
    const u = urls[i]!;
    if (a.status === "rejected") {
      unanswered.push(u);
      failures.push((a.reason as Error).message);
      return;
    }
    const c = a.value.cluster!;
    if (c.joining === true) {
      joining.set(c.member, u);
      return;
    }
    const mine = configOfHello(c);
    members.set(c.member, u);
    epochs.set(c.member, mine.epoch);
    if (config === null || mine.epoch > config.epoch) config = mine;
  });
  if (unanswered.length === urls.length) {
    throw new NotEnoughQuorumError(`no acceptor answered: ${failures.join("; ")}`);
  }
  return {
    config,
    urls: members,
    unanswered,
    cluster: { name: "sim", id: CLUSTER_ID, keepVersions: null },
    epochs,
    joining,
  };
}

/** A connection to a cluster: links bound to its newest membership, and its quorum system. */
export interface SimConnection {
  readonly clients: SimLink[];
  readonly quorum: QuorumSystem;
  readonly config: MemberConfig;
}

/**
 * Connects to the nodes at `urls` as `connectCluster` does, with its
 * {@link ClusterView}: every answer is checked against the others (one
 * cluster; a would-be member is refused; the URLs must be exactly the
 * members of the newest membership stated), a majority must answer; the
 * links are bound to that membership and the quorum system is its
 * (`quorumFor`: joint during a change). Rejects with a `TrustError` or a
 * `NotEnoughQuorumError` as it does.
 */
export async function simConnect(r: SimReach, urls: readonly string[]): Promise<SimConnection> {
  const view = new ClusterView(urls);
  const answers = await Promise.allSettled(urls.map((u) => linkTo(r, u).hello()));
  let ready = 0;
  const failures: string[] = [];
  answers.forEach((a, i) => {
    if (a.status === "rejected") {
      failures.push((a.reason as Error).message);
      return;
    }
    const why = view.admit(urls[i]!, a.value);
    if (why !== null) throw new TrustError(why);
    ready++;
  });
  const wrong = view.seal();
  if (wrong !== null) throw new TrustError(wrong);
  if (ready < quorumOf(urls.length)) {
    throw new NotEnoughQuorumError(
      `cannot reach a majority of the acceptors: ${ready} of ${urls.length} answered; ` +
        failures.join("; "),
    );
  }
  const config = view.config!;
  return {
    clients: urls.map((u) => linkTo(r, u, config.epoch)),
    quorum: quorumFor(urls, config, (u) => view.memberAt(u)),
    config,
  };
}

/**
 * Connects a KV client as an application does after `currentMembers`: the
 * members of the newest membership the nodes at `urls` state, then
 * {@link simConnect} to them.
 */
export async function simConnectMembers(
  r: SimReach,
  urls: readonly string[],
): Promise<SimConnection> {
  const found = await simDiscover(r, urls);
  if (found.config === null) {
    throw new NotEnoughQuorumError(`no member answered at ${urls.join(",")}`);
  }
  return await simConnect(r, allMembers(found.config).map(simUrl));
}

/** The {@link ChangeLinks} of a simulated changer process. */
export function simChangeLinks(r: SimReach): ChangeLinks {
  return {
    discover: (urls) => simDiscover(r, urls),
    connect: (urls) => simConnect(r, urls),
    members: (urls) => [...urls.values()].map((u) => linkTo(r, u)),
    // Every simulated node is of one cluster and keeps what it keeps.
    check: () => Promise.resolve(null),
  };
}

/** What the changer needs of the simulated world. */
export interface ChangerWorld {
  readonly clock: SimClock;
  readonly random: Random;
  readonly net: SimNetwork;
  readonly nodes: SimNode[];
  readonly variant: Variant;
  /** The changer's client number (its links are partitioned like a client's). */
  readonly client: number;
  /** A fresh, empty node, joining: its id is its index. */
  addNode(): SimNode;
  /** Whether faults are still injected (before the heal). */
  faulty(): boolean;
  /**
   * Reports a change that failed otherwise than for want of a quorum (a
   * bug), or that did not finish after the heal (`liveness`).
   */
  violate(kind: "membership change failed" | "liveness", what: string): void;
}

function pick<T>(random: Random, xs: readonly T[]): T {
  return xs[Math.floor(random.next() * xs.length)]!;
}

/** After the heal, a change that cannot finish in this many runs fails the liveness check. */
const RUNS_AFTER_HEAL = 20;

/**
 * The changer process: during the fault phase it runs plans (replace,
 * grow, shrink), one change at a time, each with the real
 * `changeMembership`; it may be killed in the middle of a run (its
 * requests stop; those in flight still arrive) and runs the same change
 * again until it is done. After the heal it finishes the change under way
 * and starts no other.
 */
export class SimChanger {
  /** Changes finished, runs killed, runs that failed (no quorum) and were run again. */
  done = 0;
  kills = 0;
  failedRuns = 0;
  /** Runs that resumed a catch-up from the cursor an earlier run saved. */
  resumed = 0;
  /** The changes, as they were finished, in words. */
  readonly log: string[] = [];
  #incarnation = 0;
  #members: number[];

  constructor(readonly world: ChangerWorld, members: readonly number[]) {
    this.#members = [...members];
  }

  /** The members after the last change finished. */
  get members(): readonly number[] {
    return this.#members;
  }

  /** Runs plans until the heal (and the change under way at the heal to its end). */
  async run(): Promise<void> {
    const w = this.world;
    await w.clock.sleep(w.random.next() * 10);
    while (w.faulty()) {
      const n = this.#members.length;
      const plan = pick(w.random, n <= 3 ? ["replace", "grow"] : ["replace", "shrink"]);
      if (plan === "replace") {
        const old = pick(w.random, this.#members);
        w.nodes[old]!.destroy(); // its disk is gone
        const fresh = w.addNode();
        if (!await this.#change({ kind: "replace", old, id: fresh.id, url: simUrl(fresh.id) })) {
          return;
        }
      } else {
        for (let i = 0; i < 2 && w.faulty(); i++) {
          let change: MemberChange;
          if (plan === "grow") {
            const fresh = w.addNode();
            change = { kind: "add", id: fresh.id, url: simUrl(fresh.id) };
          } else {
            change = { kind: "remove", id: pick(w.random, this.#members) };
          }
          if (!await this.#change(change)) return;
        }
      }
      await w.clock.sleep(w.random.next() * 20);
    }
  }

  // One change, run (again) until it is done; false when it cannot finish.
  async #change(change: MemberChange): Promise<boolean> {
    const w = this.world;
    let afterHeal = 0;
    for (;;) {
      const inc = ++this.#incarnation;
      let killTimer: unknown = undefined;
      const killed = new Promise<"killed">((resolve) => {
        if (w.faulty() && w.random.next() < 0.3) {
          killTimer = w.clock.setTimer(() => {
            this.#incarnation++;
            this.kills++;
            resolve("killed");
          }, w.random.next() * 20);
        }
      });
      const run = this.#runOnce(change, () => this.#incarnation === inc).then(
        (to) => to,
        (e: Error) => e,
      );
      const out = await Promise.race([run, killed]);
      w.clock.clearTimer(killTimer);
      if (Array.isArray(out)) {
        this.done++;
        this.#members = out;
        this.log.push(`${describeChange(change)} at ${w.clock.now().toFixed(1)} ms`);
        return true;
      }
      if (out instanceof Error) {
        // Not enough members up or reachable: run it again later. Anything
        // else (another change under way, a change that makes no sense) is
        // a bug of the change or of this changer.
        if (!(out instanceof NotEnoughQuorumError || out instanceof Deno.errors.TimedOut)) {
          w.violate(
            "membership change failed",
            `membership change ${describeChange(change)} threw ${out.stack ?? out}`,
          );
          return false;
        }
        this.failedRuns++;
      }
      if (!w.faulty() && ++afterHeal > RUNS_AFTER_HEAL) {
        w.violate(
          "liveness",
          `liveness: membership change ${describeChange(change)} did not finish after the heal ` +
            `(${RUNS_AFTER_HEAL} runs); last: ${out instanceof Error ? out.message : out}`,
        );
        return false;
      }
      await w.clock.sleep(2 + w.random.next() * 10);
    }
  }

  // One run of the command; resolves with the members at its end.
  async #runOnce(change: MemberChange, alive: () => boolean): Promise<number[]> {
    const w = this.world;
    const reach: SimReach = { net: w.net, client: w.client, timeoutMs: 20, alive };
    const links = simChangeLinks(reach);
    // The operator lists every node they know of (the old list is fine).
    const urls = w.nodes.filter((n) => !n.destroyed).map((n) => simUrl(n.id));
    const opts = {
      clock: w.clock,
      random: w.random,
      timeoutMs: 20,
      deadlineMs: 1000,
      // A page per key, and the cursor saved after each: a rerun resumes
      // the catch-up where the killed run left it.
      pageSize: 1,
      cursorEveryMs: 0,
      concurrency: 4,
      links,
      onProgress: (p: ChangeProgress) => {
        if (p.step === "joint" && p.config.cursor !== undefined && alive()) this.resumed++;
      },
    };
    if (w.variant !== "final-before-catch-up") {
      return [...(await changeMembership(urls, change, opts)).to.members];
    }
    // The planted bug: the final configuration right after the joint one,
    // without the catch-up: the new members alone make quorums before every
    // chosen value reached a majority of them.
    const r = await changeMembership(urls, change, { ...opts, stopAfter: "joint" });
    if (r.nothingToDo) return [...r.to.members];
    const joint = r.to;
    const final: MemberConfig = {
      epoch: joint.epoch + 1,
      members: joint.members,
      urls: new Map([...joint.urls ?? []].filter(([m]) => joint.members.includes(m))),
    };
    const all = allMembers(joint);
    const clients: MemberClient[] = links.members(new Map(all.map((m) => [m, simUrl(m)])), null);
    const asked = clients.map((c) =>
      c.config({
        Epoch: final.epoch,
        Members: final.members,
        ...(final.urls === undefined ? {} : { Urls: final.urls }),
      })
    );
    const out = await askQuorum(clients, (c) => asked[clients.indexOf(c)]!, {
      need: membersMajority(
        all.length,
        all.flatMap((m, i) => final.members.includes(m) ? [i] : []),
      ),
      clock: w.clock,
      deadline: w.clock.now() + 1000,
    });
    // As the real step does: a little longer for the others.
    await Promise.race([Promise.allSettled(asked), w.clock.sleep(200)]);
    if (!out.ok) {
      const stale = out.errors.find((e) => e instanceof AcceptorError);
      throw new NotEnoughQuorumError(
        `cannot install the final configuration: ${out.failures.join("; ")}` +
          (stale === undefined ? "" : ` (${stale.message})`),
      );
    }
    return [...final.members];
  }
}
