/**
 * A file system in memory for {@link LogStore}'s tests: a {@link LogFs} that
 * keeps what was written apart from what reached the disk, so that a power
 * cut loses exactly what a real disk may lose, and that lets a test hold,
 * fail or count any operation.
 *
 * The model of durability:
 * - a file's bytes are durable up to its last `syncData` (a failed sync makes
 *   nothing durable);
 * - a name (a file created, renamed or removed) is durable once its
 *   directory is synced; directories themselves are always there;
 * - {@link MemFs.powerCut} puts every durable name back, each with its
 *   durable bytes, and drops the locks. Files of the old "process" stay open
 *   but dead: what it does next never settles.
 *
 * Every operation first meets the one-shot traps set by {@link MemFs.hold}
 * and {@link MemFs.failNext}, then calls {@link MemFs.before} with what it is
 * about to do: a hook that throws fails the operation (before it has any
 * effect), and one that returns a promise holds it until the promise settles.
 *
 * @module
 */
import { dirname } from "node:path";
import type { LogFile, LogFs, LogReader } from "../log_store.ts";

/** What an operation is about to do: its kind and the path it works on. */
export interface FsOp {
  readonly kind:
    | "mkdir"
    | "open"
    | "readFile"
    | "openReader"
    | "rename"
    | "remove"
    | "syncDir"
    | "lock"
    | "write"
    | "seek"
    | "truncate"
    | "syncData";
  readonly path: string;
}

/** An operation held by {@link MemFs.hold}. */
export interface HeldOp {
  /** Resolves once the operation was asked for (and is being held). */
  readonly arrived: Promise<FsOp>;
  /** Lets it go on. */
  release(): void;
  /** Makes it fail with `error`, having done nothing. */
  fail(error: Error): void;
}

// A trap for the next operation of a kind on a path ending with a suffix.
interface Trap {
  readonly kind: FsOp["kind"];
  readonly suffix: string;
  readonly spring: (op: FsOp) => void | Promise<void>;
}

// A file's content: as written, and as of its last sync.
interface Inode {
  data: Uint8Array;
  synced: Uint8Array;
}

const NEVER = new Promise<never>(() => {});

/** A {@link LogFs} in memory, with a power cut. */
export class MemFs implements LogFs {
  /** Called before every operation; throw to fail it, return a promise to hold it. */
  before: (op: FsOp) => void | Promise<void> = () => {};
  /** Every operation asked for, in order (also those that failed or are held). */
  readonly ops: FsOp[] = [];
  /** With true, `syncData` resolves but makes nothing durable: a disk that lies. */
  lies = false;
  #traps: Trap[] = [];
  #names = new Map<string, Inode>();
  #durable = new Map<string, Inode>();
  readonly #locks = new Set<string>();
  // Power cuts so far: what an older "process" does never settles.
  #epoch = 0;

  /** How many operations of `kind` were asked for, on paths ending with `suffix`. */
  count(kind: FsOp["kind"], suffix = ""): number {
    return this.ops.filter((o) => o.kind === kind && o.path.endsWith(suffix)).length;
  }

  /** Holds the next operation of `kind` on a path ending with `suffix`. */
  hold(kind: FsOp["kind"], suffix = ""): HeldOp {
    let arrived!: (op: FsOp) => void;
    let release!: () => void;
    let fail!: (e: Error) => void;
    const gate = new Promise<void>((resolve, reject) => {
      release = resolve;
      fail = reject;
    });
    const held: HeldOp = {
      arrived: new Promise((resolve) => arrived = resolve),
      release: () => release(),
      fail: (e) => fail(e),
    };
    this.#traps.push({
      kind,
      suffix,
      spring: (op) => {
        arrived(op);
        return gate;
      },
    });
    return held;
  }

  /** Fails the next operation of `kind` on a path ending with `suffix`, before it does anything. */
  failNext(kind: FsOp["kind"], suffix = "", error = new Error(`${kind} failed (MemFs)`)): void {
    this.#traps.push({
      kind,
      suffix,
      spring: () => {
        throw error;
      },
    });
  }

  /** The bytes of a file as written (not necessarily durable), or undefined. */
  written(path: string): Uint8Array | undefined {
    return this.#names.get(path)?.data.slice();
  }

  /** The bytes of a file that a power cut now would leave, or undefined. */
  durable(path: string): Uint8Array | undefined {
    return this.#durable.get(path)?.synced.slice();
  }

  /**
   * Cuts the power: only durable names with their durable bytes remain,
   * locks are released, and the files open so far are dead.
   */
  powerCut(): void {
    this.#epoch++;
    const names = new Map<string, Inode>();
    const fresh = new Map<Inode, Inode>();
    for (const [path, inode] of this.#durable) {
      let copy = fresh.get(inode);
      if (copy === undefined) {
        copy = { data: inode.synced.slice(), synced: inode.synced.slice() };
        fresh.set(inode, copy);
      }
      names.set(path, copy);
    }
    this.#names = names;
    this.#durable = new Map(names);
    this.#locks.clear();
  }

  // Runs the hook, then `fn`; nothing of a process older than the last power cut settles.
  async #do<T>(kind: FsOp["kind"], path: string, epoch: number, fn: () => T): Promise<T> {
    if (epoch !== this.#epoch) return await NEVER;
    const op = { kind, path };
    this.ops.push(op);
    const trap = this.#traps.findIndex((t) => t.kind === kind && path.endsWith(t.suffix));
    if (trap >= 0) await this.#traps.splice(trap, 1)[0]!.spring(op);
    await this.before(op);
    if (epoch !== this.#epoch) return await NEVER;
    return fn();
  }

  #inode(path: string): Inode {
    const inode = this.#names.get(path);
    if (inode === undefined) throw new Deno.errors.NotFound(`${path}: no such file (MemFs)`);
    return inode;
  }

  mkdir(dir: string): Promise<void> {
    return this.#do("mkdir", dir, this.#epoch, () => {});
  }

  open(path: string, opts: { readonly create: boolean }): Promise<LogFile> {
    const epoch = this.#epoch;
    return this.#do("open", path, epoch, () => {
      let inode = this.#names.get(path);
      if (inode === undefined) {
        if (!opts.create) throw new Deno.errors.NotFound(`${path}: no such file (MemFs)`);
        inode = { data: new Uint8Array(0), synced: new Uint8Array(0) };
        this.#names.set(path, inode);
      } else if (opts.create) {
        inode.data = new Uint8Array(0);
      }
      return this.#file(path, inode, epoch);
    });
  }

  #file(path: string, inode: Inode, epoch: number): LogFile {
    let pos = 0;
    let closed = false;
    const live = () => {
      if (closed) throw new Deno.errors.BadResource(`${path} is closed (MemFs)`);
    };
    return {
      write: (bytes) =>
        this.#do("write", path, epoch, () => {
          live();
          const end = pos + bytes.length;
          if (end > inode.data.length) {
            const grown = new Uint8Array(end);
            grown.set(inode.data);
            inode.data = grown;
          }
          inode.data.set(bytes, pos);
          pos = end;
          return bytes.length;
        }),
      seek: (offset, whence) =>
        this.#do("seek", path, epoch, () => {
          live();
          if (whence !== Deno.SeekMode.Start) {
            throw new RangeError("MemFs seeks from the start only");
          }
          return pos = offset;
        }),
      truncate: (size) =>
        this.#do("truncate", path, epoch, () => {
          live();
          const cut = new Uint8Array(size);
          cut.set(inode.data.subarray(0, size));
          inode.data = cut;
        }),
      syncData: () =>
        this.#do("syncData", path, epoch, () => {
          live();
          if (!this.lies) inode.synced = inode.data.slice();
        }),
      close: () => {
        closed = true;
      },
    };
  }

  readFile(path: string): Promise<Uint8Array> {
    return this.#do("readFile", path, this.#epoch, () => this.#inode(path).data.slice());
  }

  // A reader sees what was written (the page cache), and goes on reading its
  // file after a rename, as an open file does.
  openReader(path: string): Promise<LogReader> {
    return this.#do("openReader", path, this.#epoch, () => {
      const inode = this.#inode(path);
      let closed = false;
      return {
        readAt: (bytes: Uint8Array, position: number) => {
          if (closed) throw new Deno.errors.BadResource(`${path} is closed (MemFs)`);
          const part = inode.data.subarray(position, position + bytes.length);
          bytes.set(part);
          return part.length;
        },
        size: () => inode.data.length,
        close: () => {
          closed = true;
        },
      };
    });
  }

  rename(from: string, to: string): Promise<void> {
    return this.#do("rename", from, this.#epoch, () => {
      const inode = this.#inode(from);
      this.#names.delete(from);
      this.#names.set(to, inode);
    });
  }

  remove(path: string): Promise<void> {
    return this.#do("remove", path, this.#epoch, () => {
      this.#inode(path);
      this.#names.delete(path);
    });
  }

  syncDir(dir: string): Promise<void> {
    return this.#do("syncDir", dir, this.#epoch, () => {
      for (const path of [...this.#durable.keys()]) {
        if (dirname(path) === dir && !this.#names.has(path)) this.#durable.delete(path);
      }
      for (const [path, inode] of this.#names) {
        if (dirname(path) === dir) this.#durable.set(path, inode);
      }
    });
  }

  lock(path: string): Promise<{ close(): void } | null> {
    const epoch = this.#epoch;
    return this.#do("lock", path, epoch, () => {
      if (this.#locks.has(path)) return null;
      this.#locks.add(path);
      return {
        close: () => {
          if (epoch === this.#epoch) this.#locks.delete(path);
        },
      };
    });
  }
}
