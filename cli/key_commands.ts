/**
 * The key commands: `set`, `get`, `delete` and `history` through the KV
 * layer, and the seed's calls on one version by number (`set --ver`,
 * `get --ver`), where this process is the proposer.
 *
 * @module
 */
import { keyBytesOverLimit, MAX_KEY_BYTES } from "../codec.ts";
import { INT64_MAX } from "../types.ts";
import { connect, Kv, type KvValue, type SetOptions } from "../kv.ts";
import { connectAcceptors } from "../connect.ts";
import type { Value } from "../types.ts";
import {
  intOpt,
  type OptSpec,
  parseArgs,
  type Parsed,
  positionals,
  quote,
  stringOpt,
} from "./args.ts";
import { connectOptions, NET_SPEC, type NetOptions, parseNetOptions } from "./net.ts";
import { EXIT_NOT_FOUND, reportFailure, UsageError } from "./exit.ts";
import { formatKvValue, formatValue, toJson } from "./format.ts";
import {
  parseValueType,
  readBounded,
  readValueFile,
  typedValue,
  type ValueSource,
} from "./value_input.ts";
import type { CliIo } from "./io.ts";
import { type TraceFormat, traceLines, traceOpt } from "./trace_output.ts";
import { TraceRecorder } from "../trace.ts";

/** The key commands' names. */
export type KeyCommand = "set" | "get" | "delete" | "history";

const KEY_SPECS: Readonly<Record<KeyCommand, OptSpec>> = {
  set: {
    ...NET_SPEC,
    trace: "optional",
    ver: "string",
    "proposer-id": "string",
    "if-ver": "string",
    "if-absent": "boolean",
    file: "string",
    type: "string",
  },
  get: { ...NET_SPEC, trace: "optional", ver: "string", "proposer-id": "string" },
  delete: { ...NET_SPEC, trace: "optional", "if-ver": "string" },
  history: { ...NET_SPEC, trace: "optional", limit: "string", before: "string" },
};

// What a key command was asked to do, checked before anything is sent.
interface KeyArgs {
  readonly key: string;
  /** `set`'s value. */
  readonly value: Value | null;
  readonly net: NetOptions;
  /** The version of a seed's call (`--ver`). */
  readonly ver: bigint | undefined;
  readonly proposerId: bigint | undefined;
  /** `--if-ver` and `--if-absent`. */
  readonly condition: SetOptions;
  /** `history --limit`. */
  readonly limit: number;
  /** `--trace`: how to print the messages after the result. */
  readonly trace: TraceFormat | undefined;
  /** `history --before`. */
  readonly before: bigint | undefined;
}

// `--trace`: records the command's messages, and prints them.
class CliTrace {
  readonly tracer = new TraceRecorder();
  readonly format: TraceFormat;
  readonly urls: readonly string[];
  constructor(format: TraceFormat, urls: readonly string[]) {
    this.format = format;
    this.urls = urls;
  }
  print(io: CliIo): void {
    for (const line of traceLines(this.tracer.events, this.urls, this.format)) io.out(line);
  }
}

// A KV whose messages are traced. Its clients connect as `connect`'s do, but
// it skips `connect`'s ping: the trace starts with the command's own
// messages (and a v1-only acceptor is still refused, at the first request).
async function tracedKv(net: NetOptions, trace: CliTrace): Promise<Kv> {
  const clients = await connectAcceptors(net.urls, connectOptions(net));
  const close = async () => {
    await Promise.all(clients.map((c) => c.close()));
  };
  return new Kv(clients, { deadlineMs: net.deadlineMs, tracer: trace.tracer }, close);
}

/** Runs one key command; resolves with its exit status. */
export async function runKeyCommand(
  cmd: KeyCommand,
  args: readonly string[],
  io: CliIo,
): Promise<number> {
  const a = await parseKeyArgs(cmd, parseArgs(args, KEY_SPECS[cmd]));
  const trace = a.trace === undefined ? undefined : new CliTrace(a.trace, a.net.urls);
  if (a.ver !== undefined) return await runVersion(a, a.ver, io, trace);
  let kv: Kv;
  try {
    kv = trace === undefined
      ? await connect(a.net.urls, connectOptions(a.net))
      : await tracedKv(a.net, trace);
  } catch (e) {
    return reportFailure(e, io);
  }
  try {
    return await KV_COMMANDS[cmd](kv, a, io);
  } catch (e) {
    return reportFailure(e, io);
  } finally {
    trace?.print(io);
    await kv.close();
  }
}

async function parseKeyArgs(cmd: KeyCommand, p: Parsed): Promise<KeyArgs> {
  const file = stringOpt(p, "file");
  const [key, valueArg] = positionals(
    p,
    cmd !== "set" ? ["KEY"] : file === undefined ? ["KEY", "VALUE"] : ["KEY"],
  );
  const keyBytes = keyBytesOverLimit(key!);
  if (keyBytes !== undefined) {
    throw new UsageError(`KEY is ${keyBytes} bytes, over the ${MAX_KEY_BYTES} byte limit`);
  }
  // Deno turns bytes of an argument that are not UTF-8 into U+FFFD: two
  // different keys would name one. (Keys are UTF-8 strings on the wire.)
  if (key!.includes("\uFFFD")) {
    throw new UsageError(
      `KEY ${JSON.stringify(key)} holds U+FFFD, which stands for bytes that are not UTF-8 in ` +
        `an argument: keys are UTF-8 text`,
    );
  }
  let value: Value | null = null;
  if (cmd === "set") {
    const type = parseValueType(stringOpt(p, "type"));
    const source: ValueSource = file !== undefined
      ? { bytes: await readValueFile(file), from: `--file ${quote(file)}` }
      : valueArg === "-"
      ? { bytes: await readBounded(Deno.stdin.readable, "standard input"), from: "standard input" }
      : { arg: valueArg! };
    value = typedValue(source, type);
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
  const net = await parseNetOptions(p);
  const proposerId = intOpt(p, "proposer-id", 1n, INT64_MAX, "a positive int64");
  const ifVersion = intOpt(
    p,
    "if-ver",
    -1n,
    INT64_MAX,
    "a version: -1 (no version yet) or a non-negative int64",
  );
  const limit = intOpt(p, "limit", 1n, BigInt(Number.MAX_SAFE_INTEGER), "a positive integer");
  const before = intOpt(p, "before", 1n, INT64_MAX, "a positive int64 (a version)");
  return {
    key: key!,
    value,
    net,
    ver,
    proposerId,
    condition: {
      ...(ifVersion === undefined ? {} : { ifVersion }),
      ...(p.opts.has("if-absent") ? { ifAbsent: true } : {}),
    },
    limit: Number(limit ?? 100n),
    trace: traceOpt(p),
    before,
  };
}

type KvCommand = (kv: Kv, a: KeyArgs, io: CliIo) => Promise<number>;

const KV_COMMANDS: Readonly<Record<KeyCommand, KvCommand>> = {
  async set(kv, { key, value, condition, net }, io) {
    const v = "Vi64" in value! ? value.Vi64 : (value as { Data: KvValue }).Data;
    const version = await kv.set(key, v, condition);
    io.out(net.json ? toJson({ key, version }) : String(version));
    return 0;
  },

  async get(kv, { key, net }, io) {
    const got = await kv.get(key);
    if (got.found) {
      io.out(
        net.json
          ? toJson({ key, found: true, version: got.version, value: got.value })
          : formatKvValue(got.value),
      );
      return 0;
    }
    if (net.json) io.out(toJson({ key, found: false, version: got.version }));
    else {
      io.err(
        `paxoskv: ${JSON.stringify(key)}: not found` +
          (got.version >= 0n ? ` (deleted at version ${got.version})` : ""),
      );
    }
    return EXIT_NOT_FOUND;
  },

  async delete(kv, { key, condition, net }, io) {
    // A key with no value is left alone: "not found", exit status 3.
    const version = await kv.delete(key, { ...condition, ifPresent: true });
    io.out(net.json ? toJson({ key, version, deleted: true }) : String(version));
    return 0;
  },

  async history(kv, { key, limit, before, net }, io) {
    const versions = await kv.history(key, { limit, ...(before === undefined ? {} : { before }) });
    // The limit cut the list: older versions exist (unless compacted).
    const first = versions[0]?.version ?? 0n;
    const older = versions.length === limit && first > 0n;
    if (net.json) {
      const items = versions.map((h) =>
        h.deleted ? { version: h.version, deleted: true } : { version: h.version, value: h.value }
      );
      io.out(toJson({ key, versions: items, ...(older ? { before: first } : {}) }));
    } else {
      for (const h of versions) {
        io.out(`${h.version}\t${h.deleted ? "(deleted)" : formatKvValue(h.value)}`);
      }
      if (older) {
        io.err(
          `paxoskv: ${JSON.stringify(key)} has versions before ${first}: ` +
            `history --before ${first} shows them`,
        );
      }
    }
    return 0;
  },
};

/** The seed's calls: one Paxos run on KEY@ver, with this process as the proposer. */
async function runVersion(
  a: KeyArgs,
  ver: bigint,
  io: CliIo,
  trace: CliTrace | undefined,
): Promise<number> {
  let clients;
  try {
    clients = await connectAcceptors(a.net.urls, connectOptions(a.net));
  } catch (e) {
    return reportFailure(e, io);
  }
  const kv = new Kv(clients, { deadlineMs: a.net.deadlineMs, tracer: trace?.tracer });
  const proposerId = a.proposerId ?? randomProposerId();
  try {
    const chosen = a.value === null
      ? await kv.getVersion(a.key, ver, { proposerId })
      : await kv.setVersion(a.key, ver, a.value, { proposerId });
    if (a.net.json) {
      const value = chosen === null || "Del" in chosen
        ? null
        : "Vi64" in chosen
        ? chosen.Vi64
        : chosen.Data;
      const deleted = chosen !== null && "Del" in chosen ? { deleted: true } : {};
      io.out(toJson({ key: a.key, ver, value, ...deleted }));
    } else io.out(chosen === null ? "nil" : formatValue(chosen));
    return 0;
  } catch (e) {
    return reportFailure(e, io);
  } finally {
    trace?.print(io);
    await Promise.all(clients.map((c) => c.close()));
  }
}

function randomProposerId(): bigint {
  for (;;) {
    const b = crypto.getRandomValues(new Uint8Array(6));
    const id = b.reduce((acc, x) => (acc << 8n) | BigInt(x), 0n);
    if (id > 0n) return id;
  }
}
