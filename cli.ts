/**
 * The paxoskv command line.
 *
 * - `cli.ts acceptor --id N [--host H] [--port P] [--data DIR | --memory]
 *   [--keep-versions K] [--ui]` runs one acceptor on a durable store in DIR
 *   (default `data/acceptor-N`) and prints its URL, `ws://HOST:PORT/paxos`,
 *   once it listens (with `--ui`, then the URL of its web page).
 * - `cli.ts cluster [--base-port P] [--host H] [--ui]` runs three acceptors
 *   in one process and prints their URLs and example commands (`deno task
 *   start`); `--ui` serves the web page, whose browser is a proposer.
 * - The key-value commands, through the KV layer (kv.ts): `set KEY VALUE`
 *   writes the next version and prints it (`--if-ver N`, `--if-absent` make
 *   it conditional), `get KEY` prints the latest value, `delete KEY` writes a
 *   tombstone and prints its version, `history KEY [--limit N]` prints the
 *   versions, oldest first, `list [PREFIX]` prints the keys that begin
 *   with PREFIX and their values, `watch KEY... | --prefix P` prints each
 *   version of the keys as it is chosen, until SIGINT or SIGTERM. All take
 *   `--acceptors URL,...` and `--json`.
 * - `status` prints a row per acceptor (member, reachable, round trip, log
 *   size, keys, uptime) from each one's `GET /healthz`.
 * - `member list`, `member add ID URL`, `member remove ID`, `member replace
 *   OLD NEW URL`: the membership, and changing it online
 *   (docs/membership.md).
 * - `set KEY VALUE --ver N` and `get KEY --ver N` run Paxos on version N
 *   from this process as the proposer and print the chosen value (the seed's
 *   calls).
 *
 * Every command takes `-h`/`--help`. Exit status: 0 on success, 1 when the
 * command could not do its work (no quorum before the deadline, cannot
 * listen), 2 on bad usage, 3 when `get` finds no value, 4 on a version
 * conflict, 5 when the version asked for is compacted. Every failure is one
 * line on stderr.
 *
 * @example
 * ```ts ignore
 * import { main } from "./cli.ts";
 * const code = await main(["get", "foo", "--acceptors", "ws://127.0.0.1:3333/paxos"]);
 * ```
 *
 * @module
 */
import { quote, wantsHelp } from "./cli/args.ts";
import { EXIT_FAILURE, EXIT_USAGE, messageOf, UsageError } from "./cli/exit.ts";
import { HELP, TOP_HELP } from "./cli/help.ts";
import { type CliIo, oneLine, processIo } from "./cli/io.ts";
import { type KeyCommand, runKeyCommand } from "./cli/key_commands.ts";
import { runAcceptor, runCluster } from "./cli/serve.ts";
import { runList } from "./cli/list_command.ts";
import { runMember } from "./cli/member_command.ts";
import { runStatus } from "./cli/status_command.ts";
import { runWatch } from "./cli/watch_command.ts";
import denoJson from "./deno.json" with { type: "json" };

export {
  EXIT_COMPACTED,
  EXIT_CONFLICT,
  EXIT_FAILURE,
  EXIT_NOT_FOUND,
  EXIT_REFUSED,
  EXIT_USAGE,
} from "./cli/exit.ts";
export type { CliIo } from "./cli/io.ts";

const COMMANDS = "acceptor, cluster, set, get, delete, history, list, watch, status or member";

/**
 * Runs the command line `args` (without the program name) and resolves with
 * the exit status: 0 on success, `EXIT_FAILURE` when the command could not
 * do its work, `EXIT_USAGE` for a wrong command line, `EXIT_NOT_FOUND`,
 * `EXIT_CONFLICT` or `EXIT_COMPACTED` for those outcomes of the key
 * commands. It never throws: every failure is reported as one line on
 * `io.err`.
 *
 * @example
 * ```ts
 * import { main } from "./cli.ts";
 * const lines: string[] = [];
 * const io = { out: (l: string) => lines.push(l), err: () => {}, waitForStop: () => new Promise<string>(() => {}) };
 * await main(["--help"], io); // 0
 * ```
 */
export async function main(args: readonly string[], io: CliIo = processIo): Promise<number> {
  const out = io.out.bind(io);
  const err = (line: string) => io.err(oneLine(line));
  const safeIo: CliIo = { out, err, waitForStop: () => io.waitForStop() };
  const [cmd, ...rest] = args;
  try {
    if (cmd === undefined) {
      throw new UsageError(`missing command: ${COMMANDS} (see cli.ts --help)`);
    }
    if (cmd === "-h" || cmd === "--help") {
      out(TOP_HELP);
      return 0;
    }
    if (cmd === "--version" || cmd === "-V") {
      out(`paxoskv ${denoJson.version} (deno ${Deno.version.deno})`);
      return 0;
    }
    if (cmd === "help") {
      const topic = rest[0];
      if (topic === undefined) out(TOP_HELP);
      else if (Object.hasOwn(HELP, topic) && rest.length === 1) out(HELP[topic]!);
      else throw new UsageError(`help: unknown command ${quote(rest.join(" "))}: ${COMMANDS}`);
      return 0;
    }
    if (!Object.hasOwn(HELP, cmd)) {
      const what = cmd.startsWith("-") ? "option" : "command";
      throw new UsageError(
        `unknown ${what} ${quote(cmd)}: expected ${COMMANDS} (see cli.ts --help)`,
      );
    }
    if (wantsHelp(rest)) {
      out(HELP[cmd]!);
      return 0;
    }
    try {
      switch (cmd) {
        case "acceptor":
          return await runAcceptor(rest, safeIo);
        case "cluster":
          return await runCluster(rest, safeIo);
        case "list":
          return await runList(rest, safeIo);
        case "status":
          return await runStatus(rest, safeIo);
        case "watch":
          return await runWatch(rest, safeIo);
        case "member":
          return await runMember(rest, safeIo);
        default:
          return await runKeyCommand(cmd as KeyCommand, rest, safeIo);
      }
    } catch (e) {
      if (e instanceof UsageError) {
        throw new UsageError(`${cmd}: ${e.message} (see cli.ts ${cmd} --help)`);
      }
      throw e;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`paxoskv: ${e.message}`);
      return EXIT_USAGE;
    }
    err(`paxoskv: internal error: ${messageOf(e)}`);
    return EXIT_FAILURE;
  }
}

if (import.meta.main) {
  // Whatever slips through is still reported as one line, never a stack trace.
  const fatal = (what: unknown) => {
    const e = what instanceof Error ? what : new Error(String(what));
    processIo.err(oneLine(`paxoskv: internal error: ${e.message}`));
    Deno.exit(EXIT_FAILURE);
  };
  globalThis.addEventListener("unhandledrejection", (ev) => {
    ev.preventDefault();
    fatal(ev.reason);
  });
  globalThis.addEventListener("error", (ev) => {
    ev.preventDefault();
    fatal(ev.error);
  });
  Deno.exit(await main(Deno.args));
}
