// Durable store benchmark: changes/s and syncs per change at 1, 16 and 256
// changes in flight, for the append-only log (LogStore, our engine) and, in
// the same run, a node:sqlite store (WAL, synchronous=FULL, one transaction
// per group) that we measured against when choosing the engine.
//
//   deno task bench:store [--seconds S] [--json]
//
// Every figure is also given as a ratio to the log at 1 in flight, the
// baseline measured in the same run.
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LogStore } from "../log_store.ts";
import type { Store } from "../store.ts";
import type { Acceptor, PaxosInstanceId } from "../types.ts";
import { decodeFrame, encodeFrame, parseAcceptor, wireAcceptor } from "../codec.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { seconds: { type: "string", default: "2" }, json: { type: "boolean", default: false } },
});
const seconds = Number(flags.seconds);
if (!(seconds > 0)) {
  throw new RangeError(`--seconds must be a positive number, got ${flags.seconds}`);
}

// What the benchmark uses of a store, and its sync count.
interface CountingStore extends Pick<Store, "put" | "close"> {
  syncs(): number;
}

// The alternative engine: SQLite in WAL mode with synchronous=FULL. Puts
// that queue up while one transaction commits share the next transaction.
class SqliteStore implements CountingStore {
  readonly #db: DatabaseSync;
  readonly #states = new Map<string, Acceptor>();
  #queue: { id: PaxosInstanceId; state: Acceptor; done: () => void }[] = [];
  #scheduled = false;
  #syncs = 0;
  constructor(path: string) {
    this.#db = new DatabaseSync(path);
    this.#db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
    this.#db.exec("CREATE TABLE IF NOT EXISTS s (k TEXT, v INTEGER, st BLOB, PRIMARY KEY (k, v))");
  }
  get(id: PaxosInstanceId): Acceptor | undefined {
    return this.#states.get(`${id.Ver}:${id.Key}`);
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
    this.#scheduled = false;
    const batch = this.#queue;
    this.#queue = [];
    const ins = this.#db.prepare("INSERT OR REPLACE INTO s (k, v, st) VALUES (?, ?, ?)");
    this.#db.exec("BEGIN");
    for (const c of batch) ins.run(c.id.Key, c.id.Ver, encodeFrame(wireAcceptor(c.state)));
    this.#db.exec("COMMIT"); // blocks the event loop for the sync
    this.#syncs++;
    for (const c of batch) {
      this.#states.set(
        `${c.id.Ver}:${c.id.Key}`,
        parseAcceptor(decodeFrame(encodeFrame(wireAcceptor(c.state))), "s"),
      );
      c.done();
    }
  }
  syncs(): number {
    return this.#syncs;
  }
  close(): Promise<void> {
    this.#db.close();
    return Promise.resolve();
  }
}

async function openLog(dir: string): Promise<CountingStore> {
  const s = await LogStore.open(dir);
  return Object.assign(s, { syncs: () => s.stats.syncs });
}

interface Row {
  engine: string;
  inFlight: number;
  changes: number;
  changesPerSec: number;
  syncsPerChange: number;
  p50Ms: number;
  p99Ms: number;
}

async function measure(engine: string, store: CountingStore, inFlight: number): Promise<Row> {
  const until = performance.now() + seconds * 1000;
  const lat: number[] = [];
  const syncs0 = store.syncs();
  let n = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async (_, w) => {
    for (let i = 0; performance.now() < until; i++) {
      const bal = { N: BigInt(i + 1), ProposerId: BigInt(w) };
      const s = performance.now();
      await store.put({ Key: `key-${w}`, Ver: BigInt(i % 64) }, {
        LastBal: bal,
        Val: { Vi64: BigInt(i) },
        VBal: bal,
      });
      lat.push(performance.now() - s);
      n++;
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return {
    engine,
    inFlight,
    changes: n,
    changesPerSec: Math.round(n / elapsed),
    syncsPerChange: Number(((store.syncs() - syncs0) / n).toFixed(4)),
    p50Ms: Number(lat[Math.floor(lat.length * 0.5)]!.toFixed(3)),
    p99Ms: Number(lat[Math.floor(lat.length * 0.99)]!.toFixed(3)),
  };
}

const root = await Deno.makeTempDir({ prefix: "paxoskv-bench-", dir: "." });
const rows: Row[] = [];
try {
  for (const inFlight of [1, 16, 256]) {
    const dir = join(root, `log-${inFlight}`);
    const log = await openLog(dir);
    rows.push(await measure("log", log, inFlight));
    await log.close();
    const sql = new SqliteStore(join(root, `sqlite-${inFlight}.db`));
    rows.push(await measure("sqlite", sql, inFlight));
    await sql.close();
  }
} finally {
  await Deno.remove(root, { recursive: true });
}

const base = rows.find((r) => r.engine === "log" && r.inFlight === 1)!.changesPerSec;
if (flags.json) {
  // deno-lint-ignore no-console
  console.log(JSON.stringify({ seconds, baseline: "log at 1 in flight", rows }, null, 2));
} else {
  // deno-lint-ignore no-console
  console.table(
    rows.map((r) => ({ ...r, "x baseline": Number((r.changesPerSec / base).toFixed(2)) })),
  );
}
