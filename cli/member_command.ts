/**
 * `member list`, `member add ID URL`, `member remove ID`, `member replace OLD
 * NEW URL`: the cluster's membership, and changing it online through
 * reconfigure.ts (docs/membership.md). A change prints each step it
 * finished on stderr, and what it did on stdout; run again after an
 * interruption, it rolls the change forward from where the members say it
 * got.
 *
 * @module
 */
import { discoverCluster, type DiscoveredCluster } from "../connect.ts";
import { AcceptorError, NotEnoughQuorumError, TrustError } from "../errors.ts";
import { allMembers, describeConfig, type MemberConfig } from "../identity.ts";
import {
  changeMembership,
  type ChangeOptions,
  type ChangeProgress,
  checkNewMember,
  describeChange,
  type MemberChange,
} from "../reconfigure.ts";
import { intOpt, parseAcceptorUrls, parseArgs, quote } from "./args.ts";
import { EXIT_FAILURE, messageOf, reportFailure, UsageError } from "./exit.ts";
import { toJson } from "./format.ts";
import type { CliIo } from "./io.ts";
import { connectOptions, NET_SPEC, type NetOptions, parseNetOptions } from "./net.ts";

const SUBCOMMANDS = "list, add ID URL, remove ID or replace OLD NEW URL";

/** `member list|add|remove|replace ...` with the options of every network command. */
export async function runMember(args: readonly string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, { ...NET_SPEC, "catch-up-concurrency": "string" });
  const [sub, ...rest] = p.positionals;
  if (sub === undefined) throw new UsageError(`missing subcommand: ${SUBCOMMANDS}`);
  const want = (names: string[]) => {
    if (rest.length !== names.length) {
      throw new UsageError(
        `member ${sub} takes ${names.join(" ")}, got ${rest.length} argument(s): ` +
          (rest.length === 0 ? "none" : rest.map(quote).join(" ")),
      );
    }
  };
  let change: MemberChange | null;
  switch (sub) {
    case "list":
      want([]);
      change = null;
      break;
    case "add":
      want(["ID", "URL"]);
      change = { kind: "add", id: memberId(rest[0]!, "ID"), url: oneUrl(rest[1]!) };
      break;
    case "remove":
      want(["ID"]);
      change = { kind: "remove", id: memberId(rest[0]!, "ID") };
      break;
    case "replace":
      want(["OLD", "NEW", "URL"]);
      change = {
        kind: "replace",
        old: memberId(rest[0]!, "OLD"),
        id: memberId(rest[1]!, "NEW"),
        url: oneUrl(rest[2]!),
      };
      if (change.old === change.id) {
        throw new UsageError(
          `member replace: NEW must differ from OLD (${change.old}): a member whose data is gone comes back under a new id`,
        );
      }
      break;
    default:
      throw new UsageError(`unknown subcommand ${quote(sub)}: expected ${SUBCOMMANDS}`);
  }
  const concurrency = intOpt(p, "catch-up-concurrency", 1n, 1024n, "a number of keys in 1..1024");
  if (concurrency !== undefined && change === null) {
    throw new UsageError("member list takes no --catch-up-concurrency");
  }
  const net = await parseNetOptions(p);
  try {
    return change === null ? await list(net, io) : await runChange(
      net,
      change,
      io,
      concurrency === undefined ? {} : {
        concurrency: Number(concurrency),
      },
    );
  } catch (e) {
    if (e instanceof TypeError && !(e instanceof TrustError)) {
      io.err(`paxoskv: ${e.message}`);
      return EXIT_FAILURE;
    }
    return reportFailure(e, io);
  }
}

function memberId(s: string, what: string): number {
  if (!/^(0|[1-9][0-9]{0,14})$/.test(s)) {
    throw new UsageError(`${what} must be a member id, a non-negative integer, got ${quote(s)}`);
  }
  return Number(s);
}

function oneUrl(s: string): string {
  const urls = parseAcceptorUrls(s);
  if (urls.length !== 1) throw new UsageError(`URL must be one acceptor URL, got ${quote(s)}`);
  return urls[0]!;
}

// What the acceptors listed say, and then what the members they name say:
// a list given before a change still finds the members after it.
async function discover(net: NetOptions): Promise<DiscoveredCluster> {
  const opts = connectOptions(net);
  const first = await discoverCluster(net.urls, opts);
  const more = first.config === null
    ? []
    : [...first.config.urls?.values() ?? []].filter((u) => !net.urls.includes(u));
  return more.length === 0 ? first : await discoverCluster([...net.urls, ...more], opts);
}

function configJson(c: MemberConfig) {
  return {
    epoch: c.epoch,
    members: c.members,
    ...(c.joint === undefined ? {} : { changingFrom: c.joint }),
    ...(c.cursor === undefined ? {} : { caughtUpTo: c.cursor }),
    urls: Object.fromEntries([...c.urls ?? []].map(([m, u]) => [String(m), u])),
  };
}

async function list(net: NetOptions, io: CliIo): Promise<number> {
  const found = await discover(net);
  const c = found.config;
  if (c === null || found.cluster === null) {
    io.err(
      `paxoskv: the acceptors at ${
        net.urls.join(",")
      } have no cluster identity: their membership is fixed`,
    );
    return EXIT_FAILURE;
  }
  // A member that did not answer, whose URL the configuration does not
  // hold (a cluster never changed): the one URL given that did not answer.
  const unknown = allMembers(c).filter((m) => !found.urls.has(m) && !c.urls?.has(m));
  const guess = unknown.length === 1 && found.unanswered.length === 1
    ? new Map([[unknown[0]!, found.unanswered[0]!]])
    : new Map<number, string>();
  const rows = allMembers(c).map((m) => {
    const url = found.urls.get(m) ?? c.urls?.get(m) ?? guess.get(m) ?? null;
    const epoch = found.epochs.get(m);
    const role = c.joint === undefined
      ? "member"
      : c.members.includes(m) && c.joint.includes(m)
      ? "member (old and new)"
      : c.members.includes(m)
      ? "joining member (new)"
      : "leaving member (old)";
    return { member: m, url, role, up: epoch !== undefined, epoch: epoch ?? null };
  });
  const joining = [...found.joining].map(([m, url]) => ({ member: m, url }));
  if (net.json) {
    io.out(toJson({
      cluster: found.cluster.name,
      clusterId: found.cluster.id,
      keepVersions: found.cluster.keepVersions,
      ...configJson(c),
      state: rows,
      joining,
      unanswered: found.unanswered,
    }));
    return 0;
  }
  io.out(`cluster ${found.cluster.name} (id ${found.cluster.id}), ${describeConfig(c)}`);
  for (const r of rows) {
    const state = r.up
      ? `up, epoch ${r.epoch}${r.epoch! < c.epoch ? " (behind)" : ""}`
      : "no answer";
    io.out(`${r.member}\t${r.url ?? "(URL unknown)"}\t${r.role}\t${state}`);
  }
  for (const j of joining) {
    io.out(`${j.member}\t${j.url}\twould-be member (--join, in no configuration)\tup`);
  }
  if (c.joint !== undefined) {
    io.err(
      `paxoskv: a change from members ${c.joint.join(",")} to ${c.members.join(",")} is under ` +
        `way: run the member command that started it again to finish it`,
    );
  }
  return 0;
}

async function runChange(
  net: NetOptions,
  change: MemberChange,
  io: CliIo,
  more: ChangeOptions,
): Promise<number> {
  let last: ChangeProgress | null = null;
  let printed = 0;
  const say = (line: string) => io.err(`paxoskv: member: ${line}`);
  const onProgress = (p: ChangeProgress) => {
    last = p;
    if (p.step === "joint") {
      say(`1/3 joint configuration installed: ${describeConfig(p.config)}`);
    } else if (p.step === "catch-up") {
      // At most a line a second, and the last one.
      const now = Date.now();
      if (now - printed >= 1000 || p.config.cursor === undefined) {
        printed = now;
        say(
          `2/3 catch-up: ${p.keys} keys settled` +
            (p.config.cursor === undefined
              ? ", done"
              : ` (up to ${JSON.stringify(p.config.cursor)})`),
        );
      }
    } else {
      say(`3/3 final configuration installed: ${describeConfig(p.config)}`);
    }
  };
  say(`${describeChange(change)}, through ${net.urls.join(",")}`);
  if (change.kind !== "remove") {
    const wrong = await checkJoiner(net, change.id, change.url);
    if (wrong !== null) {
      io.err(`paxoskv: ${describeChange(change)}: ${wrong}; nothing was changed`);
      return EXIT_FAILURE;
    }
  }
  try {
    const r = await changeMembership(net.urls, change, {
      ...connectOptions(net),
      ...more,
      onProgress,
    });
    if (net.json) {
      io.out(toJson({
        change: change.kind,
        from: configJson(r.from),
        to: configJson(r.to),
        keys: r.keys,
        nothingToDo: r.nothingToDo,
      }));
    } else if (r.nothingToDo) {
      io.out(`nothing to do: ${describeChange(change)} is done already; ${describeConfig(r.to)}`);
    } else {
      io.out(`${describeChange(change)}: done, ${r.keys} keys caught up; ${describeConfig(r.to)}`);
    }
    return 0;
  } catch (e) {
    const got = last as ChangeProgress | null;
    const where = got === null
      ? "before the joint configuration was installed"
      : got.step === "final"
      ? "after the final configuration was installed"
      : `during the catch-up, ${got.keys} keys settled`;
    if (e instanceof NotEnoughQuorumError || e instanceof AcceptorError) {
      e.message = `${describeChange(change)} stopped ${where}: ${messageOf(e)}; once enough ` +
        `members are up, run the same command again: it resumes`;
    }
    throw e;
  }
}

// What the new member at `url` says of itself, against the cluster
// (reconfigure.ts's checkNewMember), with how to start it instead. Null
// when it fits, or when it does not answer (the change itself then says
// what it can do without it).
async function checkJoiner(net: NetOptions, id: number, url: string): Promise<string | null> {
  const cluster = (await discover(net)).cluster;
  if (cluster === null) return null;
  const wrong = await checkNewMember(url, id, cluster, connectOptions(net));
  switch (wrong?.what) {
    case undefined:
    case "member":
      return wrong?.message ?? null;
    case "identity":
      return `${wrong.message}: start it with --init --join`;
    case "cluster":
      return `${wrong.message}: start it on an empty directory with --init --join --cluster-id ${cluster.id}`;
    case "keepVersions":
      return `${wrong.message}: start it on an empty directory with --init --join ` +
        (cluster.keepVersions === null
          ? "without --keep-versions"
          : `--keep-versions ${cluster.keepVersions}`);
  }
}
