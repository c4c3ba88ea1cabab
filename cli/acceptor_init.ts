/**
 * Which cluster an acceptor serves, decided before anything is written:
 * `--init` creates a member's identity in a data directory that has none;
 * a start without `--init` needs one there already, so that an acceptor
 * restarted on an empty or wrong directory refuses to start instead of
 * voting as if it remembered its promises. `--init --join` creates a
 * would-be member of a running cluster: it serves nothing until a
 * membership change (`member add` or `member replace`) lists it. A memory
 * acceptor gets its identity from the command line and a new instance id
 * every start.
 *
 * @module
 */
import { join } from "node:path";
import {
  checkClusterName,
  checkId,
  checkMembers,
  type IdentityRecord,
  makeIdentity,
  randomId,
  readIdentity,
} from "../identity.ts";
import { LOG_FILE } from "../log_store.ts";
import { type Parsed, quote, stringOpt } from "./args.ts";
import { messageOf, UsageError } from "./exit.ts";

/** The options of {@link acceptorIdentity}. */
export const IDENTITY_SPEC = {
  init: "boolean",
  join: "boolean",
  cluster: "string",
  "cluster-id": "string",
  members: "string",
} as const;

/** What an acceptor will serve as, and what to write first. */
export interface AcceptorIdentity {
  /** Its identity. */
  readonly record: IdentityRecord;
  /** Write the identity to the data directory before serving (a new member). */
  readonly create: boolean;
  /** A line for the operator, when there is something to say. */
  readonly note?: string;
}

/**
 * An acceptor refuses to start: the message says why, and what to do.
 * Nothing was written.
 */
export class StartRefused extends Error {
  /** Builds the refusal. */
  constructor(message: string) {
    super(message);
    this.name = "StartRefused";
  }
}

function membersOpt(p: Parsed): number[] | undefined {
  const s = stringOpt(p, "members");
  if (s === undefined) return undefined;
  const ids = s.split(",").map((x) => x.trim());
  if (ids.some((x) => !/^(0|[1-9][0-9]{0,14})$/.test(x))) {
    throw new UsageError(`--members must be member ids like 0,1,2, got ${quote(s)}`);
  }
  try {
    return checkMembers(ids.map(Number));
  } catch (e) {
    throw new UsageError(`--members ${quote(s)}: ${messageOf(e)}`);
  }
}

function clusterOpts(p: Parsed) {
  const name = stringOpt(p, "cluster");
  const id = stringOpt(p, "cluster-id");
  try {
    if (name !== undefined) checkClusterName(name);
    if (id !== undefined) checkId(id, "--cluster-id");
  } catch (e) {
    throw new UsageError(messageOf(e));
  }
  return { name, id, members: membersOpt(p) };
}

/**
 * A memory acceptor's identity: `--cluster` (default "memory"),
 * `--members` (default: this one alone), `--cluster-id` (default: a new
 * one), and a new instance id, so that the other members' clients refuse it
 * if it ever comes back: its state is gone.
 */
export function memoryIdentity(
  p: Parsed,
  member: number,
  keepVersions: number | null,
): AcceptorIdentity {
  if (p.opts.has("init")) {
    throw new UsageError("--init is for a data directory: a memory acceptor has none");
  }
  const o = clusterOpts(p);
  if (p.opts.has("join")) return joiningIdentity(o, member, keepVersions, "memory");
  const members = o.members ?? [member];
  if (!members.includes(member)) {
    throw new UsageError(`--id ${member} is not in --members ${members.join(",")}`);
  }
  const clusterId = o.id ?? randomId();
  return {
    record: {
      identity: makeIdentity({
        cluster: o.name ?? "memory",
        clusterId,
        member,
        members,
        keepVersions,
        instance: randomId(),
      }),
      peers: new Map(),
    },
    create: false,
    ...(o.id === undefined && members.length > 1
      ? {
        note: `new cluster id ${clusterId}: start the other members with --cluster-id ${clusterId}`,
      }
      : {}),
  };
}

/**
 * A durable acceptor's identity in `dir`: created with `--init` (refused
 * when `dir` has one), else read (refused when there is none; every option
 * given must agree with it).
 */
export async function durableIdentity(
  p: Parsed,
  dir: string,
  member: number | undefined,
  keepVersions: number | null | undefined,
): Promise<AcceptorIdentity> {
  const o = clusterOpts(p);
  let found: IdentityRecord | null;
  try {
    found = await readIdentity(dir);
  } catch (e) {
    throw new StartRefused(`${messageOf(e)}; refusing to start`);
  }
  const hasLog = await exists(join(dir, LOG_FILE));
  if (p.opts.has("join") && !p.opts.has("init")) {
    throw new UsageError("--join goes with --init: it creates a new member's identity");
  }
  if (p.opts.has("init")) {
    if (found !== null) {
      const id = found.identity;
      throw new StartRefused(
        `${dir} already holds member ${id.member} of cluster ${id.cluster} (id ${id.clusterId}): ` +
          `--init is for a new member; start it without --init`,
      );
    }
    if (hasLog) {
      // Only an empty directory can join: a log of an earlier release holds
      // votes of another membership.
      if (p.opts.has("join")) {
        throw new StartRefused(
          `${dir} holds an acceptor log: --init --join needs an empty directory`,
        );
      }
    }
    if (p.opts.has("join")) {
      return joiningIdentity(o, member, keepVersions ?? null, undefined);
    }
    if (o.name === undefined) throw new UsageError("--init needs --cluster NAME");
    if (o.members === undefined) throw new UsageError("--init needs --members IDS, e.g. 0,1,2");
    if (member === undefined) throw new UsageError("--init needs --id N");
    if (!o.members.includes(member)) {
      throw new UsageError(`--id ${member} is not in --members ${o.members.join(",")}`);
    }
    const clusterId = o.id ?? randomId();
    const identity = makeIdentity({
      cluster: o.name,
      clusterId,
      member,
      members: o.members,
      keepVersions: keepVersions ?? null,
      instance: randomId(),
    });
    const notes = [];
    if (o.id === undefined && o.members.length > 1) {
      notes.push(
        `new cluster ${o.name}, id ${clusterId}: init the other members with --cluster-id ${clusterId}`,
      );
    }
    if (hasLog) {
      notes.push(`${dir} holds a log of an earlier release: it becomes member ${member}'s`);
    }
    return {
      record: { identity, peers: new Map() },
      create: true,
      ...(notes.length > 0 ? { note: notes.join("; ") } : {}),
    };
  }
  if (found === null) {
    if (hasLog) {
      throw new StartRefused(
        `${dir} holds an acceptor log of an earlier release but no cluster identity: give it ` +
          `one, once, with --init --cluster NAME --members IDS --id N (and --cluster-id of its ` +
          `cluster)`,
      );
    }
    throw new StartRefused(
      `${dir} holds no acceptor state: an empty acceptor that joins a running cluster can ` +
        `lose acknowledged writes. For a member of a new cluster add --init --cluster NAME ` +
        `--members IDS (and --cluster-id ID for all but the first); to bring back a member ` +
        `whose data is lost, start it under a new id with --init --join and run member ` +
        `replace (docs/membership.md)`,
    );
  }
  const id = found.identity;
  const differs = (what: string, given: string, has: string) =>
    new StartRefused(
      `${dir} holds member ${id.member} of cluster ${id.cluster}: ${what} ${has}, not ${given} as given`,
    );
  if (member !== undefined && member !== id.member) {
    throw differs("its id is", String(member), String(id.member));
  }
  if (o.name !== undefined && o.name !== id.cluster) {
    throw differs("its cluster is", o.name, id.cluster);
  }
  if (o.id !== undefined && o.id !== id.clusterId) {
    throw differs("its cluster id is", o.id, id.clusterId);
  }
  if (o.members !== undefined && o.members.join(",") !== id.members.join(",")) {
    throw differs("its members are", o.members.join(","), id.members.join(","));
  }
  if (keepVersions !== undefined && keepVersions !== id.keepVersions) {
    throw new StartRefused(
      `--keep-versions is set for the whole cluster at --init: member ${id.member} of ` +
        `${id.cluster} keeps ${id.keepVersions ?? "every version"}`,
    );
  }
  return { record: found, create: false };
}

// `--init --join`: a would-be member of a running cluster, in no
// configuration yet: it answers nothing but the handshake and Config until a
// membership change lists it (server.ts), so it never votes empty.
function joiningIdentity(
  o: ReturnType<typeof clusterOpts>,
  member: number | undefined,
  keepVersions: number | null,
  memory: "memory" | undefined,
): AcceptorIdentity {
  if (o.name === undefined) throw new UsageError("--join needs --cluster NAME");
  if (o.id === undefined) {
    throw new UsageError(
      "--join needs --cluster-id ID, the running cluster's (member list shows it)",
    );
  }
  if (member === undefined) throw new UsageError("--join needs --id N, a new member id");
  if (o.members !== undefined) {
    throw new UsageError("--join takes no --members: the membership change sets them");
  }
  const identity = makeIdentity({
    cluster: o.name,
    clusterId: o.id,
    member,
    members: [member],
    keepVersions,
    instance: randomId(),
    joining: true,
  });
  return {
    record: { identity, peers: new Map() },
    create: memory === undefined,
    note: `joining cluster ${o.name} as member ${member}: it serves nothing until member add ` +
      `or member replace lists it`,
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
