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
 * - **Compaction.** When the log holds much more than the live state, a
 *   snapshot of the live state is written to a new file in the background
 *   while writes go on to the old log. Then, between two group commits, the
 *   records committed since the snapshot are appended to it, and it is
 *   synced and renamed over the log. Writes never wait for the snapshot, and
 *   a crash at any point leaves either the old log or the new one.
 * - **One process per directory.** An exclusive lock on `LOCK` makes a
 *   second acceptor on the same directory fail to open.
 * - **One seam to the disk.** Every file operation (open, write, sync,
 *   truncate, rename, directory sync, lock) goes through a {@link LogFs}:
 *   the real file system ({@link denoFs}) unless the options give another,
 *   so that tests can hold, fail or count syncs, and cut the power.
 *
 * File format (`acceptor.log`): the 8 magic bytes `PXKVLOG1`, then records
 * `[u32 length][u32 crc32(length)][u32 crc32(payload)][payload]`
 * (big-endian). The header checks itself, so a damaged length is told apart
 * from a write that stopped short. A payload is a MessagePack array of
 * changes: `{Key, Ver, LastBal, Val?, VBal?}` (a new state, with the wire
 * protocol's field names) or `{Key, Floor}` (versions below Floor forgotten).
 *
 * @module
 */
import { crc32 } from "node:zlib";
import { join } from "node:path";
import type { Acceptor, KeyVersions, PaxosInstanceId } from "./types.ts";
import {
  decodeFrame,
  encodeFrame,
  parseAcceptor,
  parseInstanceId,
  parseInt64,
  wireAcceptor,
  wireInt,
} from "./codec.ts";
import { type Store, Versions } from "./store.ts";

const MAGIC = new TextEncoder().encode("PXKVLOG1");
const HEADER = 12;
/** Most changes in one record (a compaction snapshot is split into several). */
const RECORD_CHANGES = 4096;
/** Changes a compaction encodes and writes at a time, in the background. */
const SNAPSHOT_STEP = 256;

/** The log's file name inside the data directory. */
export const LOG_FILE = "acceptor.log";
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
  /** Compact once the log exceeds max(this, 2 x the live state) bytes (default 4 MiB). */
  readonly compactAtBytes?: number;
  /** Told about notable events: a dropped torn record, a compaction. */
  readonly onEvent?: (message: string) => void;
  /** The file system (default {@link denoFs}, the real one). */
  readonly fs?: LogFs;
}

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
}

/**
 * The log holds damage that is not a torn last record: the store refuses to
 * open rather than forget an acknowledged promise or vote.
 *
 * @example
 * ```ts
 * import { LogCorruptionError } from "./log_store.ts";
 * const e = new LogCorruptionError("data/acceptor.log", 4096, "checksum mismatch");
 * e.offset; // 4096
 * ```
 */
export class LogCorruptionError extends Error {
  /** The damaged file. */
  readonly path: string;
  /** The offset of the damaged record. */
  readonly offset: number;
  /** Builds the error from the file, the offset and what is wrong there. */
  constructor(path: string, offset: number, what: string) {
    super(
      `${path}: ${what} at offset ${offset}; refusing to start: ` +
        `restore this acceptor's data from a backup or rebuild it (see README)`,
    );
    this.name = "LogCorruptionError";
    this.path = path;
    this.offset = offset;
  }
}

// One change to log: a new state of an instance, or a key's new floor.
type Entry =
  | { readonly id: PaxosInstanceId; readonly state: Acceptor }
  | { readonly key: string; readonly floor: bigint };

type Change = Entry & { readonly resolve: () => void; readonly reject: (e: Error) => void };

// A compaction under way: the snapshot being written to `tmp`, and the
// records committed to the old log since the snapshot was taken.
interface Compaction {
  readonly started: number;
  readonly tail: Uint8Array[];
  file: LogFile | null;
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
  #size: number;
  #liveBytes: number;
  readonly #compactAt: number;
  readonly #onEvent: (message: string) => void;
  readonly #versions: Versions;
  #queue: Change[] = [];
  #flushing: Promise<void> | null = null;
  #compaction: Compaction | null = null;
  #failed: Error | null = null;
  #closed = false;
  #changes = 0;
  #syncs = 0;
  #compactions = 0;

  private constructor(
    dir: string,
    fs: LogFs,
    lock: { close(): void },
    file: LogFile,
    size: number,
    versions: Versions,
    opts: LogStoreOptions,
  ) {
    this.#dir = dir;
    this.#fs = fs;
    this.#path = join(dir, LOG_FILE);
    this.#tmpPath = this.#path + ".tmp";
    this.#lock = lock;
    this.#file = file;
    this.#size = size;
    this.#liveBytes = size;
    this.#versions = versions;
    this.#compactAt = opts.compactAtBytes ?? 4 * 1024 * 1024;
    this.#onEvent = opts.onEvent ?? (() => {});
  }

  /**
   * Opens (creating if needed) the store in `dir`, recovering every state
   * the log holds. Throws when another process holds the directory, and a
   * {@link LogCorruptionError} when the log is damaged other than by a torn
   * last record.
   */
  static async open(dir: string, opts: LogStoreOptions = {}): Promise<LogStore> {
    const fs = opts.fs ?? denoFs;
    await fs.mkdir(dir);
    const lock = await fs.lock(join(dir, LOCK_FILE));
    if (lock === null) {
      throw new Deno.errors.AddrInUse(
        `data directory ${dir} is in use by another acceptor (${join(dir, LOCK_FILE)} is locked)`,
      );
    }
    try {
      // A compaction that did not finish left only a temporary file.
      await fs.remove(join(dir, LOG_FILE + ".tmp")).catch(() => {});
      const path = join(dir, LOG_FILE);
      const versions = new Versions();
      let size: number;
      let exists = true;
      try {
        size = await recover(fs, path, versions, opts.onEvent ?? (() => {}));
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        exists = false;
        size = MAGIC.length;
      }
      if (!exists) {
        await writeFileSynced(fs, path, MAGIC);
        await fs.syncDir(dir);
      }
      const file = await fs.open(path, { create: false });
      return new LogStore(dir, fs, lock, file, size, versions, opts);
    } catch (e) {
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
    };
  }

  /** Every instance and its durable state, for inspection and verification. */
  entries(): IterableIterator<[PaxosInstanceId, Acceptor]> {
    return this.#versions.entries();
  }

  /** The durable state of an instance, or undefined when it was never written. */
  get(id: PaxosInstanceId): Acceptor | undefined {
    return this.#versions.get(id);
  }

  /** The highest voted version and the floor of a key. */
  latest(key: string): KeyVersions {
    return this.#versions.latest(key);
  }

  /** A page of the keys held, in order (see {@link Store.keys}). */
  keys(from: string, limit: number, end?: string): string[] {
    return this.#versions.keys(from, limit, end);
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
    this.#file.close();
    this.#lock.close();
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
        if (
          this.#compaction === null && this.#failed === null && !this.#closed &&
          this.#size > Math.max(this.#compactAt, 2 * this.#liveBytes)
        ) {
          this.#startCompaction();
        }
      }
    } catch (e) {
      // A bug of ours: stop acknowledging anything rather than leave puts
      // waiting forever or the rejection unhandled.
      this.#failed = e as Error;
      for (const c of this.#queue.splice(0)) c.reject(e as Error);
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
    let records: Uint8Array;
    try {
      records = encodeRecords(batch);
    } catch {
      // A change the codec cannot write fails alone: the others go on.
      batch = batch.filter((c) => {
        try {
          encodeRecords([c]);
          return true;
        } catch (e) {
          c.reject(new TypeError(`cannot encode a change of ${describeEntry(c)}: ${e}`));
          return false;
        }
      });
      if (batch.length === 0) return;
      records = encodeRecords(batch);
    }
    try {
      await this.#file.seek(this.#size, Deno.SeekMode.Start);
      await writeAll(this.#file, records);
      await this.#file.syncData();
      this.#syncs++;
    } catch (e) {
      // Nothing of this batch is acknowledged. Cut the partial write off so
      // that later records do not follow garbage; if even that fails, stop.
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
    this.#size += records.length;
    this.#compaction?.tail.push(records);
    for (const c of batch) {
      apply(this.#versions, c);
      this.#changes++;
      c.resolve();
    }
  }

  // Takes a snapshot of the live state (exactly what the log holds: no
  // commit is under way) and writes it to a new file in the background.
  #startCompaction(): void {
    const all: Entry[] = [];
    for (const [id, state] of this.entries()) all.push({ id, state });
    for (const [key, floor] of this.#versions.floors()) all.push({ key, floor });
    const c: Compaction = {
      started: performance.now(),
      tail: [],
      file: null,
      snapshotBytes: 0,
      ready: false,
      done: Promise.resolve(),
    };
    c.done = this.#writeSnapshot(c, all).then(() => {
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
    this.#onEvent(`compacting ${this.#path}: a snapshot of ${all.length} changes`);
  }

  async #writeSnapshot(c: Compaction, all: readonly Entry[]): Promise<void> {
    c.file = await this.#fs.open(this.#tmpPath, { create: true });
    await writeAll(c.file, MAGIC);
    let size = MAGIC.length;
    // A small record at a time, so that commits and requests run in between.
    for (let i = 0; i < all.length; i += SNAPSHOT_STEP) {
      if (this.#closed) throw new Deno.errors.Interrupted("store closed");
      const bytes = encodeRecords(all.slice(i, i + SNAPSHOT_STEP));
      await writeAll(c.file, bytes);
      size += bytes.length;
    }
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
      await this.#fs.rename(this.#tmpPath, this.#path);
    } catch (e) {
      await this.#dropCompaction(c);
      return this.#compactionFailed(e);
    }
    const before = this.#size;
    this.#file.close();
    this.#file = file;
    this.#size = c.snapshotBytes + tail.length;
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
    this.#onEvent(
      `compacted ${this.#path}: ${before} -> ${this.#size} bytes in ${
        Math.round(performance.now() - c.started)
      } ms, writes going on meanwhile`,
    );
  }

  async #dropCompaction(c: Compaction): Promise<void> {
    c.file?.close();
    c.file = null;
    await this.#fs.remove(this.#tmpPath).catch(() => {});
  }

  #compactionFailed(e: unknown): void {
    // Try again once the log has doubled.
    this.#liveBytes = this.#size;
    this.#onEvent(`compaction of ${this.#path} failed, the log stays as it is: ${e}`);
  }
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

function describeEntry(e: Entry): string {
  return "state" in e ? `${e.id.Key}@${e.id.Ver}` : e.key;
}

function apply(versions: Versions, e: Entry): void {
  if ("state" in e) versions.set(e.id, e.state);
  else versions.compact(e.key, e.floor);
}

// Encodes changes as records of at most RECORD_CHANGES changes each: one
// record for a group commit, several for a compaction snapshot.
function encodeRecords(changes: readonly Entry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < changes.length; i += RECORD_CHANGES) {
    const group = changes.slice(i, i + RECORD_CHANGES).map((e) =>
      "state" in e
        ? { Key: e.id.Key, Ver: wireInt(e.id.Ver), ...wireAcceptor(e.state) }
        : { Key: e.key, Floor: wireInt(e.floor) }
    );
    parts.push(record(encodeFrame(group)));
  }
  return concat(parts);
}

function record(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length);
  view.setUint32(4, crc32(out.subarray(0, 4)) >>> 0);
  view.setUint32(8, crc32(payload) >>> 0);
  out.set(payload, HEADER);
  return out;
}

function isAllZero(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0) return false;
  return true;
}

// Reads the log into `states`; returns the size of its valid part, having cut
// off a torn last record.
async function recover(
  fs: LogFs,
  path: string,
  versions: Versions,
  onEvent: (message: string) => void,
): Promise<number> {
  const bytes = await fs.readFile(path);
  if (bytes.length < MAGIC.length) {
    // Only a crash while creating the file leaves it shorter than its magic.
    if (!MAGIC.subarray(0, bytes.length).every((b, i) => b === bytes[i])) {
      throw new LogCorruptionError(path, 0, "not a paxoskv log (bad magic)");
    }
    await writeFileSynced(fs, path, MAGIC);
    return MAGIC.length;
  }
  if (!MAGIC.every((b, i) => b === bytes[i])) {
    throw new LogCorruptionError(path, 0, "not a paxoskv log (bad magic)");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = MAGIC.length;
  while (off < bytes.length) {
    const rest = bytes.length - off;
    // A torn last record: the last write stopped short (a partial header, a
    // payload cut off, a bad payload checksum on the very last record) or
    // the file was extended with zeros that were never written. It was never
    // acknowledged, so it is cut off.
    const torn = async () => {
      await truncateSynced(fs, path, off);
      onEvent(`${path}: dropped a torn last record at offset ${off} (${rest} bytes)`);
      return off;
    };
    if (rest < HEADER || isAllZero(bytes.subarray(off))) return await torn();
    const n = view.getUint32(off);
    if (view.getUint32(off + 4) !== crc32(bytes.subarray(off, off + 4)) >>> 0) {
      throw new LogCorruptionError(path, off, "damaged record header");
    }
    const end = off + HEADER + n;
    if (end > bytes.length) return await torn();
    const payload = bytes.subarray(off + HEADER, end);
    if (view.getUint32(off + 8) !== crc32(payload) >>> 0) {
      if (end === bytes.length) return await torn();
      throw new LogCorruptionError(path, off, "checksum mismatch in a record that is not the last");
    }
    try {
      applyRecord(payload, versions);
    } catch (e) {
      throw new LogCorruptionError(path, off, `unreadable record (${(e as Error).message})`);
    }
    off = end;
  }
  return off;
}

function applyRecord(payload: Uint8Array, versions: Versions): void {
  const changes = decodeFrame(payload);
  if (!Array.isArray(changes)) throw new TypeError("a record holds an array of changes");
  for (const c of changes) {
    if (typeof c === "object" && c !== null && "Floor" in c) {
      const key = parseInstanceId(c, "change").Key;
      apply(versions, { key, floor: parseInt64(c.Floor, "change.Floor") });
    } else {
      apply(versions, { id: parseInstanceId(c, "change"), state: parseAcceptor(c, "change") });
    }
  }
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
