/**
 * A small WebSocket client (RFC 6455) on a raw TCP connection with
 * `TCP_NODELAY` set.
 *
 * Deno's built-in `WebSocket` client leaves Nagle's algorithm on and writes a
 * frame's header and payload separately once it is over 1 KiB, so every such
 * frame waits ~40 ms for the peer's delayed ACK. This client writes each frame
 * in one write on a no-delay socket, so frames of any size go out at once.
 *
 * It speaks only what paxoskv needs: `ws://` URLs, binary messages, ping/pong
 * and the closing handshake.
 *
 * @module
 */

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const MAX_HEADER_BYTES = 16 * 1024;

/** Options of {@link WsConnection.connect}. */
export interface WsConnectOptions {
  /** Give up on connecting and the handshake after this many ms (default 5000). */
  readonly timeoutMs?: number;
  /** Largest message accepted from the server (default 64 MiB). */
  readonly maxMessageBytes?: number;
}

/** Parses and checks a `ws://host:port/path` URL; throws a TypeError naming it otherwise. */
export function parseWsUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`not a URL: ${JSON.stringify(url)} (expected ws://HOST:PORT/paxos)`);
  }
  if (u.protocol !== "ws:") {
    throw new TypeError(
      `unsupported URL scheme ${JSON.stringify(u.protocol)} in ${url}: use ws://`,
    );
  }
  if (u.username || u.password || u.hash) {
    throw new TypeError(`URL must not carry credentials or a fragment: ${url}`);
  }
  return u;
}

function hostOf(u: URL): string {
  // URL keeps IPv6 literals in brackets; Deno.connect wants them bare.
  return u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
}

function encodeBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

async function acceptKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key + GUID));
  return encodeBase64(new Uint8Array(digest));
}

function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  what: string,
  onLate: (v: T) => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      reject(new Deno.errors.TimedOut(`${what}: no answer within ${ms} ms`));
    }, ms);
  });
  p.then((v) => {
    if (timedOut) onLate(v);
  }, () => {});
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * One client WebSocket connection carrying binary messages.
 *
 * @example
 * ```ts ignore
 * import { WsConnection } from "./ws_client.ts";
 * const ws = await WsConnection.connect("ws://127.0.0.1:3333/paxos");
 * ws.onMessage = (bytes) => console.log(bytes.length);
 * ws.send(new Uint8Array([0x90]));
 * await ws.close();
 * ```
 */
export class WsConnection {
  /** Called with each binary message received. */
  onMessage: (bytes: Uint8Array) => void = () => {};
  /** Called once when the connection is gone, with the reason. */
  onClose: (reason: Error) => void = () => {};

  readonly #conn: Deno.TcpConn;
  readonly #maxMessage: number;
  #buf: Uint8Array;
  #len = 0;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  #closeSent = false;
  #peerClosed = false;
  readonly #done: Promise<void>;
  #fragments: Uint8Array[] = [];
  #fragmentBytes = 0;

  private constructor(conn: Deno.TcpConn, leftover: Uint8Array, maxMessage: number) {
    this.#conn = conn;
    this.#maxMessage = maxMessage;
    this.#buf = new Uint8Array(Math.max(64 * 1024, leftover.length * 2));
    this.#buf.set(leftover);
    this.#len = leftover.length;
    this.#done = this.#readLoop();
  }

  /** Opens a connection and performs the opening handshake. */
  static async connect(url: string, opts: WsConnectOptions = {}): Promise<WsConnection> {
    const u = parseWsUrl(url);
    const timeoutMs = opts.timeoutMs ?? 5000;
    const port = u.port === "" ? 80 : Number(u.port);
    const conn = await withTimeout(
      Deno.connect({ hostname: hostOf(u), port }),
      timeoutMs,
      `connect to ${url}`,
      (late) => late.close(),
    );
    try {
      conn.setNoDelay(true);
      const leftover = await withTimeout(
        WsConnection.#handshake(conn, u),
        timeoutMs,
        `WebSocket handshake with ${url}`,
        () => {},
      );
      return new WsConnection(conn, leftover, opts.maxMessageBytes ?? 64 * 1024 * 1024);
    } catch (e) {
      try {
        conn.close();
      } catch { /* already closed */ }
      throw e;
    }
  }

  static async #handshake(conn: Deno.TcpConn, u: URL): Promise<Uint8Array> {
    const key = encodeBase64(crypto.getRandomValues(new Uint8Array(16)));
    const request = `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\n` +
      `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
      `Sec-WebSocket-Version: 13\r\n\r\n`;
    await writeAll(conn, new TextEncoder().encode(request));
    const buf = new Uint8Array(MAX_HEADER_BYTES);
    let len = 0;
    let end = -1;
    while (end < 0) {
      if (len === buf.length) throw new Error(`handshake reply from ${u.href} is too long`);
      const n = await conn.read(buf.subarray(len));
      if (n === null) {
        throw new Deno.errors.ConnectionReset(`${u.href} closed during the handshake`);
      }
      len += n;
      end = indexOfCrlfCrlf(buf, len);
    }
    const head = new TextDecoder().decode(buf.subarray(0, end));
    const [status, ...lines] = head.split("\r\n");
    if (!/^HTTP\/1\.1 101 /.test(status ?? "")) {
      throw new Error(`${u.href} refused the WebSocket upgrade: ${status}`);
    }
    const headers = new Map<string, string>();
    for (const line of lines) {
      const i = line.indexOf(":");
      if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
    }
    if (headers.get("sec-websocket-accept") !== await acceptKey(key)) {
      throw new Error(`${u.href} answered the handshake with a wrong Sec-WebSocket-Accept`);
    }
    return buf.slice(end + 4, len);
  }

  /** Whether the connection can still send. */
  get isOpen(): boolean {
    return !this.#closed;
  }

  /** Sends one binary message, in one frame and one write. */
  send(payload: Uint8Array): void {
    if (this.#closed || this.#closeSent) throw new Deno.errors.NotConnected("WebSocket is closed");
    this.#write(frame(0x2, payload));
  }

  /**
   * Starts the closing handshake and resolves once the connection is closed
   * (the peer answered, or after 1 s).
   */
  async close(code = 1000, reason = ""): Promise<void> {
    if (!this.#closed && !this.#closeSent) {
      this.#closeSent = true;
      const r = new TextEncoder().encode(reason);
      const body = new Uint8Array(2 + r.length);
      new DataView(body.buffer).setUint16(0, code);
      body.set(r, 2);
      this.#write(frame(0x8, body));
      const timer = setTimeout(() => this.#shutdown(new Error("closed")), 1000);
      await this.#done;
      clearTimeout(timer);
    }
    this.#shutdown(new Error("closed"));
    await this.#done;
    await this.#writing;
  }

  #write(bytes: Uint8Array): void {
    this.#writing = this.#writing.then(() => this.#closed ? undefined : writeAll(this.#conn, bytes))
      .catch((e) => this.#shutdown(e as Error));
  }

  #shutdown(reason: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch { /* already closed */ }
    this.onClose(reason);
  }

  async #readLoop(): Promise<void> {
    try {
      // Frames that came in with the handshake reply wait for a macrotask,
      // so that the caller of connect() has set onMessage and onClose.
      if (this.#len > 0) await new Promise((resolve) => setTimeout(resolve, 0));
      while (!this.#closed && !this.#peerClosed) {
        this.#parseFrames();
        if (this.#closed || this.#peerClosed) return;
        const n = await this.#conn.read(this.#buf.subarray(this.#len));
        if (n === null) {
          this.#shutdown(new Deno.errors.ConnectionReset("connection closed by the peer"));
          return;
        }
        this.#len += n;
      }
    } catch (e) {
      this.#shutdown(e instanceof Error ? e : new Error(String(e)));
    }
  }

  #grow(atLeast: number): void {
    let size = this.#buf.length * 2;
    while (size < atLeast) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
  }

  // Handles every complete frame in the buffer and keeps the rest, making
  // room for the next frame when it is larger than the buffer.
  #parseFrames(): void {
    let off = 0;
    let need = 0;
    while (!this.#closed && !this.#peerClosed) {
      const avail = this.#len - off;
      if (avail < 2) break;
      const b0 = this.#buf[off]!;
      const b1 = this.#buf[off + 1]!;
      if (b1 & 0x80) throw new Error("server sent a masked frame");
      let n = b1 & 0x7f;
      let head = 2;
      if (n === 126) {
        if (avail < 4) break;
        n = (this.#buf[off + 2]! << 8) | this.#buf[off + 3]!;
        head = 4;
      } else if (n === 127) {
        if (avail < 10) break;
        const big = new DataView(this.#buf.buffer, this.#buf.byteOffset + off + 2, 8).getBigUint64(
          0,
        );
        if (big > BigInt(this.#maxMessage)) {
          throw new Error(`server frame of ${big} bytes is too large`);
        }
        n = Number(big);
        head = 10;
      }
      if (n > this.#maxMessage) throw new Error(`server frame of ${n} bytes is too large`);
      if (avail < head + n) {
        need = head + n;
        break;
      }
      const payload = this.#buf.slice(off + head, off + head + n);
      off += head + n;
      this.#onFrame(b0 & 0x80, b0 & 0x0f, payload);
    }
    if (off > 0) {
      this.#buf.copyWithin(0, off, this.#len);
      this.#len -= off;
    }
    // The next frame may need more room than the buffer has.
    if (need > this.#buf.length || this.#len === this.#buf.length) this.#grow(need);
  }

  #onFrame(fin: number, opcode: number, payload: Uint8Array): void {
    switch (opcode) {
      case 0x0: // continuation
      case 0x2: // binary
        if (opcode === 0x2 && this.#fragments.length > 0) {
          throw new Error("unfinished fragmented message");
        }
        if (opcode === 0x0 && this.#fragments.length === 0) {
          throw new Error("stray continuation frame");
        }
        if (fin && this.#fragments.length === 0) {
          this.onMessage(payload);
          return;
        }
        this.#fragments.push(payload);
        this.#fragmentBytes += payload.length;
        if (this.#fragmentBytes > this.#maxMessage) throw new Error("fragmented message too large");
        if (fin) {
          const all = new Uint8Array(this.#fragmentBytes);
          let at = 0;
          for (const f of this.#fragments) {
            all.set(f, at);
            at += f.length;
          }
          this.#fragments = [];
          this.#fragmentBytes = 0;
          this.onMessage(all);
        }
        return;
      case 0x1:
        throw new Error("server sent a text frame");
      case 0x8: { // close: answer it, then drop the connection
        this.#peerClosed = true;
        if (!this.#closeSent) {
          this.#closeSent = true;
          this.#write(frame(0x8, payload.subarray(0, 2)));
        }
        const code = payload.length >= 2 ? (payload[0]! << 8) | payload[1]! : 1005;
        const why = new TextDecoder().decode(payload.subarray(2));
        const reason = new Deno.errors.ConnectionReset(`closed by the peer: ${code} ${why}`.trim());
        this.#writing.then(() => this.#shutdown(reason));
        return;
      }
      case 0x9: // ping
        if (!this.#closeSent) this.#write(frame(0xa, payload));
        return;
      case 0xa: // pong
        return;
      default:
        throw new Error(`server sent unknown opcode ${opcode}`);
    }
  }

  /** Resolves when the connection has closed and its reader has stopped. */
  get closed(): Promise<void> {
    return this.#done;
  }
}

function indexOfCrlfCrlf(buf: Uint8Array, len: number): number {
  for (let i = 0; i + 3 < len; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

// A masked client frame, header and payload in one buffer.
function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = new Uint8Array(head + 4 + n);
  out[0] = 0x80 | opcode;
  if (n < 126) {
    out[1] = 0x80 | n;
  } else if (n < 65536) {
    out[1] = 0x80 | 126;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(n));
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, head);
  const body = head + 4;
  for (let i = 0; i < n; i++) out[body + i] = payload[i]! ^ mask[i & 3]!;
  return out;
}

async function writeAll(conn: Deno.TcpConn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}
