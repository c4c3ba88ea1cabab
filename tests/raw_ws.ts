/**
 * A WebSocket client for attacks in tests: it sends any frame (fragments,
 * bad headers, text), or raw bytes, reads only when told to, and reports
 * what came back as messages, a close code, or the end of the connection.
 */
import {
  acceptKey,
  encodeBase64,
  encodeWsFrame,
  FrameReader,
  headEnd,
  OP,
  writeAll,
} from "../ws_frames.ts";

/** What came back from the server. */
export type Event =
  | { readonly type: "message"; readonly data: Uint8Array }
  | { readonly type: "close"; readonly code: number; readonly reason: string }
  | { readonly type: "end" };

/** A raw connection to `ws://127.0.0.1:PORT/paxos`. */
export class RawWs {
  readonly conn: Deno.TcpConn;
  readonly #reader = new FrameReader({ masked: false, maxMessageBytes: 1 << 30 });
  readonly #events: Event[] = [];
  #wake: (() => void) | null = null;
  #reading: Promise<void> | null = null;
  /** Bytes of the messages received so far. */
  messageBytes = 0;

  private constructor(conn: Deno.TcpConn, leftover: Uint8Array) {
    this.conn = conn;
    this.#reader.space().set(leftover);
    this.#reader.commit(leftover.length);
  }

  /** Connects and upgrades; with `read: false`, nothing is read from the server after that. */
  static async open(port: number, opts: { read?: boolean } = {}): Promise<RawWs> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const key = encodeBase64(crypto.getRandomValues(new Uint8Array(16)));
    await writeAll(
      conn,
      new TextEncoder().encode(
        `GET /paxos HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
    const buf = new Uint8Array(4096);
    let len = 0;
    let end = -1;
    while (end < 0) {
      const n = await conn.read(buf.subarray(len));
      if (n === null) throw new Error("closed during the handshake");
      len += n;
      end = headEnd(buf, len);
    }
    const head = new TextDecoder().decode(buf.subarray(0, end));
    if (!head.startsWith("HTTP/1.1 101") || !head.includes(await acceptKey(key))) {
      conn.close();
      throw new Error(`upgrade refused: ${head.split("\r\n")[0]}`);
    }
    const ws = new RawWs(conn, buf.slice(end + 4, len));
    if (opts.read !== false) ws.startReading();
    return ws;
  }

  /** Starts reading what the server sends (once). */
  startReading(): void {
    this.#reading ??= this.#readLoop();
  }

  /** Sends one frame, masked (FIN set unless `fin` is false). */
  async frame(opcode: number, payload: Uint8Array, fin = true): Promise<void> {
    const f = encodeWsFrame(opcode, payload, true);
    if (!fin) f[0]! &= 0x7f;
    await writeAll(this.conn, f);
  }

  /** Sends one binary message. */
  send(payload: Uint8Array): Promise<void> {
    return this.frame(OP.binary, payload);
  }

  /** The next event; fails after `timeoutMs` without one. */
  async next(timeoutMs = 10_000): Promise<Event> {
    const deadline = performance.now() + timeoutMs;
    while (this.#events.length === 0) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`nothing from the server within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => (clearTimeout(t), resolve());
      });
      this.#wake = null;
    }
    return this.#events.shift()!;
  }

  /** Waits for the close frame (or the end) and returns its code (0 for no close frame). */
  async closeCode(timeoutMs = 10_000): Promise<number> {
    for (;;) {
      const e = await this.next(timeoutMs);
      if (e.type === "close") return e.code;
      if (e.type === "end") return 0;
    }
  }

  /** Drops the connection. */
  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch { /* closed already */ }
    await this.#reading;
  }

  async #readLoop(): Promise<void> {
    const push = (e: Event) => {
      this.#events.push(e);
      this.#wake?.();
    };
    const handler = {
      onMessage: (data: Uint8Array) => {
        this.messageBytes += data.length;
        push({ type: "message", data });
      },
      onClose: (p: Uint8Array) =>
        push({
          type: "close",
          code: p.length >= 2 ? (p[0]! << 8) | p[1]! : 1005,
          reason: new TextDecoder().decode(p.subarray(2)),
        }),
      onPing: () => {},
    };
    try {
      for (;;) {
        this.#reader.parse(handler, () => true);
        const n = await this.conn.read(this.#reader.space());
        if (n === null) break;
        this.#reader.commit(n);
      }
    } catch {
      // Reset, or closed by us.
    }
    push({ type: "end" });
  }
}

export { writeAll };
