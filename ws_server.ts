/**
 * A WebSocket server (RFC 6455) on `Deno.listen`, in which everything a peer
 * can make it hold is bounded: open connections, the time and bytes of the
 * HTTP upgrade, the bytes of one message across its fragments, and the bytes
 * waiting to be sent to a peer that does not read (past them, the server
 * stops reading from that peer until it catches up). An accept that fails
 * (EMFILE: too many open files) is retried after a pause, never fatal.
 *
 * Why not `Deno.serve`: as of Deno 2.9.6 it exposes none of these bounds. It
 * has no connection limit and no time limit on a request's headers; its
 * WebSockets buffer a fragmented message without limit and reset the TCP
 * connection on a frame of 64 MiB; an accept error reaches the process's
 * fatal handler; and a socket's `bufferedAmount` can be read, but reading
 * from a peer cannot be paused. See docs/security.md.
 *
 * @module
 */
import {
  acceptKey,
  closePayload,
  concatBytes,
  encodeWsFrame,
  FrameReader,
  headEnd,
  OP,
  writeAll,
  wsFrameHeader,
  WsProtocolError,
} from "./ws_frames.ts";

/** The bounds of a {@link serveWebSocket} server. */
export interface WsLimits {
  /** Most open connections, upgrades under way included; more are answered 503. */
  readonly maxConnections: number;
  /** Time for a new connection to finish its HTTP upgrade, in ms; then 408. */
  readonly handshakeTimeoutMs: number;
  /** Largest message, across its fragments; a larger one closes with 1009. */
  readonly maxMessageBytes: number;
  /**
   * Most bytes waiting to be sent to one peer: over them, the server stops
   * reading from that peer until half of them are sent.
   */
  readonly maxQueuedBytes: number;
}

/** The default {@link WsLimits}. */
export const DEFAULT_WS_LIMITS: WsLimits = Object.freeze({
  maxConnections: 1024,
  handshakeTimeoutMs: 10_000,
  maxMessageBytes: 8 * 1024 * 1024,
  maxQueuedBytes: 4 * 1024 * 1024,
});

/**
 * What one connection may have handled in one turn of the event loop before
 * the others get theirs: units of work (what `onMessage` returns for each
 * message, e.g. the requests in it and 2 for the frame; 1 by default) and
 * bytes of messages. At least one message is handled each turn. A peer that
 * sends many frames at once thus delays the others by at most about that
 * much work each turn.
 */
export const PER_TURN = Object.freeze({ work: 256, bytes: 64 * 1024 });
/** How long a connection alone on the server may go on before others' input is read, in ms. */
export const ALONE_TURN_MS = 10;
// A payload from this size on is sent without copying it behind its header.
const COPY_BELOW = 64 * 1024;

/** Largest HTTP upgrade request (request line and headers); larger is 431. */
export const MAX_HANDSHAKE_BYTES = 8 * 1024;
/** How long a closing connection waits for the peer's close before dropping it, in ms. */
export const CLOSE_LINGER_MS = 1000;

/** Options of {@link serveWebSocket}. */
export interface WsServerOptions extends Partial<WsLimits> {
  /** Interface to listen on (default "127.0.0.1"). */
  readonly hostname?: string;
  /** Port to listen on; 0 picks a free one (default 0). */
  readonly port?: number;
  /** The one path served (e.g. "/paxos"); other paths are 404. */
  readonly path: string;
  /** Serve TLS (`wss://`) with this certificate chain and key (PEM). */
  readonly tls?: { readonly cert: string; readonly key: string };
  /**
   * Looks at an upgrade request's headers (names in lower case): returns why
   * it is refused (answered 403 Forbidden), or null to accept it.
   */
  readonly checkUpgrade?: (headers: ReadonlyMap<string, string>) => string | null;
  /**
   * Answers a plain HTTP `GET` of a path other than `path` (e.g. `/healthz`,
   * `/metrics`): the response, or null for 404. The connection then closes.
   */
  readonly onHttpGet?: (target: string) => HttpResponse | null;
  /** Called with each upgraded connection: set its `onMessage` there. */
  readonly onConnection: (conn: WsServerConnection) => void;
  /**
   * Told about what a peer did wrong or what the server refused, with a
   * cause (a fixed string: "accept", "connections", "handshake", "protocol").
   */
  readonly onEvent?: (cause: string, message: string) => void;
}

/** A plain HTTP response of a {@link serveWebSocket} server (see `onHttpGet`). */
export interface HttpResponse {
  /** The status code, e.g. 200. */
  readonly status: number;
  /** The reason phrase, e.g. "OK". */
  readonly reason: string;
  /** The Content-Type, e.g. "text/plain; version=0.0.4". */
  readonly contentType: string;
  /** The body. */
  readonly body: string;
}

/** A running server. */
export interface WsServer {
  /** The address it listens on. */
  readonly addr: Deno.NetAddr;
  /** Open connections, upgrades under way included. */
  readonly connections: number;
  /** Stops listening, closes every connection (1001) and resolves when all is down. */
  close(): Promise<void>;
}

/**
 * Starts a server; resolves once it listens.
 *
 * @example
 * ```ts
 * import { serveWebSocket } from "./ws_server.ts";
 * const server = await serveWebSocket({
 *   path: "/echo",
 *   onConnection: (conn) => conn.onMessage = (bytes) => conn.send(bytes),
 * });
 * server.addr.port; // e.g. 40123
 * await server.close();
 * ```
 */
export function serveWebSocket(opts: WsServerOptions): Promise<WsServer> {
  const limits: WsLimits = {
    maxConnections: opts.maxConnections ?? DEFAULT_WS_LIMITS.maxConnections,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? DEFAULT_WS_LIMITS.handshakeTimeoutMs,
    maxMessageBytes: opts.maxMessageBytes ?? DEFAULT_WS_LIMITS.maxMessageBytes,
    maxQueuedBytes: opts.maxQueuedBytes ?? DEFAULT_WS_LIMITS.maxQueuedBytes,
  };
  for (const [name, v] of Object.entries(limits)) {
    if (!(Number.isSafeInteger(v) && v > 0)) {
      throw new RangeError(`${name} must be a positive integer, got ${v}`);
    }
  }
  const onEvent = opts.onEvent ?? (() => {});
  const where = { hostname: opts.hostname ?? "127.0.0.1", port: opts.port ?? 0 };
  const listener: Deno.Listener<Deno.Conn> = opts.tls === undefined
    ? Deno.listen(where)
    : Deno.listenTls({ ...where, cert: opts.tls.cert, key: opts.tls.key });
  const peers = new Set<WsServerConnection>();
  const tasks = new Set<Promise<void>>();
  const track = (p: Promise<void>) => {
    tasks.add(p);
    p.finally(() => tasks.delete(p));
  };
  let closing = false;
  let closed: Promise<void> | undefined;
  let wake: () => void = () => {};

  const acceptLoop = async () => {
    let pause = 0;
    while (!closing) {
      let tcp: Deno.Conn;
      try {
        tcp = await listener.accept();
        pause = 0;
      } catch (e) {
        if (closing || e instanceof Deno.errors.BadResource) break;
        // EMFILE and the like: the server lives on; try again after a pause,
        // while the connections that hold descriptors come and go.
        pause = Math.min(1000, Math.max(10, pause * 2));
        onEvent("accept", `cannot accept a connection (retrying in ${pause} ms): ${e}`);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, pause);
          wake = () => (clearTimeout(t), resolve());
        });
        continue;
      }
      if (peers.size >= limits.maxConnections) {
        onEvent("connections", `refused a connection: ${limits.maxConnections} are open`);
        // No linger here: this connection is not counted.
        track(respond(tcp, 503, "Service Unavailable", "too many connections\n", [], false));
        continue;
      }
      const peer = new WsServerConnection(
        tcp,
        limits,
        onEvent,
        () => peers.size > 1,
        opts.checkUpgrade,
        opts.onHttpGet,
      );
      peers.add(peer);
      track(peer.serve(opts.path, opts.onConnection).finally(() => peers.delete(peer)));
    }
  };
  const loop = acceptLoop();
  return Promise.resolve({
    addr: listener.addr as Deno.NetAddr,
    get connections() {
      return peers.size;
    },
    close() {
      return closed ??= (async () => {
        closing = true;
        wake();
        listener.close();
        await loop;
        for (const p of peers) p.close(1001, "server shutting down");
        while (tasks.size > 0) await Promise.all(tasks);
      })();
    },
  });
}

/**
 * One connection of a {@link serveWebSocket} server: binary messages in
 * (`onMessage`), binary messages out (`send`).
 */
export class WsServerConnection {
  /**
   * Called with each whole binary message; returns the work it took (see
   * {@link PER_TURN}; 1 when it returns nothing), or a promise: then the
   * connection's turn ends, and it reads on once the promise is settled.
   */
  onMessage: (payload: Uint8Array) => number | Promise<unknown> | void = () => {};
  /** Called once when the connection is gone. */
  onClose: () => void = () => {};
  /** The peer's address, for messages. */
  readonly remote: string;

  readonly #tcp: Deno.Conn;
  readonly #checkUpgrade: ((headers: ReadonlyMap<string, string>) => string | null) | undefined;
  readonly #onHttpGet: ((target: string) => HttpResponse | null) | undefined;
  readonly #limits: WsLimits;
  readonly #onEvent: (cause: string, message: string) => void;
  #reader: FrameReader | null = null;
  #state: "handshake" | "open" | "closing" | "closed" = "handshake";
  // Whether the bytes that come in can still be read as frames (not after a
  // protocol error): then a closing connection waits for the peer's close.
  #parsing = true;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #writing: Promise<void> | null = null;
  #resume: (() => void) | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  // Whether other connections share the server, and when this one last let
  // the others' input be read while alone (see pace()).
  readonly #crowded: () => boolean;
  #yielded = 0;
  #responding: Promise<void> | null = null;

  /** Wraps an accepted TCP connection; {@link serve} runs it. */
  constructor(
    tcp: Deno.Conn,
    limits: WsLimits,
    onEvent: (cause: string, message: string) => void,
    crowded: () => boolean = () => true,
    checkUpgrade?: (headers: ReadonlyMap<string, string>) => string | null,
    onHttpGet?: (target: string) => HttpResponse | null,
  ) {
    this.#tcp = tcp;
    this.#onHttpGet = onHttpGet;
    this.#checkUpgrade = checkUpgrade;
    this.#crowded = crowded;
    this.#limits = limits;
    this.#onEvent = onEvent;
    const a = tcp.remoteAddr as Deno.NetAddr;
    this.remote = `${a.hostname}:${a.port}`;
  }

  /**
   * Waits for this connection's next turn, once it has used up one (see
   * {@link PER_TURN}). When other connections are open: a timer (about 2 ms
   * in Deno), so that a connection that keeps using up its turns (a flood,
   * or a client pipelining more than the server can take) gets its share of
   * the time and not more; `turns` > 1 waits as long as that many turns
   * (for work that could not be split). Alone, it goes on at once, but lets
   * the ready sockets be read (a new connection accepted) every
   * {@link ALONE_TURN_MS} at least.
   */
  pace(turns = 1): Promise<void> {
    if (this.#crowded()) return new Promise((resolve) => setTimeout(resolve, 2 * (turns - 1)));
    const now = performance.now();
    if (now - this.#yielded < ALONE_TURN_MS) return Promise.resolve();
    this.#yielded = now;
    return nextTurn();
  }

  /** Bytes waiting to be sent to the peer. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Whether the connection can still send. */
  get isOpen(): boolean {
    return this.#state === "open";
  }

  /** Sends one binary message (queued; written in the background). */
  send(payload: Uint8Array): void {
    if (this.#state !== "open") return;
    if (payload.length < COPY_BELOW) return this.#enqueue(encodeWsFrame(OP.binary, payload, false));
    // A large payload is not copied behind its header: both go as they are.
    this.#enqueue(wsFrameHeader(OP.binary, payload.length, false));
    this.#enqueue(payload);
  }

  /**
   * Starts the closing handshake: sends a close frame with `code` and
   * `reason`, reads and drops whatever comes until the peer's close (or
   * {@link CLOSE_LINGER_MS}), then drops the connection.
   */
  close(code: number, reason: string): void {
    if (this.#state === "handshake") return this.#destroy();
    if (this.#state !== "open") return;
    this.#state = "closing";
    this.#dropQueue();
    this.#enqueue(encodeWsFrame(OP.close, closePayload(code, reason), false));
    this.#wakeReader();
    this.#timer = setTimeout(() => this.#destroy(), CLOSE_LINGER_MS);
  }

  /** Performs the upgrade, then serves the connection until it is gone. */
  async serve(path: string, onConnection: (conn: WsServerConnection) => void): Promise<void> {
    try {
      // (A TLS connection from Deno.listenTls has no such switch: each
      // frame goes out in one write, so a reply waits for no other.)
      if ("setNoDelay" in this.#tcp) (this.#tcp as Deno.TcpConn).setNoDelay(true);
      this.#timer = setTimeout(() => {
        this.#onEvent(
          "handshake",
          `${this.remote} did not finish its upgrade in ${this.#limits.handshakeTimeoutMs} ms`,
        );
        this.#state = "closed";
        // Whatever it sent is read already: this goes out before the FIN.
        this.#responding = respond(
          this.#tcp,
          408,
          "Request Timeout",
          "too slow to upgrade\n",
          [],
          false, // the upgrade's own read is under way
        );
      }, this.#limits.handshakeTimeoutMs);
      const leftover = await this.#handshake(path);
      clearTimeout(this.#timer);
      if (leftover === null) return;
      this.#reader = new FrameReader({
        masked: true,
        maxMessageBytes: this.#limits.maxMessageBytes,
        leftover,
      });
      this.#state = "open";
      onConnection(this);
      await this.#readLoop();
    } catch {
      // The peer is gone (reset, or closed by us): nothing to tell it.
    } finally {
      if (this.#responding !== null) await this.#responding;
      this.#destroy();
      if (this.#writing !== null) await this.#writing;
    }
  }

  // Reads the upgrade request and answers it: the bytes after it when the
  // connection is upgraded, null when it was refused.
  async #handshake(path: string): Promise<Uint8Array | null> {
    const buf = new Uint8Array(MAX_HANDSHAKE_BYTES);
    let len = 0;
    let end = -1;
    while (end < 0) {
      if (len === buf.length) {
        this.#refused(`an upgrade request over ${MAX_HANDSHAKE_BYTES} bytes`);
        await this.#respond(431, "Request Header Fields Too Large", "request too large\n");
        return null;
      }
      const n = await this.#tcp.read(buf.subarray(len));
      if (n === null) return null;
      len += n;
      end = headEnd(buf, len);
    }
    const lines = new TextDecoder().decode(buf.subarray(0, end)).split("\r\n");
    const request = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/.exec(lines[0] ?? "");
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const i = line.indexOf(":");
      if (i <= 0 || /^[ \t]/.test(line)) {
        this.#refused(`a malformed header line`);
        await this.#respond(400, "Bad Request", "malformed request\n");
        return null;
      }
      const name = line.slice(0, i).trim().toLowerCase();
      if (!headers.has(name)) headers.set(name, line.slice(i + 1).trim());
    }
    if (request === null) {
      this.#refused(`a malformed request line`);
      await this.#respond(400, "Bad Request", "malformed request\n");
      return null;
    }
    const target = request[2]!.split("?")[0];
    const http = target !== path && request[1] === "GET" ? this.#onHttpGet?.(target!) : null;
    if (http !== undefined && http !== null) {
      await this.#respond(http.status, http.reason, http.body, [
        `Content-Type: ${http.contentType}`,
      ]);
      return null;
    }
    if (target !== path) {
      await this.#respond(404, "Not Found", `not found: this server serves ${path}\n`);
      return null;
    }
    const has = (name: string, token: string) =>
      (headers.get(name) ?? "").toLowerCase().split(",").some((t) => t.trim() === token);
    if (request[1] !== "GET" || !has("upgrade", "websocket") || !has("connection", "upgrade")) {
      await this.#respond(426, "Upgrade Required", "expected a WebSocket upgrade\n", [
        "Upgrade: websocket",
      ]);
      return null;
    }
    const key = headers.get("sec-websocket-key") ?? "";
    if (!/^[A-Za-z0-9+/]{22}==$/.test(key)) {
      this.#refused(`a bad Sec-WebSocket-Key ${JSON.stringify(key.slice(0, 40))}`);
      await this.#respond(
        400,
        "Bad Request",
        "bad WebSocket upgrade: no valid Sec-WebSocket-Key\n",
      );
      return null;
    }
    if (headers.get("sec-websocket-version") !== "13") {
      this.#refused(`WebSocket version ${headers.get("sec-websocket-version")}`);
      await this.#respond(426, "Upgrade Required", "WebSocket version 13 only\n", [
        "Sec-WebSocket-Version: 13",
      ]);
      return null;
    }
    const refusal = this.#checkUpgrade?.(headers) ?? null;
    if (refusal !== null) {
      this.#refused(refusal);
      await this.#respond(403, "Forbidden", `${refusal}\n`);
      return null;
    }
    await writeAll(
      this.#tcp,
      new TextEncoder().encode(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\n\r\n`,
      ),
    );
    return buf.slice(end + 4, len);
  }

  #refused(what: string): void {
    this.#onEvent("handshake", `refused an upgrade from ${this.remote}: ${what}`);
  }

  async #respond(
    status: number,
    reason: string,
    body: string,
    headers: string[] = [],
  ): Promise<void> {
    clearTimeout(this.#timer);
    this.#state = "closed";
    await respond(this.#tcp, status, reason, body, headers);
  }

  async #readLoop(): Promise<void> {
    const reader = this.#reader!;
    const handler = {
      onMessage: (payload: Uint8Array) => {
        turnBytes += payload.length;
        const work = this.#state === "open" ? this.onMessage(payload) ?? 1 : 1;
        if (typeof work === "number") turn += work;
        else busy = work.then(noop, noop);
      },
      onClose: (payload: Uint8Array) => this.#onPeerClose(payload),
      onPing: (payload: Uint8Array) => {
        if (this.#state === "open") this.#enqueue(encodeWsFrame(OP.pong, payload, false));
      },
    };
    // Work and bytes handled in this turn.
    let turn = 0;
    let turnBytes = 0;
    // A message still being handled over several turns: read on after it.
    let busy: Promise<void> | null = null;
    const turnOver = () => turn >= PER_TURN.work || turnBytes >= PER_TURN.bytes || busy !== null;
    const more = () =>
      this.#state === "open" && !this.#full() && !turnOver() || this.#state === "closing";
    while (this.#state === "open" || this.#state === "closing") {
      if (this.#parsing) {
        try {
          turn = turnBytes = 0;
          reader.parse(handler, more);
        } catch (e) {
          if (!(e instanceof WsProtocolError)) throw e;
          this.#onEvent("protocol", `closing ${this.remote} with ${e.code}: ${e.message}`);
          this.#parsing = false;
          this.close(e.code, e.message);
        }
      }
      // Too much waits for this peer: read nothing more until half is sent.
      if (this.#state === "open" && this.#full()) {
        await new Promise<void>((resolve) => this.#resume = resolve);
        continue;
      }
      // This peer had its turn: the others', then parse on.
      if (this.#state === "open" && turnOver()) {
        if (busy !== null) await busy;
        else await this.pace();
        busy = null;
        continue;
      }
      if (this.#state !== "open" && this.#state !== "closing") break;
      // Once closing after a protocol error, what comes is dropped unread.
      const space = this.#parsing ? reader.space() : scratch;
      const n = await this.#tcp.read(space);
      if (n === null) break;
      if (this.#parsing) reader.commit(n);
    }
  }

  #full(): boolean {
    return this.#queuedBytes > this.#limits.maxQueuedBytes;
  }

  #wakeReader(): void {
    const resume = this.#resume;
    this.#resume = null;
    resume?.();
  }

  #onPeerClose(payload: Uint8Array): void {
    if (this.#state === "open") {
      // Answer with the peer's code, then drop the connection once it is out.
      this.#state = "closing";
      this.#dropQueue();
      this.#enqueue(encodeWsFrame(OP.close, payload.subarray(0, 2), false));
    }
    // Our close was answered (or is being): done once the writes are out.
    const writing = this.#writing ?? Promise.resolve();
    writing.then(() => this.#destroy());
  }

  // Forgets what is queued and not being written yet.
  #dropQueue(): void {
    for (const f of this.#queue) this.#queuedBytes -= f.length;
    this.#queue = [];
  }

  #enqueue(frame: Uint8Array): void {
    this.#queue.push(frame);
    this.#queuedBytes += frame.length;
    // One microtask later: the replies to the frames read together are
    // queued by then, and go out in one write.
    this.#writing ??= Promise.resolve().then(() => this.#flush());
  }

  // Writes what is queued, small frames joined into one write.
  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0 && this.#state !== "closed") {
        const parts = this.#queue;
        this.#queue = [];
        const total = parts.reduce((n, p) => n + p.length, 0);
        if (total <= 256 * 1024) {
          await writeAll(this.#tcp, concatBytes(parts));
        } else {
          for (const p of parts) await writeAll(this.#tcp, p);
        }
        this.#queuedBytes -= total;
        if (this.#queuedBytes <= this.#limits.maxQueuedBytes / 2) this.#wakeReader();
      }
    } catch {
      this.#destroy();
    } finally {
      this.#writing = null;
    }
  }

  #destroy(): void {
    if (this.#state === "closed" && this.#reader === null) return;
    const wasOpen = this.#reader !== null;
    this.#state = "closed";
    this.#reader = null;
    clearTimeout(this.#timer);
    this.#dropQueue();
    this.#wakeReader();
    try {
      this.#tcp.close();
    } catch { /* closed already */ }
    if (wasOpen) this.onClose();
  }
}

/**
 * Resolves in a later turn of the event loop, once the sockets that are
 * ready have been read. Measured in Deno 2.9.6: `setTimeout(0)` waits about
 * 2 ms; a microtask, `setImmediate` or a `MessageChannel` message lets no
 * socket be read in between; an operation that completes off the JavaScript
 * thread does, in about 50 us: here, the digest of nothing.
 */
export function nextTurn(): Promise<void> {
  return crypto.subtle.digest("SHA-1", NOTHING).then(noop);
}
const NOTHING = new Uint8Array(0);

function noop(): void {}

// Drops the bytes a closing connection still receives.
const scratch = new Uint8Array(64 * 1024);

// Answers an HTTP request and closes the connection. With `linger`, it
// first stops writing and drops what the peer still sends (for a while at
// most), so that the answer is not lost to a reset.
async function respond(
  tcp: Deno.Conn,
  status: number,
  reason: string,
  body: string,
  headers: string[] = [],
  linger = true,
): Promise<void> {
  const b = new TextEncoder().encode(body);
  const typed = headers.some((h) => h.toLowerCase().startsWith("content-type:"));
  const head = [
    `HTTP/1.1 ${status} ${reason}`,
    ...(typed ? [] : ["Content-Type: text/plain; charset=utf-8"]),
    `Content-Length: ${b.length}`,
    "Connection: close",
    ...headers,
  ].join("\r\n");
  try {
    await writeAll(tcp, concatBytes([new TextEncoder().encode(head + "\r\n\r\n"), b]));
    if (linger) {
      await tcp.closeWrite();
      const timer = setTimeout(() => tcp.close(), CLOSE_LINGER_MS);
      try {
        while (await tcp.read(scratch) !== null) { /* dropped */ }
      } finally {
        clearTimeout(timer);
      }
    }
  } catch { /* the peer is gone, or the linger is over */ }
  try {
    tcp.close();
  } catch { /* closed already */ }
}
