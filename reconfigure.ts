/**
 * Changing the membership online (docs/membership.md): add a member, remove
 * one, or replace one (the usual repair of a member whose disk is gone),
 * without stopping the clients and without losing an acknowledged write.
 *
 * The steps, each safe to interrupt and to run again (the next run reads
 * how far the last one got from the members themselves and rolls forward):
 *
 * 1. **Joint**: install configuration `epoch+1` = the new members, with the
 *    old ones as `joint`, on a majority of the old members and of the new.
 *    From then on a quorum is a majority of the old AND of the new members;
 *    a client of the old membership is refused (`StaleMembership`) by the
 *    members that have it, so it cannot gather a quorum of the old
 *    membership alone any more.
 * 2. **Catch-up**: for every key (listed by the old members: the kv extension's `Keys`), read
 *    every version they keep with Paxos under the joint quorum: a read
 *    finishes whatever is chosen there on a joint quorum, so a majority of
 *    the new members holds it. The last key done (`cursor`) is installed
 *    with the configuration from time to time: a rerun resumes there.
 * 3. **Final**: install configuration `epoch+2` = the new members alone, on
 *    a majority of them (and on every other member that answers). Clients
 *    of the joint membership are refused from then on.
 *
 * @module
 */
import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";
import type { ConfigRequest } from "./codec.ts";
import {
  connectCluster,
  type ConnectOptions,
  discoverCluster,
  type DiscoveredCluster,
} from "./connect.ts";
import { isStaleMembership, NotEnoughQuorumError, TrustError } from "./errors.ts";
import {
  allMembers,
  checkConfig,
  checkMembers,
  describeConfig,
  type MemberConfig,
} from "./identity.ts";
import { CompactedError, Kv } from "./kv.ts";
import {
  askQuorum,
  jointMajority,
  membersMajority,
  quorumOf,
  type QuorumSystem,
} from "./quorum.ts";
import { type KeysAcceptorClient, WebSocketAcceptorClient } from "./transport.ts";
import { ballotEquals, isFirstWriteBallot } from "./types.ts";

/** A change of membership: add a member, remove one, or replace one by another. */
export type MemberChange =
  | { readonly kind: "add"; readonly id: number; readonly url: string }
  | { readonly kind: "remove"; readonly id: number }
  | {
    readonly kind: "replace";
    readonly old: number;
    readonly id: number;
    readonly url: string;
  };

/** How far a change got, as {@link changeMembership} tells it. */
export interface ChangeProgress {
  /** The step: the joint configuration installed, keys caught up, or the final one installed. */
  readonly step: "joint" | "catch-up" | "final";
  /** The configuration installed last. */
  readonly config: MemberConfig;
  /** Keys caught up so far by this run. */
  readonly keys: number;
}

/** Options of {@link changeMembership}. */
export interface ChangeOptions extends ConnectOptions {
  /** Told of each step and, during the catch-up, of its progress. */
  readonly onProgress?: (p: ChangeProgress) => void;
  /** Keys asked per page (default 1000). */
  readonly pageSize?: number;
  /**
   * Keys caught up at once (default 8). More is a faster catch-up; fewer
   * leaves more of the members' time to the clients meanwhile (each of
   * their requests waits behind the catch-up's at every member).
   */
  readonly concurrency?: number;
  /**
   * How often the catch-up's cursor is installed with the joint
   * configuration, so that a rerun resumes there (default 1000 ms; the
   * simulation saves it after every page).
   */
  readonly cursorEveryMs?: number;
  /** Stop after this step, as an interrupted run would (tests). */
  readonly stopAfter?: "joint" | "catch-up";
  /**
   * How the change reaches the acceptors (default: {@link webSocketLinks},
   * WebSocket connections with the options above). A seam: the
   * deterministic simulation (sim/) runs the same change over its simulated
   * network.
   */
  readonly links?: ChangeLinks;
}

/** A member's connection as a change uses it: the kv extension's requests and the membership extension's `Config`. */
export interface MemberClient extends KeysAcceptorClient {
  /** Resolves once connected and checked to be the member it is listed as. */
  ready(): Promise<void>;
  /** Installs a configuration (rejects with an `AcceptorError` when the member refuses it). */
  config(req: ConfigRequest): Promise<void>;
  /** Closes the connection. */
  close(): Promise<void>;
}

/**
 * The three ways a change talks to the acceptors: who they are (the
 * handshake alone), a connection to all of them under the membership they
 * state (for the catch-up's Paxos reads), and one connection per member
 * (for `Config`). {@link webSocketLinks} is the real one.
 */
export interface ChangeLinks {
  /** As {@link discoverCluster}: the newest configuration stated, and the URLs that answered. */
  discover(urls: readonly string[]): Promise<DiscoveredCluster>;
  /** As `connectCluster`: a client per URL, and which of them make a quorum. */
  connect(
    urls: readonly string[],
  ): Promise<{ readonly clients: MemberClient[]; readonly quorum: QuorumSystem }>;
  /**
   * A client for each member, checked to be that member of one cluster and
   * to keep `keepVersions` versions as the cluster does (null: every one).
   */
  members(urls: ReadonlyMap<number, string>, keepVersions: number | null): MemberClient[];
  /** As {@link checkNewMember}: what keeps the would-be member at `url` from joining, or null. */
  check(
    url: string,
    id: number,
    cluster: { readonly id: string; readonly keepVersions: number | null },
  ): Promise<NewMemberMismatch | null>;
}

/**
 * The {@link ChangeLinks} of real acceptors: WebSocket connections made
 * with `opts` (secret, CA certificates, timeouts, clock).
 *
 * @example
 * ```ts ignore
 * import { webSocketLinks } from "./reconfigure.ts";
 * const { config } = await webSocketLinks({}).discover(["ws://127.0.0.1:3333/paxos"]);
 * ```
 */
export function webSocketLinks(opts: ConnectOptions): ChangeLinks {
  return {
    discover: (urls) => discoverCluster(urls, opts),
    connect: (urls) => connectCluster(urls, opts),
    members: (urls, keepVersions) => openMembers(urls, keepVersions, opts),
    check: (url, id, cluster) => checkNewMember(url, id, cluster, opts),
  };
}

/** What {@link changeMembership} did. */
export interface ChangeReport {
  /** The membership found at the start. */
  readonly from: MemberConfig;
  /** The membership at the end. */
  readonly to: MemberConfig;
  /** Keys caught up by this run. */
  readonly keys: number;
  /** Whether there was nothing to change (the change was done already). */
  readonly nothingToDo: boolean;
}

/**
 * The members a change leads to from `members`; throws a RangeError when it
 * makes no sense there (adding a member, or a replacement, that is one
 * already; removing one that is not; removing the last).
 *
 * @example
 * ```ts
 * import { targetMembers } from "./reconfigure.ts";
 * targetMembers([0, 1, 2], { kind: "replace", old: 2, id: 3, url: "ws://h:3336/paxos" }); // [0, 1, 3]
 * ```
 */
export function targetMembers(members: readonly number[], change: MemberChange): number[] {
  const has = (m: number) => members.includes(m);
  switch (change.kind) {
    case "add":
      if (has(change.id)) throw new RangeError(`member ${change.id} is a member already`);
      return checkMembers([...members, change.id]);
    case "remove":
      if (!has(change.id)) throw new RangeError(`member ${change.id} is not a member`);
      if (members.length === 1) throw new RangeError(`member ${change.id} is the last member`);
      return checkMembers(members.filter((m) => m !== change.id));
    case "replace":
      if (!has(change.old)) throw new RangeError(`member ${change.old} is not a member`);
      if (has(change.id)) throw new RangeError(`member ${change.id} is a member already`);
      return checkMembers([...members.filter((m) => m !== change.old), change.id]);
  }
}

/** Describes a change in a few words: `add 3 at ws://...`. */
export function describeChange(change: MemberChange): string {
  switch (change.kind) {
    case "add":
      return `add member ${change.id} at ${change.url}`;
    case "remove":
      return `remove member ${change.id}`;
    case "replace":
      return `replace member ${change.old} by member ${change.id} at ${change.url}`;
  }
}

/** What is wrong with a would-be member, as {@link checkNewMember} finds it. */
export interface NewMemberMismatch {
  /** Which setting disagrees. */
  readonly what: "identity" | "cluster" | "member" | "keepVersions";
  /** One line naming the URL and both values. */
  readonly message: string;
}

/**
 * Asks the would-be member at `url` who it is and compares it with the
 * cluster's settings: the same cluster id, the member id `id`, and the same
 * retention (`keepVersions`; a member that keeps another number of versions
 * would make every client refuse the members once it is one). Resolves with
 * null when it fits or does not answer (the change then says what it can do
 * without it), and otherwise with what disagrees.
 *
 * @example
 * ```ts ignore
 * import { checkNewMember } from "./reconfigure.ts";
 * const m = await checkNewMember("ws://d:3336/paxos", 3, { id: "c1", keepVersions: null });
 * m?.message; // e.g. "ws://d:3336/paxos keeps 2 versions, the cluster every version"
 * ```
 */
export async function checkNewMember(
  url: string,
  id: number,
  cluster: { readonly id: string; readonly keepVersions: number | null },
  opts: ConnectOptions = {},
): Promise<NewMemberMismatch | null> {
  const client = new WebSocketAcceptorClient(url, {
    timeoutMs: opts.timeoutMs ?? 1000,
    ...(opts.clock === undefined ? {} : { clock: opts.clock }),
    ...(opts.secret === undefined ? {} : { secret: opts.secret }),
    ...(opts.caCerts === undefined ? {} : { caCerts: opts.caCerts }),
  });
  try {
    await client.ready();
  } catch {
    return null;
  } finally {
    await client.close();
  }
  const c = client.hello?.cluster;
  if (c === undefined) return { what: "identity", message: `${url} has no cluster identity` };
  if (c.id !== cluster.id) {
    return {
      what: "cluster",
      message: `${url} belongs to another cluster (${c.name}, id ${c.id}, not ${cluster.id})`,
    };
  }
  if (c.member !== id) {
    return { what: "member", message: `${url} is member ${c.member}, not member ${id}` };
  }
  if (c.keepVersions !== cluster.keepVersions) {
    return {
      what: "keepVersions",
      message: `${url} keeps ${keeps(c.keepVersions)}, the cluster ${keeps(cluster.keepVersions)}`,
    };
  }
  return null;
}

function keeps(k: number | null): string {
  return k === null ? "every version" : `${k} versions`;
}

/**
 * Changes the membership of the cluster whose members (some of them) are at
 * `urls`, as the module's description says, and resolves with what it did.
 * Rejects when a step cannot gather its quorum (the message says how far it
 * got; run it again once enough members are up), with a
 * `TrustError` when the acceptors do not belong together, and with a
 * RangeError when the change makes no sense for the membership found, or
 * another change is under way.
 *
 * @example
 * ```ts ignore
 * import { changeMembership } from "./reconfigure.ts";
 * const r = await changeMembership(["ws://a:3333/paxos", "ws://b:3334/paxos", "ws://c:3335/paxos"],
 *   { kind: "replace", old: 2, id: 3, url: "ws://d:3336/paxos" });
 * r.to.members; // [0, 1, 3]
 * ```
 */
export async function changeMembership(
  urls: readonly string[],
  change: MemberChange,
  opts: ChangeOptions = {},
): Promise<ChangeReport> {
  const clock = opts.clock ?? systemClock;
  for (const name of ["pageSize", "concurrency"] as const) {
    const n = opts[name];
    if (n !== undefined && !(Number.isSafeInteger(n) && n > 0)) {
      throw new RangeError(`${name} must be a positive integer, got ${n}`);
    }
  }
  // Where the membership stands: the newest configuration any member states,
  // and every member's URL.
  const links = opts.links ?? webSocketLinks(opts);
  let found = await links.discover(urls);
  // A member that the configuration lists but that still says it is joining
  // missed it (it was down when it was installed, and after): it is given
  // the configuration now, so that it serves and counts. (Safe even when a
  // newer configuration exists: that one is on a majority of these members,
  // which refuse every client of this one.)
  const missed = found.config === null
    ? []
    : [...found.joining].filter(([m]) => allMembers(found.config!).includes(m));
  if (missed.length > 0) {
    const clients = links.members(new Map(missed), found.cluster!.keepVersions);
    try {
      const req = configRequest(found.config!);
      await Promise.allSettled(clients.map((c) => c.ready().then(() => c.config(req))));
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
    found = await links.discover(urls);
  }
  const start = found.config;
  if (start === null && found.joining.size > 0) {
    // Only would-be members answered: the members are down or cut off, not
    // without an identity. Running it again once they are up goes on.
    throw new NotEnoughQuorumError(
      `no member answered at ${urls.join(",")}, only the would-be member(s) ` +
        `${[...found.joining.keys()].join(",")}: run it again once the members are up` +
        (found.unanswered.length ? ` (no answer from ${found.unanswered.join(",")})` : ""),
    );
  }
  if (start === null || found.cluster === null) {
    throw new TypeError(
      `the acceptors at ${urls.join(",")} have no cluster identity: their membership is fixed`,
    );
  }
  // The newest configuration a few members state may not be the newest
  // there is: a later one is on a majority of its members (the next joint
  // one on a majority of `start.members`, the final one of a change on a
  // majority of the new members). So the members that answered must meet
  // every majority of `start.members` before the run acts on it.
  const n = start.members.length;
  const heard = start.members.filter((m) => found.urls.has(m));
  if (heard.length + quorumOf(n) <= n) {
    throw new NotEnoughQuorumError(
      `only member(s) ${heard.join(",") || "none"} of ${describeConfig(start)} answered, ` +
        `${n - quorumOf(n) + 1} needed to know that no newer configuration is in ` +
        `force: run it again once more members are up` +
        (found.unanswered.length ? ` (no answer from ${found.unanswered.join(",")})` : ""),
    );
  }
  const cluster = found.cluster;
  const run: Run = { ...opts, keepVersions: cluster.keepVersions };
  // A would-be member that does not fit is refused before anything changes.
  if (change.kind !== "remove") {
    const wrong = await links.check(change.url, change.id, cluster);
    if (wrong !== null) {
      throw new RangeError(`${describeChange(change)}: ${wrong.message}; nothing was changed`);
    }
  }
  let joint: MemberConfig;
  if (start.joint !== undefined) {
    // A change is under way: this run finishes it, if it is this change.
    const wanted = targetMembers(start.joint, change);
    if (wanted.join(",") !== start.members.join(",")) {
      throw new RangeError(
        `another change is under way: ${describeConfig(start)}; finish it first (run the ` +
          `command that started it again)`,
      );
    }
    // A member that answered at another URL than the one recorded (it
    // moved while the change was stopped) is reached where it answered.
    const urlsOf = new Map(start.urls ?? []);
    for (const [m, u] of found.urls) if (allMembers(start).includes(m)) urlsOf.set(m, u);
    joint = checkConfig({ ...start, urls: urlsOf });
  } else {
    let target: number[];
    try {
      target = targetMembers(start.members, change);
    } catch (e) {
      // Done already (a rerun after the last step)? Then make sure every
      // member that answers has the final configuration.
      if (doneAlready(start, change)) {
        await install(links, found.urls, start, membersOf(start), run, clock, "final");
        return { from: start, to: start, keys: 0, nothingToDo: true };
      }
      throw e;
    }
    const urlsOf = new Map(start.urls ?? []);
    for (const [m, u] of found.urls) urlsOf.set(m, u);
    // One member down, one URL given that did not answer: that is its URL.
    const missing = start.members.filter((m) => !urlsOf.has(m));
    if (missing.length === 1 && found.unanswered.length === 1) {
      urlsOf.set(missing[0]!, found.unanswered[0]!);
    }
    if (change.kind !== "remove") urlsOf.set(change.id, change.url);
    joint = checkConfig({
      epoch: start.epoch + 1,
      members: target,
      joint: start.members,
      urls: new Map([...urlsOf].filter(([m]) => target.includes(m) || start.members.includes(m))),
    });
  }
  const urlOf = (m: number) => {
    const u = joint.urls?.get(m);
    if (u === undefined) {
      throw new RangeError(
        `the URL of member ${m} is not known: list every member's URL (--acceptors)`,
      );
    }
    return u;
  };
  const jointUrls = new Map(allMembers(joint).map((m) => [m, urlOf(m)]));

  // 1. The joint configuration, on a majority of the old members and of the new.
  await install(links, jointUrls, joint, jointOf(joint), run, clock, "joint");
  opts.onProgress?.({ step: "joint", config: joint, keys: 0 });
  if (opts.stopAfter === "joint") return { from: start, to: joint, keys: 0, nothingToDo: false };

  // 2. The catch-up, from where the last run stopped.
  const keys = await catchUp(links, jointUrls, joint, run, clock);
  if (opts.stopAfter === "catch-up") return { from: start, to: joint, keys, nothingToDo: false };

  // 3. The final configuration, on a majority of the new members.
  const final = checkConfig({
    epoch: joint.epoch + 1,
    members: joint.members,
    urls: new Map([...jointUrls].filter(([m]) => joint.members.includes(m))),
  });
  await install(links, jointUrls, final, membersOf(final), run, clock, "final");
  opts.onProgress?.({ step: "final", config: final, keys });
  return { from: start, to: final, keys, nothingToDo: false };
}

function doneAlready(c: MemberConfig, change: MemberChange): boolean {
  switch (change.kind) {
    case "add":
      return c.members.includes(change.id);
    case "remove":
      return !c.members.includes(change.id);
    case "replace":
      return c.members.includes(change.id) && !c.members.includes(change.old);
  }
}

// The options of a run, with the cluster's retention, which every member
// taking a configuration must share.
type Run = ChangeOptions & { readonly keepVersions: number | null };

// Which members must have a configuration: a quorum over member ids.
type MemberQuorum = (ids: readonly (number | null)[]) => QuorumSystem;

function jointOf(c: MemberConfig): MemberQuorum {
  return (ids) =>
    jointMajority(
      ids.length,
      indices(ids, c.joint ?? c.members),
      indices(ids, c.members),
      (c.joint ?? c.members).length,
      c.members.length,
    );
}

function membersOf(c: MemberConfig): MemberQuorum {
  return (ids) => membersMajority(ids.length, indices(ids, c.members), c.members.length);
}

function indices(ids: readonly (number | null)[], members: readonly number[]): number[] {
  return ids.flatMap((m, i) => m !== null && members.includes(m) ? [i] : []);
}

function configRequest(c: MemberConfig): ConfigRequest {
  return {
    Epoch: c.epoch,
    Members: c.members,
    ...(c.joint === undefined ? {} : { Joint: c.joint }),
    ...(c.urls === undefined ? {} : { Urls: c.urls }),
    ...(c.cursor === undefined ? {} : { Cursor: c.cursor }),
  };
}

// Installs `config` on the members at `urls` (each checked to be the member
// it is listed as, of the cluster), waiting for the quorum `need` and
// then a little for the others; throws when the quorum cannot be had.
async function install(
  links: ChangeLinks,
  urls: ReadonlyMap<number, string>,
  config: MemberConfig,
  need: MemberQuorum,
  opts: Run,
  clock: Clock,
  step: string,
): Promise<void> {
  const clients = links.members(urls, opts.keepVersions);
  const close = async () => {
    await Promise.all(clients.map((c) => c.close()));
  };
  try {
    const ids = [...urls.keys()];
    const req = configRequest(config);
    const asked = clients.map((c) => c.ready().then(() => c.config(req)));
    const out = await askQuorum(clients, (c) => asked[clients.indexOf(c)]!, {
      need: need(ids),
      clock,
      deadline: clock.now() + (opts.deadlineMs ?? 10_000),
    });
    // The others may still answer: a member that has it is one fewer behind.
    await Promise.race([
      Promise.allSettled(asked),
      new Promise<void>((r) => {
        const t = clock.setTimer(r, 200);
        Promise.allSettled(asked).then(() => clock.clearTimer(t));
      }),
    ]);
    if (!out.ok) {
      const stale = out.errors.find(isStaleMembership);
      const why = out.why === "" ? "too many failed" : out.why;
      throw new NotEnoughQuorumError(
        `cannot install the ${step} configuration ${describeConfig(config)}: ` +
          `${out.replies.length} members took it, ${need(ids).description} needed; ${why}` +
          (out.failures.length ? `; ${out.failures.join("; ")}` : "") +
          (stale === undefined ? "" : " (another change went further: list the members again)"),
      );
    }
  } finally {
    await close();
  }
}

// A client for each member, checked to be that member of one cluster.
function openMembers(
  urls: ReadonlyMap<number, string>,
  keepVersions: number | null,
  opts: ConnectOptions,
): MemberClient[] {
  let clusterId: string | null = null;
  return [...urls].map(([m, url]) =>
    new WebSocketAcceptorClient(url, {
      timeoutMs: opts.timeoutMs ?? 1000,
      verify: (hello) => {
        const c = hello.cluster;
        if (c === undefined) return `${url} has no cluster identity`;
        if (c.member !== m) return `${url} is member ${c.member}, not member ${m}`;
        clusterId ??= c.id;
        if (c.id !== clusterId) {
          return `${url} belongs to another cluster (id ${c.id}, not ${clusterId})`;
        }
        if (c.keepVersions !== keepVersions) {
          return `${url} keeps ${keeps(c.keepVersions)}, the cluster ${keeps(keepVersions)}`;
        }
        return null;
      },
      ...(opts.clock === undefined ? {} : { clock: opts.clock }),
      ...(opts.secret === undefined ? {} : { secret: opts.secret }),
      ...(opts.caCerts === undefined ? {} : { caCerts: opts.caCerts }),
    })
  );
}

// Step 2: every key the old members hold, read under the joint quorum.
async function catchUp(
  links: ChangeLinks,
  urls: ReadonlyMap<number, string>,
  joint: MemberConfig,
  opts: Run,
  clock: Clock,
): Promise<number> {
  const old = joint.joint ?? [];
  let cluster;
  try {
    cluster = await links.connect([...urls.values()]);
  } catch (e) {
    // A new member still joining, while too few of those that hold the
    // joint configuration answered to list it: the next run installs it
    // again.
    if (!(e instanceof TrustError && / is joining cluster /.test(e.message))) throw e;
    throw new NotEnoughQuorumError(
      `catch-up: ${e.message}; the members that hold the joint configuration did not answer: ` +
        `run the change again`,
      { cause: e },
    );
  }
  const { clients, quorum } = cluster;
  const kv = new Kv(clients, { ...opts, quorum });
  const pageSize = opts.pageSize ?? 1000;
  const concurrency = opts.concurrency ?? 8;
  const ids = [...urls.keys()];
  const oldClients = clients.filter((_, i) => old.includes(ids[i]!));
  const oldMajority = membersMajority(oldClients.length, oldClients.map((_, i) => i));
  let cursor = joint.cursor;
  let done = 0;
  let lastSaved = clock.now();
  try {
    for (;;) {
      // A page from each old member, past the cursor. A key chosen before
      // the change is on a majority of the old members: a majority's pages
      // together hold it.
      const from = cursor === undefined ? "" : cursor + "\0";
      const out = await askQuorum(oldClients, (c) => c.keys(from, pageSize), {
        need: oldMajority,
        clock,
        deadline: clock.now() + (opts.deadlineMs ?? 10_000),
      });
      if (!out.ok) {
        throw new NotEnoughQuorumError(
          `catch-up: cannot list the keys past ${JSON.stringify(cursor ?? "")} on a majority of ` +
            `the old members: ${out.failures.join("; ")}`,
        );
      }
      // Up to where every page that has more is complete.
      let bound: string | null = null;
      for (const p of out.replies) {
        const last = p.Keys.at(-1);
        if (p.More && last !== undefined && (bound === null || last < bound)) bound = last;
      }
      const keys = [...new Set(out.replies.flatMap((p) => p.Keys))]
        .filter((k) => bound === null || k <= bound)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      // `concurrency` keys at a time, each next key started as one is done
      // (not in batches, which waited for the slowest of each).
      let next = 0;
      let failed = false;
      const worker = async () => {
        while (next < keys.length && !failed) {
          const k = keys[next++]!;
          try {
            await settleKey(kv, clients, quorum, k, clock, opts);
          } catch (e) {
            failed = true;
            // A member refused: a new one still joining (it missed the
            // joint configuration), or a change went further. Either way
            // the next run sorts it out: it installs the joint
            // configuration again, or finds the newer one.
            if (!isStaleMembership(e)) throw e;
            throw new NotEnoughQuorumError(
              `catch-up of ${JSON.stringify(k)}: no joint quorum would serve it (${e.message}); ` +
                `run the change again`,
              { cause: e },
            );
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, keys.length) }, worker));
      done += keys.length;
      if (bound === null) {
        opts.onProgress?.({ step: "catch-up", config: joint, keys: done });
        return done;
      }
      // How far it got, kept by the members about once a second: a rerun
      // starts there.
      cursor = bound;
      const at = { ...joint, cursor };
      if (clock.now() - lastSaved >= (opts.cursorEveryMs ?? 1000)) {
        await install(links, urls, at, jointOf(joint), opts, clock, "joint");
        lastSaved = clock.now();
      }
      opts.onProgress?.({ step: "catch-up", config: at, keys: done });
    }
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

// One key: every version the members keep, read with Paxos under the joint
// quorum, which finishes what is chosen there on a joint quorum (but for
// the top version when the joint quorum's Latest replies show it chosen there).
async function settleKey(
  kv: Kv,
  clients: readonly MemberClient[],
  quorum: QuorumSystem,
  key: string,
  clock: Clock,
  opts: ChangeOptions,
): Promise<void> {
  const out = await askQuorum(clients, (c) => c.latest(key), {
    need: quorum,
    clock,
    deadline: clock.now() + (opts.deadlineMs ?? 10_000),
  });
  if (!out.ok) {
    throw new NotEnoughQuorumError(
      `catch-up of ${JSON.stringify(key)}: no joint quorum answered: ${out.failures.join("; ")}`,
    );
  }
  let top = -1n;
  let floor = 0n;
  for (const r of out.replies) {
    if (r.Ver > top) top = r.Ver;
    if (r.Floor > floor) floor = r.Floor;
  }
  // The usual case: members that make a joint quorum voted for one value
  // at one ballot at the top version (a new member that has nothing yet
  // may answer too). That value is chosen, and on a majority of the new
  // members already: no need to read it again (which took a second round
  // trip to every member for every key).
  const vote = out.replies.find((r) => r.Ver === top && r.Val !== null);
  const voters = out.from.filter((_, i) => {
    const r = out.replies[i]!;
    return vote !== undefined && r.Ver === top && r.Val !== null &&
      ballotEquals(r.VBal, vote.VBal);
  });
  // (Not a first write's round-0 vote: a new member holds none, and a read
  // chooses it again at a ballot above round 0, which any round-0 vote the
  // new member may cast later cannot outrank.)
  const topHeld = top >= 0n && quorum.isQuorum(voters) &&
    (vote === undefined || !isFirstWriteBallot(vote.VBal));
  for (let v = floor; v <= (topHeld ? top - 1n : top); v++) {
    try {
      await kv.getVersion(key, v);
    } catch (e) {
      if (!(e instanceof CompactedError)) throw e;
    }
  }
}
