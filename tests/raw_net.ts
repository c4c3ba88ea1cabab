/**
 * Raw network peers for tests, below our own WebSocket code: a TCP server on
 * 127.0.0.1 that hands each connection to the test, and the server side of
 * a WebSocket spoken by hand (the handshake, and frames read and written
 * byte by byte), to misbehave on purpose.
 *
 * @module
 */
import { decodeFrame, encodeFrame } from "../codec.ts";
import { within } from "./waits.ts";

/** The GUID of RFC 6455's handshake. */
export const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** A raw TCP server. */
export interface RawServer {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** `ws://127.0.0.1:PORT/paxos`. */
  readonly url: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** The next accepted connection (without `onConn` only). */
  accept(): Promise<Deno.TcpConn>;
  /** Stops listening, closes every connection and waits for the handlers (once). */
  close(): Promise<void>;
}

/** Closes a connection that may be closed already. */
export function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* already closed */ }
}

/**
 * Starts a raw TCP server. With `onConn`, each connection is handed to it
 * and closed when it returns (its errors are the connection's end: ignored);
 * without, connections wait for {@link RawServer.accept}.
 */
export function startRawServer(onConn?: (conn: Deno.TcpConn) => Promise<void>): RawServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const conns = new Set<Deno.TcpConn>();
  const handlers: Promise<void>[] = [];
  const waiting: Deno.TcpConn[] = [];
  const takers: ((c: Deno.TcpConn) => void)[] = [];
  let accepted = 0;
  let closing: Promise<void> | undefined;
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        accepted++;
        conn.setNoDelay(true);
        conns.add(conn);
        if (onConn !== undefined) {
          handlers.push(onConn(conn).catch(() => {}).finally(() => closeQuietly(conn)));
        } else {
          const take = takers.shift();
          if (take !== undefined) take(conn);
          else waiting.push(conn);
        }
      }
    } catch { /* the listener was closed */ }
  })();
  return {
    port,
    url: `ws://127.0.0.1:${port}/paxos`,
    get accepted() {
      return accepted;
    },
    accept() {
      const conn = waiting.shift();
      return conn !== undefined
        ? Promise.resolve(conn)
        : new Promise((resolve) => takers.push(resolve));
    },
    close() {
      closing ??= (async () => {
        listener.close();
        await loop;
        for (const c of conns) closeQuietly(c);
        await Promise.all(handlers);
      })();
      return closing;
    },
  };
}

/** A WebSocket frame as read off the wire. */
export interface Frame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Uint8Array;
}

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A frame as a server sends it: unmasked unless a mask is given. */
export function serverFrame(
  opcode: number,
  payload: Uint8Array,
  fin = true,
  mask?: Uint8Array,
): Uint8Array {
  const n = payload.length;
  const head = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const out = new Uint8Array(head + (mask ? 4 : 0) + n);
  out[0] = (fin ? 0x80 : 0) | opcode;
  const m = mask ? 0x80 : 0;
  if (n < 126) {
    out[1] = m | n;
  } else if (n < 65536) {
    out[1] = m | 126;
    out[2] = n >> 8;
    out[3] = n & 0xff;
  } else {
    out[1] = m | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(n));
  }
  if (mask) {
    out.set(mask, head);
    for (let i = 0; i < n; i++) out[head + 4 + i] = payload[i]! ^ mask[i & 3]!;
  } else {
    out.set(payload, head);
  }
  return out;
}

/** The server side of a WebSocket, by hand, on one TCP connection. */
export class RawWsPeer {
  #buf = new Uint8Array(0);
  constructor(readonly conn: Deno.TcpConn) {}

  async #fill(n: number): Promise<void> {
    while (this.#buf.length < n) {
      const chunk = new Uint8Array(64 * 1024);
      const r = await this.conn.read(chunk);
      if (r === null) throw new Deno.errors.UnexpectedEof("the client closed the connection");
      const next = new Uint8Array(this.#buf.length + r);
      next.set(this.#buf);
      next.set(chunk.subarray(0, r), this.#buf.length);
      this.#buf = next;
    }
  }

  #take(n: number): Uint8Array {
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }

  /** Reads the upgrade request; returns its request line and headers. */
  async readRequest(): Promise<{ line: string; headers: Map<string, string> }> {
    let end = -1;
    while ((end = new TextDecoder().decode(this.#buf).indexOf("\r\n\r\n")) < 0) {
      await this.#fill(this.#buf.length + 1);
    }
    const [line, ...rest] = new TextDecoder().decode(this.#take(end + 4)).split("\r\n");
    const headers = new Map<string, string>();
    for (const l of rest) {
      const i = l.indexOf(":");
      if (i > 0) headers.set(l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim());
    }
    return { line: line!, headers };
  }

  /** Reads the upgrade request and answers 101, followed by `extra` in the same write. */
  async handshake(opts: { wrongAccept?: boolean; extra?: Uint8Array } = {}): Promise<void> {
    const { headers } = await this.readRequest();
    const key = headers.get("sec-websocket-key") ?? "";
    const digest = await crypto.subtle.digest(
      "SHA-1",
      new TextEncoder().encode((opts.wrongAccept ? "x" : "") + key + WS_GUID),
    );
    const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
    const head = new TextEncoder().encode(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    await this.write(concat(head, opts.extra ?? new Uint8Array(0)));
  }

  /**
   * Reads a client's first frame, its `Hello` (trust extension), and answers
   * it as a v1 acceptor does: `Err` `UnknownOp`.
   */
  async answerHelloAsV1(): Promise<void> {
    const f = await this.readFrame();
    const hello = decodeFrame(f.payload) as { Rid: number; Op: string };
    if (hello.Op !== "Hello") throw new Error(`expected a Hello first, got ${hello.Op}`);
    const reply = encodeFrame({ Rid: hello.Rid, Err: { Code: "UnknownOp", Msg: "v1" } });
    await this.write(serverFrame(0x2, reply));
  }

  /** Reads one frame from the client, unmasked (fails after 5 s). */
  readFrame(): Promise<Frame> {
    return within(this.#readFrame(), "reading a frame from the client");
  }

  async #readFrame(): Promise<Frame> {
    await this.#fill(2);
    const b0 = this.#buf[0]!;
    const b1 = this.#buf[1]!;
    let n = b1 & 0x7f;
    let head = 2;
    if (n === 126) {
      await this.#fill(4);
      n = (this.#buf[2]! << 8) | this.#buf[3]!;
      head = 4;
    } else if (n === 127) {
      await this.#fill(10);
      n = Number(new DataView(this.#buf.buffer, 2, 8).getBigUint64(0));
      head = 10;
    }
    const masked = (b1 & 0x80) !== 0;
    const total = head + (masked ? 4 : 0) + n;
    await this.#fill(total);
    const f = this.#take(total);
    const payload = f.slice(total - n);
    if (masked) {
      const mask = f.subarray(head, head + 4);
      for (let i = 0; i < n; i++) payload[i]! ^= mask[i & 3]!;
    }
    return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload };
  }

  /** Writes all of `bytes`. */
  async write(bytes: Uint8Array): Promise<void> {
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }

  /** Closes the connection (if it is not closed already). */
  close(): void {
    closeQuietly(this.conn);
  }
}
