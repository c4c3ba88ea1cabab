/**
 * A cluster's identity: which cluster an acceptor belongs to, which member
 * it is, and the membership and settings the members share. A durable
 * acceptor keeps it in its data directory, created once on purpose
 * (`cli.ts acceptor --init`); clients check it at connect, so that no
 * client mixes acceptors of two clusters, counts one acceptor twice, or
 * writes through a part of the membership.
 *
 * File (`identity.json` in the data directory), written whole to a
 * temporary file, synced, and renamed over the old one:
 *
 * ```json
 * {"format": 1, "cluster": "prod", "clusterId": "<32 hex digits>",
 *  "member": 0, "members": [0, 1, 2], "keepVersions": null,
 *  "instance": "<32 hex digits>", "peers": {"1": "<32 hex digits>"}}
 * ```
 *
 * `instance` names this incarnation of the member: fixed for a durable
 * acceptor, new at every start of a memory acceptor. `peers` records the
 * instances of the other members as clients vouched for them, so that a
 * member that comes back without its state (a memory acceptor restarted)
 * is refused instead of voting as if it remembered.
 *
 * @module
 */
import { join } from "node:path";
import { MAX_MEMBERS } from "./handshake.ts";

/** The identity an acceptor states at connect. */
export interface ClusterIdentity {
  /** The cluster's name, chosen by the operator. */
  readonly cluster: string;
  /** The cluster's id: 32 hex digits, random, shared by its members. */
  readonly clusterId: string;
  /** This acceptor's member id. */
  readonly member: number;
  /** Every member's id, ascending; `member` among them. */
  readonly members: readonly number[];
  /** Cluster-wide retention (`--keep-versions`), or null to keep every version. */
  readonly keepVersions: number | null;
  /** This incarnation of the member: 32 hex digits. */
  readonly instance: string;
}

/** The identity file's name inside a data directory. */
export const IDENTITY_FILE = "identity.json";

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HEX128 = /^[0-9a-f]{32}$/;

/**
 * A new random id: 128 bits as 32 lowercase hex digits.
 *
 * @example
 * ```ts
 * import { randomId } from "./identity.ts";
 * randomId().length; // 32
 * ```
 */
export function randomId(): string {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * Checks a cluster name: 1 to 64 letters, digits, `.`, `_` or `-`, not
 * starting with a punctuation mark; throws a RangeError naming it otherwise.
 */
export function checkClusterName(name: string): string {
  if (!NAME.test(name)) {
    throw new RangeError(
      `cluster name ${JSON.stringify(name)}: use 1 to 64 letters, digits, ".", "_" or "-"`,
    );
  }
  return name;
}

/** Checks a cluster or instance id: 32 lowercase hex digits. */
export function checkId(id: string, what: string): string {
  if (!HEX128.test(id)) {
    throw new RangeError(`${what} ${JSON.stringify(id)}: expected 32 lowercase hex digits`);
  }
  return id;
}

/**
 * Checks a membership: 1 to 64 distinct non-negative member ids; returns
 * them in ascending order.
 */
export function checkMembers(members: readonly number[]): number[] {
  if (members.length === 0 || members.length > MAX_MEMBERS) {
    throw new RangeError(`a cluster has 1 to ${MAX_MEMBERS} members, got ${members.length}`);
  }
  for (const m of members) {
    if (!Number.isSafeInteger(m) || m < 0) {
      throw new RangeError(`member id ${m}: expected a non-negative integer`);
    }
  }
  const sorted = [...members].sort((a, b) => a - b);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1]) throw new RangeError(`member ${sorted[i]} is listed twice`);
  }
  return sorted;
}

/**
 * Builds a valid identity; throws a RangeError naming what is wrong.
 *
 * @example
 * ```ts
 * import { makeIdentity, randomId } from "./identity.ts";
 * const id = makeIdentity({
 *   cluster: "demo", clusterId: randomId(), member: 1, members: [0, 1, 2],
 *   keepVersions: null, instance: randomId(),
 * });
 * id.members; // [0, 1, 2]
 * ```
 */
export function makeIdentity(x: ClusterIdentity): ClusterIdentity {
  const members = checkMembers(x.members);
  if (!members.includes(x.member)) {
    throw new RangeError(`member ${x.member} is not in the membership ${members.join(",")}`);
  }
  if (
    x.keepVersions !== null && !(Number.isSafeInteger(x.keepVersions) && x.keepVersions > 0)
  ) {
    throw new RangeError(`keepVersions must be a positive integer, got ${x.keepVersions}`);
  }
  return {
    cluster: checkClusterName(x.cluster),
    clusterId: checkId(x.clusterId, "cluster id"),
    member: x.member,
    members,
    keepVersions: x.keepVersions,
    instance: checkId(x.instance, "instance id"),
  };
}

/** What an identity file holds: the identity, and the peers' instances as vouched for. */
export interface IdentityRecord {
  /** The identity. */
  readonly identity: ClusterIdentity;
  /** The instance of each other member, by member id, as clients vouched for it. */
  readonly peers: ReadonlyMap<number, string>;
}

/**
 * Reads `dir`'s identity file; resolves with null when there is none, and
 * rejects naming the file when it is not a valid identity.
 */
export async function readIdentity(dir: string): Promise<IdentityRecord | null> {
  const path = join(dir, IDENTITY_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  try {
    const x = JSON.parse(text);
    if (typeof x !== "object" || x === null || x.format !== 1) {
      throw new RangeError("not a paxoskv identity of format 1");
    }
    const identity = makeIdentity({
      cluster: String(x.cluster),
      clusterId: String(x.clusterId),
      member: Number(x.member),
      members: Array.isArray(x.members) ? x.members.map(Number) : [],
      keepVersions: x.keepVersions === null ? null : Number(x.keepVersions),
      instance: String(x.instance),
    });
    const peers = new Map<number, string>();
    for (const [k, v] of Object.entries(x.peers ?? {})) {
      peers.set(Number(k), checkId(String(v), `instance of member ${k}`));
    }
    return { identity, peers };
  } catch (e) {
    throw new Error(`${path} is damaged: ${(e as Error).message}`, { cause: e });
  }
}

/** Writes `dir`'s identity file, whole: to a temporary file, synced, renamed over, and the directory synced. */
export async function writeIdentity(dir: string, record: IdentityRecord): Promise<void> {
  const { identity: id, peers } = record;
  const text = JSON.stringify(
    {
      format: 1,
      cluster: id.cluster,
      clusterId: id.clusterId,
      member: id.member,
      members: id.members,
      keepVersions: id.keepVersions,
      instance: id.instance,
      peers: Object.fromEntries(peers),
    },
    null,
    2,
  ) + "\n";
  const path = join(dir, IDENTITY_FILE);
  const tmp = path + ".tmp";
  await Deno.writeTextFile(tmp, text);
  const f = await Deno.open(tmp, { write: true });
  try {
    await f.syncData();
  } finally {
    f.close();
  }
  await Deno.rename(tmp, path);
  const d = await Deno.open(dir, { read: true });
  try {
    await d.sync();
  } finally {
    d.close();
  }
}

/**
 * The instances of a cluster's other members, as clients vouched for them
 * (the trust extension's `Attest`). The first instance vouched for a member
 * stays: a client that vouches for another one is refused, since that
 * member came back without its state. A durable acceptor keeps them on disk
 * (`save`); a memory acceptor forgets them when it stops, as it forgets all.
 *
 * @example
 * ```ts
 * import { makeIdentity, randomId, VouchedPeers } from "./identity.ts";
 * const me = makeIdentity({
 *   cluster: "demo", clusterId: randomId(), member: 0, members: [0, 1],
 *   keepVersions: null, instance: randomId(),
 * });
 * const peers = new VouchedPeers();
 * const one = randomId();
 * await peers.vouch(me, me.instance, new Map([[1, one]])); // null: recorded
 * await peers.vouch(me, me.instance, new Map([[1, randomId()]])); // why it is refused
 * ```
 */
export class VouchedPeers {
  readonly #peers: Map<number, string>;
  readonly #save: ((peers: ReadonlyMap<number, string>) => Promise<void>) | undefined;

  /** Starts from the instances known so far, saving new ones with `save`. */
  constructor(
    known: ReadonlyMap<number, string> = new Map(),
    save?: (peers: ReadonlyMap<number, string>) => Promise<void>,
  ) {
    this.#peers = new Map(known);
    this.#save = save;
  }

  /** The instance of each member vouched for, by member id. */
  get map(): ReadonlyMap<number, string> {
    return this.#peers;
  }

  /**
   * Records what a client vouches for: resolves with null, or with why it is
   * refused (an unknown member, or one known as another instance: nothing
   * is recorded then).
   */
  async vouch(
    self: ClusterIdentity,
    instance: string,
    vouched: ReadonlyMap<number, string>,
  ): Promise<string | null> {
    const added: [number, string][] = [];
    for (const [member, inst] of vouched) {
      if (!self.members.includes(member)) {
        return `member ${member} is not in the membership ${self.members.join(",")}`;
      }
      const known = member === self.member ? instance : this.#peers.get(member);
      if (known === undefined) added.push([member, inst]);
      else if (known !== inst) {
        return `member ${member} is known here as instance ${known}, not ${inst}: ` +
          `it came back without its state`;
      }
    }
    if (added.length === 0) return null;
    for (const [member, inst] of added) this.#peers.set(member, inst);
    await this.#save?.(this.#peers);
    return null;
  }
}
