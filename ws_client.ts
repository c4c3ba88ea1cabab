/**
 * A small WebSocket client (RFC 6455) on a raw TCP connection with
 * `TCP_NODELAY` set.
 *
 * Deno's built-in `WebSocket` client leaves Nagle's algorithm on and writes a
 * frame's header and payload separately once it is over 1 KiB, so every such
 * frame waits ~40 ms for the peer's delayed ACK. This client writes each frame
 * in one write on a no-delay socket, so frames of any size go out at once.
 *
 * It speaks only what paxoskv needs: `ws://` and `wss://` URLs (TLS over the
 * same no-delay socket), binary messages, ping/pong and the closing
 * handshake.
 *
 * @module
 */

import {
  acceptKey,
  closePayload,
  encodeBase64,
  encodeWsFrame,
  FrameReader,
  headEnd,
  OP,
  writeAll,
} from "./ws_frames.ts";

const MAX_HEADER_BYTES = 16 * 1024;

/** Options of {@link WsConnection.connect}. */
export interface WsConnectOptions {
  /** Give up on connecting and the handshake after this many ms (default 5000). */
  readonly timeoutMs?: number;
  /** Largest message accepted from the server (default 64 MiB). */
  readonly maxMessageBytes?: number;
  /**
   * For `wss://`: the certificates (PEM) to trust, besides the system's
   * roots; a server whose certificate chains to none of them is refused.
   */
  readonly caCerts?: readonly string[];
  /**
   * Gives up at once when aborted: the connection and its handshake are
   * dropped, and `connect` rejects with the signal's reason.
   */
  readonly signal?: AbortSignal;
}

/** Parses and checks a `ws://` or `wss://` URL; throws a TypeError naming it otherwise. */
export function parseWsUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(`not a URL: ${JSON.stringify(url)} (expected ws://HOST:PORT/paxos)`);
  }
  if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new TypeError(
      `unsupported URL scheme ${JSON.stringify(u.protocol)} in ${url}: use ws:// or wss://`,
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

function withTimeout<T>(
  p: Promise<T>,
  ms: number,
  what: string,
  onLate: (v: T) => void,
  signal?: AbortSignal,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timedOut = false;
  let onAbort = () => {};
  const t = new Promise<never>((_, reject) => {
    const give = (e: Error) => {
      timedOut = true;
      reject(e);
    };
    onAbort = () => give(abortReason(signal!, what));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    timer = setTimeout(
      () => give(new Deno.errors.TimedOut(`${what}: no answer within ${ms} ms`)),
      ms,
    );
  });
  p.then((v) => {
    if (timedOut) onLate(v);
  }, () => {});
  return Promise.race([p, t]).finally(() => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  });
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

function abortReason(signal: AbortSignal, what: string): Error {
  return signal.reason instanceof Error
    ? signal.reason
    : new Deno.errors.Interrupted(`${what}: given up`);
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

  readonly #conn: Deno.Conn;
  readonly #reader: FrameReader;
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  #closeSent = false;
  #peerClosed = false;
  readonly #done: Promise<void>;

  private constructor(conn: Deno.Conn, leftover: Uint8Array, maxMessage: number) {
    this.#conn = conn;
    this.#reader = new FrameReader({ masked: false, maxMessageBytes: maxMessage, leftover });
    this.#done = this.#readLoop();
  }

  /** Opens a connection (and TLS for `wss://`) and performs the opening handshake. */
  static async connect(url: string, opts: WsConnectOptions = {}): Promise<WsConnection> {
    const u = parseWsUrl(url);
    const timeoutMs = opts.timeoutMs ?? 5000;
    const tls = u.protocol === "wss:";
    const port = u.port === "" ? (tls ? 443 : 80) : Number(u.port);
    const tcp = await withTimeout(
      Deno.connect({ hostname: hostOf(u), port }),
      timeoutMs,
      `connect to ${url}`,
      (late) => late.close(),
      opts.signal,
    );
    let conn: Deno.Conn = tcp;
    let handshake: Promise<Uint8Array> | undefined;
    let gaveUp = false;
    try {
      // No delay on the socket, TLS or not: a frame is one write, sent at once.
      tcp.setNoDelay(true);
      handshake = (async () => {
        if (tls) {
          const t = await Deno.startTls(tcp, {
            hostname: hostOf(u),
            ...(opts.caCerts === undefined ? {} : { caCerts: [...opts.caCerts] }),
          });
          conn = t;
          if (gaveUp) throw new Deno.errors.Interrupted("given up during the TLS handshake");
          await t.handshake();
        }
        return await WsConnection.#handshake(conn, u);
      })();
      const leftover = await withTimeout(
        handshake,
        timeoutMs,
        `${tls ? "TLS and " : ""}WebSocket handshake with ${url}`,
        () => {},
        opts.signal,
      );
      return new WsConnection(conn, leftover, opts.maxMessageBytes ?? 64 * 1024 * 1024);
    } catch (e) {
      gaveUp = true;
      closeQuietly(conn);
      // A handshake given up on (timed out, or the caller aborted) is still
      // running: with its connection closed it ends at once, and it ends
      // before this does, so that no read or digest of it outlives the call.
      await handshake?.catch(() => {});
      if (conn !== tcp) closeQuietly(conn); // TLS came up after all
      throw e;
    }
  }

  static async #handshake(conn: Deno.Conn, u: URL): Promise<Uint8Array> {
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
      end = headEnd(buf, len);
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
    this.#write(encodeWsFrame(OP.binary, payload, true));
  }

  /**
   * Starts the closing handshake and resolves once the connection is closed
   * (the peer answered, or after 1 s).
   */
  async close(code = 1000, reason = ""): Promise<void> {
    if (!this.#closed && !this.#closeSent) {
      this.#closeSent = true;
      this.#write(encodeWsFrame(OP.close, closePayload(code, reason), true));
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
    closeQuietly(this.#conn);
    this.onClose(reason);
  }

  async #readLoop(): Promise<void> {
    const open = () => !this.#closed && !this.#peerClosed;
    const handler = {
      onMessage: (payload: Uint8Array) => this.onMessage(payload),
      onClose: (payload: Uint8Array) => this.#onPeerClose(payload),
      onPing: (payload: Uint8Array) => {
        if (!this.#closeSent) this.#write(encodeWsFrame(OP.pong, payload, true));
      },
    };
    try {
      // Frames that came in with the handshake reply wait for a macrotask,
      // so that the caller of connect() has set onMessage and onClose.
      if (this.#reader.buffered > 0) await new Promise((resolve) => setTimeout(resolve, 0));
      while (open()) {
        this.#reader.parse(handler, open);
        if (!open()) return;
        const space = this.#reader.space();
        const n = await this.#conn.read(space);
        if (n === null) {
          this.#shutdown(new Deno.errors.ConnectionReset("connection closed by the peer"));
          return;
        }
        this.#reader.commit(n);
      }
    } catch (e) {
      this.#shutdown(e instanceof Error ? e : new Error(String(e)));
    }
  }

  // A close from the server: answer it, then drop the connection.
  #onPeerClose(payload: Uint8Array): void {
    this.#peerClosed = true;
    if (!this.#closeSent) {
      this.#closeSent = true;
      this.#write(encodeWsFrame(OP.close, payload.subarray(0, 2), true));
    }
    const code = payload.length >= 2 ? (payload[0]! << 8) | payload[1]! : 1005;
    const why = new TextDecoder().decode(payload.subarray(2));
    const reason = new Deno.errors.ConnectionReset(`closed by the peer: ${code} ${why}`.trim());
    this.#writing.then(() => this.#shutdown(reason));
  }

  /** Resolves when the connection has closed and its reader has stopped. */
  get closed(): Promise<void> {
    return this.#done;
  }
}
