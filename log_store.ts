/**
 * A durable {@link Store}: an append-only log of checksummed MessagePack
 * records, with group commit and crash-safe compaction.
 *
 * - **Durable before the reply.** `put` resolves only after the change is
 *   written and `fdatasync`ed; the acceptor replies only then.
 * - **Group commit.** Changes that arrive while a sync is under way (or in the
 *   same event-loop tick) are written together as one record and share one
 *   sync, so throughput grows with concurrency.
 * - **Recovery.** On open, every record is checked against its CRC-32. A torn
 *   last record (a power cut in the middle of a write) is dropped: it was
 *   never acknowledged. Damage anywhere else refuses the open with an error
 *   naming the file and the offset, because silently forgetting a promise
 *   would break Paxos.
 * - **Compaction.** When the log has doubled since the last compaction and
 *   a quarter of it or more is states overwritten since, a
 *   snapshot of the live state is written to a new file in the background
 *   while writes go on to the old log. Then, between two group commits, the
 *   records committed since the snapshot are appended to it, and it is
 *   synced and renamed over the log. Writes never wait for the snapshot, and
 *   a crash at any point leaves either the old log or the new one.
 * - **One process per directory.** An exclusive lock on `LOCK` makes a
 *   second acceptor on the same directory fail to open.
 * - **States stay on disk.** Memory holds an index ({@link LogIndex}: where
 *   each instance's latest state is in the log) and a small cache of recently
 *   used states; a state not in the cache is read back from the log with a
 *   positioned read. So memory grows with the number of instances, not with
 *   the size of their values, and recovery reads the log a chunk at a time.
 * - **One seam to the disk.** Every file operation (open, write, sync,
 *   truncate, rename, directory sync, lock, positioned reads) goes through a
 *   {@link LogFs}: the real file system ({@link denoFs}) unless the options
 *   give another, so that tests can hold, fail or count syncs, and cut the
 *   power.
 *
 * The file format is in log_format.ts.
 *
 * @module
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { crc32 } from "node:zlib";
import { join } from "node:path";
import type { Acceptor, KeyVersions, PaxosInstanceId } from "./types.ts";
import { valueBytes } from "./codec.ts";
import { checkMaxKeys, keyLimitError, type Store } from "./store.ts";
import {
  decodeChange,
  encodeChange,
  type Entry,
  LogCorruptionError,
  type LogReader,
  MAGIC,
  readExactly,
  readLog,
  RECORD_CHANGES,
  recordOf,
} from "./log_format.ts";
import { LogIndex } from "./log_index.ts";
import { refuseOtherEngine } from "./data_engine.ts";
import { Histogram } from "./metrics.ts";
import { LruMap } from "./lru.ts";

export { LogCorruptionError, type LogReader } from "./log_format.ts";

// The buckets of the changes per group commit.
const COMMIT_SIZE_BOUNDS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** Changes a compaction copies and writes at a time, in the background. */
const SNAPSHOT_STEP = 256;
/**
 * Most keys a {@link LogStore} holds by default ({@link LogStoreOptions.maxKeys}).
 * Its index keeps every key in memory, about 220 bytes of RSS each; an
 * acceptor filling at full speed holds more while V8 collects behind it.
 * Measured (`bench:scale`, three acceptors, 2 clients): 2,000,000 keys peaked
 * at 1,038 MiB of RSS while filling, restarted in 3.4 s to 576 MiB; 3,000,000
 * at 1,415 MiB, 6.4 s and 739 MiB. So 2 million is about what the targets of
 * 1 GiB and 5 s allow. `SqliteStore` keeps its keys on disk, for more.
 */
export const DEFAULT_MAX_KEYS = 2_000_000;
/** Most states the cache of recently used states holds... */
const CACHE_STATES = 65_536;
/** ...and most bytes of their values. */
const CACHE_BYTES = 32 * 1024 * 1024;

/** The log's file name inside the data directory. */
export const LOG_FILE = "acceptor.log";
/**
 * The index hint's file name inside the data directory: the index in memory,
 * saved when the store closes, so that the next open reads it instead of the
 * whole log (only the records after it).
 */
export const HINT_FILE = "acceptor.hint";
/** The lock file's name inside the data directory. */
export const LOCK_FILE = "LOCK";

/**
 * An open file, as {@link LogStore} uses it. A `Deno.FsFile` is one.
 */
export interface LogFile {
  /** Writes at the current position; resolves with how many bytes were written. */
  write(bytes: Uint8Array): Promise<number>;
  /** Moves the position; resolves with the new one. */
  seek(offset: number, whence: Deno.SeekMode): Promise<number>;
  /** Cuts the file to `size` bytes. */
  truncate(size: number): Promise<void>;
  /** `fdatasync`: resolves once what was written is on disk. */
  syncData(): Promise<void>;
  /** Releases the file. */
  close(): void;
}

/**
 * The file system operations of a {@link LogStore}: the seam between the log
 * and the disk. {@link denoFs} is the real one; a test puts a layer behind it
 * that holds, fails or counts operations, or forgets on a power cut what was
 * never synced.
 *
 * @example
 * ```ts
 * import { denoFs, type LogFs } from "./log_store.ts";
 * // The real file system, counting directory syncs.
 * let dirSyncs = 0;
 * const counting: LogFs = { ...denoFs, syncDir: (dir) => (dirSyncs++, denoFs.syncDir(dir)) };
 * ```
 */
export interface LogFs {
  /** Creates a directory, and its parents, when missing. */
  mkdir(dir: string): Promise<void>;
  /**
   * Opens a file to read and write. With `create`, a missing file is made
   * and an existing one emptied; without it, a missing file throws
   * `Deno.errors.NotFound`.
   */
  open(path: string, opts: { readonly create: boolean }): Promise<LogFile>;
  /** The whole content of a file; `Deno.errors.NotFound` when it is missing. */
  readFile(path: string): Promise<Uint8Array>;
  /**
   * Opens a file to read at any position ({@link LogReader}); it goes on
   * reading the same file after a rename. `Deno.errors.NotFound` when it is
   * missing.
   */
  openReader(path: string): Promise<LogReader>;
  /** Renames a file, replacing `to`. Durable once the directory is synced. */
  rename(from: string, to: string): Promise<void>;
  /** Deletes a file; `Deno.errors.NotFound` when it is missing. */
  remove(path: string): Promise<void>;
  /** Makes the names in a directory (files created, renamed, removed) durable. */
  syncDir(dir: string): Promise<void>;
  /**
   * Takes an exclusive lock on `path` (created when missing), or resolves
   * with null when another process holds it. Closing the result releases it.
   */
  lock(path: string): Promise<{ close(): void } | null>;
}

/**
 * The real file system, through Deno's file API.
 *
 * @example
 * ```ts ignore
 * import { denoFs, LogStore } from "./log_store.ts";
 * const store = await LogStore.open("./data/acceptor-0", { fs: denoFs }); // the default
 * ```
 */
export const denoFs: LogFs = {
  mkdir: (dir) => Deno.mkdir(dir, { recursive: true }),
  open: (path, { create }) =>
    Deno.open(path, { read: true, write: true, create, truncate: create }),
  readFile: (path) => Deno.readFile(path),
  openReader(path) {
    try {
      const fd = openSync(path, "r");
      return Promise.resolve({
        readAt: (bytes: Uint8Array, position: number) =>
          readSync(fd, bytes, 0, bytes.length, position),
        size: () => fstatSync(fd).size,
        close: () => closeSync(fd),
      });
    } catch (e) {
      const code = (e as { code?: string }).code;
      return Promise.reject(
        code === "ENOENT" ? new Deno.errors.NotFound((e as Error).message) : e,
      );
    }
  },
  rename: (from, to) => Deno.rename(from, to),
  remove: (path) => Deno.remove(path),
  async syncDir(dir) {
    const d = await Deno.open(dir, { read: true });
    try {
      await d.sync();
    } finally {
      d.close();
    }
  },
  async lock(path) {
    const f = await Deno.open(path, { read: true, write: true, create: true });
    try {
      if (await f.tryLock(true)) return f;
    } catch (e) {
      f.close();
      throw e;
    }
    f.close();
    return null;
  },
};

/** Options of {@link LogStore.open}. */
export interface LogStoreOptions {
  /**
   * Compact once the log exceeds max(this, 2 x its size after the last
   * compaction) bytes (default 4 MiB), and a quarter of it or more is states
   * overwritten or compacted since (a log of new states only has nothing to
   * give back).
   */
  readonly compactAtBytes?: number;
  /**
   * Told about notable events: a dropped torn record, a compaction; with
   * the event's name and its numbers (see {@link LogStoreEvent}).
   */
  readonly onEvent?: (message: string, event: LogStoreEvent, fields: LogEventFields) => void;
  /** The file system (default {@link denoFs}, the real one). */
  readonly fs?: LogFs;
  /**
   * Most states kept in memory, the most recently used (default 65,536, and
   * at most 32 MiB of values); the others are read back from the log.
   */
  readonly cacheStates?: number;
  /**
   * Most keys the store may hold ({@link Store.maxKeys}; default
   * {@link DEFAULT_MAX_KEYS}, at most `MAX_KEYS_IN_MEMORY`): a change that
   * would add one more is refused before anything is written. A log holding
   * more (the limit was lowered) opens, and its keys keep working.
   */
  readonly maxKeys?: number;
}

/**
 * The events a {@link LogStore} tells of: a torn last record dropped at
 * open, a compaction started, done or failed, the index not saved at close.
 */
export type LogStoreEvent =
  | "torn_record_dropped"
  | "compaction_started"
  | "compaction_done"
  | "compaction_failed"
  | "index_not_saved";

/** The numbers and names of a {@link LogStoreEvent}, for a structured log. */
export type LogEventFields = Readonly<Record<string, string | number>>;

type OnLogEvent = (message: string, event: LogStoreEvent, fields: LogEventFields) => void;

/** Counters for benchmarks and tests. */
export interface LogStoreStats {
  /** Changes made durable. */
  readonly changes: number;
  /** `fdatasync` calls on the log. */
  readonly syncs: number;
  /** Compactions done. */
  readonly compactions: number;
  /** Current log size in bytes. */
  readonly logBytes: number;
  /**
   * How the open found the states: from the index saved at the last close
   * and the log after it, or by reading the whole log (and why the saved
   * index was not used).
   */
  readonly opened: string;
}

type Change = Entry & { readonly resolve: () => void; readonly reject: (e: Error) => void };

// A compaction under way: the snapshot being written to `tmp` (the states
// the old log held when it started, copied from it, and where each one went),
// and the records committed to the old log since then.
interface Compaction {
  readonly started: number;
  // The old log's size when it started: states after it are in `tail`.
  readonly from: number;
  readonly tail: Uint8Array[];
  // Where each entry's state is in the new file (by entry number).
  moved: Float64Array;
  file: LogFile | null;
  reader: LogReader | null;
  snapshotBytes: number;
  ready: boolean;
  done: Promise<void>;
}

/**
 * The durable store. Open it with {@link LogStore.open}.
 *
 * @example
 * ```ts ignore
 * import { LogStore } from "./log_store.ts";
 * import { PaxosAcceptor } from "./acceptor.ts";
 * const store = await LogStore.open("./data/acceptor-0");
 * const acceptor = new PaxosAcceptor(store);
 * // ... serve it ...
 * await store.close();
 * ```
 */
export class LogStore implements Store {
  readonly #dir: string;
  readonly #path: string;
  // Where a compaction writes its snapshot before renaming it over the log.
  readonly #tmpPath: string;
  readonly #fs: LogFs;
  readonly #lock: { close(): void };
  #file: LogFile;
  // Where the file's position is, when known (after a write of ours): a
  // commit then needs no seek to the end first.
  #position: number | null = null;
  #reader: LogReader;
  #size: number;
  #liveBytes: number;
  readonly #compactAt: number;
  readonly #onEvent: OnLogEvent;
  readonly #opened: string;
  readonly #index: LogIndex;
  // Recently used states, by entry, least recently used first; and the
  // bytes of their values.
  readonly #cache = new LruMap<number, Acceptor>();
  readonly #cacheStates: number;
  #cacheBytes = 0;
  readonly #maxKeys: number;
  // The keys of changes queued or being written that the index does not
  // hold yet: counted against #maxKeys from the moment they are queued.
  readonly #newKeys = new Set<string>();
  #queue: Change[] = [];
  #flushing: Promise<void> | null = null;
  #compaction: Compaction | null = null;
  #failed: Error | null = null;
  #closed = false;
  #changes = 0;
  #syncs = 0;
  #compactions = 0;
  readonly #commitSizes = new Histogram(COMMIT_SIZE_BOUNDS);

  private constructor(
    dir: string,
    fs: LogFs,
    lock: { close(): void },
    file: LogFile,
    reader: LogReader,
    size: number,
    index: LogIndex,
    opened: string,
    opts: LogStoreOptions,
  ) {
    this.#opened = opened;
    this.#dir = dir;
    this.#fs = fs;
    this.#path = join(dir, LOG_FILE);
    this.#tmpPath = this.#path + ".tmp";
    this.#lock = lock;
    this.#file = file;
    this.#reader = reader;
    this.#size = size;
    this.#liveBytes = size;
    this.#index = index;
    this.#compactAt = opts.compactAtBytes ?? 4 * 1024 * 1024;
    this.#onEvent = opts.onEvent ?? (() => {});
    this.#cacheStates = opts.cacheStates ?? CACHE_STATES;
    this.#maxKeys = opts.maxKeys ?? DEFAULT_MAX_KEYS;
  }

  /**
   * Opens (creating if needed) the store in `dir`, recovering every state
   * the log holds. Throws when another process holds the directory, and a
   * {@link LogCorruptionError} when the log is damaged other than by a torn
   * last record, and a `RangeError` when `maxKeys` is not one
   * `checkMaxKeys` allows.
   */
  static async open(dir: string, opts: LogStoreOptions = {}): Promise<LogStore> {
    if (opts.maxKeys !== undefined) checkMaxKeys(opts.maxKeys);
    const fs = opts.fs ?? denoFs;
    await fs.mkdir(dir);
    const lock = await fs.lock(join(dir, LOCK_FILE));
    if (lock === null) {
      throw new Deno.errors.AddrInUse(
        `data directory ${dir} is in use by another acceptor (${join(dir, LOCK_FILE)} is locked)`,
      );
    }
    let reader: LogReader | null = null;
    try {
      // A directory of the SQLite engine would look empty to the log.
      if (fs === denoFs) await refuseOtherEngine(dir, "log");
      // A compaction that did not finish left only a temporary file.
      await fs.remove(join(dir, LOG_FILE + ".tmp")).catch(() => {});
      const path = join(dir, LOG_FILE);
      try {
        reader = await fs.openReader(path);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        await writeFileSynced(fs, path, MAGIC);
        await fs.syncDir(dir);
        reader = await fs.openReader(path);
      }
      const onEvent = opts.onEvent ?? (() => {});
      const hint = await loadHint(fs, join(dir, HINT_FILE), reader);
      const hinted = "index" in hint ? hint : null;
      const { size, index } = await recover(fs, path, reader, hinted, onEvent);
      const opened = "reason" in hint
        ? `the log read (${hint.reason})`
        : `${join(dir, HINT_FILE)}: index read, and ${size - hint.size} bytes of log after it`;
      // The hint is used: from now on the log runs ahead of it.
      await fs.remove(join(dir, HINT_FILE)).catch(() => {});
      const file = await fs.open(path, { create: false });
      return new LogStore(dir, fs, lock, file, reader, size, index, opened, opts);
    } catch (e) {
      reader?.close();
      lock.close();
      throw e;
    }
  }

  /** The directory this store lives in. */
  get dir(): string {
    return this.#dir;
  }

  /** Counters: changes, syncs, compactions, log size. */
  get stats(): LogStoreStats {
    return {
      changes: this.#changes,
      syncs: this.#syncs,
      compactions: this.#compactions,
      logBytes: this.#size,
      opened: this.#opened,
    };
  }

  /** Every instance and its durable state (read from disk), for inspection and verification. */
  *entries(): IterableIterator<[PaxosInstanceId, Acceptor]> {
    for (const [Key, Ver, e] of this.#index.entries()) yield [{ Key, Ver }, this.#state(e)];
  }

  /** The durable state of an instance, or undefined when it was never written. */
  get(id: PaxosInstanceId): Acceptor | undefined {
    const e = this.#index.find(id.Key, id.Ver);
    return e < 0 ? undefined : this.#state(e);
  }

  /** The highest voted version and the floor of a key. */
  latest(key: string): KeyVersions {
    return this.#index.latest(key);
  }

  /** The bytes of data held ({@link Store.usedBytes}): every state's bytes in the log, and each key's. */
  get usedBytes(): number {
    return this.#index.usedBytes;
  }

  /** How many instances the store holds. */
  get size(): number {
    return this.#index.size;
  }

  /** How many keys the store holds any state for, those of the writes under way included. */
  get keyCount(): number {
    return this.#index.keyCount + this.#newKeys.size;
  }

  /** Most keys the store may hold ({@link LogStoreOptions.maxKeys}). */
  get maxKeys(): number {
    return this.#maxKeys;
  }

  /**
   * Changes per group commit (one write and one sync each): a histogram
   * counted in place, for metrics.
   */
  get commitSizes(): Histogram {
    return this.#commitSizes;
  }

  /**
   * Why the store cannot take writes (closed, or a failure it stopped on),
   * or null when it can: what an acceptor's health check reports.
   */
  get failure(): string | null {
    if (this.#closed) return `store ${this.#path} is closed`;
    return this.#failed === null ? null : `store ${this.#path} failed: ${this.#failed.message}`;
  }

  // The state of entry `e`: from the cache, or read back from the log.
  #state(e: number): Acceptor {
    const hit = this.#cache.get(e);
    if (hit !== undefined) {
      // The most recently used goes last.
      this.#cache.set(e, hit);
      return hit;
    }
    const off = this.#index.offset(e);
    const bytes = readExactly(this.#reader, off, this.#index.length(e));
    let change: Entry;
    try {
      change = decodeChange(bytes);
    } catch (err) {
      throw new LogCorruptionError(this.#path, off, `unreadable state (${(err as Error).message})`);
    }
    if (!("state" in change)) {
      throw new LogCorruptionError(this.#path, off, "a floor where a state should be");
    }
    this.#remember(e, change.state);
    return change.state;
  }

  #remember(e: number, state: Acceptor): void {
    const old = this.#cache.get(e);
    if (old !== undefined) this.#cacheBytes -= cachedBytes(old);
    this.#cache.set(e, state);
    this.#cacheBytes += cachedBytes(state);
    while (this.#cache.size > this.#cacheStates || this.#cacheBytes > CACHE_BYTES) {
      const [, s] = this.#cache.shift()!;
      this.#cacheBytes -= cachedBytes(s);
    }
  }

  #forget(e: number): void {
    const old = this.#cache.get(e);
    if (old === undefined) return;
    this.#cache.delete(e);
    this.#cacheBytes -= cachedBytes(old);
  }

  /** A page of the keys held, in order (see {@link Store.keys}). */
  keys(from: string, limit: number, end?: string): string[] {
    return this.#index.keys(from, limit, end);
  }

  /** Writes a change; resolves once it is on disk, rejects when it could not be. */
  put(id: PaxosInstanceId, state: Acceptor): Promise<void> {
    return this.#append({ id, state });
  }

  /** Forgets the versions of `key` below `floor`, durably. */
  compact(key: string, floor: bigint): Promise<void> {
    return this.#append({ key, floor });
  }

  #append(entry: Entry): Promise<void> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("store is closed"));
    if (this.#failed !== null) {
      return Promise.reject(
        new Error(`store ${this.#path} failed earlier: ${this.#failed.message}`),
      );
    }
    // The key limit: a new key is refused before anything is written, so the
    // log never holds a key its index could not.
    const key = keyOf(entry);
    if (!this.#index.has(key) && !this.#newKeys.has(key)) {
      if (this.keyCount >= this.#maxKeys) {
        return Promise.reject(keyLimitError(key, this.keyCount, this.#maxKeys));
      }
      this.#newKeys.add(key);
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ ...entry, resolve, reject });
      // Start on the next microtask, so that the puts of one frame share a sync.
      if (this.#flushing === null) {
        this.#flushing = Promise.resolve().then(() => this.#flushLoop());
      }
    });
  }

  /** Finishes pending writes and releases the files and the lock. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#flushing !== null) await this.#flushing;
    // A compaction not switched in yet is dropped: the log is complete.
    const c = this.#compaction;
    if (c !== null) {
      this.#compaction = null;
      await c.done;
      await this.#dropCompaction(c);
    }
    if (this.#failed === null) await this.#saveHint();
    this.#file.close();
    this.#reader.close();
    this.#lock.close();
  }

  // Saves the index for the next open (HINT_FILE). Nothing depends on it: a
  // hint missing, damaged or of another log makes the next open read the log.
  async #saveHint(): Promise<void> {
    const parts = this.#index.saveParts();
    if (parts === null) return;
    const L = this.#size;
    const from = Math.max(MAGIC.length, L - HINT_TAIL);
    const head = new Uint8Array(HINT_HEAD);
    const view = new DataView(head.buffer);
    head.set(HINT_MAGIC);
    view.setFloat64(8, L);
    view.setUint32(16, crc32(readExactly(this.#reader, from, L - from)) >>> 0);
    let crc = crc32(head);
    for (const p of parts) crc = crc32(p, crc);
    const tail = new Uint8Array(4);
    new DataView(tail.buffer).setUint32(0, crc >>> 0);
    const path = join(this.#dir, HINT_FILE);
    try {
      const f = await this.#fs.open(path + ".tmp", { create: true });
      try {
        await writeAll(f, head);
        for (const p of parts) await writeAll(f, p);
        await writeAll(f, tail);
      } finally {
        f.close();
      }
      await this.#fs.rename(path + ".tmp", path);
    } catch (e) {
      this.#onEvent(
        `could not save the index to ${path} (the next start reads the log): ${e}`,
        "index_not_saved",
        { path, error: String(e) },
      );
    }
  }

  async #flushLoop(): Promise<void> {
    try {
      for (;;) {
        // A finished snapshot is switched in between two group commits.
        if (this.#compaction?.ready === true) await this.#finishCompaction();
        if (this.#queue.length === 0) break;
        const batch = this.#queue;
        this.#queue = [];
        await this.#commit(batch);
        // In the index now, or not written at all.
        for (const c of batch) this.#newKeys.delete(keyOf(c));
        if (
          this.#compaction === null && this.#failed === null && !this.#closed &&
          this.#size > Math.max(this.#compactAt, 2 * this.#liveBytes) &&
          this.#size - this.#index.stateBytes >= this.#size / 4
        ) {
          this.#startCompaction();
        }
      }
    } catch (e) {
      // A bug of ours: stop acknowledging anything rather than leave puts
      // waiting forever or the rejection unhandled.
      this.#failed = e as Error;
      for (const c of this.#queue.splice(0)) c.reject(e as Error);
      this.#newKeys.clear();
    } finally {
      this.#flushing = null;
    }
  }

  async #commit(batch: Change[]): Promise<void> {
    if (this.#failed !== null) {
      for (const c of batch) {
        c.reject(new Error(`store ${this.#path} failed: ${this.#failed.message}`));
      }
      return;
    }
    // A change the codec cannot write fails alone: the others go on.
    const encoded: Uint8Array[] = [];
    batch = batch.filter((c) => {
      try {
        encoded.push(encodeChange(c));
        return true;
      } catch (e) {
        c.reject(new TypeError(`cannot encode a change of ${describeEntry(c)}: ${e}`));
        return false;
      }
    });
    if (batch.length === 0) return;
    const at: number[] = [];
    const records = encodeRecords(encoded, at);
    try {
      if (this.#position !== this.#size) {
        this.#position = null;
        await this.#file.seek(this.#size, Deno.SeekMode.Start);
      }
      await writeAll(this.#file, records);
      this.#position = this.#size + records.length;
      await this.#file.syncData();
      this.#syncs++;
      this.#commitSizes.observe(batch.length);
    } catch (e) {
      // Nothing of this batch is acknowledged. Cut the partial write off so
      // that later records do not follow garbage; if even that fails, stop.
      this.#position = null;
      try {
        await this.#file.truncate(this.#size);
        await this.#file.syncData();
      } catch (e2) {
        this.#failed = e2 as Error;
      }
      const err = new Error(`cannot write ${this.#path}: ${(e as Error).message}`);
      for (const c of batch) c.reject(err);
      return;
    }
    const base = this.#size;
    this.#size += records.length;
    this.#compaction?.tail.push(records);
    batch.forEach((c, i) => {
      this.#apply(c, base + at[i]!, encoded[i]!.length);
      this.#changes++;
      c.resolve();
    });
  }

  #apply(c: Entry, offset: number, length: number): void {
    if ("state" in c) {
      const e = this.#index.set(c.id.Key, c.id.Ver, c.state.Val !== null, offset, length);
      if (e >= 0) this.#remember(e, c.state);
    } else {
      for (const e of this.#index.compact(c.key, c.floor)) this.#forget(e);
    }
  }

  // Starts writing a snapshot of the live state (exactly what the log holds:
  // no commit is under way) to a new file in the background. The states are
  // copied from the log as they are; those written after this point are in
  // the records kept aside (`tail`) and are skipped.
  #startCompaction(): void {
    const c: Compaction = {
      started: performance.now(),
      from: this.#size,
      tail: [],
      moved: new Float64Array(this.#index.entryLimit).fill(-1),
      file: null,
      reader: null,
      snapshotBytes: 0,
      ready: false,
      done: Promise.resolve(),
    };
    c.done = this.#writeSnapshot(c).then(() => {
      c.ready = true;
      // Switch it in now if no commit is coming to do it.
      if (this.#flushing === null && !this.#closed && this.#compaction === c) {
        this.#flushing = this.#flushLoop();
      }
    }, async (e) => {
      if (this.#compaction === c) this.#compaction = null;
      await this.#dropCompaction(c);
      if (!this.#closed) this.#compactionFailed(e);
    });
    this.#compaction = c;
    this.#onEvent(
      `compacting ${this.#path}: a snapshot of ${this.#index.size} states`,
      "compaction_started",
      { path: this.#path, states: this.#index.size, logBytes: this.#size },
    );
  }

  async #writeSnapshot(c: Compaction): Promise<void> {
    c.file = await this.#fs.open(this.#tmpPath, { create: true });
    await writeAll(c.file, MAGIC);
    let size = MAGIC.length;
    const index = this.#index;
    // A small record at a time, so that commits and requests run in between.
    const flush = async (changes: Uint8Array[], entries: number[]) => {
      const at: number[] = [];
      const bytes = recordOf(changes, at);
      entries.forEach((e, i) => c.moved[e] = size + at[i]!);
      await writeAll(c.file!, bytes);
      size += bytes.length;
    };
    let changes: Uint8Array[] = [];
    let entries: number[] = [];
    for (let e = 0; e < c.moved.length; e++) {
      // A free entry, or one written since the start (it is in the tail).
      const off = index.offset(e);
      if (off < 0 || off >= c.from) continue;
      changes.push(readExactly(this.#reader, off, index.length(e)));
      entries.push(e);
      if (changes.length === SNAPSHOT_STEP) {
        if (this.#closed) throw new Deno.errors.Interrupted("store closed");
        await flush(changes, entries);
        changes = [];
        entries = [];
      }
    }
    // The floors (one raised since the start is in the tail too).
    for (let k = 0; k < index.keyCount; k++) {
      const floor = index.floorOf(k);
      if (floor > 0n) changes.push(encodeChange({ key: index.keyName(k), floor }));
      if (changes.length >= SNAPSHOT_STEP) {
        await flush(changes, entries);
        changes = [];
        entries = [];
      }
    }
    if (changes.length > 0) await flush(changes, entries);
    await c.file.syncData();
    c.snapshotBytes = size;
  }

  // Appends what was committed since the snapshot, syncs, and renames the
  // new file over the log. Runs between commits, so nothing is missed.
  async #finishCompaction(): Promise<void> {
    const c = this.#compaction!;
    this.#compaction = null;
    if (this.#failed !== null) return await this.#dropCompaction(c);
    const file = c.file!;
    const tail = concat(c.tail);
    try {
      await file.seek(c.snapshotBytes, Deno.SeekMode.Start);
      await writeAll(file, tail);
      await file.syncData();
      c.reader = await this.#fs.openReader(this.#tmpPath);
      await this.#fs.rename(this.#tmpPath, this.#path);
    } catch (e) {
      await this.#dropCompaction(c);
      return this.#compactionFailed(e);
    }
    // Every state is now read from the new file: those of the snapshot where
    // it copied them, those of the tail where the tail went.
    const index = this.#index;
    const shift = c.snapshotBytes - c.from;
    for (let e = 0; e < index.entryLimit; e++) {
      const off = index.offset(e);
      if (off < 0) continue;
      index.move(e, off >= c.from ? off + shift : c.moved[e]!);
    }
    const before = this.#size;
    this.#reader.close();
    this.#reader = c.reader;
    c.reader = null;
    this.#file.close();
    this.#file = file;
    this.#size = c.snapshotBytes + tail.length;
    this.#position = this.#size;
    this.#liveBytes = this.#size;
    try {
      await this.#fs.syncDir(this.#dir);
    } catch (e) {
      // The new log may not survive a crash under its name, and the old one
      // is gone: acknowledge nothing more.
      this.#failed = new Error(`cannot sync ${this.#dir} after compaction: ${e}`);
      return;
    }
    this.#compactions++;
    const ms = Math.round(performance.now() - c.started);
    this.#onEvent(
      `compacted ${this.#path}: ${before} -> ${this.#size} bytes in ${ms} ms, writes going on ` +
        `meanwhile`,
      "compaction_done",
      { path: this.#path, beforeBytes: before, afterBytes: this.#size, ms },
    );
  }

  async #dropCompaction(c: Compaction): Promise<void> {
    c.file?.close();
    c.file = null;
    c.reader?.close();
    c.reader = null;
    await this.#fs.remove(this.#tmpPath).catch(() => {});
  }

  #compactionFailed(e: unknown): void {
    // Try again once the log has doubled.
    this.#liveBytes = this.#size;
    this.#onEvent(
      `compaction of ${this.#path} failed, the log stays as it is: ${e}`,
      "compaction_failed",
      { path: this.#path, error: String(e) },
    );
  }
}

// What a cached state counts for against CACHE_BYTES.
function cachedBytes(s: Acceptor): number {
  return 64 + (s.Val === null ? 0 : valueBytes(s.Val));
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function keyOf(e: Entry): string {
  return "state" in e ? e.id.Key : e.key;
}

function describeEntry(e: Entry): string {
  return "state" in e ? `${JSON.stringify(e.id.Key)}@${e.id.Ver}` : JSON.stringify(e.key);
}

// Encodes changes as records of at most RECORD_CHANGES changes each; `at`
// gets the offset of each change from the start of the result.
function encodeRecords(changes: readonly Uint8Array[], at: number[]): Uint8Array {
  if (changes.length <= RECORD_CHANGES) return recordOf(changes, at);
  const parts: Uint8Array[] = [];
  let base = 0;
  for (let i = 0; i < changes.length; i += RECORD_CHANGES) {
    const local: number[] = [];
    const rec = recordOf(changes.slice(i, i + RECORD_CHANGES), local);
    for (const a of local) at.push(base + a);
    parts.push(rec);
    base += rec.length;
  }
  return concat(parts);
}

// The bytes of the log before a hint's end that the hint's checksum covers,
// and the hint's header: magic, the log's size, that checksum, padding.
const HINT_TAIL = 4096;
const HINT_HEAD = 24;
const HINT_MAGIC = new TextEncoder().encode("PXKVHNT1");

// The index saved in the hint file and the size of the log it covers, or
// why it is not used: there is none, or it is damaged, or of another log.
async function loadHint(
  fs: LogFs,
  path: string,
  reader: LogReader,
): Promise<{ index: LogIndex; size: number } | { reason: string }> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch {
    return { reason: "no saved index" };
  }
  try {
    if (bytes.length < HINT_HEAD + 4) throw new RangeError("too short");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const crc = view.getUint32(bytes.length - 4);
    if (crc32(bytes.subarray(0, bytes.length - 4)) >>> 0 !== crc) {
      throw new RangeError("checksum mismatch");
    }
    if (!HINT_MAGIC.every((b, i) => b === bytes[i])) throw new RangeError("bad magic");
    const size = view.getFloat64(8);
    const from = Math.max(MAGIC.length, size - HINT_TAIL);
    if (!(size >= MAGIC.length && size <= reader.size())) {
      throw new RangeError(`it covers ${size} bytes of a log of ${reader.size()}`);
    }
    if (crc32(readExactly(reader, from, size - from)) >>> 0 !== view.getUint32(16)) {
      throw new RangeError("it is of another log");
    }
    const index = LogIndex.load(bytes.subarray(HINT_HEAD, bytes.length - 4));
    return { index, size };
  } catch (e) {
    return { reason: `${path}: not used, the log is read instead (${(e as Error).message})` };
  }
}

// Reads the log (after what the hint covers, when there is one) into an
// index; returns it and the size of the log's valid part, having cut off a
// torn last record.
async function recover(
  fs: LogFs,
  path: string,
  reader: LogReader,
  hinted: { index: LogIndex; size: number } | null,
  onEvent: OnLogEvent,
): Promise<{ size: number; index: LogIndex }> {
  const index = hinted?.index ?? new LogIndex();
  const scan = readLog(reader, path, (c, offset, length) => {
    if ("ver" in c) index.set(c.key, c.ver, c.voted, offset, length);
    else index.compact(c.key, c.floor);
  }, hinted?.size);
  if (scan.validBytes < MAGIC.length) {
    // Only a crash while creating the file leaves it shorter than its magic.
    await writeFileSynced(fs, path, MAGIC);
    return { size: MAGIC.length, index };
  }
  if (scan.tornBytes > 0) {
    await truncateSynced(fs, path, scan.validBytes);
    onEvent(
      `${path}: dropped a torn last record at offset ${scan.validBytes} (${scan.tornBytes} bytes)`,
      "torn_record_dropped",
      { path, offset: scan.validBytes, bytes: scan.tornBytes },
    );
  }
  return { size: scan.validBytes, index };
}

async function writeAll(file: LogFile, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await file.write(bytes.subarray(off));
}

async function writeFileSynced(fs: LogFs, path: string, bytes: Uint8Array): Promise<void> {
  const f = await fs.open(path, { create: true });
  try {
    await writeAll(f, bytes);
    await f.syncData();
  } finally {
    f.close();
  }
}

async function truncateSynced(fs: LogFs, path: string, size: number): Promise<void> {
  const f = await fs.open(path, { create: false });
  try {
    await f.truncate(size);
    await f.syncData();
  } finally {
    f.close();
  }
}
