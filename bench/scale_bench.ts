// Scale benchmark: how a durable acceptor holds a dataset of many keys.
//
//   deno task bench:scale --keys N [--value-bytes 100] [--in-flight 256]
//                         [--sample 1000] [--json]
//   deno task bench:scale --keys N --engine log|sqlite   (one store, in process)
//
// Cluster mode (the default): three durable acceptor processes on loopback;
// N keys written once each through the KV at 256 in flight (writes/s while
// filling); then each acceptor's RSS and data directory size; then the
// acceptors are stopped and started again, timed from the start to the URL
// printed (serving); then `--sample` keys chosen at random are read back and
// checked, and the RSS is taken again.
//
// Engine mode: one store in this process, N states of one version each put
// at 256 in flight (a group commit each time), then its RSS and file size,
// then the time to open it again, and the time to read `--sample` states
// at random. `log` is LogStore; `sqlite` is node:sqlite (WAL,
// synchronous=FULL, one transaction per group commit, a primary key on
// (key, version)), the engine we compared it against.
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connect } from "../kv.ts";
import { LogStore } from "../log_store.ts";
import type { Acceptor, PaxosInstanceId } from "../types.ts";
import { decodeFrame, encodeFrame, parseAcceptor, wireAcceptor } from "../codec.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    keys: { type: "string", default: "100000" },
    "value-bytes": { type: "string", default: "100" },
    "in-flight": { type: "string", default: "256" },
    sample: { type: "string", default: "1000" },
    engine: { type: "string" },
    phase: { type: "string" },
    dir: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const keys = Number(flags.keys);
const valueBytes = Number(flags["value-bytes"]);
const inFlight = Number(flags["in-flight"]);
const sample = Number(flags.sample);
for (const [name, v] of [["keys", keys], ["in-flight", inFlight], ["sample", sample]] as const) {
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
async function runAll(n: number, op: (i: number) => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  let lastReport = t0;
  await Promise.all(Array.from({ length: Math.min(inFlight, n) }, async () => {
    while (next < n) {
      const i = next++;
      await op(i);
      const now = performance.now();
      if (now - lastReport > 10_000) {
        lastReport = now;
        log(`  ${i + 1} of ${n} (${Math.round((i + 1) / ((now - t0) / 1000))}/s)`);
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

async function clusterMode(dir: string): Promise<Record<string, number>> {
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
    ])
  ));
  const ports = servers.map((s) => new URL(s.url).port);
  let kv = await connect(servers.map((s) => s.url), { timeoutMs: 30_000, deadlineMs: 120_000 });
  log(`filling ${keys} keys of ${valueBytes} bytes at ${inFlight} in flight...`);
  const fill = await runAll(keys, (i) => kv.set(`key-${i}`, valueOf(i)));
  const rss = servers.map((s) => rssOf(s.pid));
  await kv.close();
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
  kv = await connect(servers.map((s) => s.url), { timeoutMs: 30_000, deadlineMs: 120_000 });
  let bad = 0;
  const readRate = await runAll(Math.min(sample, keys), async () => {
    const i = Math.floor(Math.random() * keys);
    const got = await kv.get(`key-${i}`);
    if (!got.found || got.value !== valueOf(i)) bad++;
  });
  const rssRead = servers.map((s) => rssOf(s.pid));
  await kv.close();
  await Promise.all(servers.map((s) => s.stop()));
  if (bad > 0) throw new Error(`${bad} of ${sample} keys read back wrong`);
  return {
    keys,
    fillWritesPerSec: Math.round(fill),
    rssMiBMax: Math.round(Math.max(...rss) / MiB),
    diskMiBPerAcceptor: Math.round(Math.max(...disk) / MiB),
    restartMsMax: Math.round(Math.max(...restartMs)),
    rssAfterRestartMiBMax: Math.round(Math.max(...rssStart) / MiB),
    sampleReadsPerSec: Math.round(readRate),
    rssAfterReadsMiBMax: Math.round(Math.max(...rssRead) / MiB),
  };
}

// The store interface the engine mode needs.
interface EngineStore {
  get(id: PaxosInstanceId): Acceptor | undefined;
  put(id: PaxosInstanceId, state: Acceptor): Promise<void>;
  close(): Promise<void>;
}

// node:sqlite with the same group commit as the log: puts that queue up
// while one transaction commits share the next.
class SqliteStore implements EngineStore {
  readonly #db: DatabaseSync;
  readonly #get: StatementSync;
  readonly #put: StatementSync;
  #queue: { id: PaxosInstanceId; state: Acceptor; done: () => void }[] = [];
  #scheduled = false;
  constructor(path: string) {
    this.#db = new DatabaseSync(path);
    this.#db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
    this.#db.exec(
      "CREATE TABLE IF NOT EXISTS s (k TEXT, v INTEGER, st BLOB, PRIMARY KEY (k, v)) WITHOUT ROWID",
    );
    this.#get = this.#db.prepare("SELECT st FROM s WHERE k = ? AND v = ?");
    this.#put = this.#db.prepare("INSERT OR REPLACE INTO s (k, v, st) VALUES (?, ?, ?)");
  }
  get(id: PaxosInstanceId): Acceptor | undefined {
    const row = this.#get.get(id.Key, id.Ver) as { st: Uint8Array } | undefined;
    return row === undefined ? undefined : parseAcceptor(decodeFrame(row.st), "st");
  }
  put(id: PaxosInstanceId, state: Acceptor): Promise<void> {
    return new Promise((done) => {
      this.#queue.push({ id, state, done });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setTimeout(() => this.#flush(), 0);
      }
    });
  }
  #flush(): void {
    const batch = this.#queue;
    this.#queue = [];
    this.#db.exec("BEGIN");
    for (const c of batch) this.#put.run(c.id.Key, c.id.Ver, encodeFrame(wireAcceptor(c.state)));
    this.#db.exec("COMMIT");
    for (const c of batch) c.done();
    this.#scheduled = false;
    if (this.#queue.length > 0) {
      this.#scheduled = true;
      setTimeout(() => this.#flush(), 0);
    }
  }
  close(): Promise<void> {
    this.#db.close();
    return Promise.resolve();
  }
}

function openEngine(dir: string, engine: string): Promise<EngineStore> {
  if (engine === "log") return LogStore.open(join(dir, "log"), { compactAtBytes: 64 * MiB });
  if (engine === "sqlite") return Promise.resolve(new SqliteStore(join(dir, "sqlite.db")));
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
  const result = flags.engine === undefined
    ? await clusterMode(dir)
    : flags.phase === "open"
    ? await openPhase(dir, flags.engine)
    : await engineMode(dir, flags.engine);
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
