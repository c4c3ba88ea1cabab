/**
 * Connecting to a cluster's acceptors: one {@link WebSocketAcceptorClient}
 * per URL, each connection's handshake checked against the others' (a
 * {@link ClusterView}), a majority reached, and the members' instances
 * vouched for to each acceptor, so that a member that comes back without
 * its state is refused by the next client too.
 *
 * @module
 */
import type { Clock, Random } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { ClusterView } from "./cluster_view.ts";
import { NotEnoughQuorumError, TrustError } from "./errors.ts";
import type { HelloReply, Secret } from "./handshake.ts";
import { jointMajority, majority, quorumOf, type QuorumSystem } from "./quorum.ts";
import type { MemberConfig } from "./identity.ts";
import { WebSocketAcceptorClient } from "./transport.ts";

/** Options of {@link connectAcceptors}. */
export interface ConnectOptions {
  /** How long each request may wait for its reply, in ms (default 1000). */
  readonly timeoutMs?: number;
  /** How long reaching a majority may take, in ms (default 10000). */
  readonly deadlineMs?: number;
  /** Time source (default: the system clock). */
  readonly clock?: Clock;
  /** Randomness for backoff (default: Math.random). */
  readonly random?: Random;
  /**
   * The cluster's shared secret (e.g. from `readSecretFile`): every
   * connection proves it knows it, and that the acceptor does.
   */
  readonly secret?: Secret;
  /** For `wss://` URLs: certificates (PEM) to trust besides the system's roots. */
  readonly caCerts?: readonly string[];
}

/**
 * Connects to the acceptors at `urls` and resolves with a client for each,
 * once a majority of them completed their handshake. Rejects with a
 * {@link TrustError} naming the URLs when they do not belong together (a
 * secret that does not match, two URLs for one acceptor or member,
 * different clusters, a list that is not exactly the membership, a member
 * that came back without its state), and with a
 * {@link NotEnoughQuorumError} when no majority answers before the
 * deadline. Later reconnects are checked the same way.
 *
 * @example
 * ```ts ignore
 * import { connectAcceptors } from "./connect.ts";
 * const clients = await connectAcceptors(["ws://127.0.0.1:3333/paxos", "ws://127.0.0.1:3334/paxos", "ws://127.0.0.1:3335/paxos"]);
 * await Promise.all(clients.map((c) => c.close()));
 * ```
 */
export async function connectAcceptors(
  urls: readonly string[],
  opts: ConnectOptions = {},
): Promise<WebSocketAcceptorClient[]> {
  return (await connectCluster(urls, opts)).clients;
}

/** A cluster connected: a client per URL, and which of them make a quorum. */
export interface ConnectedCluster {
  /** One client per URL, in order. */
  readonly clients: WebSocketAcceptorClient[];
  /**
   * Which of them make a quorum: a majority; while the membership changes,
   * a majority of the old members and of the new ones.
   */
  readonly quorum: QuorumSystem;
  /** The membership the acceptors stated (the newest), or null when they have no identity. */
  readonly config: MemberConfig | null;
}

/**
 * The quorum system for acceptors at `urls` under configuration `config`:
 * a majority of the members, or while a change is under way, a majority of
 * the old members and one of the new. `memberAt` tells the member id of a
 * URL (as its acceptor said, or as the configuration's URLs list it); an
 * acceptor whose member is not known counts in neither.
 *
 * @example
 * ```ts
 * import { quorumFor } from "./connect.ts";
 * const q = quorumFor(["a", "b", "c", "d"], { epoch: 1, members: [0, 1, 3], joint: [0, 1, 2] },
 *   (u) => ({ a: 0, b: 1, c: 2, d: 3 } as Record<string, number>)[u] ?? null);
 * q.isQuorum([0, 3]); // false: one of the old members
 * ```
 */
export function quorumFor(
  urls: readonly string[],
  config: MemberConfig | null,
  memberAt: (url: string) => number | null,
): QuorumSystem {
  if (config === null || config.joint === undefined) return majority(urls.length);
  const ids = urls.map((u) => {
    const m = memberAt(u);
    if (m !== null) return m;
    for (const [id, url] of config.urls ?? []) if (url === u) return id;
    return null;
  });
  const indices = (members: readonly number[]) =>
    ids.flatMap((m, i) => m !== null && members.includes(m) ? [i] : []);
  return jointMajority(
    urls.length,
    indices(config.joint),
    indices(config.members),
    config.joint.length,
    config.members.length,
  );
}

/**
 * Connects as {@link connectAcceptors} does, and tells which acceptors make
 * a quorum under the membership they stated (the newest, during a change).
 */
export async function connectCluster(
  urls: readonly string[],
  opts: ConnectOptions = {},
): Promise<ConnectedCluster> {
  if (urls.length === 0) throw new RangeError("connect needs at least one acceptor URL");
  if (new Set(urls).size !== urls.length) {
    throw new RangeError(`an acceptor URL is listed twice: ${urls.join(",")}`);
  }
  // What each acceptor says of itself is checked against the others as it
  // connects, now and at every reconnect.
  const view = new ClusterView(urls);
  let sealed = false;
  const clients = urls.map((u) =>
    new WebSocketAcceptorClient(u, {
      timeoutMs: opts.timeoutMs ?? 1000,
      verify: (hello) => view.admit(u, hello),
      // Reconnects say the membership this client connected with.
      epoch: () => sealed ? view.config?.epoch : undefined,
      ...(opts.clock === undefined ? {} : { clock: opts.clock }),
      ...(opts.random === undefined ? {} : { random: opts.random }),
      ...(opts.secret === undefined ? {} : { secret: opts.secret }),
      ...(opts.caCerts === undefined ? {} : { caCerts: opts.caCerts }),
    })
  );
  const clock = opts.clock ?? systemClock;
  const quorum = quorumOf(clients.length);
  try {
    // Every acceptor that answers is checked before any is used: one that
    // does not belong must be refused even when a majority of others do.
    // (One that does not answer costs up to its connect timeout.)
    const failures: string[] = [];
    let ready = 0;
    let timer: unknown;
    const timedOut = await Promise.race([
      Promise.all(
        clients.map((c) =>
          c.ready().then(() => void ready++, (e: Error) => void failures.push(e.message))
        ),
      ).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = clock.setTimer(() => resolve(true), opts.deadlineMs ?? 10_000);
      }),
    ]);
    clock.clearTimer(timer);
    const refused = clients.find((c) => c.refusal !== null)?.refusal;
    if (refused !== undefined && refused !== null) throw refused;
    // The URLs must be exactly the members of the newest membership seen.
    const wrong = view.seal();
    sealed = true;
    if (wrong !== null) throw new TrustError(wrong);
    if (ready < quorum) {
      const why = timedOut ? "no majority answered within the deadline" : "too many failed";
      throw new NotEnoughQuorumError(
        `cannot reach a majority of the acceptors: ${ready} of ${clients.length} answered, ` +
          `${quorum} needed; ${why}` + (failures.length > 0 ? `; ${failures.join("; ")}` : ""),
      );
    }
    // Vouch for the members' instances, so that one that comes back without
    // its state is refused by the next client too.
    const instances = view.instances;
    if (instances.size > 0) {
      await Promise.all(
        // (Not to a would-be member the membership lists: it knows no
        // members yet, and learns them with the configuration.)
        clients.filter((c) => c.hello?.cluster !== undefined && c.hello.cluster.joining !== true)
          .map((c) =>
            c.attest(instances).catch((e) => {
              if (e instanceof TrustError) throw e;
            })
          ),
      );
    }
    const config = view.config;
    return {
      clients,
      quorum: quorumFor(urls, config, (u) => view.memberAt(u)),
      config,
    };
  } catch (e) {
    await Promise.all(clients.map((c) => c.close()));
    throw e;
  }
}

/** What {@link discoverCluster} found. */
export interface DiscoveredCluster {
  /** The newest membership configuration a member stated, or null when none has an identity. */
  readonly config: MemberConfig | null;
  /** The URL of each member that answered, by member id, as given. */
  readonly urls: ReadonlyMap<number, string>;
  /** The URLs given whose acceptor did not answer. */
  readonly unanswered: readonly string[];
  /** The cluster's name, id and retention, as its members state them; null when none has an identity. */
  readonly cluster: {
    readonly name: string;
    readonly id: string;
    readonly keepVersions: number | null;
  } | null;
  /** The epoch of the configuration each member that answered holds, by member id. */
  readonly epochs: ReadonlyMap<number, number>;
  /** The would-be members that answered (started with `--init --join`, in no configuration yet), by member id. */
  readonly joining: ReadonlyMap<number, string>;
}

/**
 * Asks the acceptors at `urls` who they are (the handshake alone, checked
 * as connecting checks it, without asking the list to be the whole
 * membership): resolves with the newest membership any of them states, so
 * that a client or an operator given an older list of members can follow
 * the cluster to its current one.
 *
 * @example
 * ```ts ignore
 * import { discoverCluster } from "./connect.ts";
 * const { config } = await discoverCluster(["ws://127.0.0.1:3333/paxos"]);
 * config?.members; // e.g. [0, 1, 3]
 * ```
 */
export async function discoverCluster(
  urls: readonly string[],
  opts: ConnectOptions = {},
): Promise<DiscoveredCluster> {
  if (urls.length === 0) throw new RangeError("give at least one acceptor URL");
  const hellos = new Map<string, HelloReply>();
  let clusterId: string | null = null;
  const clients = urls.map((u) =>
    new WebSocketAcceptorClient(u, {
      timeoutMs: opts.timeoutMs ?? 1000,
      verify: (hello) => {
        const id = hello.cluster?.id;
        if (id !== undefined) {
          clusterId ??= id;
          if (id !== clusterId) {
            return `${u} belongs to another cluster (id ${id}, not ${clusterId}): list the ` +
              `members of one cluster`;
          }
        }
        hellos.set(u, hello);
        return null;
      },
      ...(opts.clock === undefined ? {} : { clock: opts.clock }),
      ...(opts.secret === undefined ? {} : { secret: opts.secret }),
      ...(opts.caCerts === undefined ? {} : { caCerts: opts.caCerts }),
    })
  );
  try {
    const failures: string[] = [];
    await Promise.all(clients.map((c) => c.ready().catch((e: Error) => failures.push(e.message))));
    const refused = clients.find((c) => c.refusal !== null)?.refusal;
    if (refused !== undefined && refused !== null) throw refused;
    if (hellos.size === 0) {
      throw new NotEnoughQuorumError(`no acceptor answered: ${failures.join("; ")}`);
    }
    let config: MemberConfig | null = null;
    const members = new Map<number, string>();
    const epochs = new Map<number, number>();
    const joining = new Map<number, string>();
    let cluster: DiscoveredCluster["cluster"] = null;
    // The cluster's settings as a member states them: a would-be member's
    // only when no member answered (it may have been started with others).
    let fromMember = false;
    for (const [u, h] of hellos) {
      const c = h.cluster;
      if (c === undefined) continue;
      if (cluster === null || (!fromMember && c.joining !== true)) {
        cluster = { name: c.name, id: c.id, keepVersions: c.keepVersions };
        fromMember = c.joining !== true;
      }
      if (c.joining === true) {
        joining.set(c.member, u);
        continue;
      }
      members.set(c.member, u);
      const epoch = c.epoch ?? 0;
      epochs.set(c.member, epoch);
      if (config === null || epoch > config.epoch) {
        config = {
          epoch,
          members: c.members,
          ...(c.joint === undefined ? {} : { joint: c.joint }),
          ...(c.urls === undefined ? {} : { urls: c.urls }),
          ...(c.cursor === undefined ? {} : { cursor: c.cursor }),
        };
      }
    }
    return {
      config,
      urls: members,
      unanswered: urls.filter((u) => !hellos.has(u)),
      cluster,
      epochs,
      joining,
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/**
 * The URLs of the newest membership the acceptors at `urls` state: during
 * a change the old and the new members. Members whose URL the
 * configuration does not hold keep the URL given. Resolves with `urls`
 * itself when the acceptors have no identity.
 */
export async function currentMembers(
  urls: readonly string[],
  opts: ConnectOptions = {},
): Promise<string[]> {
  const { config, urls: given, unanswered } = await discoverCluster(urls, opts);
  if (config === null) return [...urls];
  const all = [...new Set([...config.members, ...(config.joint ?? [])])].sort((a, b) => a - b);
  // One member down whose URL the configuration does not hold (a cluster
  // never changed), and one URL given that did not answer: that is its URL.
  const unknown = all.filter((m) => !given.has(m) && !config.urls?.has(m));
  const guess = unknown.length === 1 && unanswered.length === 1 ? unanswered[0] : undefined;
  return all.map((m) => {
    const u = given.get(m) ?? config.urls?.get(m) ?? (m === unknown[0] ? guess : undefined);
    if (u === undefined) {
      throw new RangeError(
        `the URL of member ${m} is not known (the acceptors listed do not say it): list it`,
      );
    }
    return u;
  });
}
