/**
 * Serves a {@link PaxosAcceptor} over WebSocket at `/paxos`, as docs/protocol.md
 * describes: binary frames of one envelope or a batch, replies tagged with
 * the request's `Rid`, in any order; a reply frame for each request frame
 * (several when its replies are large: {@link REPLY_FRAME_BYTES}).
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
  type ConfigRequest,
  decodeRequestFrame,
  encodeReplies,
  MAX_FRAME_BYTES,
  type ReplyEnvelope,
  type RequestItem,
  type Rid,
  valueBytes,
  WireError,
} from "./codec.ts";
import { RateLimitedLog } from "./log.ts";
import { type HelloCluster, type HelloReply, newNonce, type Secret } from "./handshake.ts";
import {
  allMembers,
  checkConfig,
  type ClusterIdentity,
  configOf,
  describeConfig,
  helloCluster,
  installConfig,
  type MemberConfig,
  randomId,
  type VouchedPeers,
} from "./identity.ts";
import { DEFAULT_WS_LIMITS, serveWebSocket, type WsServerConnection } from "./ws_server.ts";
import { ServerMetrics } from "./server_metrics.ts";

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

/**
 * Most requests of one frame served in one turn of the event loop (our
 * proposer sends at most 128 in a frame).
 */
export const SERVE_PER_TURN = 128;

/**
 * About the largest reply frame: a request frame whose replies take more is
 * answered in several frames, one per turn of the event loop.
 */
export const REPLY_FRAME_BYTES = 128 * 1024;

// About what a reply takes encoded.
function replyBytes(r: ReplyEnvelope): number {
  if ("Err" in r) return 32 + r.Err.Msg.length;
  const val = "Val" in r.Rep ? r.Rep.Val : null;
  return 64 + (val === null ? 0 : valueBytes(val));
}

/** Options of {@link serveAcceptor}. */
export interface ServeAcceptorOptions extends Partial<ServeLimits> {
  /**
   * The acceptor's cluster identity, stated to clients at `Hello` (trust
   * extension): its cluster, member id, membership and settings. Without
   * one the acceptor states only an instance id of its own.
   */
  readonly identity?: ClusterIdentity;
  /**
   * Keeps the identity once a `Config` request changed its membership
   * (membership extension): a durable acceptor writes its identity file.
   * The request is answered once this resolves; when it rejects, the change
   * is refused (`StorageError`) and not made.
   */
  readonly saveIdentity?: (identity: ClusterIdentity) => Promise<void>;
  /**
   * The instances of the other members as clients vouched for them
   * (`Attest`); kept on disk by a durable acceptor. Only with `identity`.
   */
  readonly peers?: VouchedPeers;
  /**
   * The cluster's shared secret: a connection must prove it knows it (and
   * is shown that the acceptor does) before anything else is served.
   * Listening on an address other than loopback needs one.
   */
  readonly secret?: Secret;
  /** Serve `wss://` with this certificate chain and private key (PEM). */
  readonly tls?: { readonly cert: string; readonly key: string };
  /**
   * The web origins (`https://host:port`) whose pages may connect: an
   * upgrade carrying an `Origin` header (any browser's) is refused unless
   * its origin is listed (default: none).
   */
  readonly allowOrigins?: readonly string[];
  /** Interface to listen on (default "127.0.0.1"). */
  readonly hostname?: string;
  /** Port to listen on; 0 picks a free one (default 0). */
  readonly port?: number;
  /**
   * Told about what peers did wrong and what the server refused, at most a
   * few lines per cause every 10 s and then a count (default: ignore). The
   * cause is a fixed string ("connections": refused at the connection
   * limit; "handshake", "protocol", "bad frame", "unauthorized", "accept",
   * "reply", "config"); `held` is given on the line that counts those not
   * shown.
   */
  readonly onError?: (message: string, cause: string, held?: number) => void;
}

/** A running acceptor server. */
export interface AcceptorServer {
  /** The URL proposers connect to: `ws://HOST:PORT/paxos`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** What it counts: served at `/metrics` and `/healthz` on its port too. */
  readonly metrics: ServerMetrics;
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
  const hostname = opts.hostname ?? "127.0.0.1";
  if (opts.secret === undefined && !isLoopback(hostname)) {
    throw new TypeError(
      `refusing to listen on ${hostname} without a shared secret: every host that can reach ` +
        `it could read and write every key; give a secret (--secret-file), or listen on 127.0.0.1`,
    );
  }
  const trust: Trust = {
    instance: opts.identity?.instance ?? randomId(),
    membership: opts.identity === undefined
      ? undefined
      : new Membership(opts.identity, opts.saveIdentity),
    peers: opts.peers,
    secret: opts.secret,
  };
  const origins = new Set(opts.allowOrigins ?? []);
  const log = new RateLimitedLog(opts.onError ?? (() => {}));
  // The frames being served, each until its replies are sent.
  const serving = new Set<Promise<void>>();
  let closing = false;
  let connections = () => 0;
  const metrics = new ServerMetrics(acceptor, {
    connections: () => connections(),
    closing: () => closing,
    member: () => {
      const id = trust.membership?.identity;
      return id === undefined ? undefined : { cluster: id.cluster, member: id.member };
    },
  });
  const report = (cause: string, message: string) => {
    metrics.event(cause);
    log.log(cause, message);
  };
  const server = await serveWebSocket({
    hostname,
    port: opts.port ?? 0,
    path: "/paxos",
    ...(opts.tls === undefined ? {} : { tls: opts.tls }),
    // A browser sends Origin: a page from anywhere must not reach the
    // acceptors on this machine's loopback.
    checkUpgrade: (headers) => {
      const origin = headers.get("origin");
      return origin === undefined || origins.has(origin)
        ? null
        : `origin ${JSON.stringify(origin.slice(0, 100))} is not allowed (--allow-origin)`;
    },
    maxConnections: limits.maxConnections,
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
    maxMessageBytes: MAX_FRAME_BYTES,
    maxQueuedBytes: limits.maxPendingReplyBytes,
    onEvent: report,
    onHttpGet: (target) => metrics.http(target),
    onConnection: (conn) => {
      const peer = new Peer(acceptor, conn, limits, report, trust, metrics);
      conn.onMessage = (bytes) => {
        const { done, work } = peer.serveFrame(bytes);
        serving.add(done);
        done.finally(() => serving.delete(done));
        return work; // for the connection's turn
      };
    },
  });
  connections = () => server.connections;
  const host = server.addr.hostname.includes(":")
    ? `[${server.addr.hostname}]`
    : server.addr.hostname;
  return {
    url: `${opts.tls === undefined ? "ws" : "wss"}://${host}:${server.addr.port}/paxos`,
    port: server.addr.port,
    metrics,
    async close() {
      closing = true;
      await server.close();
      // What is still being served finds its connection closed.
      while (serving.size > 0) await Promise.all(serving);
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

/**
 * Whether a host name or address is this machine's loopback.
 *
 * @example
 * ```ts
 * import { isLoopback } from "./server.ts";
 * isLoopback("127.0.0.1"); // true
 * isLoopback("0.0.0.0"); // false: every interface
 * ```
 */
export function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "::1" || hostname === "[::1]" ||
    /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

// What a server says of itself and checks of its peers (trust extension).
interface Trust {
  readonly instance: string;
  readonly membership: Membership | undefined;
  readonly peers: VouchedPeers | undefined;
  readonly secret: Secret | undefined;
}

/**
 * An acceptor's identity, whose membership `Config` changes (membership
 * extension): one change at a time, kept (saved) before it is told; and
 * which connections it may no longer serve. The server's, exported for the
 * deterministic simulation (sim/), which runs it behind its own network.
 *
 * @example
 * ```ts
 * import { Membership } from "./server.ts";
 * import { makeIdentity, randomId } from "./identity.ts";
 * const m = new Membership(makeIdentity({
 *   cluster: "demo", clusterId: randomId(), member: 0, members: [0, 1, 2],
 *   keepVersions: null, instance: randomId(),
 * }));
 * await m.install({ epoch: 1, members: [0, 1, 3], joint: [0, 1, 2] }); // null: installed
 * m.staleness(0); // "the membership changed: epoch 1: ..."
 * ```
 */
export class Membership {
  #identity: ClusterIdentity;
  readonly #save: ((identity: ClusterIdentity) => Promise<void>) | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  /** Serves `identity`; `save` keeps each new one (durably) before it counts. */
  constructor(identity: ClusterIdentity, save?: (identity: ClusterIdentity) => Promise<void>) {
    this.#identity = identity;
    this.#save = save;
  }

  /** The identity held now. */
  get identity(): ClusterIdentity {
    return this.#identity;
  }

  /** The epoch of the configuration held now. */
  get epoch(): number {
    return this.#identity.epoch ?? 0;
  }

  /** Installs a configuration: null when done (or nothing to do), else why not. */
  install(
    next: MemberConfig,
  ): Promise<{ code: "StaleMembership" | "StorageError"; msg: string } | null> {
    const run = this.#queue.then(async () => {
      const id = installConfig(this.#identity, next);
      if (typeof id === "string") return { code: "StaleMembership" as const, msg: id };
      if (id === this.#identity) return null;
      try {
        await this.#save?.(id);
      } catch (e) {
        return {
          code: "StorageError" as const,
          msg: `cannot keep configuration ${describeConfig(next)}: ${(e as Error).message}`,
        };
      }
      this.#identity = id;
      return null;
    });
    this.#queue = run;
    return run;
  }

  /**
   * Whether this member is new in the joint configuration held: it may not
   * yet hold what was chosen before it joined (the catch-up brings it), so
   * it casts no first write's round-0 vote (see `PaxosAcceptor.acceptFirst`).
   */
  get catchingUp(): boolean {
    const id = this.#identity;
    const joint = configOf(id).joint;
    return id.joining === true || (joint !== undefined && !joint.includes(id.member));
  }

  /** Why a connection bound to `epoch` may not be served now, or null. */
  staleness(epoch: number): string | null {
    const id = this.#identity;
    const c = configOf(id);
    if (id.joining === true) {
      return `member ${id.member} is joining: it serves nothing until a configuration lists it ` +
        `(member add)`;
    }
    if (epoch < c.epoch) {
      return `the membership changed: ${describeConfig(c)}; connect again with its members`;
    }
    if (!allMembers(c).includes(id.member)) {
      return `member ${id.member} was removed: ${describeConfig(c)}`;
    }
    return null;
  }
}

// One connection's requests: their replies, and the bounds on them.
class Peer {
  readonly #acceptor: PaxosAcceptor;
  readonly #conn: WsServerConnection;
  readonly #limits: ServeLimits;
  readonly #report: (cause: string, message: string) => void;
  // Reply bytes taken by requests whose reply frame is not queued yet.
  #reserved = 0;
  readonly #trust: Trust;
  readonly #metrics: ServerMetrics;
  // Whether the peer proved it knows the secret (or none is needed).
  #authed: boolean;
  // The nonces of the last Hello: the peer's and ours.
  #nonces: { readonly peer: Uint8Array; readonly ours: Uint8Array } | null = null;
  // Close the connection once the replies of this frame are sent, and why.
  #closeAfterReply = false;
  #closeWhy = "unauthorized";
  // The membership epoch this connection uses (membership extension): what
  // its Hello said, or the acceptor's at its Hello or first request.
  #epoch: number | null = null;
  // The replies of frames served, waiting to be sent, in order; and the one
  // sending them.
  readonly #outbox: { replies: ReplyEnvelope[]; at: number; taken: number }[] = [];
  #draining = false;
  #sending: Promise<void> = Promise.resolve();

  constructor(
    acceptor: PaxosAcceptor,
    conn: WsServerConnection,
    limits: ServeLimits,
    report: (cause: string, message: string) => void,
    trust: Trust,
    metrics: ServerMetrics,
  ) {
    this.#trust = trust;
    this.#metrics = metrics;
    this.#authed = trust.secret === undefined;
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

  // Serves a frame. `done` resolves once its replies are sent; `work` is how
  // many requests it held, or, for a frame of more than SERVE_PER_TURN, a
  // promise of the turn in which the last of them was handed to the
  // acceptor: only then does the connection read on.
  serveFrame(bytes: Uint8Array): { done: Promise<void>; work: number | Promise<void> } {
    const start = performance.now();
    this.#metrics.frame();
    let items: RequestItem[];
    try {
      items = decodeRequestFrame(bytes);
    } catch (e) {
      // No Rid could be read: close this connection, keep serving the others.
      const msg = (e as Error).message;
      this.#report("bad frame", `closing ${this.#conn.remote}: ${msg}`);
      this.#conn.close(e instanceof WireError ? e.closeCode : 1008, msg);
      return { done: Promise.resolve(), work: 2 };
    }
    // The frame's share of the connection's reply budget.
    const caller = {
      peer: this,
      taken: 0,
      take: (n: number) => this.#take(n) && (caller.taken += n, true),
    };
    const pending: Promise<ReplyEnvelope>[] = [];
    const serve = (from: number) => {
      for (const item of items.slice(from, from + SERVE_PER_TURN)) {
        pending.push(this.#serveItem(item, caller));
      }
    };
    serve(0);
    // A frame's work: its requests, and about two more for the frame itself.
    let work: number | Promise<void> = items.length + 2;
    if (items.length > SERVE_PER_TURN) {
      // The rest, SERVE_PER_TURN a turn, so that a frame of thousands of
      // requests does not hold up the other connections.
      work = (async () => {
        for (let i = SERVE_PER_TURN; i < items.length; i += SERVE_PER_TURN) {
          await this.#conn.pace();
          serve(i);
        }
      })();
    }
    const all = typeof work === "number"
      ? Promise.all(pending)
      : work.then(() => Promise.all(pending));
    const done = all.then((replies) => {
      // Each request's time is its frame's: its reply goes out with theirs.
      const seconds = (performance.now() - start) / 1000;
      for (let i = 0; i < replies.length; i++) {
        const item = items[i]!;
        const reply = replies[i]!;
        this.#metrics.request(
          "Err" in item ? "invalid" : item.Op,
          "Err" in reply ? reply.Err.Code : "ok",
          seconds,
        );
      }
      return this.#send(replies, caller.taken);
    })
      .then(() => {
        if (this.#closeAfterReply) this.#conn.close(1008, this.#closeWhy);
      })
      .catch((e) => this.#report("reply", `cannot send replies: ${(e as Error).message}`));
    return { done, work };
  }

  // Sends a frame's replies, after those of the frames before it: in one
  // frame, or in frames of about REPLY_FRAME_BYTES when they take more; and
  // no more than about that much in one turn of the event loop, so that
  // nobody waits long behind the encoding of large answers. What replies took
  // of the budget counts in the connection's queue once they are in it.
  #send(replies: ReplyEnvelope[], taken: number): Promise<void> {
    this.#outbox.push({ replies, at: 0, taken });
    if (!this.#draining) this.#sending = this.#drain();
    return this.#sending;
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      let turn = 0; // bytes sent in this turn
      while (this.#outbox.length > 0 && this.#conn.isOpen) {
        if (turn >= REPLY_FRAME_BYTES) {
          // A reply of 1 MiB is eight turns' worth.
          await this.#conn.pace(Math.floor(turn / REPLY_FRAME_BYTES));
          turn = 0;
          continue;
        }
        const o = this.#outbox[0]!;
        let bytes = 0;
        let j = o.at;
        while (
          j < o.replies.length &&
          (j === o.at || bytes + replyBytes(o.replies[j]!) <= REPLY_FRAME_BYTES)
        ) {
          bytes += replyBytes(o.replies[j++]!);
        }
        this.#conn.send(encodeReplies(o.replies.slice(o.at, j)));
        turn += Math.max(bytes, 64);
        const queued = j === o.replies.length ? o.taken : Math.min(o.taken, bytes);
        this.#reserved -= queued;
        o.taken -= queued;
        o.at = j;
        if (j === o.replies.length) this.#outbox.shift();
      }
    } finally {
      // Gone: what was not sent takes nothing any more.
      for (const o of this.#outbox.splice(0)) this.#reserved -= o.taken;
      this.#draining = false;
    }
  }

  async #serveItem(item: RequestItem, caller: Caller): Promise<ReplyEnvelope> {
    if ("Err" in item) return item;
    if (item.Op === "Hello") {
      this.#epoch = item.Req.Epoch ?? this.#trust.membership?.epoch ?? 0;
      return { Rid: item.Rid, Rep: await this.#hello(item.Req.Nonce) };
    }
    if (item.Op === "Auth") return await this.#auth(item.Rid, item.Req.Proof);
    if (!this.#authed) {
      this.#closeAfterReply = true;
      this.#report(
        "unauthorized",
        `${this.#conn.remote} sent ${item.Op} before proving the secret`,
      );
      return this.#unauthorized(item.Rid, `${item.Op} before Auth`);
    }
    if (item.Op === "Attest") return await this.#attest(item.Rid, item.Req.Peers);
    if (item.Op === "Config") return await this.#config(item.Rid, item.Req);
    const membership = this.#trust.membership;
    if (membership !== undefined) {
      this.#epoch ??= membership.epoch;
      const stale = membership.staleness(this.#epoch);
      if (stale !== null) {
        this.#closeAfterReply = true;
        this.#closeWhy = "stale membership";
        return { Rid: item.Rid, Err: { Code: "StaleMembership", Msg: stale } };
      }
    }
    try {
      const rep = item.Op === "Latest"
        ? await this.#acceptor.latest(
          item.Req.Key,
          item.Req.Bal,
          membership?.catchingUp === true ? undefined : item.Req.Val,
          caller,
        )
        : item.Op === "Keys"
        ? await this.#acceptor.keys(item.Req.From, item.Req.Limit, item.Req.End, caller)
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

  // Config: install a membership configuration (membership extension).
  async #config(rid: Rid, req: ConfigRequest): Promise<ReplyEnvelope> {
    const membership = this.#trust.membership;
    if (membership === undefined) {
      return {
        Rid: rid,
        Err: { Code: "BadRequest", Msg: "this acceptor has no cluster identity to configure" },
      };
    }
    let next: MemberConfig;
    try {
      next = checkConfig({
        epoch: req.Epoch,
        members: req.Members,
        ...(req.Joint === undefined ? {} : { joint: req.Joint }),
        ...(req.Urls === undefined ? {} : { urls: req.Urls }),
        ...(req.Cursor === undefined ? {} : { cursor: req.Cursor }),
      });
    } catch (e) {
      return { Rid: rid, Err: { Code: "BadRequest", Msg: `Req: ${(e as Error).message}` } };
    }
    const refused = await membership.install(next);
    if (refused === null) return { Rid: rid, Rep: { Ok: true } };
    this.#report("config", `refused ${describeConfig(next)}: ${refused.msg}`);
    return { Rid: rid, Err: { Code: refused.code, Msg: refused.msg } };
  }

  // Hello: who we are, and with a secret our nonce and proof.
  async #hello(peerNonce: Uint8Array): Promise<HelloReply> {
    const { instance, peers, secret } = this.#trust;
    const identity = this.#trust.membership?.identity;
    const reply: {
      instance: string;
      peers: ReadonlyMap<number, string>;
      cluster?: HelloCluster;
      nonce?: Uint8Array;
      proof?: Uint8Array;
    } = { instance, peers: peers?.map ?? new Map() };
    if (identity !== undefined) {
      reply.cluster = helloCluster(identity);
    }
    if (secret !== undefined) {
      const ours = newNonce();
      this.#nonces = { peer: peerNonce, ours };
      reply.nonce = ours;
      reply.proof = await secret.acceptorProof(peerNonce, ours);
    }
    return reply;
  }

  // Auth: the peer's proof of the secret, for the nonces of its Hello.
  async #auth(rid: Rid, proof: Uint8Array): Promise<ReplyEnvelope> {
    const { secret } = this.#trust;
    if (secret === undefined) return { Rid: rid, Rep: { Ok: true } };
    const nonces = this.#nonces;
    this.#nonces = null; // a proof is good for one Auth
    if (nonces !== null && await secret.checkClientProof(proof, nonces.ours, nonces.peer)) {
      this.#authed = true;
      return { Rid: rid, Rep: { Ok: true } };
    }
    this.#closeAfterReply = true;
    this.#report("unauthorized", `${this.#conn.remote} failed to prove the shared secret`);
    return this.#unauthorized(
      rid,
      nonces === null ? "Auth without a Hello first" : "wrong proof: the secrets differ",
    );
  }

  #unauthorized(rid: Rid, why: string): ReplyEnvelope {
    return {
      Rid: rid,
      Err: { Code: "Unauthorized", Msg: `the shared secret was not proved (${why})` },
    };
  }

  // Attest: a client vouches for the members' instances.
  async #attest(rid: Rid, vouched: ReadonlyMap<number, string>): Promise<ReplyEnvelope> {
    const { peers, instance } = this.#trust;
    const identity = this.#trust.membership?.identity;
    if (identity === undefined || peers === undefined) return { Rid: rid, Rep: { Ok: true } };
    const conflict = await peers.vouch(identity, instance, vouched);
    if (conflict === null) return { Rid: rid, Rep: { Ok: true } };
    return { Rid: rid, Err: { Code: "BadRequest", Msg: conflict } };
  }
}
