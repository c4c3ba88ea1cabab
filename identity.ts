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
 *  "instance": "<32 hex digits>", "peers": {"1": "<32 hex digits>"},
 *  "epoch": 0, "joint": [0, 1, 2], "urls": {"3": "ws://..."}, "cursor": "k"}
 * ```
 *
 * The membership changes online (docs/membership.md): each configuration
 * has an `epoch`, which only goes forward; while a change is under way,
 * `joint` lists the old members (quorums then need a majority of both), and
 * `cursor` the last key the catch-up settled. `urls` are the members' URLs
 * as the operator gave them to `member`. A file without them (an earlier
 * release's) is epoch 0. A member created to join (`acceptor --init
 * --join`) has `joining: true` and serves nothing but the handshake and
 * `Config` until a configuration that lists it is installed.
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
import { type HelloCluster, MAX_MEMBERS } from "./handshake.ts";

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
  /** The configuration's epoch (default 0): it only goes forward. */
  readonly epoch?: number;
  /** While a membership change is under way: the old members (ascending). */
  readonly joint?: readonly number[];
  /** The members' URLs as the operator gave them, by member id. */
  readonly urls?: ReadonlyMap<number, string>;
  /** While a change is under way: the last key the catch-up settled (keys before it are too). */
  readonly cursor?: string;
  /** A member created to join a cluster, not yet in any configuration. */
  readonly joining?: boolean;
}

/**
 * A membership configuration, as the `Config` request installs it: its
 * epoch, its members, and while a change is under way the old members and
 * how far the catch-up got.
 */
export interface MemberConfig {
  /** The epoch: a configuration replaces only one of a lower epoch (or its own, to move the cursor). */
  readonly epoch: number;
  /** The members, ascending. */
  readonly members: readonly number[];
  /** While the change is under way: the old members, ascending. */
  readonly joint?: readonly number[];
  /** The members' URLs, by member id. */
  readonly urls?: ReadonlyMap<number, string>;
  /** The last key the catch-up settled. */
  readonly cursor?: string;
}

/**
 * The configuration an identity holds.
 *
 * @example
 * ```ts
 * import { configOf, makeIdentity, randomId } from "./identity.ts";
 * const id = makeIdentity({
 *   cluster: "demo", clusterId: randomId(), member: 0, members: [0, 1, 2],
 *   keepVersions: null, instance: randomId(),
 * });
 * configOf(id).epoch; // 0
 * ```
 */
export function configOf(id: ClusterIdentity): MemberConfig {
  return {
    epoch: id.epoch ?? 0,
    members: id.members,
    ...(id.joint === undefined ? {} : { joint: id.joint }),
    ...(id.urls === undefined ? {} : { urls: id.urls }),
    ...(id.cursor === undefined ? {} : { cursor: id.cursor }),
  };
}

/** What a member states of itself in its `Hello` reply: its cluster identity, on the wire. */
export function helloCluster(id: ClusterIdentity): HelloCluster {
  return {
    name: id.cluster,
    id: id.clusterId,
    member: id.member,
    members: id.members,
    keepVersions: id.keepVersions,
    ...(id.epoch === undefined ? {} : { epoch: id.epoch }),
    ...(id.joint === undefined ? {} : { joint: id.joint }),
    ...(id.urls === undefined ? {} : { urls: id.urls }),
    ...(id.cursor === undefined ? {} : { cursor: id.cursor }),
    ...(id.joining === true ? { joining: true } : {}),
  };
}

/** Every member of a configuration: the new ones and, during a change, the old ones. */
export function allMembers(c: MemberConfig): number[] {
  return [...new Set([...c.members, ...(c.joint ?? [])])].sort((a, b) => a - b);
}

/**
 * A configuration in one line, for messages: `epoch 3: members 0,1,3`, and
 * during a change `(changing from 0,1,2, caught up to "k")`, with URLs when
 * known.
 */
export function describeConfig(c: MemberConfig): string {
  const name = (m: number) => c.urls?.has(m) ? `${m}=${c.urls.get(m)}` : `${m}`;
  let s = `epoch ${c.epoch}: members ${c.members.map(name).join(",")}`;
  if (c.joint !== undefined) {
    s += ` (changing from ${c.joint.join(",")}` +
      (c.cursor === undefined ? "" : `, caught up to ${JSON.stringify(c.cursor)}`) + ")";
  }
  return s;
}

/** Checks a configuration's members, old members and URLs; returns it with both sorted. */
export function checkConfig(c: MemberConfig): MemberConfig {
  if (!(Number.isSafeInteger(c.epoch) && c.epoch >= 0)) {
    throw new RangeError(`epoch ${c.epoch}: expected a non-negative integer`);
  }
  const members = checkMembers(c.members);
  const joint = c.joint === undefined ? undefined : checkMembers(c.joint);
  if (joint !== undefined && allMembers({ epoch: 0, members, joint }).length > MAX_MEMBERS) {
    throw new RangeError(`a change spans at most ${MAX_MEMBERS} members`);
  }
  for (const [m, url] of c.urls ?? []) {
    if (!members.includes(m) && !(joint ?? []).includes(m)) {
      throw new RangeError(`a URL is given for member ${m}, which is not in the configuration`);
    }
    if (typeof url !== "string" || url.length > 2048) {
      throw new RangeError(`the URL of member ${m} is not a string of at most 2048 characters`);
    }
  }
  return {
    epoch: c.epoch,
    members,
    ...(joint === undefined ? {} : { joint }),
    ...(c.urls === undefined ? {} : { urls: c.urls }),
    ...(c.cursor === undefined ? {} : { cursor: c.cursor }),
  };
}

/**
 * Installs configuration `next` over identity `id`: returns the identity
 * with it, or why it is refused. Only forward: a higher epoch replaces any;
 * the same epoch (the same members) only moves the catch-up's cursor on;
 * a lower epoch is refused (the caller is behind).
 *
 * @example
 * ```ts
 * import { installConfig, makeIdentity, randomId } from "./identity.ts";
 * const id = makeIdentity({
 *   cluster: "demo", clusterId: randomId(), member: 0, members: [0, 1, 2],
 *   keepVersions: null, instance: randomId(),
 * });
 * const next = installConfig(id, { epoch: 1, members: [0, 1, 3], joint: [0, 1, 2] });
 * typeof next === "string" ? next : next.epoch; // 1
 * ```
 */
export function installConfig(id: ClusterIdentity, next: MemberConfig): ClusterIdentity | string {
  const cur = configOf(id);
  if (id.joining !== true && next.epoch < cur.epoch) {
    return `configuration ${describeConfig(next)} is older than this member's: ${
      describeConfig(cur)
    }`;
  }
  if (id.joining !== true && next.epoch === cur.epoch) {
    if (
      next.members.join(",") !== cur.members.join(",") ||
      (next.joint ?? []).join(",") !== (cur.joint ?? []).join(",")
    ) {
      return `configuration ${describeConfig(next)} has the epoch of this member's but other ` +
        `members: ${describeConfig(cur)}`;
    }
    // The same configuration again, or its cursor moved on: never back.
    if (cur.cursor !== undefined && (next.cursor === undefined || next.cursor < cur.cursor)) {
      return id;
    }
  }
  if (id.joining === true && !allMembers(next).includes(id.member)) {
    return `member ${id.member} is not in ${describeConfig(next)}`;
  }
  const { epoch: _e, joint: _j, urls: _u, cursor: _c, joining: _n, ...rest } = id;
  return {
    ...rest,
    members: next.members,
    epoch: next.epoch,
    ...(next.joint === undefined ? {} : { joint: next.joint }),
    ...(next.urls === undefined ? {} : { urls: next.urls }),
    ...(next.cursor === undefined ? {} : { cursor: next.cursor }),
  };
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
  const c = checkConfig({ ...configOf(x), members: x.members });
  const members = c.members;
  if (!allMembers(c).includes(x.member) && x.joining !== true) {
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
    ...(c.epoch === 0 ? {} : { epoch: c.epoch }),
    ...(c.joint === undefined ? {} : { joint: c.joint }),
    ...(c.urls === undefined || c.urls.size === 0 ? {} : { urls: c.urls }),
    ...(c.cursor === undefined ? {} : { cursor: c.cursor }),
    ...(x.joining === true ? { joining: true } : {}),
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
      ...(x.epoch === undefined ? {} : { epoch: Number(x.epoch) }),
      ...(Array.isArray(x.joint) ? { joint: x.joint.map(Number) } : {}),
      ...(typeof x.urls === "object" && x.urls !== null
        ? {
          urls: new Map(
            Object.entries(x.urls).map(([k, v]) => [Number(k), String(v)] as [number, string]),
          ),
        }
        : {}),
      ...(typeof x.cursor === "string" ? { cursor: x.cursor } : {}),
      ...(x.joining === true ? { joining: true } : {}),
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
      ...(id.epoch === undefined ? {} : { epoch: id.epoch }),
      ...(id.joint === undefined ? {} : { joint: id.joint }),
      ...(id.urls === undefined ? {} : { urls: Object.fromEntries(id.urls) }),
      ...(id.cursor === undefined ? {} : { cursor: id.cursor }),
      ...(id.joining === true ? { joining: true } : {}),
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
    const members = allMembers(configOf(self));
    for (const [member, inst] of vouched) {
      if (!members.includes(member)) {
        return `member ${member} is not in the membership ${members.join(",")}`;
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
