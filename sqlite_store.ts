/**
 * A durable {@link Store} on SQLite (`node:sqlite`, built into Deno), whose
 * B-tree stays on disk: memory is bounded by its page caches, not by the
 * number of keys, and opening it loads nothing.
 *
 * - **Durable before the reply.** `put` and `compact` resolve only after the
 *   transaction that holds them has committed, in WAL mode with
 *   `synchronous=FULL` (the WAL is synced at every commit).
 * - **Group commit, off the event loop.** A Worker (sqlite_writer.ts) owns
 *   the write connection. Everything queued while one transaction commits
 *   goes into the next one, so throughput grows with concurrency, and the
 *   sync never blocks the acceptor's network handling.
 * - **Reads on the calling thread**, through a connection of their own
 *   (a WAL reader sees the last commit), after an overlay of the changes
 *   sent to the writer and not yet committed, so that a read sees the newest
 *   state. Once committed, a key's entry stays as a cache of its voted
 *   version, floor and states until it is among the least recently written
 *   past {@link SqliteStoreOptions.cacheKeys}: the three requests of a write
 *   read the key from memory. (All writes go through this thread, so the
 *   cache is never stale.)
 * - **Recovery** is SQLite's: a transaction whose commit did not reach the
 *   disk (a torn tail of the WAL) is ignored at open; it was never
 *   acknowledged.
 * - **Checksums.** Each state is stored with the CRC-32 of its bytes and
 *   checked when read: a mismatch throws a {@link StoreCorruptionError}
 *   naming the key and version (the request fails; the process goes on).
 * - **One process per directory**, by the same `LOCK` as the log store.
 * - **Compaction** (`compact`) deletes the versions below the floor in the
 *   same ordered stream of transactions; SQLite reuses their pages.
 *
 * Tables: `states(k, v, n, crc, st)` (key, version, the bytes the quota
 * counts for it, checksum, the state as MessagePack), `keys(k, voted,
 * floor)` and `meta(used, keys)`, updated in every transaction. Keys are
 * stored as their UTF-16 code units, big-endian, so that SQLite's order of
 * blobs is JavaScript's order of strings.
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { crc32 } from "node:zlib";
import { join } from "node:path";
import type { Acceptor, KeyVersions, PaxosInstanceId } from "./types.ts";
import { decodeFrame, encodeFrame, parseAcceptor, wireAcceptor } from "./codec.ts";
import { dataBytes, keyBytes, type Store } from "./store.ts";
import { denoFs, LOCK_FILE } from "./log_store.ts";
import { ENGINE_FILES, refuseOtherEngine } from "./data_engine.ts";
import type { FromWriter, ToWriter, WriterOp } from "./sqlite_writer.ts";
import { LruMap } from "./lru.ts";

/** The database's file name inside the data directory. */
export const SQLITE_FILE: string = ENGINE_FILES.sqlite;

/** Options of {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** SQLite's page cache of the write connection, in KiB (default 32 MiB). */
  readonly writeCacheKiB?: number;
  /** SQLite's page cache of the read connection, in KiB (default 16 MiB). */
  readonly readCacheKiB?: number;
  /** Keys whose committed state is kept in memory, the most recently written (default 16,384). */
  readonly cacheKeys?: number;
}

/**
 * A state read back from a {@link SqliteStore} does not match its checksum:
 * the data is damaged. Names the key and the version.
 *
 * @example
 * ```ts
 * import { StoreCorruptionError } from "./sqlite_store.ts";
 * const e = new StoreCorruptionError("data/acceptor.sqlite", "k", 3n, "checksum mismatch");
 * e.key; // "k"
 * ```
 */
export class StoreCorruptionError extends Error {
  /** The damaged file. */
  readonly path: string;
  /** The key whose state is damaged. */
  readonly key: string;
  /** The version whose state is damaged. */
  readonly ver: bigint;
  /** Builds the error from the file, the instance and what is wrong with it. */
  constructor(path: string, key: string, ver: bigint, what: string) {
    super(
      `${path}: ${what} in the state of key ${JSON.stringify(key)} version ${ver}: ` +
        `restore this acceptor's data from a backup or rebuild it (see README)`,
    );
    this.name = "StoreCorruptionError";
    this.path = path;
    this.key = key;
    this.ver = ver;
  }
}

/**
 * A key as stored: its UTF-16 code units, big-endian, so that comparing the
 * bytes (as SQLite compares blobs) orders keys as JavaScript orders strings.
 *
 * @example
 * ```ts
 * import { keyBlob } from "./sqlite_store.ts";
 * keyBlob("a"); // Uint8Array [0, 97]
 * ```
 */
export function keyBlob(key: string): Uint8Array {
  const b = new Uint8Array(key.length * 2);
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    b[2 * i] = c >> 8;
    b[2 * i + 1] = c & 0xff;
  }
  return b;
}

/** The key that {@link keyBlob} made `b` of. */
export function blobKey(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i + 1 < b.length; i += 2) s += String.fromCharCode((b[i]! << 8) | b[i + 1]!);
  return s;
}

// The changes of one key sent to the writer and not yet committed: the key's
// voted version and floor after them, the states they wrote (and the bytes
// the quota counts for each), and how many changes are not yet committed.
interface Pending {
  voted: bigint;
  floor: bigint;
  readonly states: Map<bigint, { readonly state: Acceptor; readonly n: number }>;
  ops: number;
  // The database held nothing of the key when this was made, and every
  // state written since is in `states`...
  fresh: boolean;
  // ...and whether its row in `keys` is there or on its way.
  row: boolean;
}

interface Queued {
  readonly key: string;
  readonly op: WriterOp;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

const NO_VERSIONS: KeyVersions = { Ver: -1n, Floor: 0n };
// Transactions sent to the writer and not yet answered, at most.
const MAX_IN_FLIGHT = 2;
// Versions of a key kept in its cache entry once committed.
const CACHED_VERSIONS = 2;

/**
 * The durable store on SQLite. Open it with {@link SqliteStore.open}.
 *
 * @example
 * ```ts ignore
 * import { SqliteStore } from "./sqlite_store.ts";
 * import { PaxosAcceptor } from "./acceptor.ts";
 * const store = await SqliteStore.open("./data/acceptor-0");
 * const acceptor = new PaxosAcceptor(store);
 * // ... serve it ...
 * await store.close();
 * ```
 */
export class SqliteStore implements Store {
  readonly #path: string;
  readonly #lock: { close(): void };
  readonly #db: DatabaseSync;
  readonly #worker: Worker;
  readonly #getState: StatementSync;
  readonly #getN: StatementSync;
  readonly #getKey: StatementSync;
  readonly #below: StatementSync;
  readonly #keysFrom: StatementSync;
  readonly #keysRange: StatementSync;
  // Per key: changes in flight, and the cache of committed ones.
  readonly #overlay = new Map<string, Pending>();
  // The keys with changes in flight (listed by `keys` before the database)...
  readonly #dirty = new Set<string>();
  // ...and the others in the overlay, least recently written first.
  readonly #clean = new LruMap<string, true>();
  readonly #cacheKeys: number;
  #used: number;
  #keyCount: number;
  #queue: Queued[] = [];
  // Batches sent to the writer and not yet answered, oldest first.
  #inFlight: { readonly seq: number; readonly batch: Queued[] }[] = [];
  #scheduled = false;
  #seq = 0;
  #failed: Error | null = null;
  #closed = false;
  #idle: (() => void)[] = [];
  #onWriter: ((m: FromWriter) => void) | null = null;
  #commits = 0;
  #changes = 0;

  private constructor(
    path: string,
    lock: { close(): void },
    db: DatabaseSync,
    worker: Worker,
    cacheKeys: number,
  ) {
    this.#path = path;
    this.#cacheKeys = cacheKeys;
    this.#lock = lock;
    this.#db = db;
    this.#worker = worker;
    this.#getState = db.prepare("SELECT crc, st FROM states WHERE k = ? AND v = ?");
    this.#getN = db.prepare("SELECT n FROM states WHERE k = ? AND v = ?");
    this.#getKey = db.prepare("SELECT voted, floor FROM keys WHERE k = ?");
    this.#getKey.setReadBigInts(true);
    this.#below = db.prepare("SELECT v, n FROM states WHERE k = ? AND v < ?");
    this.#below.setReadBigInts(true);
    this.#keysFrom = db.prepare("SELECT k FROM keys WHERE k >= ? ORDER BY k LIMIT ?");
    this.#keysRange = db.prepare("SELECT k FROM keys WHERE k >= ? AND k < ? ORDER BY k LIMIT ?");
    const meta = db.prepare("SELECT used, keys FROM meta WHERE id = 0").get() as {
      used: number;
      keys: number;
    };
    this.#used = meta.used;
    this.#keyCount = meta.keys;
    worker.onmessage = (e: MessageEvent<FromWriter>) => this.#onWriter?.(e.data);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#onWriter?.({ type: "failed", seq: -1, message: `writer crashed: ${e.message}` });
    };
  }

  /**
   * Opens (creating if needed) the store in `dir`. Throws when another
   * process holds the directory, or when it holds the log engine's data.
   */
  static async open(dir: string, opts: SqliteStoreOptions = {}): Promise<SqliteStore> {
    await Deno.mkdir(dir, { recursive: true });
    const lock = await denoFs.lock(join(dir, LOCK_FILE));
    if (lock === null) {
      throw new Deno.errors.AddrInUse(
        `data directory ${dir} is in use by another acceptor (${join(dir, LOCK_FILE)} is locked)`,
      );
    }
    let db: DatabaseSync | null = null;
    let worker: Worker | null = null;
    try {
      await refuseOtherEngine(dir, "sqlite");
      const path = join(dir, SQLITE_FILE);
      db = new DatabaseSync(path);
      db.exec(
        `PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; ` +
          `PRAGMA cache_size=-${opts.readCacheKiB ?? 16 * 1024}; PRAGMA busy_timeout=2000;`,
      );
      db.exec(
        "BEGIN IMMEDIATE;" +
          "CREATE TABLE IF NOT EXISTS states (k BLOB NOT NULL, v INTEGER NOT NULL, " +
          "n INTEGER NOT NULL, crc INTEGER NOT NULL, st BLOB NOT NULL, PRIMARY KEY (k, v)) " +
          "WITHOUT ROWID;" +
          "CREATE TABLE IF NOT EXISTS keys (k BLOB PRIMARY KEY NOT NULL, " +
          "voted INTEGER NOT NULL, floor INTEGER NOT NULL) WITHOUT ROWID;" +
          "CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY, used INTEGER NOT NULL, " +
          "keys INTEGER NOT NULL);" +
          "INSERT OR IGNORE INTO meta (id, used, keys) VALUES (0, 0, 0);" +
          "COMMIT;",
      );
      worker = new Worker(new URL("./sqlite_writer.ts", import.meta.url), { type: "module" });
      const store = new SqliteStore(path, lock, db, worker, opts.cacheKeys ?? 16_384);
      await store.#call({ type: "open", path, cacheKiB: opts.writeCacheKiB ?? 32 * 1024 });
      return store;
    } catch (e) {
      worker?.terminate();
      db?.close();
      lock.close();
      throw e;
    }
  }

  // Sends the writer a message outside of batches; resolves on its answer.
  #call(m: ToWriter): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#onWriter = (a) => {
        if (a.type === "failed") reject(new Error(`${this.#path}: ${a.message}`));
        else resolve();
        this.#onWriter = (b) => this.#answered(b);
      };
      this.#worker.postMessage(m);
    });
  }

  /** Counters: changes and commits made durable (one commit per group). */
  get stats(): { readonly changes: number; readonly commits: number } {
    return { changes: this.#changes, commits: this.#commits };
  }

  /** The bytes of the database file and its WAL on disk. */
  get diskBytes(): number {
    let n = 0;
    for (const f of [this.#path, this.#path + "-wal"]) {
      try {
        n += Deno.statSync(f).size;
      } catch {
        // No WAL (yet): nothing to count.
      }
    }
    return n;
  }

  /**
   * Why the store cannot take writes (closed, or a failure it stopped on),
   * or null when it can: what an acceptor's health check reports.
   */
  get failure(): string | null {
    if (this.#closed) return `store ${this.#path} is closed`;
    return this.#failed === null ? null : `store ${this.#path} failed: ${this.#failed.message}`;
  }

  /** The bytes of data held ({@link Store.usedBytes}). */
  get usedBytes(): number {
    return this.#used;
  }

  /** How many keys the store holds any state for. */
  get keyCount(): number {
    return this.#keyCount;
  }

  /** The state of an instance, or undefined when it was never written. */
  get(id: PaxosInstanceId): Acceptor | undefined {
    const p = this.#overlay.get(id.Key);
    if (p !== undefined) {
      if (id.Ver < p.floor) return undefined;
      const s = p.states.get(id.Ver);
      if (s !== undefined) return s.state;
      // A key new since the entry was made has no other states on disk.
      if (p.fresh) return undefined;
    }
    const row = this.#getState.get(keyBlob(id.Key), id.Ver) as
      | { crc: number; st: Uint8Array }
      | undefined;
    if (row === undefined) return undefined;
    if (crc32(row.st) !== row.crc) {
      throw new StoreCorruptionError(this.#path, id.Key, id.Ver, "checksum mismatch");
    }
    try {
      return parseAcceptor(decodeFrame(row.st), "state");
    } catch (e) {
      throw new StoreCorruptionError(
        this.#path,
        id.Key,
        id.Ver,
        `unreadable state (${(e as Error).message})`,
      );
    }
  }

  /** The highest voted version and the floor of a key. */
  latest(key: string): KeyVersions {
    const p = this.#overlay.get(key);
    if (p !== undefined) return { Ver: p.voted, Floor: p.floor };
    const row = this.#getKey.get(keyBlob(key)) as { voted: bigint; floor: bigint } | undefined;
    return row === undefined ? NO_VERSIONS : { Ver: row.voted, Floor: row.floor };
  }

  /** A page of the keys held, in order (see {@link Store.keys}). */
  keys(from: string, limit: number, end?: string): string[] {
    if (limit <= 0 || (end !== undefined && end <= from)) return [];
    const rows =
      (end === undefined
        ? this.#keysFrom.all(keyBlob(from), limit)
        : this.#keysRange.all(keyBlob(from), keyBlob(end), limit)) as { k: Uint8Array }[];
    const out = rows.map((r) => blobKey(r.k));
    // Keys not committed yet: at most the changes in flight.
    let added = false;
    for (const key of this.#dirty) {
      if (key >= from && (end === undefined || key < end)) {
        out.push(key);
        added = true;
      }
    }
    if (!added) return out;
    const sorted = [...new Set(out)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return sorted.slice(0, limit);
  }

  // The pending changes of `key`, made from what the database holds (and
  // the key counted when it is new) when there are none.
  #pending(key: string, k: Uint8Array): Pending {
    let p = this.#overlay.get(key);
    if (p !== undefined) return p;
    const row = this.#getKey.get(k) as { voted: bigint; floor: bigint } | undefined;
    p = {
      voted: row?.voted ?? -1n,
      floor: row?.floor ?? 0n,
      states: new Map(),
      ops: 0,
      fresh: row === undefined,
      row: row !== undefined,
    };
    if (row === undefined) {
      this.#used += keyBytes(key);
      this.#keyCount++;
    }
    this.#overlay.set(key, p);
    return p;
  }

  #refusal(): Error | null {
    if (this.#closed) return new Deno.errors.BadResource(`store ${this.#path} is closed`);
    if (this.#failed !== null) {
      return new Error(`store ${this.#path} failed earlier: ${this.#failed.message}`);
    }
    return null;
  }

  /**
   * Records the new state of an instance; resolves once its transaction
   * has committed (synced), rejects when it could not be: then the change
   * must not be acknowledged. A version below the key's floor is ignored.
   */
  put(id: PaxosInstanceId, state: Acceptor): Promise<void> {
    const refused = this.#refusal();
    if (refused !== null) return Promise.reject(refused);
    const k = keyBlob(id.Key);
    const p = this.#pending(id.Key, k);
    if (id.Ver < p.floor || id.Ver < 0n) {
      // Ignored, as in memory; a new key is held from now on all the same.
      if (p.fresh && p.ops === 0) return this.#enqueue(id.Key, p, { put: false, k, floor: 0n });
      this.#settled(id.Key, p);
      return Promise.resolve();
    }
    let st: Uint8Array;
    try {
      st = encodeFrame(wireAcceptor(state));
    } catch (e) {
      this.#settled(id.Key, p);
      return Promise.reject(e);
    }
    const n = dataBytes(state);
    const before = p.states.get(id.Ver)?.n ??
      (p.fresh ? 0 : (this.#getN.get(k, id.Ver) as { n: number } | undefined)?.n ?? 0);
    this.#used += n - before;
    // The key's row changes when the key is new or its voted version rises.
    let voted: bigint | null = p.row ? null : p.voted;
    if (state.Val !== null && id.Ver > p.voted) voted = p.voted = id.Ver;
    p.row = true;
    p.states.set(id.Ver, { state, n });
    return this.#enqueue(id.Key, p, {
      put: true,
      k,
      v: id.Ver,
      n,
      crc: crc32(st),
      st,
      voted,
    });
  }

  /** Forgets the versions of `key` below `floor`, durably. */
  compact(key: string, floor: bigint): Promise<void> {
    const refused = this.#refusal();
    if (refused !== null) return Promise.reject(refused);
    const k = keyBlob(key);
    const known = this.#overlay.has(key) || this.#getKey.get(k) !== undefined;
    const p = this.#pending(key, k);
    if (floor <= p.floor) {
      if (known) {
        this.#settled(key, p);
        return Promise.resolve();
      }
      // A new key: it is held from now on (with floor 0), as in memory.
      return this.#enqueue(key, p, { put: false, k, floor: p.floor });
    }
    // The bytes of the versions from the old floor to the new one go.
    for (const row of this.#below.iterate(k, floor) as Iterable<{ v: bigint; n: bigint }>) {
      if (row.v >= p.floor && !p.states.has(row.v)) this.#used -= Number(row.n);
    }
    for (const [v, s] of p.states) {
      if (v < floor) {
        this.#used -= s.n;
        p.states.delete(v);
      }
    }
    p.floor = floor;
    return this.#enqueue(key, p, { put: false, k, floor });
  }

  // A key with no change in flight any more: its entry is kept as a cache,
  // the least recently written dropped past the cache's size.
  #settled(key: string, p: Pending): void {
    if (p.ops > 0) return;
    // A cached key keeps its highest versions only (the ones the next write
    // reads), so that a key written many times holds no more memory.
    if (p.states.size > CACHED_VERSIONS) {
      const vers = [...p.states.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      for (const v of vers.slice(0, -CACHED_VERSIONS)) p.states.delete(v);
      p.fresh = false;
    }
    this.#dirty.delete(key);
    this.#clean.set(key, true);
    while (this.#clean.size > this.#cacheKeys) {
      const [oldest] = this.#clean.shift()!;
      this.#overlay.delete(oldest);
    }
  }

  #enqueue(key: string, p: Pending, op: WriterOp): Promise<void> {
    if (p.ops++ === 0) {
      this.#clean.delete(key);
      this.#dirty.add(key);
    }
    p.row = true;
    return new Promise((resolve, reject) => {
      this.#queue.push({ key, op, resolve, reject });
      // On the next microtask, so that the changes of one frame share a commit.
      if (!this.#scheduled) {
        this.#scheduled = true;
        queueMicrotask(() => this.#send());
      }
    });
  }

  // Sends everything queued to the writer as one transaction, unless two
  // are there already: one committing and the next one waiting, so that the
  // writer never waits for this thread; what comes meanwhile is queued for
  // the transaction after (group commit).
  #send(): void {
    this.#scheduled = false;
    if (this.#queue.length === 0 || this.#failed !== null) return;
    if (this.#inFlight.length >= MAX_IN_FLIGHT) return;
    const batch = this.#queue;
    this.#queue = [];
    const seq = ++this.#seq;
    this.#inFlight.push({ seq, batch });
    this.#worker.postMessage(
      {
        type: "batch",
        seq,
        ops: batch.map((q) => q.op),
        used: this.#used,
        keys: this.#keyCount,
      } satisfies ToWriter,
    );
  }

  // The writer's answer: every batch up to `seq` committed, or failed.
  #answered(m: FromWriter): void {
    if (m.type === "done") {
      this.#commits++;
      while (this.#inFlight.length > 0 && this.#inFlight[0]!.seq <= m.seq) {
        const { batch } = this.#inFlight.shift()!;
        this.#changes += batch.length;
        for (const q of batch) {
          const p = this.#overlay.get(q.key);
          if (p !== undefined && --p.ops === 0) this.#settled(q.key, p);
          q.resolve();
        }
      }
      if (!this.#scheduled) this.#send();
    } else if (m.type === "failed") {
      // Nothing of the transaction was stored: the store stops, every change
      // not committed is refused, and reads go to what is on disk.
      this.#failed ??= new Error(`commit failed: ${m.message}`);
      const e = new Error(`store ${this.#path}: ${this.#failed.message}`);
      for (const { batch } of this.#inFlight.splice(0)) for (const q of batch) q.reject(e);
      for (const q of this.#queue.splice(0)) q.reject(e);
      this.#overlay.clear();
      this.#dirty.clear();
      this.#clean.clear();
    }
    if (this.#inFlight.length === 0 && this.#queue.length === 0) {
      for (const f of this.#idle.splice(0)) f();
    }
  }

  /** Waits for every change sent, then closes the writer, the database and the lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#inFlight.length > 0 || this.#queue.length > 0) {
      await new Promise<void>((resolve) => this.#idle.push(resolve));
    }
    // The writer closes its connection, which also ends a transaction that a
    // failure left open (its lock would refuse the next open in this
    // process); a writer that does not answer (crashed) is given 2 s.
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        this.#call({ type: "close" }).catch(() => {}),
        new Promise<void>((resolve) => timer = setTimeout(resolve, 2000)),
      ]);
    } finally {
      clearTimeout(timer);
      this.#worker.terminate();
      this.#db.close();
      this.#lock.close();
    }
  }
}
