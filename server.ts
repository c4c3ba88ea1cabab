/**
 * Serves a {@link PaxosAcceptor} over WebSocket at `/paxos`, as docs/protocol.md
 * describes: binary frames of one envelope or a batch, replies tagged with
 * the request's `Rid`, in any order; one reply frame for each request frame.
 *
 * A frame that breaks the contract gets an `Err` reply when its `Rid` can be
 * read, and otherwise closes that one connection (1003 for text, 1007 for
 * bytes that are not plain MessagePack, 1008 for a value that is not an
 * envelope, 1009 for a frame over {@link MAX_FRAME_BYTES} or too costly to
 * decode). Nothing a peer sends can stop the server or change state it did
 * not ask for, and everything a peer can make the server hold is bounded
 * ({@link ServeLimits}, docs/security.md); the server's log lines are
 * rate-limited per cause.
 *
 * @module
 */
import type { Caller, PaxosAcceptor } from "./acceptor.ts";
import { AcceptorError } from "./errors.ts";
import {
  decodeRequestFrame,
  encodeReplies,
  MAX_FRAME_BYTES,
  type ReplyEnvelope,
  type RequestItem,
  WireError,
} from "./codec.ts";
import { RateLimitedLog } from "./log.ts";
import { DEFAULT_WS_LIMITS, serveWebSocket, type WsServerConnection } from "./ws_server.ts";

/**
 * What an acceptor server lets one peer make it hold. Each has a default
 * (see {@link DEFAULT_SERVE_LIMITS}) and docs/security.md tells why.
 */
export interface ServeLimits {
  /** Most open connections, upgrades under way included; more are answered 503. */
  readonly maxConnections: number;
  /** Time for a new connection to finish its WebSocket upgrade, in ms; then 408. */
  readonly handshakeTimeoutMs: number;
  /**
   * Most bytes of replies waiting to be sent on one connection. A request
   * whose reply would go over is answered `Overloaded` instead (so a frame's
   * replies are bounded too), and over it the server stops reading from
   * that peer until half is sent.
   */
  readonly maxPendingReplyBytes: number;
}

/** The default {@link ServeLimits}. */
export const DEFAULT_SERVE_LIMITS: ServeLimits = Object.freeze({
  maxConnections: DEFAULT_WS_LIMITS.maxConnections,
  handshakeTimeoutMs: DEFAULT_WS_LIMITS.handshakeTimeoutMs,
  maxPendingReplyBytes: DEFAULT_WS_LIMITS.maxQueuedBytes,
});

/** Options of {@link serveAcceptor}. */
export interface ServeAcceptorOptions extends Partial<ServeLimits> {
  /** Interface to listen on (default "127.0.0.1"). */
  readonly hostname?: string;
  /** Port to listen on; 0 picks a free one (default 0). */
  readonly port?: number;
  /**
   * Told about what peers did wrong and what the server refused, at most a
   * few lines per cause every 10 s and then a count (default: ignore).
   */
  readonly onError?: (message: string) => void;
}

/** A running acceptor server. */
export interface AcceptorServer {
  /** The URL proposers connect to: `ws://HOST:PORT/paxos`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** Stops listening, closes every connection and resolves when all is down. */
  close(): Promise<void>;
}

/**
 * Starts serving an acceptor; resolves once it listens.
 *
 * @example
 * ```ts
 * import { PaxosAcceptor } from "./acceptor.ts";
 * import { serveAcceptor } from "./server.ts";
 * const server = await serveAcceptor(new PaxosAcceptor(), { port: 0 });
 * server.url; // e.g. "ws://127.0.0.1:40123/paxos"
 * await server.close();
 * ```
 */
export async function serveAcceptor(
  acceptor: PaxosAcceptor,
  opts: ServeAcceptorOptions = {},
): Promise<AcceptorServer> {
  const limits: ServeLimits = { ...DEFAULT_SERVE_LIMITS, ...definedOnly(opts) };
  for (const [name, v] of Object.entries(limits)) {
    if (!(Number.isSafeInteger(v) && v > 0)) {
      throw new RangeError(`${name} must be a positive integer, got ${v}`);
    }
  }
  const log = new RateLimitedLog(opts.onError ?? (() => {}));
  const report = (cause: string, message: string) => log.log(cause, message);
  const server = await serveWebSocket({
    hostname: opts.hostname ?? "127.0.0.1",
    port: opts.port ?? 0,
    path: "/paxos",
    maxConnections: limits.maxConnections,
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
    maxMessageBytes: MAX_FRAME_BYTES,
    maxQueuedBytes: limits.maxPendingReplyBytes,
    onEvent: report,
    onConnection: (conn) => {
      const peer = new Peer(acceptor, conn, limits, report);
      conn.onMessage = (bytes) => peer.serveFrame(bytes);
    },
  });
  const host = server.addr.hostname.includes(":")
    ? `[${server.addr.hostname}]`
    : server.addr.hostname;
  return {
    url: `ws://${host}:${server.addr.port}/paxos`,
    port: server.addr.port,
    async close() {
      await server.close();
      log.close();
    },
  };
}

function definedOnly(o: object): Partial<ServeLimits> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(DEFAULT_SERVE_LIMITS)) {
    const v = (o as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

// One connection's requests: their replies, and the bounds on them.
class Peer {
  readonly #acceptor: PaxosAcceptor;
  readonly #conn: WsServerConnection;
  readonly #limits: ServeLimits;
  readonly #report: (cause: string, message: string) => void;
  // Reply bytes taken by requests whose reply frame is not queued yet.
  #reserved = 0;

  constructor(
    acceptor: PaxosAcceptor,
    conn: WsServerConnection,
    limits: ServeLimits,
    report: (cause: string, message: string) => void,
  ) {
    this.#acceptor = acceptor;
    this.#conn = conn;
    this.#limits = limits;
    this.#report = report;
  }

  // What waits for this peer, queued or not, stays under the bound.
  #take(bytes: number): boolean {
    if (this.#reserved + this.#conn.queuedBytes + bytes > this.#limits.maxPendingReplyBytes) {
      return false;
    }
    this.#reserved += bytes;
    return true;
  }

  serveFrame(bytes: Uint8Array): void {
    let items: RequestItem[];
    try {
      items = decodeRequestFrame(bytes);
    } catch (e) {
      // No Rid could be read: close this connection, keep serving the others.
      const msg = (e as Error).message;
      this.#report("bad frame", `closing ${this.#conn.remote}: ${msg}`);
      this.#conn.close(e instanceof WireError ? e.closeCode : 1008, msg);
      return;
    }
    // The frame's share of the connection's reply budget.
    const caller = {
      peer: this,
      taken: 0,
      take: (n: number) => this.#take(n) && (caller.taken += n, true),
    };
    Promise.all(items.map((item) => this.#serveItem(item, caller))).then((replies) => {
      // Once queued, the replies count in the connection's queue instead.
      this.#reserved -= caller.taken;
      this.#conn.send(encodeReplies(replies));
    }).catch((e) => this.#report("reply", `cannot send replies: ${(e as Error).message}`));
  }

  async #serveItem(item: RequestItem, caller: Caller): Promise<ReplyEnvelope> {
    if ("Err" in item) return item;
    try {
      const rep = item.Op === "Latest"
        ? await this.#acceptor.latest(item.Req.Key, caller)
        : await this.#acceptor.request(item.Op, item.Req, caller);
      return { Rid: item.Rid, Rep: rep };
    } catch (e) {
      // A refusal (Overloaded, a compacted version), or the store could not
      // record the change: either way nothing is acknowledged. Anything else
      // is a bug of ours.
      if (e instanceof AcceptorError) {
        return { Rid: item.Rid, Err: { Code: e.code, Msg: e.detail } };
      }
      return { Rid: item.Rid, Err: { Code: "Internal", Msg: (e as Error).message } };
    }
  }
}
