// Scale benchmark: how a durable acceptor holds a dataset of many keys.
//
//   deno task bench:scale --keys N [--engine log|sqlite] [--value-bytes 100]
//                         [--in-flight 256] [--clients 1] [--sample 1000] [--read-all] [--json]
//   deno task bench:scale --keys N --engine log|sqlite --in-process
//
// Cluster mode (the default): three durable acceptor processes on loopback,
// on the engine of --engine (default log); N keys written once each through
// the KV at --in-flight per client, with --clients KV clients (connections)
// in this process (writes/s while filling, RSS sampled every 10 s); then
// each acceptor's data directory size; then the acceptors are stopped and
// started again, timed from the start to the URL printed (serving); then
// `--sample` keys chosen at random are read back and checked (with
// --read-all, then every key), and the RSS is taken again.
//
// In-process mode: one store in this process, N states of one version each
// put at --in-flight (a group commit each time), then its RSS and file size,
// then the time to open it again, and the time to read `--sample` states at
// random. `log` is LogStore; `sqlite` is SqliteStore.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connect } from "../kv.ts";
import { LogStore } from "../log_store.ts";
import { MAX_KEYS_IN_MEMORY } from "../store.ts";
import { SqliteStore } from "../sqlite_store.ts";
import type { Acceptor, PaxosInstanceId } from "../types.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    keys: { type: "string", default: "100000" },
    "value-bytes": { type: "string", default: "100" },
    "in-flight": { type: "string", default: "256" },
    sample: { type: "string", default: "1000" },
    "read-all": { type: "boolean", default: false },
    engine: { type: "string", default: "log" },
    "in-process": { type: "boolean", default: false },
    clients: { type: "string", default: "1" },
    phase: { type: "string" },
    dir: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const keys = Number(flags.keys);
const valueBytes = Number(flags["value-bytes"]);
const inFlight = Number(flags["in-flight"]);
const sample = Number(flags.sample);
const clients = Number(flags.clients);
const engine = flags.engine;
if (engine !== "log" && engine !== "sqlite") {
  throw new RangeError(`--engine must be log or sqlite, got ${engine}`);
}
for (
  const [name, v] of [
    ["keys", keys],
    ["in-flight", inFlight],
    ["sample", sample],
    ["clients", clients],
  ] as const
) {
  if (!(Number.isSafeInteger(v) && v > 0)) throw new RangeError(`bad --${name}: ${v}`);
}
const root = join(import.meta.dirname!, "..");
const MiB = 1024 * 1024;

function log(line: string): void {
  // deno-lint-ignore no-console
  console.error(line);
}

// Resident memory in bytes, as ps tells it (reading /proc needs --allow-all).
function rssOf(pid: number | "self"): number {
  if (pid === "self") return Deno.memoryUsage().rss;
  const out = new Deno.Command("ps", { args: ["-o", "rss=", "-p", `${pid}`] }).outputSync();
  return Number(new TextDecoder().decode(out.stdout).trim()) * 1024;
}

// CPU seconds a process used so far (user and system), as ps tells it.
function cpuOf(pid: number): number {
  const out = new Deno.Command("ps", { args: ["-o", "times=", "-p", `${pid}`] }).outputSync();
  return Number(new TextDecoder().decode(out.stdout).trim());
}

async function duBytes(dir: string): Promise<number> {
  let n = 0;
  for await (const e of Deno.readDir(dir)) {
    const st = await Deno.stat(join(dir, e.name));
    n += e.isDirectory ? await duBytes(join(dir, e.name)) : st.size;
  }
  return n;
}

function valueOf(i: number): string {
  const head = `v${i}-`;
  return head + "x".repeat(Math.max(0, valueBytes - head.length));
}

// Runs `op(i)` for i in [0, n) with `inFlight` at a time; prints progress.
// `each` runs at every progress report (every 10 s).
async function runAll(
  n: number,
  op: (i: number, worker: number) => Promise<unknown>,
  workers = inFlight,
  each: () => void = () => {},
): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  let done = 0;
  let lastReport = t0;
  await Promise.all(Array.from({ length: Math.min(workers, n) }, async (_, w) => {
    while (next < n) {
      const i = next++;
      await op(i, w);
      done++;
      const now = performance.now();
      if (now - lastReport > 10_000) {
        lastReport = now;
        each();
        log(`  ${done} of ${n} (${Math.round(done / ((now - t0) / 1000))}/s)`);
      }
    }
  }));
  return n / ((performance.now() - t0) / 1000);
}

interface Acceptor3 {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

async function spawnAcceptor(args: string[]): Promise<Acceptor3> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net=127.0.0.1", "--allow-read", "--allow-write", "cli.ts", ...args],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (!buf.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`acceptor ${args.join(" ")} ended before printing its URL`);
    buf += value;
  }
  const drain = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  return {
    url: buf.split("\n")[0]!.trim(),
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await drain;
    },
  };
}

async function clusterMode(dir: string): Promise<Record<string, number | string>> {
  const clusterId = Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const dirs = [0, 1, 2].map((i) => join(dir, `acceptor-${i}`));
  let servers = await Promise.all(dirs.map((d, i) =>
    spawnAcceptor([
      "acceptor",
      "--data",
      d,
      "--init",
      "--cluster",
      "scale",
      "--cluster-id",
      clusterId,
      "--members",
      "0,1,2",
      "--id",
      `${i}`,
      "--port",
      "0",
      "--engine",
      engine,
      // N keys are what is measured: the log's key limit at its most.
      ...(engine === "log" ? ["--max-keys", `${MAX_KEYS_IN_MEMORY}`] : []),
    ])
  ));
  const ports = servers.map((s) => new URL(s.url).port);
  const kvs = await Promise.all(
    Array.from(
      { length: clients },
      () => connect(servers.map((s) => s.url), { timeoutMs: 30_000, deadlineMs: 120_000 }),
    ),
  );
  log(
    `filling ${keys} keys of ${valueBytes} bytes into ${engine} acceptors, ` +
      `${clients} client(s) at ${inFlight} in flight each...`,
  );
  const rss = servers.map((s) => rssOf(s.pid));
  // Also printed, so that a run stopped early still tells memory by keys.
  const sampleRss = () => {
    const now = servers.map((s) => rssOf(s.pid));
    now.forEach((r, i) => rss[i] = Math.max(rss[i]!, r));
    log(`  acceptors' RSS: ${now.map((r) => Math.round(r / MiB)).join(", ")} MiB`);
  };
  const fill = await runAll(
    keys,
    (i, w) => kvs[w % clients]!.set(`key-${i}`, valueOf(i)),
    inFlight * clients,
    sampleRss,
  );
  sampleRss();
  // CPU per key: what a machine shared with other work does not distort much.
  const cpu = servers.map((s) => cpuOf(s.pid));
  await Promise.all(kvs.map((kv) => kv.close()));
  await Promise.all(servers.map((s) => s.stop()));
  const disk = await Promise.all(dirs.map(duBytes));
  // Restart: from the start of the process to its URL (serving).
  const restartMs: number[] = [];
  servers = await Promise.all(dirs.map(async (d, i) => {
    const t0 = performance.now();
    const s = await spawnAcceptor(["acceptor", "--data", d, "--port", ports[i]!]);
    restartMs.push(performance.now() - t0);
    return s;
  }));
  const rssStart = servers.map((s) => rssOf(s.pid));
  const kv = await connect(servers.map((s) => s.url), { timeoutMs: 30_000, deadlineMs: 120_000 });
  let bad = 0;
  const readRate = await runAll(Math.min(sample, keys), async () => {
    const i = Math.floor(Math.random() * keys);
    const got = await kv.get(`key-${i}`);
    if (!got.found || got.value !== valueOf(i)) bad++;
  });
  if (bad > 0) throw new Error(`${bad} of ${sample} keys read back wrong`);
  // --read-all: then every key, each checked (from the clients, at
  // --in-flight each).
  let readAllRate: number | null = null;
  if (flags["read-all"]) {
    log(`reading back all ${keys} keys...`);
    const readers = await Promise.all(
      Array.from(
        { length: clients },
        () => connect(servers.map((s) => s.url), { timeoutMs: 30_000, deadlineMs: 120_000 }),
      ),
    );
    readAllRate = await runAll(
      keys,
      async (i, w) => {
        const got = await readers[w % clients]!.get(`key-${i}`);
        if (!got.found || got.value !== valueOf(i)) bad++;
      },
      inFlight * clients,
      () => log(`  ${bad} read back wrong so far`),
    );
    await Promise.all(readers.map((r) => r.close()));
    if (bad > 0) throw new Error(`${bad} of ${keys} keys read back wrong`);
  }
  const rssRead = servers.map((s) => rssOf(s.pid));
  await kv.close();
  await Promise.all(servers.map((s) => s.stop()));
  return {
    engine,
    keys,
    clients,
    fillWritesPerSec: Math.round(fill),
    acceptorCpuUsPerKey: Math.round(Math.max(...cpu) * 1e6 / keys),
    rssMiBMax: Math.round(Math.max(...rss) / MiB),
    diskMiBPerAcceptor: Math.round(Math.max(...disk) / MiB),
    restartMsMax: Math.round(Math.max(...restartMs)),
    rssAfterRestartMiBMax: Math.round(Math.max(...rssStart) / MiB),
    sampleReadsPerSec: Math.round(readRate),
    ...(readAllRate === null ? {} : { allKeysReadPerSec: Math.round(readAllRate) }),
    rssAfterReadsMiBMax: Math.round(Math.max(...rssRead) / MiB),
  };
}

// The store interface the engine mode needs.
interface EngineStore {
  get(id: PaxosInstanceId): Acceptor | undefined;
  put(id: PaxosInstanceId, state: Acceptor): Promise<void>;
  close(): Promise<void>;
}

function openEngine(dir: string, engine: string): Promise<EngineStore> {
  if (engine === "log") {
    return LogStore.open(join(dir, "log"), {
      compactAtBytes: 64 * MiB,
      maxKeys: MAX_KEYS_IN_MEMORY,
    });
  }
  if (engine === "sqlite") return SqliteStore.open(join(dir, "sqlite"));
  throw new RangeError(`--engine must be log or sqlite, got ${engine}`);
}

// Fills the store, then measures its reopening in a fresh process (so that
// the RSS is that of the store opened on its data, not of the filling).
async function engineMode(dir: string, engine: string): Promise<Record<string, number | string>> {
  const bal = { N: 1n, ProposerId: 1n };
  const store = await openEngine(dir, engine);
  log(`filling ${keys} states into ${engine}...`);
  const fill = await runAll(keys, (i) =>
    store.put({ Key: `key-${i}`, Ver: 0n }, {
      LastBal: bal,
      Val: { Data: valueOf(i) },
      VBal: bal,
    }));
  const rssFill = rssOf("self");
  await store.close();
  const disk = await duBytes(dir);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      import.meta.filename!,
      "--keys",
      `${keys}`,
      "--value-bytes",
      `${valueBytes}`,
      "--sample",
      `${sample}`,
      "--engine",
      engine,
      "--dir",
      dir,
      "--in-process",
      "--phase",
      "open",
      "--json",
    ],
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("the reopening process failed");
  return {
    engine,
    keys,
    fillPutsPerSec: Math.round(fill),
    rssWhileFillingMiB: Math.round(rssFill / MiB),
    diskMiB: Math.round(disk / MiB),
    ...JSON.parse(new TextDecoder().decode(out.stdout)),
  };
}

// The second half of the engine mode, in a fresh process.
async function openPhase(dir: string, engine: string): Promise<Record<string, number>> {
  const rss0 = rssOf("self");
  const t0 = performance.now();
  const store = await openEngine(dir, engine);
  const reopenMs = performance.now() - t0;
  const rssOpen = rssOf("self");
  const t1 = performance.now();
  for (let n = 0; n < sample; n++) {
    const i = Math.floor(Math.random() * keys);
    const got = store.get({ Key: `key-${i}`, Ver: 0n });
    if (got?.Val === undefined || !("Data" in got.Val!) || got.Val.Data !== valueOf(i)) {
      throw new Error(`key-${i} read back wrong`);
    }
  }
  const getUs = (performance.now() - t1) * 1000 / sample;
  const rssRead = rssOf("self");
  await store.close();
  return {
    reopenMs: Math.round(reopenMs),
    rssBeforeOpenMiB: Math.round(rss0 / MiB),
    rssAfterOpenMiB: Math.round(rssOpen / MiB),
    rssAfterReadsMiB: Math.round(rssRead / MiB),
    randomGetUs: Math.round(getUs * 10) / 10,
  };
}

const dir = flags.dir ?? await Deno.makeTempDir({ prefix: "paxoskv-scale-", dir: root });
try {
  const result = !flags["in-process"]
    ? await clusterMode(dir)
    : flags.phase === "open"
    ? await openPhase(dir, engine)
    : await engineMode(dir, engine);
  if (flags.json) {
    // deno-lint-ignore no-console
    console.log(JSON.stringify(result));
  } else {
    // deno-lint-ignore no-console
    for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(24)} ${v}`);
  }
} finally {
  if (flags.dir === undefined) await Deno.remove(dir, { recursive: true });
}
