/**
 * The writer of a {@link SqliteStore}, run as a Worker so that its commits
 * (each one an `fsync` with `synchronous=FULL`) never block the acceptor's
 * event loop. It owns the database's one write connection and commits the
 * batches the store sends, in the order they come, each in a transaction
 * of its own (the store puts in one batch everything queued while the one
 * before committed: group commit). It answers `done` once a COMMIT returned
 * (the WAL synced), or `failed` once it was rolled back; after a failure it
 * refuses every later batch.
 *
 * The store encodes everything (keys, states, checksums) before sending:
 * this file knows only the tables.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";

/** One change in a batch: a state, or a floor. */
export type WriterOp =
  | {
    readonly put: true;
    readonly k: Uint8Array;
    readonly v: bigint;
    readonly n: number;
    readonly crc: number;
    readonly st: Uint8Array;
    /** The key's voted version to record, or null when its row needs no change. */
    readonly voted: bigint | null;
  }
  | { readonly put: false; readonly k: Uint8Array; readonly floor: bigint };

/** What the store sends the writer. */
export type ToWriter =
  | { readonly type: "open"; readonly path: string; readonly cacheKiB: number }
  | {
    readonly type: "batch";
    readonly seq: number;
    readonly ops: readonly WriterOp[];
    readonly used: number;
    readonly keys: number;
  }
  | { readonly type: "close" };

/** What the writer answers. */
export type FromWriter =
  | { readonly type: "opened" }
  | { readonly type: "done"; readonly seq: number }
  | { readonly type: "failed"; readonly seq: number; readonly message: string }
  | { readonly type: "closed" };

interface Statements {
  readonly put: StatementSync;
  readonly voted: StatementSync;
  readonly floor: StatementSync;
  readonly drop: StatementSync;
  readonly meta: StatementSync;
}

let db: DatabaseSync | null = null;
let st: Statements | null = null;

// deno-lint-ignore no-explicit-any
const scope = self as any;
const reply = (m: FromWriter) => scope.postMessage(m);

function open(path: string, cacheKiB: number): void {
  db = new DatabaseSync(path);
  db.exec(
    `PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-${cacheKiB}; ` +
      `PRAGMA busy_timeout=2000;`,
  );
  st = {
    put: db.prepare("INSERT OR REPLACE INTO states (k, v, n, crc, st) VALUES (?, ?, ?, ?, ?)"),
    voted: db.prepare(
      "INSERT INTO keys (k, voted, floor) VALUES (?, ?, 0) " +
        "ON CONFLICT (k) DO UPDATE SET voted = max(voted, excluded.voted)",
    ),
    floor: db.prepare(
      "INSERT INTO keys (k, voted, floor) VALUES (?, -1, ?) " +
        "ON CONFLICT (k) DO UPDATE SET floor = max(floor, excluded.floor)",
    ),
    drop: db.prepare("DELETE FROM states WHERE k = ? AND v < ?"),
    meta: db.prepare("UPDATE meta SET used = ?, keys = ? WHERE id = 0"),
  };
}

type Batch = Extract<ToWriter, { type: "batch" }>;

// Batches received and not yet committed; whether a commit is scheduled;
// why the writer stopped, if it did.
let waiting: Batch[] = [];
let scheduled = false;
let failed: string | null = null;

// One transaction for every batch waiting, with the counters of the last.
function commit(): void {
  scheduled = false;
  const batches = waiting;
  waiting = [];
  const last = batches[batches.length - 1];
  if (last === undefined) return;
  if (failed !== null) return reply({ type: "failed", seq: last.seq, message: failed });
  const s = st!;
  try {
    db!.exec("BEGIN IMMEDIATE");
    try {
      for (const b of batches) {
        for (const op of b.ops) {
          if (op.put) {
            s.put.run(op.k, op.v, op.n, op.crc, op.st);
            if (op.voted !== null) s.voted.run(op.k, op.voted);
          } else {
            s.floor.run(op.k, op.floor);
            s.drop.run(op.k, op.floor);
          }
        }
      }
      s.meta.run(last.used, last.keys);
      db!.exec("COMMIT");
    } catch (e) {
      if (db!.isTransaction) db!.exec("ROLLBACK");
      throw e;
    }
    reply({ type: "done", seq: last.seq });
  } catch (err) {
    failed = (err as Error).message;
    reply({ type: "failed", seq: last.seq, message: failed });
  }
}

scope.onmessage = (e: MessageEvent<ToWriter>) => {
  const m = e.data;
  if (m.type === "open") {
    try {
      open(m.path, m.cacheKiB);
      reply({ type: "opened" });
    } catch (err) {
      reply({ type: "failed", seq: -1, message: (err as Error).message });
    }
  } else if (m.type === "batch") {
    waiting.push(m);
    // At once: the store sends the next batch while this one commits, and
    // gathers the changes of the one after (a timer here cost 2 ms a commit).
    if (!scheduled) {
      scheduled = true;
      queueMicrotask(commit);
    }
  } else {
    try {
      db?.close();
    } catch {
      // Closing is all that is left to do; the store terminates this worker.
    }
    db = null;
    reply({ type: "closed" });
  }
};
