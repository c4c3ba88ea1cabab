/**
 * WebSocket framing (RFC 6455), shared by our client (`ws_client.ts`) and
 * our server (`ws_server.ts`): the handshake's accept key, encoding a frame,
 * and a reader that turns the bytes of a connection into messages, with
 * every rule checked and a bounded message size.
 *
 * @module
 */

/** The GUID of RFC 6455's handshake. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Base64 of some bytes. */
export function encodeBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/**
 * The `Sec-WebSocket-Accept` answer to a `Sec-WebSocket-Key`.
 *
 * @example
 * ```ts
 * import { acceptKey } from "./ws_frames.ts";
 * await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); // "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" (RFC 6455's example)
 * ```
 */
export async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID));
  return encodeBase64(new Uint8Array(digest));
}

/** Opcodes of RFC 6455. */
export const OP = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

/**
 * One frame, header and payload in one buffer: masked (with a random key)
 * as a client must send it, or unmasked as a server must.
 *
 * @example
 * ```ts
 * import { encodeWsFrame, OP } from "./ws_frames.ts";
 * encodeWsFrame(OP.binary, new Uint8Array([1, 2]), false); // 82 02 01 02
 * ```
 */
export function encodeWsFrame(opcode: number, payload: Uint8Array, masked: boolean): Uint8Array {
  const n = payload.length;
  const len = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const body = len + (masked ? 4 : 0);
  const out = new Uint8Array(body + n);
  writeHeader(out, opcode, n, masked);
  out.set(payload, body);
  if (masked) {
    // The mask key: 4 bytes of a pool of strong random bytes, refilled
    // when used up (one call for 1,024 frames instead of one each).
    if (maskAt === maskPool.length) {
      crypto.getRandomValues(maskPool);
      maskAt = 0;
    }
    out.set(maskPool.subarray(maskAt, maskAt + 4), len);
    maskAt += 4;
    unmask(out, body, out.subarray(len, len + 4));
  }
  return out;
}
const maskPool = new Uint8Array(4096);
let maskAt = maskPool.length;

/**
 * The header of a frame of `n` bytes (FIN set), with room for the mask key
 * when `masked`: what goes before the payload.
 */
export function wsFrameHeader(opcode: number, n: number, masked: boolean): Uint8Array {
  const out = new Uint8Array((n < 126 ? 2 : n < 65536 ? 4 : 10) + (masked ? 4 : 0));
  writeHeader(out, opcode, n, masked);
  return out;
}

function writeHeader(out: Uint8Array, opcode: number, n: number, masked: boolean): void {
  out[0] = 0x80 | opcode;
  const m = masked ? 0x80 : 0;
  if (n < 126) {
    out[1] = m | n;
  } else if (n < 65536) {
    out[1] = m | 126;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = m | 127;
    new DataView(out.buffer, out.byteOffset).setBigUint64(2, BigInt(n));
  }
}

/** The payload of a close frame: a code and a reason (cut to fit 125 bytes). */
export function closePayload(code: number, reason: string): Uint8Array {
  let r = new TextEncoder().encode(reason);
  if (r.length > 123) {
    const cut = new TextDecoder().decode(r.subarray(0, 120)).replace(/\uFFFD$/, "");
    r = new TextEncoder().encode(cut + "...");
  }
  const out = new Uint8Array(2 + r.length);
  new DataView(out.buffer).setUint16(0, code);
  out.set(r, 2);
  return out;
}

/**
 * A connection broke RFC 6455 or a limit: `code` is the close code to answer
 * with (1002 protocol error, 1003 a text frame, 1009 a message too large).
 */
export class WsProtocolError extends Error {
  /** The close code for this failure. */
  readonly code: number;
  /** Builds the error from its close code and what was wrong. */
  constructor(code: number, message: string) {
    super(message);
    this.name = "WsProtocolError";
    this.code = code;
  }
}

/** What a {@link FrameReader} hands over. */
export interface FrameHandler {
  /** A whole binary message (its fragments joined). */
  onMessage(payload: Uint8Array): void;
  /** A close frame's payload. */
  onClose(payload: Uint8Array): void;
  /** A ping frame's payload. */
  onPing(payload: Uint8Array): void;
}

/** Options of a {@link FrameReader}. */
export interface FrameReaderOptions {
  /** Whether frames must be masked (a server reading a client) or must not be. */
  readonly masked: boolean;
  /** Largest message, across its fragments; a larger one is a 1009. */
  readonly maxMessageBytes: number;
  /** Bytes already received (after a handshake). */
  readonly leftover?: Uint8Array;
}

const BASE_BUFFER = 64 * 1024;

/**
 * Reads frames from the bytes of one connection: read into {@link space},
 * {@link commit} what was read, then {@link parse}. It holds at most one
 * frame's worth beyond what it has handed over, and refuses (throws a
 * {@link WsProtocolError}) as soon as a frame's header says it is too large.
 *
 * @example
 * ```ts
 * import { FrameReader } from "./ws_frames.ts";
 * const r = new FrameReader({ masked: false, maxMessageBytes: 1024 });
 * r.space().set([0x82, 0x01, 0x07]);
 * r.commit(3);
 * r.parse({ onMessage: (m) => m[0], onClose() {}, onPing() {} }, () => true); // one message: [7]
 * ```
 */
export class FrameReader {
  readonly #masked: boolean;
  readonly #max: number;
  #buf: Uint8Array;
  #len = 0;
  #need = 0; // bytes the frame at the start of the buffer needs in all
  #fragments: Uint8Array[] = [];
  #fragmentBytes = 0;

  /** Builds a reader. */
  constructor(opts: FrameReaderOptions) {
    this.#masked = opts.masked;
    this.#max = opts.maxMessageBytes;
    const leftover = opts.leftover ?? new Uint8Array(0);
    this.#buf = new Uint8Array(Math.max(BASE_BUFFER, leftover.length * 2));
    this.#buf.set(leftover);
    this.#len = leftover.length;
  }

  /** Bytes received and not handed over yet. */
  get buffered(): number {
    return this.#len;
  }

  /** Where to read the next bytes into (never empty). */
  space(): Uint8Array {
    if (this.#len === this.#buf.length || this.#need > this.#buf.length) this.#grow();
    return this.#buf.subarray(this.#len);
  }

  /** Takes `n` bytes just read into {@link space}. */
  commit(n: number): void {
    this.#len += n;
  }

  /**
   * Hands over every complete frame in the buffer, while `more()` says so;
   * keeps the rest. Throws a {@link WsProtocolError} on a broken rule.
   */
  parse(handler: FrameHandler, more: () => boolean): void {
    const buf = this.#buf;
    let off = 0;
    this.#need = 0;
    while (more()) {
      const avail = this.#len - off;
      if (avail < 2) break;
      const b0 = buf[off]!;
      const b1 = buf[off + 1]!;
      let n = b1 & 0x7f;
      let head = 2;
      if (n === 126) {
        if (avail < 4) break;
        n = (buf[off + 2]! << 8) | buf[off + 3]!;
        head = 4;
      } else if (n === 127) {
        if (avail < 10) break;
        const big = new DataView(buf.buffer, buf.byteOffset + off + 2, 8).getBigUint64(0);
        if (big > BigInt(this.#max)) throw this.#tooLarge(big);
        n = Number(big);
        head = 10;
      }
      const opcode = b0 & 0x0f;
      this.#check(b0, b1, opcode, n);
      const masked = (b1 & 0x80) !== 0;
      if (masked) head += 4;
      if (avail < head + n) {
        this.#need = head + n;
        break;
      }
      const payload = masked ? unmasked(buf, off + head, n) : buf.slice(off + head, off + head + n);
      off += head + n;
      this.#onFrame((b0 & 0x80) !== 0, opcode, payload, handler);
    }
    if (off > 0) {
      buf.copyWithin(0, off, this.#len);
      this.#len -= off;
    }
    // A large buffer is given back once its frame is handed over.
    if (this.#buf.length > BASE_BUFFER && this.#len <= BASE_BUFFER / 2 && this.#need === 0) {
      const small = new Uint8Array(BASE_BUFFER);
      small.set(this.#buf.subarray(0, this.#len));
      this.#buf = small;
    }
  }

  // The rules a header must follow, checked before its payload is awaited.
  #check(b0: number, b1: number, opcode: number, n: number): void {
    if ((b0 & 0x70) !== 0) throw new WsProtocolError(1002, "a frame with reserved bits set");
    if (((b1 & 0x80) !== 0) !== this.#masked) {
      throw new WsProtocolError(1002, this.#masked ? "an unmasked frame" : "a masked frame");
    }
    if (opcode >= 0x8) {
      if (opcode > 0xa) throw new WsProtocolError(1002, `unknown opcode ${opcode}`);
      if ((b0 & 0x80) === 0 || n > 125) {
        throw new WsProtocolError(1002, "a control frame fragmented or over 125 bytes");
      }
    } else if (opcode > 0x2) {
      throw new WsProtocolError(1002, `unknown opcode ${opcode}`);
    } else if (this.#fragmentBytes + n > this.#max) {
      throw this.#tooLarge(this.#fragmentBytes + n);
    }
  }

  #tooLarge(n: number | bigint): WsProtocolError {
    return new WsProtocolError(
      1009,
      `a message of ${n} bytes is too large (at most ${this.#max})`,
    );
  }

  #onFrame(fin: boolean, opcode: number, payload: Uint8Array, handler: FrameHandler): void {
    switch (opcode) {
      case OP.close:
        return handler.onClose(payload);
      case OP.ping:
        return handler.onPing(payload);
      case OP.pong:
        return;
    }
    const fragmented = this.#fragments.length > 0;
    if (opcode === OP.continuation && !fragmented) {
      throw new WsProtocolError(1002, "a stray continuation frame");
    }
    if (opcode !== OP.continuation && fragmented) {
      throw new WsProtocolError(1002, "a new message inside an unfinished fragmented one");
    }
    if (opcode === OP.text) throw new WsProtocolError(1003, "a text frame: binary frames only");
    if (fin && this.#fragments.length === 0) return handler.onMessage(payload);
    this.#fragments.push(payload);
    this.#fragmentBytes += payload.length;
    if (!fin) return;
    const all = concatBytes(this.#fragments);
    this.#fragments = [];
    this.#fragmentBytes = 0;
    handler.onMessage(all);
  }

  #grow(): void {
    let size = this.#buf.length * 2;
    while (size < this.#need) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }
}

/**
 * Joins byte arrays into one (the one itself when there is only one).
 *
 * @example
 * ```ts
 * import { concatBytes } from "./ws_frames.ts";
 * concatBytes([new Uint8Array([1]), new Uint8Array([2, 3])]); // [1, 2, 3]
 * ```
 */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The end of an HTTP head in `buf[0, len)`: the index of its blank line, or -1. */
export function headEnd(buf: Uint8Array, len: number): number {
  for (let i = 0; i + 3 < len; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

/** Writes all of `bytes` to a connection. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

// A copy of the `n` bytes at `at` in `buf`, unmasked with the 4 bytes before them.
function unmasked(buf: Uint8Array, at: number, n: number): Uint8Array {
  const out = buf.slice(at, at + n);
  unmask(out, 0, buf.subarray(at - 4, at));
  return out;
}

// XORs `data` from `from` on with the 4-byte mask, in place: four bytes at a
// time where the data is aligned.
function unmask(data: Uint8Array, from: number, mask: Uint8Array): void {
  const n = data.length;
  let i = from;
  const m0 = mask[0]!, m1 = mask[1]!, m2 = mask[2]!, m3 = mask[3]!;
  if (n - from >= 64 && (data.byteOffset + from) % 4 === 0) {
    const m = LITTLE_ENDIAN
      ? (m0 | (m1 << 8) | (m2 << 16) | (m3 << 24))
      : ((m0 << 24) | (m1 << 16) | (m2 << 8) | m3);
    const words = new Uint32Array(data.buffer, data.byteOffset + from, (n - from) >> 2);
    for (let w = 0; w < words.length; w++) words[w]! ^= m;
    i = from + (words.length << 2);
  }
  for (; i < n; i++) {
    const k = (i - from) & 3;
    data[i]! ^= k === 0 ? m0 : k === 1 ? m1 : k === 2 ? m2 : m3;
  }
}
