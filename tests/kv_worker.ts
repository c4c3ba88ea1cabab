/**
 * A KV client process for tests with real processes and network faults
 * (tests/real_faults_test.ts): it runs random operations and prints each
 * finished one as a JSON line that {@link checkKv} can check.
 *
 *   deno run --allow-net=127.0.0.1 tests/kv_worker.ts --client C --ops N
 *     --keys K --seed S [--pause-ms P] [--timeout-ms T] [--deadline-ms D]
 *     [--secret-file F] [--ca-file F] URL,URL,URL
 *
 * Protocol on stdin/stdout, one JSON object per stdout line:
 * 1. It connects a {@link Kv} to the URLs and prints `{"ready":true}`.
 * 2. For each `ping` line on stdin it prints `{"clock":T}`, its clock now
 *    (so that the test can check that its clock agrees with the worker's).
 * 3. On a `go` line it runs operations, one at a time, with a random pause
 *    of up to P ms before each, until a `stop` line (or the end of stdin),
 *    and at most N: get, set, cas, create (set if absent) and delete on keys
 *    `k0`..`k{K-1}`, choices from a random source seeded with S. Every value
 *    written is unique: `c{C}-{i}` for operation i. It prints `{"start":i}`
 *    as operation i starts, and each finished operation as
 *    `{client, key, input, output, call, ret}` (a {@link KvOperation}) plus,
 *    for an unknown outcome, `error`.
 * 4. It prints `{"done":true}` and exits 0.
 *
 * Times are `performance.timeOrigin + performance.now()` in ms: the wall
 * clock with sub-millisecond resolution, comparable across processes.
 * Bigints are written as strings with an `n` suffix ("12n"); see
 * {@link decodeLine}. A `VersionConflictError` gives the output
 * `{ok: false, conflict: true, actual}`; a failure to reach the acceptors
 * (`isUnknownOutcome` in check/kv_ops.ts) gives `{ok: false, unknown: true}`: the
 * operation may or may not have happened. Any other error is a bug: the
 * worker ends with it.
 *
 * Exit status 2: bad arguments; 3: stdin ended before `go`; 1: the Kv could
 * not connect, or an operation failed with a bug.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { seededRandom } from "../clock.ts";
import { connect, type Kv, type KvOptions } from "../kv.ts";
import { readSecretFile } from "../handshake.ts";
import type { KvInput, KvOperation } from "../check/linearizability.ts";
import { runKvOp } from "../check/kv_ops.ts";

/** The clock of the history: wall-clock milliseconds, sub-ms resolution. */
export function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

/** Encodes one line: bigints as `"<digits>n"` strings. */
export function encodeLine(v: unknown): string {
  return JSON.stringify(v, (_, x) => typeof x === "bigint" ? `${x}n` : x);
}

/** Decodes one line of {@link encodeLine}: `"<digits>n"` strings become bigints. */
export function decodeLine(line: string): unknown {
  return JSON.parse(
    line,
    (_, x) => typeof x === "string" && /^-?[0-9]+n$/.test(x) ? BigInt(x.slice(0, -1)) : x,
  );
}

const encoder = new TextEncoder();

async function emit(v: unknown): Promise<void> {
  const bytes = encoder.encode(encodeLine(v) + "\n");
  for (let off = 0; off < bytes.length;) off += await Deno.stdout.write(bytes.subarray(off));
}

async function fail(code: number, message: string): Promise<never> {
  const bytes = encoder.encode(`kv_worker: ${message}\n`);
  for (let off = 0; off < bytes.length;) off += await Deno.stderr.write(bytes.subarray(off));
  Deno.exit(code);
}

async function int(name: string, s: string | undefined, fallback?: number): Promise<number> {
  if (s === undefined && fallback !== undefined) return fallback;
  if (s === undefined || !/^[0-9]+$/.test(s)) {
    return await fail(2, `--${name} must be a non-negative integer, got ${JSON.stringify(s)}`);
  }
  return Number(s);
}

async function* stdinLines(): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
}

async function connectRetrying(urls: string[], opts: KvOptions): Promise<Kv> {
  for (let attempt = 1;; attempt++) {
    try {
      return await connect(urls, opts);
    } catch (e) {
      if (attempt >= 3) return await fail(1, `cannot connect to ${urls.join(",")}: ${e}`);
    }
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      client: { type: "string" },
      ops: { type: "string" },
      keys: { type: "string" },
      seed: { type: "string" },
      "pause-ms": { type: "string" },
      "timeout-ms": { type: "string" },
      "deadline-ms": { type: "string" },
      "secret-file": { type: "string" },
      "ca-file": { type: "string" },
    },
    allowPositionals: true,
  });
  const client = await int("client", values.client);
  const ops = await int("ops", values.ops);
  const keys = await int("keys", values.keys);
  const seed = await int("seed", values.seed);
  const pauseMs = await int("pause-ms", values["pause-ms"], 0);
  const timeoutMs = await int("timeout-ms", values["timeout-ms"], 300);
  const deadlineMs = await int("deadline-ms", values["deadline-ms"], 3000);
  if (keys < 1) await fail(2, "--keys must be at least 1");
  if (positionals.length !== 1) await fail(2, "give the acceptor URLs as one URL,URL,... argument");
  const urls = positionals[0]!.split(",");

  const secretFile = values["secret-file"];
  const caFile = values["ca-file"];
  const kv = await connectRetrying(urls, {
    timeoutMs,
    deadlineMs,
    ...(secretFile === undefined ? {} : { secret: await readSecretFile(secretFile) }),
    ...(caFile === undefined ? {} : { caCerts: [await Deno.readTextFile(caFile)] }),
  });
  await emit({ ready: true });
  const lines = stdinLines();
  for (;;) {
    const { value: line, done } = await lines.next();
    if (done) await fail(3, "stdin ended before go");
    if (line === "ping") await emit({ clock: wallClock() });
    else if (line === "go") break;
    else await fail(2, `unexpected line on stdin: ${JSON.stringify(line)}`);
  }
  // Then stdin tells when to stop: a stop line, or its end.
  let stop = false;
  const stopped = (async () => {
    for (;;) {
      const { value: line, done } = await lines.next();
      if (done || line === "stop") return void (stop = true);
      await fail(2, `unexpected line on stdin: ${JSON.stringify(line)}`);
    }
  })();

  const random = seededRandom(seed);
  const pick = (n: number) => Math.floor(random.next() * n);
  // The latest version this client saw of each key, to make cas succeed often.
  const seen = new Map<string, bigint>();
  for (let i = 0; i < ops && !stop; i++) {
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, random.next() * pauseMs));
    if (stop) break;
    await emit({ start: i });
    const key = `k${pick(keys)}`;
    const value = `c${client}-${i}`;
    const known = seen.get(key) ?? -1n;
    const r = random.next();
    const input: KvInput = r < 0.3
      ? { op: "get" }
      : r < 0.5
      ? { op: "set", value }
      : r < 0.75
      ? { op: "cas", ifVersion: random.next() < 0.75 ? known : known - 1n + BigInt(pick(3)), value }
      : r < 0.87
      ? { op: "create", value }
      : { op: "delete" };
    const call = wallClock();
    const { output, error: err } = await runKvOp(kv, key, input);
    const error = err === undefined ? undefined : `${err.name}: ${err.message}`;
    const ret = wallClock();
    if (output.ok) seen.set(key, output.version);
    else if ("conflict" in output) seen.set(key, output.actual);
    const op: KvOperation = { client, key, input, output, call, ret };
    await emit(error === undefined ? op : { ...op, error });
  }
  await kv.close();
  await stopped;
  await emit({ done: true });
}

if (import.meta.main) await main();
