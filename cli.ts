/**
 * The paxoskv command line.
 *
 * - `cli.ts acceptor --id N [--host H] [--port P] [--data DIR | --memory]
 *   [--keep-versions K]` runs one acceptor on a durable store in DIR (default
 *   `data/acceptor-N`) and prints its URL, `ws://HOST:PORT/paxos`, once it
 *   listens.
 * - `cli.ts cluster [--base-port P] [--host H]` runs three acceptors in one
 *   process and prints their URLs and example commands (`deno task start`).
 * - The key-value commands, through the KV layer (kv.ts): `set KEY VALUE`
 *   writes the next version and prints it (`--if-ver N`, `--if-absent` make
 *   it conditional), `get KEY` prints the latest value, `delete KEY` writes a
 *   tombstone and prints its version, `history KEY [--limit N]` prints the
 *   versions, oldest first. All take `--acceptors URL,...` and `--json`.
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
import { PaxosAcceptor } from "./acceptor.ts";
import { DEFAULT_BASE_PORT, startCluster } from "./cluster.ts";
import { encodeFrame, INT64_MAX, INT64_MIN, MAX_KEY_BYTES, MAX_VALUE_BYTES } from "./codec.ts";
import { CompactedError, connect, type Kv, type KvValue, VersionConflictError } from "./kv.ts";
import { NotEnoughQuorumError, PaxosProposer } from "./proposer.ts";
import { serveAcceptor } from "./server.ts";
import { MemoryStore, type Store } from "./store.ts";
import { LogStore } from "./log_store.ts";
import { join } from "node:path";
import { AcceptorError, WebSocketAcceptorClient } from "./transport.ts";
import type { DataValue, Value } from "./types.ts";
import { parseWsUrl } from "./ws_client.ts";

/** Exit status of a command that could not do its work. */
export const EXIT_FAILURE = 1;
/** Exit status of a command line that is wrong: unknown command or option, bad argument. */
export const EXIT_USAGE = 2;
/** Exit status of `get KEY` when the key has no value: never written, or deleted. */
export const EXIT_NOT_FOUND = 3;
/** Exit status of a conditional write (`--if-ver`, `--if-absent`) that found another version. */
export const EXIT_CONFLICT = 4;
/** Exit status when the version asked for is compacted (acceptors run with `--keep-versions`). */
export const EXIT_COMPACTED = 5;

const MAX_TIMER_MS = 2 ** 31 - 1;
const CANONICAL_INT = /^-?(0|[1-9][0-9]*)$/;

/**
 * Where the CLI writes and how it learns it should stop. {@link processIo}
 * is the real process; tests may pass their own.
 */
export interface CliIo {
  /** Writes one line (a newline is added) to standard output. */
  out(line: string): void;
  /** Writes one line (a newline is added) to standard error. */
  err(line: string): void;
  /**
   * Starts listening for a stop request (SIGINT or SIGTERM for a process)
   * and resolves with its name when one arrives. Long-running commands call
   * it before they announce that they are ready, so no early signal is lost.
   */
  waitForStop(): Promise<string>;
}

const encoder = new TextEncoder();

function writeLine(file: { writeSync(p: Uint8Array): number }, line: string): void {
  const bytes = encoder.encode(line + "\n");
  try {
    let off = 0;
    while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
  } catch (e) {
    // Nobody reads our output any more: nothing useful to do about it.
    if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
  }
}

/**
 * The real process: stdout, stderr, and SIGINT/SIGTERM. A second signal
 * while stopping exits at once with status 130.
 */
export const processIo: CliIo = {
  out: (line) => writeLine(Deno.stdout, line),
  err: (line) => writeLine(Deno.stderr, line),
  waitForStop() {
    return new Promise((resolve) => {
      let stopping = false;
      const listen = (sig: Deno.Signal) => {
        try {
          Deno.addSignalListener(sig, () => {
            if (stopping) {
              writeLine(Deno.stderr, `paxoskv: ${sig} again: exiting without cleaning up`);
              Deno.exit(130);
            }
            stopping = true;
            resolve(sig);
          });
        } catch {
          // This platform has no such signal (SIGTERM on Windows).
        }
      };
      listen("SIGINT");
      listen("SIGTERM");
    });
  },
};

/** A command line the CLI cannot run; reported as one line, exit status 2. */
class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

// ---------------------------------------------------------------------------
// Values: the VALUE argument, and what is printed.

/**
 * Turns a VALUE argument into the Value proposed: a canonical decimal integer
 * (no sign but `-`, no leading zeros, not `-0`) becomes a `Vi64`, anything
 * else a `Data` string. Throws a RangeError for an integer outside int64 and
 * for a string over {@link MAX_VALUE_BYTES} encoded.
 *
 * @example
 * ```ts
 * import { parseValueArg } from "./cli.ts";
 * parseValueArg("5"); // { Vi64: 5n }
 * parseValueArg("05"); // { Data: "05" }
 * parseValueArg("hello"); // { Data: "hello" }
 * ```
 */
export function parseValueArg(s: string): Value {
  if (CANONICAL_INT.test(s) && s !== "-0") {
    const n = BigInt(s);
    if (n < INT64_MIN || n > INT64_MAX) {
      throw new RangeError(
        `VALUE ${s} is outside the int64 range ${INT64_MIN}..${INT64_MAX}`,
      );
    }
    return { Vi64: n };
  }
  const size = encodeFrame(s).length;
  if (size > MAX_VALUE_BYTES) {
    throw new RangeError(`VALUE is ${size} bytes encoded, over the ${MAX_VALUE_BYTES} byte limit`);
  }
  return { Data: s };
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function dataToJson(x: DataValue): string {
  if (x === null) return "null";
  switch (typeof x) {
    case "boolean":
    case "bigint":
      return String(x);
    case "number":
      if (Number.isFinite(x)) return Object.is(x, -0) ? "-0" : JSON.stringify(x);
      return JSON.stringify(String(x)); // NaN, Infinity, -Infinity
    case "string":
      return JSON.stringify(x);
  }
  if (x instanceof Uint8Array) return JSON.stringify(base64(x));
  if (Array.isArray(x)) return `[${x.map(dataToJson).join(",")}]`;
  const m = x as { readonly [key: string]: DataValue };
  return `{${Object.keys(m).map((k) => `${JSON.stringify(k)}:${dataToJson(m[k]!)}`).join(",")}}`;
}

/**
 * Renders a chosen value as the CLI prints it: a `Vi64` as its decimal; a
 * `Data` string as it is; any other `Data` as compact JSON in which integers
 * of any size are exact decimals, binary is a base64 string, and NaN and the
 * infinities are strings; a tombstone (the kv extension's `Del`) as
 * `(deleted)`.
 *
 * @example
 * ```ts
 * import { formatValue } from "./cli.ts";
 * formatValue({ Vi64: 9007199254740993n }); // "9007199254740993"
 * formatValue({ Data: "hello" }); // "hello"
 * formatValue({ Data: { a: [1n, new Uint8Array([1, 2])] } }); // '{"a":[1,"AQI="]}'
 * ```
 */
export function formatValue(v: Value): string {
  if ("Vi64" in v) return String(v.Vi64);
  if ("Del" in v) return "(deleted)";
  return typeof v.Data === "string" ? v.Data : dataToJson(v.Data);
}

/**
 * Renders a value the KV layer read (see {@link formatValue}): a `bigint`
 * as its decimal, a string as it is, anything else as compact JSON.
 *
 * @example
 * ```ts
 * import { formatKvValue } from "./cli.ts";
 * formatKvValue(5n); // "5"
 * formatKvValue("hello"); // "hello"
 * formatKvValue([1, "a"]); // '[1,"a"]'
 * ```
 */
export function formatKvValue(v: KvValue): string {
  return typeof v === "string" ? v : dataToJson(v);
}

// ---------------------------------------------------------------------------
// Argument parsing.

type OptKind = "string" | "boolean";

interface Parsed {
  readonly opts: ReadonlyMap<string, string | true>;
  readonly positionals: readonly string[];
}

// An argument that looks like a negative number is a value, not an option.
const NEGATIVE_NUMBER = /^-[0-9]/;

function quote(s: string): string {
  return JSON.stringify(s);
}

function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === "--") return false;
    if (a === "-h" || a === "--help") return true;
  }
  return false;
}

function parseArgs(args: readonly string[], spec: Readonly<Record<string, OptKind>>): Parsed {
  const opts = new Map<string, string | true>();
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const kind = Object.hasOwn(spec, name) ? spec[name] : undefined;
      if (kind === undefined) throw new UsageError(`unknown option ${quote(`--${name}`)}`);
      if (opts.has(name)) throw new UsageError(`option --${name} is given more than once`);
      if (kind === "boolean") {
        if (eq >= 0) throw new UsageError(`option --${name} takes no value`);
        opts.set(name, true);
        continue;
      }
      if (eq >= 0) {
        opts.set(name, a.slice(eq + 1));
        continue;
      }
      const next = args[i + 1];
      if (next === undefined || (next.startsWith("-") && !NEGATIVE_NUMBER.test(next))) {
        throw new UsageError(`option --${name} needs a value`);
      }
      opts.set(name, next);
      i++;
      continue;
    }
    if (a.startsWith("-") && a !== "-" && !NEGATIVE_NUMBER.test(a)) {
      throw new UsageError(`unknown option ${quote(a)}`);
    }
    positionals.push(a);
  }
  return { opts, positionals };
}

function stringOpt(p: Parsed, name: string): string | undefined {
  const v = p.opts.get(name);
  return v === true ? undefined : v;
}

function intOpt(
  p: Parsed,
  name: string,
  min: bigint,
  max: bigint,
  what: string,
): bigint | undefined {
  const s = stringOpt(p, name);
  if (s === undefined) return undefined;
  if (!/^-?[0-9]+$/.test(s) || BigInt(s) < min || BigInt(s) > max) {
    throw new UsageError(`--${name} must be ${what}, got ${quote(s)}`);
  }
  return BigInt(s);
}

function required<T>(v: T | undefined, name: string): T {
  if (v === undefined) throw new UsageError(`missing --${name}`);
  return v;
}

function hostOpt(p: Parsed): string {
  const host = stringOpt(p, "host") ?? "127.0.0.1";
  if (host === "" || /[\s/]/.test(host)) {
    throw new UsageError(`--host must be a host name or IP address, got ${quote(host)}`);
  }
  return host;
}

function parseAcceptorUrls(s: string): string[] {
  const urls = s.split(",").map((u) => u.trim());
  const seen = new Set<string>();
  for (const u of urls) {
    if (u === "") {
      throw new UsageError(`--acceptors has an empty entry in ${quote(s)}`);
    }
    let parsed: URL;
    try {
      parsed = parseWsUrl(u);
    } catch (e) {
      throw new UsageError(`bad acceptor URL: ${(e as Error).message}`);
    }
    if (parsed.pathname === "/") {
      throw new UsageError(`acceptor URL ${u} has no path: acceptors serve ws://HOST:PORT/paxos`);
    }
    if (seen.has(parsed.href)) {
      throw new UsageError(`acceptor URL ${u} is listed twice: each acceptor counts once`);
    }
    seen.add(parsed.href);
  }
  return urls;
}

// ---------------------------------------------------------------------------
// Help texts.

const RUN = "deno run --allow-net=127.0.0.1 cli.ts";

const EXIT_HELP = `Exit status:
  0  success
  1  the command could not do its work: no majority of the acceptors answered,
     or nothing was decided, before the deadline; an acceptor or cluster
     cannot open its data or listen
  2  bad usage
  3  get: KEY has no value (it was never written, or it was deleted)
  4  set --if-ver/--if-absent, delete --if-ver: version conflict; nothing was
     written
  5  the version asked for is compacted: the acceptors run with
     --keep-versions and no longer keep it
Every failure is one line on stderr.`;

const TOP_HELP = `paxoskv: a key-value store in which every write and read is decided by
classic two-phase Paxos, one Paxos instance per key and version.

Usage:
  ${RUN} <command> [options]

Commands:
  acceptor   run one acceptor server
  cluster    run three acceptors in one process, to try things out (deno task start)
  set        write a value as the next version of a key, print that version
             (--if-ver N, --if-absent: only if the key is in that state);
             with --ver N: propose a value for version N, print the chosen value
  get        print the latest value of a key;
             with --ver N: print the value chosen for version N (nil if none)
  delete     delete a key (write a tombstone version), print that version
  history    print the versions of a key, oldest first
  help       show the help of a command: help <command>

Run "cli.ts <command> --help" for a command's options. set, get, delete and
history take --json to print one line of JSON instead.

${EXIT_HELP}`;

const ACCEPTOR_HELP = `Usage:
  ${RUN} acceptor --id N [--host H] [--port P]
      [--data DIR | --memory] [--keep-versions K]

Runs one acceptor, serving ws://HOST:PORT/paxos. It first recovers its state
from DIR; once it listens, it prints that URL as one line on stdout. SIGINT or
SIGTERM stops it (exit status 0).

Every promise and vote is written to DIR and synced to disk before the reply
that acknowledges it is sent. A second acceptor on the same DIR refuses to
start. A damaged log (other than a torn last write, which is dropped) makes
the acceptor refuse to start, naming the file and offset.

Options:
  --id N              this acceptor's id, a non-negative integer (required)
  --host H            interface to listen on (default 127.0.0.1)
  --port P            port to listen on, 0 for a free one (default ${DEFAULT_BASE_PORT}+N)
  --data DIR          where the state lives (default ./data/acceptor-N)
  --memory            keep the state in memory only, for tests and demos: it is
                      lost when the process stops
  --keep-versions K   keep only the last K versions of each key, a positive
                      integer (counted from the highest version this acceptor
                      voted in); older versions are forgotten, and requests for
                      them are refused as compacted (get --ver exits with 5;
                      history leaves them out). Default: keep every version
  -h, --help          show this help`;

const CLUSTER_HELP = `Usage:
  ${RUN} cluster [--base-port P] [--host H]

Runs acceptors 0, 1 and 2 in this process, on ports P, P+1 and P+2, each with
its state in memory only. Prints their URLs and example commands, then runs
until SIGINT or SIGTERM (exit status 0).

Options:
  --base-port P   port of acceptor 0; 0 gives each acceptor a free port
                  (default ${DEFAULT_BASE_PORT})
  --host H        interface to listen on (default 127.0.0.1)
  -h, --help      show this help`;

function netOptions(withVer: boolean): string {
  const deadline = withVer
    ? `  --deadline MS      give up when there is no answer within MS ms (default
                     10000); without --ver, reaching a majority of the
                     acceptors and then the command itself each have MS ms`
    : `  --deadline MS      give up when there is no answer within MS ms (default
                     10000); reaching a majority of the acceptors and then
                     the command itself each have MS ms`;
  return `  --acceptors URLS   the acceptors, comma-separated ws://HOST:PORT/paxos URLs
                     (required); every decision is made by a majority of them
  --timeout MS       how long to wait for each reply, in ms (default 1000)
${deadline}
  --json             print one line of JSON instead (see JSON below)`;
}

const VER_OPTIONS = `  --ver N            the seed's call: version N of KEY, a non-negative int64
  --proposer-id N    with --ver only: this proposer's id, a positive int64;
                     concurrent proposers need different ids (default: a
                     random 48-bit number). Without --ver it is refused:
                     every Paxos run then picks a random id of its own`;

function ifVerOption(verb: string): string {
  return `  --if-ver N         ${verb} only if N is the latest version of KEY; -1 means
                     "KEY has no version yet"`;
}

const VALUE_HELP = `Values: the text printed for a value is
  an int64                its decimal digits
  a string                the string as it is
  a delete (tombstone)    (deleted)
  other values (written by other clients): compact JSON, in which integers of
                          any size are exact decimals, binary (bytes) is a
                          base64 string, and NaN/Infinity/-Infinity are strings`;

const JSON_HELP = `JSON: with --json the output is one line of JSON. In it, integers of any size
are exact bare decimals (beyond 2^53 too: read them with a parser that keeps
big integers), an int64 value is a number and a string value a string, binary
is a base64 string, and NaN/Infinity/-Infinity are strings. Errors still go to
stderr as one line, and the exit status is the same as without --json.`;

const SET_HELP = `Usage:
  ${RUN} set KEY VALUE --acceptors URL,URL,...
      [--if-ver N | --if-absent] [options]
  ${RUN} set KEY VALUE --ver N --acceptors URL,URL,...
      [options]

Without --ver, writes VALUE as the next version of KEY (0 for the first write)
and prints that version. When another client writes the same key at the same
time, each write gets a version of its own. With --if-ver N, it writes only if
N is the latest version of KEY; with --if-absent, only if KEY has no value (it
was never written, or it was deleted). When the key is not in that state, it
writes nothing and exits with status 4, saying which version it found.

With --ver N, it proposes VALUE for version N of KEY: this process runs Paxos
against the acceptors and prints the value chosen for KEY@N. Each version is
chosen once: when another value was chosen before, set prints that value, not
VALUE. Writes with --ver can leave gaps between versions, which the writes
without --ver do not expect: write a key either with --ver or without it
(reading any version with get --ver is fine).

VALUE is stored as an int64 (Vi64) when it is a canonical decimal integer
(digits with an optional "-", no leading zeros, not -0) within
-9223372036854775808..9223372036854775807, and as a string (Data) otherwise.
Put "--" before a VALUE that begins with "--", after all the options.

Options:
${netOptions(true)}
${ifVerOption("write")}
  --if-absent        write only if KEY has no value (never written, or deleted)
${VER_OPTIONS}
  -h, --help         show this help

Output:
  without --ver   the version written, e.g. 3
                  --json: {"key":"foo","version":3}
  with --ver      the value chosen for KEY@N (see Values below)
                  --json: {"key":"foo","ver":0,"value":5}

${VALUE_HELP}

${JSON_HELP}

${EXIT_HELP}`;

const GET_HELP = `Usage:
  ${RUN} get KEY --acceptors URL,URL,...
      [options]
  ${RUN} get KEY --ver N --acceptors URL,URL,...
      [options]

Without --ver, prints the value of the latest version of KEY. The read is
linearizable: it sees every write that finished before it started. When KEY
has no value (it was never written, or it was deleted), it prints nothing on
stdout, says so on stderr (with the version of the delete, if any) and exits
with status 3.

With --ver N, reads version N of KEY: this process runs Paxos against the
acceptors without a value of its own and prints the value chosen for KEY@N, or
nil when no value was voted for (exit status 0). A value voted for but not yet
chosen is completed first, so what get prints is chosen and stays chosen. A
version deleted by "delete" prints (deleted).

Options:
${netOptions(true)}
${VER_OPTIONS}
  -h, --help         show this help

Output:
  without --ver   the value (see Values below)
                  --json: {"key":"foo","found":true,"version":3,"value":5}
                  or, exit status 3: {"key":"foo","found":false,"version":-1}
                  ("version" is then the delete's version, -1 if never written;
                  nothing is printed on stderr)
  with --ver      the value chosen for KEY@N, or nil
                  --json: {"key":"foo","ver":0,"value":5}; "value" is null for
                  nil; a deleted version gives "value":null,"deleted":true

${VALUE_HELP}

${JSON_HELP}

${EXIT_HELP}`;

const DELETE_HELP = `Usage:
  ${RUN} delete KEY --acceptors URL,URL,...
      [--if-ver N] [options]

Deletes KEY: writes a tombstone as its next version and prints that version.
After it, get KEY finds no value (exit status 3) until KEY is set again;
history KEY shows the tombstone as (deleted). With --if-ver N it deletes only
if N is the latest version of KEY, and otherwise writes nothing and exits with
status 4.

Options:
${netOptions(false)}
${ifVerOption("delete")}
  -h, --help         show this help

Output: the tombstone's version, e.g. 4
  --json: {"key":"foo","version":4,"deleted":true}

${JSON_HELP}

${EXIT_HELP}`;

const HISTORY_HELP = `Usage:
  ${RUN} history KEY --acceptors URL,URL,...
      [--limit N] [options]

Prints the latest versions of KEY, at most N of them, oldest first, one line
each: the version, a tab, and the value (see Values below), or "(deleted)" for
a delete. Versions the acceptors no longer keep (acceptor --keep-versions) are
left out. A key that was never written prints nothing (exit status 0). Use
--json for values that hold newlines or tabs.

Options:
${netOptions(false)}
  --limit N          at most N versions, a positive integer (default 100)
  -h, --help         show this help

Output:
  0<TAB>a
  2<TAB>(deleted)
  --json: {"key":"foo","versions":[{"version":0,"value":"a"},{"version":2,"deleted":true}]}

${VALUE_HELP}

${JSON_HELP}

${EXIT_HELP}`;

const HELP: Readonly<Record<string, string>> = {
  acceptor: ACCEPTOR_HELP,
  cluster: CLUSTER_HELP,
  set: SET_HELP,
  get: GET_HELP,
  delete: DELETE_HELP,
  history: HISTORY_HELP,
};

// ---------------------------------------------------------------------------
// Commands.

async function runAcceptor(args: readonly string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, {
    id: "string",
    host: "string",
    port: "string",
    data: "string",
    memory: "boolean",
    "keep-versions": "string",
  });
  if (p.positionals.length > 0) {
    throw new UsageError(`unexpected argument ${quote(p.positionals[0]!)}`);
  }
  const id = required(
    intOpt(p, "id", 0n, BigInt(Number.MAX_SAFE_INTEGER), "a non-negative integer"),
    "id",
  );
  const hostname = hostOpt(p);
  let port = intOpt(p, "port", 0n, 65535n, "a port number in 0..65535");
  if (port === undefined) {
    port = BigInt(DEFAULT_BASE_PORT) + id;
    if (port > 65535n) {
      throw new UsageError(
        `the default port ${DEFAULT_BASE_PORT}+${id} is over 65535: give --port`,
      );
    }
  }
  const memory = p.opts.has("memory");
  const dataOpt = stringOpt(p, "data");
  if (memory && dataOpt !== undefined) throw new UsageError("give --data or --memory, not both");
  if (dataOpt === "") throw new UsageError("--data needs a directory");
  const dir = dataOpt ?? join("data", `acceptor-${id}`);
  const keep = intOpt(
    p,
    "keep-versions",
    1n,
    BigInt(Number.MAX_SAFE_INTEGER),
    "a positive integer",
  );
  const stop = io.waitForStop();
  let store: Store;
  try {
    store = memory ? new MemoryStore() : await LogStore.open(dir, {
      onEvent: (m) => io.err(`paxoskv: acceptor ${id}: ${m}`),
    });
  } catch (e) {
    io.err(`paxoskv: acceptor ${id} cannot open its data: ${messageOf(e)}`);
    return EXIT_FAILURE;
  }
  const acceptor = new PaxosAcceptor(store, `acceptor ${id}`, {
    ...(keep === undefined ? {} : { keepVersions: Number(keep) }),
    onError: (m) => io.err(`paxoskv: acceptor ${id}: ${m}`),
  });
  let server;
  try {
    server = await serveAcceptor(acceptor, {
      hostname,
      port: Number(port),
      onError: (m) => io.err(`paxoskv: acceptor ${id}: ${m}`),
    });
  } catch (e) {
    io.err(`paxoskv: acceptor ${id} cannot listen on ${hostname}:${port}: ${messageOf(e)}`);
    await store.close();
    return EXIT_FAILURE;
  }
  io.out(server.url);
  await stop;
  await server.close();
  await acceptor.store.close();
  return 0;
}

async function runCluster(args: readonly string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, { "base-port": "string", host: "string" });
  if (p.positionals.length > 0) {
    throw new UsageError(`unexpected argument ${quote(p.positionals[0]!)}`);
  }
  const basePort = intOpt(p, "base-port", 0n, 65533n, "a port number in 0..65533") ??
    BigInt(DEFAULT_BASE_PORT);
  const hostname = hostOpt(p);
  const stop = io.waitForStop();
  let cluster;
  try {
    cluster = await startCluster({
      hostname,
      basePort: Number(basePort),
      onError: (i, m) => io.err(`paxoskv: acceptor ${i}: ${m}`),
    });
  } catch (e) {
    io.err(`paxoskv: ${messageOf(e)}`);
    return EXIT_FAILURE;
  }
  const urls = cluster.urls;
  const run = `deno run --allow-net=${new URL(urls[0]!).hostname} cli.ts`;
  const list = urls.join(",");
  io.out(`paxoskv: ${urls.length} acceptors in this process (state in memory only):`);
  urls.forEach((u, i) => io.out(`  acceptor ${i}: ${u}`));
  io.out(`Try, from another terminal:`);
  io.out(`  ${run} set foo 5 --acceptors ${list}`);
  io.out(`  ${run} get foo --acceptors ${list}`);
  io.out(`  ${run} history foo --acceptors ${list}`);
  io.out(`Or the seed's calls, on one version by number:`);
  io.out(`  ${run} set foo 5 --ver 0 --acceptors ${list}`);
  io.out(`  ${run} get foo --ver 0 --acceptors ${list}`);
  io.out(`Press Ctrl-C to stop.`);
  await stop;
  await cluster.close();
  return 0;
}

type KeyCommand = "set" | "get" | "delete" | "history";

const NET_SPEC: Readonly<Record<string, OptKind>> = {
  acceptors: "string",
  timeout: "string",
  deadline: "string",
  json: "boolean",
};

const KEY_SPECS: Readonly<Record<KeyCommand, Readonly<Record<string, OptKind>>>> = {
  set: {
    ...NET_SPEC,
    ver: "string",
    "proposer-id": "string",
    "if-ver": "string",
    "if-absent": "boolean",
  },
  get: { ...NET_SPEC, ver: "string", "proposer-id": "string" },
  delete: { ...NET_SPEC, "if-ver": "string" },
  history: { ...NET_SPEC, limit: "string" },
};

interface NetOptions {
  readonly urls: string[];
  readonly timeoutMs: number;
  readonly deadlineMs: number;
  readonly json: boolean;
}

/** `set`, `get`, `delete` and `history`: the KV calls, and the seed's calls with `--ver`. */
async function runKeyCommand(cmd: KeyCommand, args: readonly string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, KEY_SPECS[cmd]);
  const names = cmd === "set" ? ["KEY", "VALUE"] : ["KEY"];
  if (p.positionals.length < names.length) {
    throw new UsageError(`missing ${names.slice(p.positionals.length).join(" and ")}`);
  }
  if (p.positionals.length > names.length) {
    throw new UsageError(`unexpected argument ${quote(p.positionals[names.length]!)}`);
  }
  const key = p.positionals[0]!;
  const keyBytes = encoder.encode(key).length;
  if (keyBytes > MAX_KEY_BYTES) {
    throw new UsageError(`KEY is ${keyBytes} bytes, over the ${MAX_KEY_BYTES} byte limit`);
  }
  let value: Value | null = null;
  if (cmd === "set") {
    try {
      value = parseValueArg(p.positionals[1]!);
    } catch (e) {
      throw new UsageError(messageOf(e));
    }
  }
  const ver = intOpt(p, "ver", 0n, INT64_MAX, "a non-negative int64");
  if (ver !== undefined) {
    for (const o of ["if-ver", "if-absent"]) {
      if (p.opts.has(o)) {
        throw new UsageError(
          `--${o} does not go with --ver: --ver writes one version by number, ` +
            `--${o} is for writes of the next version`,
        );
      }
    }
  } else if (p.opts.has("proposer-id")) {
    throw new UsageError("--proposer-id goes only with --ver");
  }
  const net = parseNetOptions(p);
  if (ver !== undefined) {
    const proposerId = intOpt(p, "proposer-id", 1n, INT64_MAX, "a positive int64") ??
      randomProposerId();
    return await runVersion(key, ver, value, proposerId, net, io);
  }
  const ifVer = intOpt(
    p,
    "if-ver",
    -1n,
    INT64_MAX,
    "a version: -1 (no version yet) or a non-negative int64",
  );
  const ifAbsent = p.opts.has("if-absent");
  const limit = intOpt(
    p,
    "limit",
    1n,
    BigInt(Number.MAX_SAFE_INTEGER),
    "a positive integer",
  );

  let kv: Kv;
  try {
    kv = await connect(net.urls, { timeoutMs: net.timeoutMs, deadlineMs: net.deadlineMs });
  } catch (e) {
    if (!(e instanceof NotEnoughQuorumError)) throw e;
    io.err(`paxoskv: ${e.message}`);
    return EXIT_FAILURE;
  }
  const k = JSON.stringify(key);
  try {
    switch (cmd) {
      case "set": {
        const v = "Vi64" in value! ? value.Vi64 : (value as { Data: string }).Data;
        const version = await kv.set(key, v, {
          ...(ifVer === undefined ? {} : { ifVersion: ifVer }),
          ...(ifAbsent ? { ifAbsent } : {}),
        });
        io.out(net.json ? `{"key":${k},"version":${version}}` : String(version));
        return 0;
      }
      case "get": {
        const got = await kv.get(key);
        if (got.found) {
          io.out(
            net.json
              ? `{"key":${k},"found":true,"version":${got.version},"value":${
                dataToJson(got.value)
              }}`
              : formatKvValue(got.value),
          );
          return 0;
        }
        if (net.json) io.out(`{"key":${k},"found":false,"version":${got.version}}`);
        else {
          io.err(
            `paxoskv: ${key}: not found` +
              (got.version >= 0n ? ` (deleted at version ${got.version})` : ""),
          );
        }
        return EXIT_NOT_FOUND;
      }
      case "delete": {
        const version = await kv.delete(key, ifVer === undefined ? {} : { ifVersion: ifVer });
        io.out(net.json ? `{"key":${k},"version":${version},"deleted":true}` : String(version));
        return 0;
      }
      case "history": {
        const versions = await kv.history(key, { limit: Number(limit ?? 100n) });
        if (net.json) {
          const items = versions.map((h) =>
            h.deleted
              ? `{"version":${h.version},"deleted":true}`
              : `{"version":${h.version},"value":${dataToJson(h.value)}}`
          );
          io.out(`{"key":${k},"versions":[${items.join(",")}]}`);
        } else {
          for (const h of versions) {
            io.out(`${h.version}\t${h.deleted ? "(deleted)" : formatKvValue(h.value)}`);
          }
        }
        return 0;
      }
    }
  } catch (e) {
    return reportFailure(e, io);
  } finally {
    await kv.close();
  }
}

function parseNetOptions(p: Parsed): NetOptions {
  const urls = parseAcceptorUrls(required(stringOpt(p, "acceptors"), "acceptors"));
  const ms = `a number of milliseconds in 1..${MAX_TIMER_MS}`;
  const timeoutMs = Number(intOpt(p, "timeout", 1n, BigInt(MAX_TIMER_MS), ms) ?? 1000n);
  const deadlineMs = Number(intOpt(p, "deadline", 1n, BigInt(MAX_TIMER_MS), ms) ?? 10_000n);
  return { urls, timeoutMs, deadlineMs, json: p.opts.has("json") };
}

/** The seed's calls: one Paxos run on KEY@ver, with this process as the proposer. */
async function runVersion(
  key: string,
  ver: bigint,
  value: Value | null,
  proposerId: bigint,
  net: NetOptions,
  io: CliIo,
): Promise<number> {
  const clients = net.urls.map((u) => new WebSocketAcceptorClient(u, { timeoutMs: net.timeoutMs }));
  try {
    const proposer = new PaxosProposer({
      Id: { Key: key, Ver: ver },
      Bal: { N: 1n, ProposerId: proposerId },
    });
    const chosen = await proposer.runPaxos(clients, value, { deadlineMs: net.deadlineMs });
    if (net.json) {
      const v = chosen === null
        ? "null"
        : "Vi64" in chosen
        ? String(chosen.Vi64)
        : "Del" in chosen
        ? `null,"deleted":true`
        : dataToJson(chosen.Data);
      io.out(`{"key":${JSON.stringify(key)},"ver":${ver},"value":${v}}`);
    } else io.out(chosen === null ? "nil" : formatValue(chosen));
    return 0;
  } catch (e) {
    if (e instanceof AcceptorError && e.code === "Compacted") {
      return reportFailure(new CompactedError(key, ver), io);
    }
    return reportFailure(e, io);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** Reports what stopped a command as one line; throws what is not a known failure. */
function reportFailure(e: unknown, io: CliIo): number {
  if (e instanceof VersionConflictError) {
    io.err(`paxoskv: ${e.message}`);
    return EXIT_CONFLICT;
  }
  if (e instanceof CompactedError) {
    io.err(`paxoskv: ${e.message}`);
    return EXIT_COMPACTED;
  }
  if (e instanceof NotEnoughQuorumError || e instanceof AcceptorError) {
    io.err(`paxoskv: ${e.message}`);
    return EXIT_FAILURE;
  }
  throw e;
}

function randomProposerId(): bigint {
  for (;;) {
    const b = crypto.getRandomValues(new Uint8Array(6));
    const id = b.reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);
    if (id > 0n) return id;
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ");
}

/**
 * Runs the command line `args` (without the program name) and resolves with
 * the exit status: 0 on success, {@link EXIT_FAILURE} when the command could
 * not do its work, {@link EXIT_USAGE} for a wrong command line,
 * {@link EXIT_NOT_FOUND}, {@link EXIT_CONFLICT} or {@link EXIT_COMPACTED}
 * for those outcomes of the key commands. It never throws: every failure is
 * reported as one line on `io.err`.
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
  const commands = "acceptor, cluster, set, get, delete or history";
  try {
    if (cmd === undefined) {
      throw new UsageError(`missing command: ${commands} (see cli.ts --help)`);
    }
    if (cmd === "-h" || cmd === "--help") {
      out(TOP_HELP);
      return 0;
    }
    if (cmd === "help") {
      const topic = rest[0];
      if (topic === undefined) out(TOP_HELP);
      else if (Object.hasOwn(HELP, topic) && rest.length === 1) out(HELP[topic]!);
      else throw new UsageError(`help: unknown command ${quote(rest.join(" "))}: ${commands}`);
      return 0;
    }
    if (!Object.hasOwn(HELP, cmd)) {
      const what = cmd.startsWith("-") ? "option" : "command";
      throw new UsageError(
        `unknown ${what} ${quote(cmd)}: expected ${commands} (see cli.ts --help)`,
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
