/**
 * The record format of the acceptor's log (`acceptor.log`), apart from what
 * the store does with it: the magic bytes, how changes are encoded into a
 * checksummed record (and where each change lands in it, so that a state can
 * be read back alone from the file), and how a log is read back record by
 * record from a file of any size, telling a torn last record from damage.
 *
 * File: the 8 magic bytes `PXKVLOG1`, then records
 * `[u32 length][u32 crc32(length)][u32 crc32(payload)][payload]`
 * (big-endian). The header checks itself, so a damaged length is told apart
 * from a write that stopped short. A payload is a MessagePack array of
 * changes: `{Key, Ver, LastBal, Val?, VBal?}` (a new state, with the wire
 * protocol's field names) or `{Key, Floor}` (versions below Floor forgotten).
 * Each change is encoded on its own, so the bytes of one change are a
 * MessagePack map that decodes alone.
 *
 * @module
 */
import { crc32 } from "node:zlib";
import type { Acceptor, PaxosInstanceId } from "./types.ts";
import {
  decodeFrame,
  encodeFrame,
  parseAcceptor,
  parseInstanceId,
  parseInt64,
  wireAcceptor,
  wireInt,
} from "./codec.ts";
import { scanFrame } from "./msgpack_scan.ts";

/** The first bytes of every log. */
export const MAGIC: Uint8Array = new TextEncoder().encode("PXKVLOG1");
/** The bytes of a record's header. */
export const HEADER = 12;
/** Most changes in one record (a compaction snapshot is split into several). */
export const RECORD_CHANGES = 4096;

/** One change to log: a new state of an instance, or a key's new floor. */
export type Entry =
  | { readonly id: PaxosInstanceId; readonly state: Acceptor }
  | { readonly key: string; readonly floor: bigint };

/**
 * The log holds damage that is not a torn last record: the store refuses to
 * open rather than forget an acknowledged promise or vote.
 *
 * @example
 * ```ts
 * import { LogCorruptionError } from "./log_format.ts";
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

/**
 * The bytes of one change, as it sits inside a record: a MessagePack map.
 * Throws when the codec cannot write it.
 *
 * @example
 * ```ts
 * import { encodeChange } from "./log_format.ts";
 * encodeChange({ key: "k", floor: 3n }).length > 0; // true
 * ```
 */
export function encodeChange(e: Entry): Uint8Array {
  return encodeFrame(
    "state" in e
      ? { Key: e.id.Key, Ver: wireInt(e.id.Ver), ...wireAcceptor(e.state) }
      : { Key: e.key, Floor: wireInt(e.floor) },
  );
}

/** A change read back from the log, with where its bytes are in the payload. */
export type DecodedChange = Entry & { readonly start: number; readonly end: number };

/**
 * Reads the change whose bytes are `bytes` (one element of a payload).
 *
 * @example
 * ```ts
 * import { decodeChange, encodeChange } from "./log_format.ts";
 * decodeChange(encodeChange({ key: "k", floor: 3n })); // { key: "k", floor: 3n }
 * ```
 */
export function decodeChange(bytes: Uint8Array): Entry {
  const c = decodeFrame(bytes);
  if (typeof c === "object" && c !== null && "Floor" in c) {
    return { key: parseInstanceId(c, "change").Key, floor: parseInt64(c.Floor, "change.Floor") };
  }
  return { id: parseInstanceId(c, "change"), state: parseAcceptor(c, "change") };
}

/** What recovery needs of a change: its instance and whether it holds a vote, or a floor. */
export type ChangeSummary =
  | { readonly key: string; readonly ver: bigint; readonly voted: boolean }
  | { readonly key: string; readonly floor: bigint };

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads only what recovery needs of a change (its key, version, and whether
 * it holds a vote; or a floor), skipping over its value without decoding
 * it; falls back to {@link decodeChange} for anything unusual.
 *
 * @example
 * ```ts
 * import { encodeChange, summarizeChange } from "./log_format.ts";
 * summarizeChange(encodeChange({ key: "k", floor: 3n })); // { key: "k", floor: 3n }
 * ```
 */
export function summarizeChange(bytes: Uint8Array): ChangeSummary {
  const quick = quickSummary(bytes);
  if (quick !== null) return quick;
  const c = decodeChange(bytes);
  return "state" in c
    ? { key: c.id.Key, ver: c.id.Ver, voted: c.state.Val !== null }
    : { key: c.key, floor: c.floor };
}

// The MessagePack walk of summarizeChange; null when it meets anything else
// than a map of string keys with a string Key and integer Ver or Floor.
function quickSummary(b: Uint8Array): ChangeSummary | null {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 0;
  const t = b[p++]!;
  let n: number;
  if (t >= 0x80 && t <= 0x8f) n = t & 0x0f;
  else if (t === 0xde) (n = view.getUint16(p), p += 2);
  else return null;
  let key: string | null = null;
  let ver: bigint | null = null;
  let floor: bigint | null = null;
  let voted = false;
  const str = (): string | null => {
    const s = b[p++]!;
    let len: number;
    if (s >= 0xa0 && s <= 0xbf) len = s & 0x1f;
    else if (s === 0xd9) len = b[p++]!;
    else if (s === 0xda) (len = view.getUint16(p), p += 2);
    else return null;
    const out = utf8.decode(b.subarray(p, p + len));
    p += len;
    return out;
  };
  const int = (): bigint | null => {
    const s = b[p++]!;
    if (s <= 0x7f) return BigInt(s);
    if (s >= 0xe0) return BigInt(s - 256);
    let v: bigint;
    switch (s) {
      case 0xcc:
        v = BigInt(view.getUint8(p)), p += 1;
        break;
      case 0xcd:
        v = BigInt(view.getUint16(p)), p += 2;
        break;
      case 0xce:
        v = BigInt(view.getUint32(p)), p += 4;
        break;
      case 0xcf:
        v = view.getBigUint64(p), p += 8;
        break;
      case 0xd0:
        v = BigInt(view.getInt8(p)), p += 1;
        break;
      case 0xd1:
        v = BigInt(view.getInt16(p)), p += 2;
        break;
      case 0xd2:
        v = BigInt(view.getInt32(p)), p += 4;
        break;
      case 0xd3:
        v = view.getBigInt64(p), p += 8;
        break;
      default:
        return null;
    }
    return v;
  };
  for (let i = 0; i < n; i++) {
    const name = str();
    if (name === null) return null;
    if (name === "Key") {
      key = str();
      if (key === null) return null;
    } else if (name === "Ver") {
      ver = int();
      if (ver === null) return null;
    } else if (name === "Floor") {
      floor = int();
      if (floor === null) return null;
    } else {
      if (name === "Val") voted = b[p] !== 0xc0;
      p = skip(b, view, p);
      if (p < 0) return null;
    }
    if (p > b.length) return null;
  }
  if (p !== b.length || key === null) return null;
  if (floor !== null) return ver === null ? { key, floor } : null;
  return { key, ver: ver ?? 0n, voted };
}

// The position after the MessagePack value at `p`, or -1.
function skip(b: Uint8Array, view: DataView, p: number): number {
  let todo = 1;
  while (todo > 0) {
    if (p >= b.length) return -1;
    todo--;
    const t = b[p++]!;
    if (t <= 0x7f || t >= 0xe0 || t === 0xc0 || t === 0xc2 || t === 0xc3) continue;
    if (t >= 0x80 && t <= 0x8f) todo += 2 * (t & 0x0f);
    else if (t >= 0x90 && t <= 0x9f) todo += t & 0x0f;
    else if (t >= 0xa0 && t <= 0xbf) p += t & 0x1f;
    else {
      switch (t) {
        case 0xc4:
        case 0xd9:
          p += 1 + b[p]!;
          break;
        case 0xc5:
        case 0xda:
          p += 2 + view.getUint16(p);
          break;
        case 0xc6:
        case 0xdb:
          p += 4 + view.getUint32(p);
          break;
        case 0xcc:
        case 0xd0:
          p += 1;
          break;
        case 0xcd:
        case 0xd1:
          p += 2;
          break;
        case 0xce:
        case 0xd2:
        case 0xca:
          p += 4;
          break;
        case 0xcf:
        case 0xd3:
        case 0xcb:
          p += 8;
          break;
        case 0xdc:
          todo += view.getUint16(p), p += 2;
          break;
        case 0xdd:
          todo += view.getUint32(p), p += 4;
          break;
        case 0xde:
          todo += 2 * view.getUint16(p), p += 2;
          break;
        case 0xdf:
          todo += 2 * view.getUint32(p), p += 4;
          break;
        default:
          return -1; // extensions and 0xc1: not ours
      }
    }
  }
  return p;
}

/**
 * Builds one record from encoded changes; `at[i]` is set to the offset of
 * change `i`'s bytes from the record's start.
 *
 * @example
 * ```ts
 * import { encodeChange, HEADER, recordOf } from "./log_format.ts";
 * const at: number[] = [];
 * const rec = recordOf([encodeChange({ key: "k", floor: 1n })], at);
 * at[0]; // HEADER + 1 (after the array's one-byte header)
 * ```
 */
export function recordOf(changes: readonly Uint8Array[], at: number[]): Uint8Array {
  const n = changes.length;
  const head = n < 16 ? 1 : n < 0x10000 ? 3 : 5;
  let size = head;
  for (const c of changes) size += c.length;
  const out = new Uint8Array(HEADER + size);
  const view = new DataView(out.buffer);
  let p = HEADER;
  if (n < 16) out[p] = 0x90 | n;
  else if (n < 0x10000) {
    out[p] = 0xdc;
    view.setUint16(p + 1, n);
  } else {
    out[p] = 0xdd;
    view.setUint32(p + 1, n);
  }
  p += head;
  for (const c of changes) {
    at.push(p);
    out.set(c, p);
    p += c.length;
  }
  view.setUint32(0, size);
  view.setUint32(4, crc32(out.subarray(0, 4)) >>> 0);
  view.setUint32(8, crc32(out.subarray(HEADER)) >>> 0);
  return out;
}

/**
 * A file opened to read at any position, without moving a shared position:
 * how the store reads states back from its log.
 */
export interface LogReader {
  /** Reads up to `bytes.length` bytes at `position`; returns how many (0 at the end). */
  readAt(bytes: Uint8Array, position: number): number;
  /** The file's size now. */
  size(): number;
  /** Releases the file. */
  close(): void;
}

/**
 * Reads exactly `length` bytes at `position`; throws when the file is
 * shorter.
 */
export function readExactly(r: LogReader, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = r.readAt(out.subarray(got), position + got);
    if (n <= 0) {
      throw new RangeError(`short read: ${got} of ${length} bytes at offset ${position}`);
    }
    got += n;
  }
  return out;
}

/** What {@link readLog} found: the valid length, and whether a torn tail was found. */
export interface LogScan {
  /** The size of the valid part: the offset after the last good record. */
  readonly validBytes: number;
  /** The bytes of a torn last record found after it (0 when none). */
  readonly tornBytes: number;
}

const CHUNK = 8 * 1024 * 1024;
const SCAN_LIMITS = { maxDepth: 100, maxElements: 1 << 30, maxCost: Number.MAX_SAFE_INTEGER };

/**
 * Reads the log through `r`, record by record, a chunk at a time (a log may
 * be larger than memory), calling `apply` with each change and the offset of
 * its bytes in the file. Stops at a torn last record (a partial header, a
 * payload cut short, a bad payload checksum in the very last record, or a
 * zero-filled tail) and says where; throws a {@link LogCorruptionError} for
 * any other damage. The caller cuts a torn tail off. `from` is where to
 * start reading records (after the magic, or where a saved index ends).
 */
export function readLog(
  r: LogReader,
  path: string,
  apply: (change: ChangeSummary, offset: number, length: number) => void,
  from: number = MAGIC.length,
): LogScan {
  const size = r.size();
  const magic = readExactly(r, 0, Math.min(size, MAGIC.length));
  if (!magic.every((b, i) => b === MAGIC[i])) {
    throw new LogCorruptionError(path, 0, "not a paxoskv log (bad magic)");
  }
  if (size < MAGIC.length) return { validBytes: size, tornBytes: 0 };
  // A window of the file: `buf` holds the bytes from `bufAt`.
  let buf: Uint8Array = new Uint8Array(0);
  let bufAt = 0;
  const bytesAt = (off: number, n: number): Uint8Array => {
    if (off < bufAt || off + n > bufAt + buf.length) {
      const want = Math.min(Math.max(n, CHUNK), size - off);
      buf = readExactly(r, off, want);
      bufAt = off;
    }
    return buf.subarray(off - bufAt, off - bufAt + n);
  };
  let off = Math.max(from, MAGIC.length);
  while (off < size) {
    const rest = size - off;
    const torn = { validBytes: off, tornBytes: rest };
    if (rest < HEADER || allZero(r, off, size)) return torn;
    const head = bytesAt(off, HEADER);
    const view = new DataView(head.buffer, head.byteOffset, HEADER);
    const n = view.getUint32(0);
    if (view.getUint32(4) !== crc32(head.subarray(0, 4)) >>> 0) {
      throw new LogCorruptionError(path, off, "damaged record header");
    }
    const end = off + HEADER + n;
    if (end > size) return torn;
    const crc = view.getUint32(8);
    const payload = bytesAt(off + HEADER, n);
    if (crc !== crc32(payload) >>> 0) {
      if (end === size) return torn;
      throw new LogCorruptionError(path, off, "checksum mismatch in a record that is not the last");
    }
    try {
      const scan = elementsOf(payload) ?? scanFrame(payload, SCAN_LIMITS);
      if ("frameError" in scan) throw new TypeError(scan.frameError);
      if (!scan.batch) throw new TypeError("a record holds an array of changes");
      for (const el of scan.elements) {
        apply(
          summarizeChange(payload.subarray(el.start, el.end)),
          off + HEADER + el.start,
          el.end - el.start,
        );
      }
    } catch (e) {
      if (e instanceof LogCorruptionError) throw e;
      throw new LogCorruptionError(path, off, `unreadable record (${(e as Error).message})`);
    }
    off = end;
  }
  return { validBytes: off, tornBytes: 0 };
}

// The changes of a payload, found by a quick walk; null when the walk meets
// anything unusual (scanFrame then says what).
function elementsOf(
  b: Uint8Array,
): { batch: true; elements: { start: number; end: number }[] } | null {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const t = b[0];
  let n: number;
  let p: number;
  if (t === undefined) return null;
  if (t >= 0x90 && t <= 0x9f) (n = t & 0x0f, p = 1);
  else if (t === 0xdc && b.length >= 3) (n = view.getUint16(1), p = 3);
  else if (t === 0xdd && b.length >= 5) (n = view.getUint32(1), p = 5);
  else return null;
  const elements: { start: number; end: number }[] = [];
  for (let i = 0; i < n; i++) {
    const end = skip(b, view, p);
    if (end < 0 || end > b.length) return null;
    elements.push({ start: p, end });
    p = end;
  }
  return p === b.length ? { batch: true, elements } : null;
}

// Whether the file holds only zeros from `off` to `size` (read a chunk at a time).
function allZero(r: LogReader, off: number, size: number): boolean {
  // The usual case, a record header, is told at once.
  const first = readExactly(r, off, Math.min(HEADER, size - off));
  if (!first.every((b) => b === 0)) return false;
  for (let at = off; at < size; at += CHUNK) {
    const part = readExactly(r, at, Math.min(CHUNK, size - at));
    for (const b of part) if (b !== 0) return false;
  }
  return true;
}
