/**
 * A client's view of the cluster it talks to, built from what each acceptor
 * says of itself at connect (the trust extension's `Hello`), and the checks
 * that keep a client from writing through acceptors that do not belong
 * together: two URLs that reach one acceptor or one member, acceptors of
 * different clusters, a list of URLs that is not exactly the membership,
 * members that disagree on the cluster-wide settings, and a member that
 * came back as another instance (without its state).
 *
 * @module
 */
import type { HelloCluster, HelloReply } from "./handshake.ts";
import { allMembers, describeConfig, type MemberConfig } from "./identity.ts";

// What the view knows of the cluster: the newest configuration seen, and
// from which acceptor (membership extension: during a change, members may
// say different epochs; the view follows the newest).
interface Cluster {
  readonly name: string;
  readonly id: string;
  readonly config: MemberConfig;
  readonly keepVersions: number | null;
  readonly url: string;
}

/** The membership configuration a member states in its `Hello` reply. */
export function configOfHello(c: HelloCluster): MemberConfig {
  return {
    epoch: c.epoch ?? 0,
    members: c.members,
    ...(c.joint === undefined ? {} : { joint: c.joint }),
    ...(c.urls === undefined ? {} : { urls: c.urls }),
    ...(c.cursor === undefined ? {} : { cursor: c.cursor }),
  };
}

function joiningWhy(url: string, j: { member: number; name: string }): string {
  return `${url} (member ${j.member}) is joining cluster ${j.name} and not yet a member: ` +
    `add it first (member add)`;
}

const sameMembers = (a: MemberConfig, b: MemberConfig) =>
  a.members.join(",") === b.members.join(",") &&
  (a.joint ?? []).join(",") === (b.joint ?? []).join(",");

/**
 * The acceptors a client was given, as they described themselves.
 *
 * @example
 * ```ts
 * import { ClusterView } from "./cluster_view.ts";
 * const view = new ClusterView(["ws://a/paxos", "ws://b/paxos"]);
 * view.admit("ws://a/paxos", { instance: "0".repeat(32), peers: new Map() }); // null: fine
 * view.admit("ws://b/paxos", { instance: "0".repeat(32), peers: new Map() }); // why not: the same acceptor
 * ```
 */
export class ClusterView {
  readonly #urls: readonly string[];
  #cluster: Cluster | null = null;
  #anonymous: string | null = null;
  // Once connected (sealed), a newer membership is not followed but refused.
  #sealed = false;
  // What each URL reached: its instance, and its member id when it has one.
  readonly #byUrl = new Map<string, { instance: string; member: number | null }>();
  // The instance of each member: seen, or vouched for by another member.
  readonly #instances = new Map<number, { instance: string; from: string }>();
  // Would-be members (started to join, in no configuration yet), by URL:
  // fine only when the newest membership seen lists them (checked at seal).
  readonly #joining = new Map<string, { member: number; name: string; id: string }>();

  /** A view of the acceptors at `urls`, none seen yet. */
  constructor(urls: readonly string[]) {
    this.#urls = urls;
  }

  /** The members seen so far and their instances, by member id. */
  get instances(): ReadonlyMap<number, string> {
    const out = new Map<number, string>();
    for (const { instance, member } of this.#byUrl.values()) {
      if (member !== null) out.set(member, instance);
    }
    return out;
  }

  /**
   * The newest membership configuration seen (membership extension), or
   * null when no acceptor stated a cluster identity.
   */
  get config(): MemberConfig | null {
    return this.#cluster?.config ?? null;
  }

  /** The member id the acceptor at `url` said it is, when it did. */
  memberAt(url: string): number | null {
    return this.#byUrl.get(url)?.member ?? null;
  }

  /**
   * Ends the connect: checks that the URLs are exactly the members of the
   * newest configuration seen (during a change: the old and the new ones),
   * and returns why not, or null. From then on, an acceptor that states a
   * newer membership is refused (the client uses the one it connected with).
   */
  seal(): string | null {
    this.#sealed = true;
    const known = this.#cluster;
    for (const [url, j] of this.#joining) {
      if (known !== null && j.id !== known.id) {
        return `${known.url} belongs to cluster ${known.name} (id ${known.id}) and ${url} to ` +
          `cluster ${j.name} (id ${j.id}): list the members of one cluster`;
      }
      if (known === null || !allMembers(known.config).includes(j.member)) return joiningWhy(url, j);
    }
    if (known === null) return null;
    const members = allMembers(known.config);
    const n = this.#urls.length;
    if (members.length !== n) {
      return `${known.url} says cluster ${known.name} has ${members.length} members ` +
        `(${members.join(",")}), but ${n} ${n === 1 ? "acceptor is" : "acceptors are"} listed: ` +
        `list exactly the members, each once`;
    }
    for (const [url, seen] of this.#byUrl) {
      if (seen.member !== null && !members.includes(seen.member)) {
        return `${url} is member ${seen.member}, which is not in ${
          describeConfig(known.config)
        } (as ${known.url} says): list exactly the members, each once`;
      }
    }
    return null;
  }

  /**
   * Checks what the acceptor at `url` said of itself (null for a v1
   * acceptor, which says nothing) against what the others said, and
   * records it: returns why it does not belong with them, or null.
   */
  admit(url: string, hello: HelloReply | null): string | null {
    const why = this.#check(url, hello);
    if (why !== null) return why;
    if (hello === null) return null;
    const member = hello.cluster?.member ?? null;
    this.#byUrl.set(url, { instance: hello.instance, member });
    if (member !== null) {
      this.#instances.set(member, { instance: hello.instance, from: url });
      for (const [m, instance] of hello.peers) {
        if (!this.#instances.has(m)) this.#instances.set(m, { instance, from: url });
      }
    }
    return null;
  }

  #check(url: string, hello: HelloReply | null): string | null {
    // The same acceptor twice (two spellings of one address, or a path
    // with a query): it would count twice toward every quorum.
    for (const [other, seen] of this.#byUrl) {
      if (other !== url && hello !== null && seen.instance === hello.instance) {
        return `${other} and ${url} reach the same acceptor: each acceptor counts once, ` +
          `list it once`;
      }
    }
    const c = hello?.cluster;
    if (c === undefined) {
      if (this.#cluster !== null) {
        return `${url} has no cluster identity, but ${this.#cluster.url} belongs to cluster ` +
          `${this.#cluster.name}: list the members of one cluster`;
      }
      this.#anonymous ??= url;
      return null;
    }
    if (this.#anonymous !== null) {
      return `${url} belongs to cluster ${c.name}, but ${this.#anonymous} has no cluster ` +
        `identity: list the members of one cluster`;
    }
    const known = this.#cluster;
    if (c.joining === true) {
      // A would-be member that a change under way lists, but that missed the
      // joint configuration (it was down, or its answer was lost): it serves
      // nothing until it gets it, and counts as a member that does not
      // answer. One that no configuration lists is refused at seal.
      if (known !== null && c.id !== known.id) {
        return `${known.url} belongs to cluster ${known.name} (id ${known.id}) and ${url} to ` +
          `cluster ${c.name} (id ${c.id}): list the members of one cluster`;
      }
      const j = { member: c.member, name: c.name, id: c.id };
      if (this.#sealed && (known === null || !allMembers(known.config).includes(c.member))) {
        return joiningWhy(url, j);
      }
      this.#joining.set(url, j);
      return null;
    }
    this.#joining.delete(url);
    const config = configOfHello(c);
    if (known === null) {
      this.#cluster = { name: c.name, id: c.id, config, keepVersions: c.keepVersions, url };
    } else if (c.id !== known.id) {
      return `${known.url} belongs to cluster ${known.name} (id ${known.id}) and ${url} to ` +
        `cluster ${c.name} (id ${c.id}): list the members of one cluster`;
    } else if (c.keepVersions !== known.keepVersions) {
      return `members of cluster ${c.name} disagree: ${known.url} says keep-versions ` +
        `${known.keepVersions ?? "all"}; ${url} says ${c.keepVersions ?? "all"}`;
    } else if (config.epoch > known.config.epoch) {
      // A newer membership: followed while connecting, refused after.
      if (this.#sealed) {
        return `the membership of cluster ${c.name} changed: ${url} says ${
          describeConfig(config)
        }; this client connected with ${describeConfig(known.config)}: connect again with ` +
          `the new members`;
      }
      this.#cluster = { ...known, config, url };
    } else if (config.epoch === known.config.epoch && !sameMembers(config, known.config)) {
      return `members of cluster ${c.name} disagree: ${known.url} says ` +
        `${describeConfig(known.config)}; ${url} says ${describeConfig(config)}`;
    }
    // (An older membership is an acceptor the change has not reached yet:
    // it serves a client of a newer one, which counts its quorums itself.)
    for (const [other, seen] of this.#byUrl) {
      if (other !== url && seen.member === c.member) {
        return `${other} and ${url} both reach member ${c.member}: list each member once`;
      }
    }
    const before = this.#byUrl.get(url);
    if (before !== undefined && before.member !== c.member) {
      return `${url} now reaches member ${c.member}, but reached member ${before.member} before`;
    }
    const vouched = this.#instances.get(c.member);
    if (vouched !== undefined && vouched.instance !== hello!.instance) {
      return `${url} (member ${c.member}) is instance ${hello!.instance}, but ${vouched.from} ` +
        `knows member ${c.member} as instance ${vouched.instance}: it came back without its ` +
        `state and must not vote again; replace it (README: replacing a member)`;
    }
    for (const [m, instance] of hello!.peers) {
      const seen = this.#instances.get(m);
      if (seen !== undefined && seen.instance !== instance) {
        return `${url} knows member ${m} as instance ${instance}, but ${seen.from} says ` +
          `${seen.instance}: member ${m} came back without its state; replace it ` +
          `(README: replacing a member)`;
      }
    }
    return null;
  }
}
