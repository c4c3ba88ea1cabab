/**
 * The proposer's side of the network: an {@link AcceptorClient} sends a
 * Prepare or Accept to one acceptor and resolves with its reply.
 *
 * {@link WebSocketAcceptorClient} keeps one long-lived WebSocket connection to
 * an acceptor and multiplexes requests over it: each request gets a request
 * id (`Rid`) and a timeout, requests issued in the same tick share one batch
 * frame, replies are matched by `Rid` in any order, requests in flight fail at
 * once when the connection drops, and the connection is re-established with
 * randomized exponential backoff.
 *
 * @module
 */
import type { Acceptor, BallotNum, KeysReply, LatestReply, Op, Proposer, Value } from "./types.ts";
import type { Clock, Random } from "./clock.ts";
import { backoff, mathRandom, systemClock } from "./clock.ts";
import {
  type Ack,
  type ConfigRequest,
  decodeReplyFrame,
  encodeRequests,
  type RequestEnvelope,
  type WireErrorBody,
} from "./codec.ts";
import { AcceptorError, isErrorCode, netError, TrustError } from "./errors.ts";
import { type HelloReply, newNonce, type Secret } from "./handshake.ts";
import { parseWsUrl, WsConnection } from "./ws_client.ts";

/**
 * Anything a proposer can send Prepare and Accept to: a network client, or an
 * acceptor in the same process, or a simulated one.
 *
 * @example
 * ```ts
 * import type { AcceptorClient } from "./transport.ts";
 * import { PaxosAcceptor } from "./acceptor.ts";
 * const local: AcceptorClient = new PaxosAcceptor();
 * const rep = await local.request("Prepare", {
 *   Id: { Key: "k", Ver: 0n },
 *   Bal: { N: 1n, ProposerId: 1n },
 *   Val: null,
 * });
 * ```
 */
export interface AcceptorClient {
  /** A name for messages, such as the acceptor's URL. */
  readonly name: string;
  /** Sends one request; rejects on timeout, connection loss or an `Err` reply. */
  request(op: Op, req: Proposer): Promise<Acceptor>;
}

/**
 * An acceptor that also answers the kv extension's `Latest`: what the KV
 * layer needs to find the latest version of a key.
 */
export interface KvAcceptorClient extends AcceptorClient {
  /**
   * The highest version of `key` the acceptor voted in (-1n if none) and its
   * floor. With `promise`, the acceptor also promises that ballot at the
   * version after it, as a Prepare there would, and replies the promise it
   * held there as `NextBal` (an acceptor that does not know this answers a
   * plain Latest). With `first` too, an acceptor that holds nothing of the
   * key votes `first` at `promise` in version 0 (a first write folded into
   * its Latest, see `PaxosAcceptor.acceptFirst`), and replies the Latest
   * after that vote.
   */
  latest(key: string, promise?: BallotNum, first?: Value): Promise<LatestReply>;
}

/**
 * An acceptor that also answers the kv extension's `Keys`: what listings and
 * membership catch-up need to walk through the keys an acceptor holds.
 */
export interface KeysAcceptorClient extends KvAcceptorClient {
  /**
   * A page of the keys the acceptor holds, ascending, from `from` (included)
   * to `end` (excluded, when given): at most `limit` of them, fewer when they
   * are long; `More` tells whether the range holds more.
   */
  keys(from: string, limit: number, end?: string): Promise<KeysReply>;
}

/** Options of {@link WebSocketAcceptorClient}. */
export interface WebSocketClientOptions {
  /** How long a request may wait for its reply, in ms (default 1000). */
  readonly timeoutMs?: number;
  /** How long connecting may take, in ms (default: the request timeout). */
  readonly connectTimeoutMs?: number;
  /** First reconnect delay after a failure, in ms (default 50). */
  readonly minBackoffMs?: number;
  /** Longest reconnect delay, in ms (default 2000). */
  readonly maxBackoffMs?: number;
  /** Most requests in one batch frame (default 128). */
  readonly maxBatch?: number;
  /** Time source (default: the system clock). */
  readonly clock?: Clock;
  /** Randomness for backoff jitter (default: Math.random). */
  readonly random?: Random;
  /**
   * The cluster's shared secret: each connection then proves it knows it and
   * checks that the acceptor does (trust extension). Without one, an
   * acceptor that asks for a secret is refused.
   */
  readonly secret?: Secret;
  /** For `wss://` URLs: certificates (PEM) to trust besides the system's roots. */
  readonly caCerts?: readonly string[];
  /**
   * Checks what an acceptor says of itself at each connect: returns why it
   * is refused, or null. (The KV checks that a reconnect reaches the same
   * member of the same cluster.)
   */
  readonly verify?: (hello: HelloReply) => string | null;
  /**
   * How to open a connection (default: {@link WsConnection}, over Deno's
   * TCP). A page in a browser passes `browserSocket` (browser_socket.ts).
   */
  readonly openSocket?: SocketOpener;
  /**
   * The membership epoch this client uses, said in each connection's
   * `Hello` (membership extension): an acceptor whose membership is newer
   * answers `StaleMembership`. Undefined: the acceptor's own at connect.
   */
  readonly epoch?: () => number | undefined;
}

/**
 * One message connection to an acceptor, as the client uses it:
 * {@link WsConnection} (Deno, raw TCP) or a wrapper of the browser's
 * WebSocket (`browserSocket` in browser_socket.ts).
 */
export interface AcceptorSocket {
  /** Sends one binary message. */
  send(frame: Uint8Array): void;
  /** Closes the connection. */
  close(code?: number, reason?: string): Promise<void>;
  /** Called with each binary message received. */
  onMessage: (bytes: Uint8Array) => void;
  /** Called once when the connection is gone, with why. */
  onClose: (reason: Error) => void;
}

/** Opens an {@link AcceptorSocket} to a `ws://` or `wss://` URL. */
export type SocketOpener = (
  url: string,
  opts: {
    readonly timeoutMs: number;
    readonly caCerts?: readonly string[];
    readonly signal?: AbortSignal;
  },
) => Promise<AcceptorSocket>;

type Reply = Acceptor | LatestReply | KeysReply | HelloReply | Ack;

interface Pending {
  readonly op: RequestEnvelope["Op"];
  readonly resolve: (a: Reply) => void;
  readonly reject: (e: Error) => void;
  /** When the request times out (clock time). */
  readonly deadline: number;
}

/**
 * A client for one acceptor over one multiplexed WebSocket connection.
 *
 * @example
 * ```ts ignore
 * import { WebSocketAcceptorClient } from "./transport.ts";
 * const c = new WebSocketAcceptorClient("ws://127.0.0.1:3333/paxos");
 * const rep = await c.request("Prepare", {
 *   Id: { Key: "foo", Ver: 0n },
 *   Bal: { N: 1n, ProposerId: 7n },
 *   Val: null,
 * });
 * await c.close();
 * ```
 */
export class WebSocketAcceptorClient implements KeysAcceptorClient {
  /** The acceptor's URL. */
  readonly name: string;
  readonly #timeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #minBackoffMs: number;
  readonly #maxBackoffMs: number;
  readonly #maxBatch: number;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #secret: Secret | undefined;
  readonly #caCerts: readonly string[] | undefined;
  readonly #verify: ((hello: HelloReply) => string | null) | undefined;
  readonly #openSocket: SocketOpener;
  readonly #epoch: (() => number | undefined) | undefined;
  #hello: HelloReply | null | undefined = undefined;
  #refusal: TrustError | null = null;
  // The StaleMembership an acceptor answered this client, which says its
  // epoch (the membership moved past it, or no longer has this member):
  // such a client cannot become current again, and each later request
  // fails with it too (not with "unreachable" once the acceptor closed the
  // connection after it).
  #stale: AcceptorError | null = null;

  #conn: AcceptorSocket | null = null;
  #connecting: Promise<void> | null = null;
  // Aborts the connection being made (TCP, TLS, upgrade) when we close.
  readonly #closing = new AbortController();
  #failures = 0;
  #downUntil = 0;
  #lastError: Error | null = null;
  #closed = false;
  #nextRid = 1;
  readonly #pending = new Map<number, Pending>();
  #outbox: RequestEnvelope[] = [];
  #flushQueued = false;
  #sweep: unknown = null;

  /** Builds a client; it connects on the first request. Throws a TypeError for a bad URL. */
  constructor(url: string, opts: WebSocketClientOptions = {}) {
    parseWsUrl(url);
    this.name = url;
    this.#timeoutMs = opts.timeoutMs ?? 1000;
    this.#connectTimeoutMs = opts.connectTimeoutMs ?? this.#timeoutMs;
    this.#minBackoffMs = opts.minBackoffMs ?? 50;
    this.#maxBackoffMs = opts.maxBackoffMs ?? 2000;
    this.#maxBatch = opts.maxBatch ?? 128;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? mathRandom;
    this.#secret = opts.secret;
    this.#caCerts = opts.caCerts;
    this.#verify = opts.verify;
    this.#openSocket = opts.openSocket ?? ((url, o) => WsConnection.connect(url, o));
    this.#epoch = opts.epoch;
  }

  /**
   * What the acceptor said of itself at the last handshake: undefined
   * before the first, null for a v1 acceptor (it does not know `Hello`).
   */
  get hello(): HelloReply | null | undefined {
    return this.#hello;
  }

  /** Why the last handshake refused this acceptor (or it refused us), or null. */
  get refusal(): TrustError | null {
    return this.#refusal;
  }

  /**
   * Vouches to the acceptor for the instances of the cluster's members
   * (trust extension), so that it can tell clients about a member that
   * comes back as another instance. Rejects with a TrustError when the
   * acceptor knows another instance for one of them.
   */
  async attest(peers: ReadonlyMap<number, string>): Promise<void> {
    try {
      await this.#send({ Rid: 0, Op: "Attest", Req: { Peers: peers } });
    } catch (e) {
      if (e instanceof AcceptorError && e.code !== "UnknownOp") {
        throw new TrustError(e.message, { cause: e });
      }
      throw e;
    }
  }

  /**
   * Connects now (when not connected) and resolves once the connection and
   * its handshake are done; rejects with why not (a {@link TrustError} when
   * the acceptor or this client refused the other).
   */
  async ready(): Promise<void> {
    if (this.#closed) throw netError("NotConnected", `client for ${this.name} is closed`);
    if (this.#conn !== null) return;
    if (this.#connecting === null) {
      if (this.#clock.now() < this.#downUntil && this.#lastError !== null) {
        throw this.#refusal ?? this.#lastError;
      }
      this.#connect();
    }
    await this.#connecting;
    if (this.#conn === null) {
      throw this.#refusal ?? this.#lastError ?? netError("NotConnected", this.name);
    }
  }

  /** How many requests are waiting for their replies. */
  get inFlight(): number {
    return this.#pending.size;
  }

  /** Sends one request and resolves with the acceptor's reply. */
  request(op: Op, req: Proposer): Promise<Acceptor> {
    return this.#send({ Rid: 0, Op: op, Req: req }) as Promise<Acceptor>;
  }

  /**
   * Sends the membership extension's `Config`: the acceptor installs the
   * configuration, unless it has a newer one (then an AcceptorError of code
   * `StaleMembership` says which).
   */
  async config(req: ConfigRequest): Promise<void> {
    await this.#send({ Rid: 0, Op: "Config", Req: req });
  }

  /**
   * Sends the kv extension's `Latest` for a key (with a ballot to promise
   * at the next version, and a first write's value, when given) and
   * resolves with the reply.
   */
  latest(key: string, promise?: BallotNum, first?: Value): Promise<LatestReply> {
    const req = promise === undefined
      ? { Key: key }
      : first === undefined
      ? { Key: key, Bal: promise }
      : { Key: key, Bal: promise, Val: first };
    return this.#send({ Rid: 0, Op: "Latest", Req: req }) as Promise<LatestReply>;
  }

  /** Sends the kv extension's `Keys` and resolves with a page of the acceptor's keys. */
  keys(from: string, limit: number, end?: string): Promise<KeysReply> {
    const req = end === undefined
      ? { From: from, Limit: limit }
      : { From: from, End: end, Limit: limit };
    return this.#send({ Rid: 0, Op: "Keys", Req: req }) as Promise<KeysReply>;
  }

  // Queues a request under a fresh request id (replacing the envelope's).
  #send(env: RequestEnvelope): Promise<Reply> {
    const op = env.Op;
    if (this.#closed) {
      return Promise.reject(netError("NotConnected", `client for ${this.name} is closed`));
    }
    if (this.#stale !== null) return Promise.reject(this.#stale);
    if (this.#conn === null && this.#connecting === null) {
      if (this.#clock.now() < this.#downUntil) {
        return Promise.reject(
          netError(
            "ConnectionRefused",
            `${this.name} is unreachable (retrying later): ${this.#lastError?.message}`,
          ),
        );
      }
      this.#connect();
    }
    return new Promise<Reply>((resolve, reject) => {
      const rid = this.#expect(op, resolve, reject);
      this.#outbox.push({ ...env, Rid: rid });
      if (this.#conn !== null) this.#queueFlush();
    });
  }

  // Registers a request waiting for its reply, under a fresh request id.
  #expect(op: RequestEnvelope["Op"], resolve: (r: Reply) => void, reject: (e: Error) => void) {
    const rid = this.#nextRid++;
    if (this.#nextRid > Number.MAX_SAFE_INTEGER) this.#nextRid = 1;
    this.#pending.set(rid, { op, resolve, reject, deadline: this.#clock.now() + this.#timeoutMs });
    this.#armSweep();
    return rid;
  }

  // Sends one request on `conn` at once, outside the outbox: the handshake's.
  #call(conn: AcceptorSocket, env: RequestEnvelope): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const rid = this.#expect(env.Op, resolve, reject);
      conn.send(encodeRequests([{ ...env, Rid: rid }]));
    });
  }

  /** Closes the connection; requests in flight fail at once. */
  async close(): Promise<void> {
    this.#closed = true;
    const closed = netError("NotConnected", `client for ${this.name} is closed`);
    // A connection being made is dropped now, not when its timeout fires (an
    // acceptor that takes the TCP connection and never answers would hold
    // the caller for that long): the handshake's own requests fail with the
    // rest.
    this.#closing.abort(closed);
    this.#failAll(closed);
    const connecting = this.#connecting;
    if (connecting !== null) await connecting;
    const conn = this.#conn;
    this.#conn = null;
    this.#failAll(closed);
    if (conn !== null) await conn.close();
  }

  #connect(): void {
    this.#connecting = this.#open().then(async (conn) => {
      this.#connecting = null;
      if (this.#closed) {
        await conn.close();
        return;
      }
      this.#failures = 0;
      this.#refusal = null;
      this.#conn = conn;
      conn.onClose = (reason) => this.#onClose(conn, reason);
      this.#flush();
    }, (e: Error) => {
      this.#connecting = null;
      this.#markDown(e);
      if (e instanceof TrustError) {
        this.#refusal = e;
        this.#failAll(e);
      } else {
        this.#failAll(
          netError("ConnectionRefused", `cannot connect to ${this.name}: ${e.message}`),
        );
      }
    });
  }

  // A connection, handshake done.
  async #open(): Promise<AcceptorSocket> {
    let conn: AcceptorSocket;
    try {
      conn = await this.#openSocket(this.name, {
        timeoutMs: this.#connectTimeoutMs,
        signal: this.#closing.signal,
        ...(this.#caCerts === undefined ? {} : { caCerts: this.#caCerts }),
      });
    } catch (e) {
      // A certificate we do not trust: a refusal, not a network failure.
      if (e instanceof Error && e.name === "InvalidData" && /certificate/i.test(e.message)) {
        throw new TrustError(
          `${this.name}: its TLS certificate is not trusted (${e.message}): give the ` +
            `certificate of the CA that signed it with --ca-file`,
          { cause: e },
        );
      }
      throw e;
    }
    let lost!: (e: Error) => void;
    const closed = new Promise<never>((_, reject) => lost = reject);
    closed.catch(() => {});
    conn.onMessage = (bytes) => this.#onMessage(conn, bytes);
    conn.onClose = (reason) =>
      lost(netError("ConnectionReset", `closed during the handshake: ${reason.message}`));
    try {
      await Promise.race([this.#handshake(conn), closed]);
      return conn;
    } catch (e) {
      await conn.close();
      throw e;
    }
  }

  // The trust extension's handshake (handshake.ts): who the acceptor is,
  // and the proofs of the shared secret, both ways.
  async #handshake(conn: AcceptorSocket): Promise<void> {
    const nonce = newNonce();
    let hello: HelloReply;
    try {
      const epoch = this.#epoch?.();
      const req = epoch === undefined ? { Nonce: nonce } : { Nonce: nonce, Epoch: epoch };
      hello = await this.#call(conn, { Rid: 0, Op: "Hello", Req: req }) as HelloReply;
    } catch (e) {
      if (!(e instanceof AcceptorError && e.code === "UnknownOp")) throw e;
      // A v1 acceptor: it cannot say who it is, nor prove a secret.
      if (this.#secret !== undefined) {
        throw new TrustError(
          `${this.name} does not speak the trust extension (a v1 acceptor): it cannot prove ` +
            `that it knows the shared secret`,
        );
      }
      this.#hello = null;
      return;
    }
    if (hello.nonce === undefined || hello.proof === undefined) {
      if (this.#secret !== undefined) {
        throw new TrustError(
          `${this.name} has no shared secret: it cannot prove that it is a member of your ` +
            `cluster (start it with --secret-file)`,
        );
      }
    } else {
      if (this.#secret === undefined) {
        throw new TrustError(
          `${this.name} asks for the cluster's shared secret: give --secret-file FILE ` +
            `(or PAXOSKV_SECRET_FILE)`,
        );
      }
      if (!await this.#secret.checkAcceptorProof(hello.proof, nonce, hello.nonce)) {
        throw new TrustError(`${this.name} does not know the shared secret: the secrets differ`);
      }
      const proof = await this.#secret.clientProof(hello.nonce, nonce);
      try {
        await this.#call(conn, { Rid: 0, Op: "Auth", Req: { Proof: proof } });
      } catch (e) {
        if (e instanceof AcceptorError) throw new TrustError(e.message, { cause: e });
        throw e;
      }
    }
    const before = this.#hello;
    if (
      before?.cluster !== undefined && hello.cluster !== undefined &&
      before.instance !== hello.instance
    ) {
      throw new TrustError(
        `${this.name} (member ${hello.cluster.member}) came back as another instance ` +
          `(${hello.instance}, was ${before.instance}): it lost its state, and may not vote ` +
          `again; replace it (README: replacing a member)`,
      );
    }
    const why = this.#verify?.(hello) ?? null;
    if (why !== null) throw new TrustError(why);
    this.#hello = hello;
  }

  #markDown(e: Error): void {
    this.#lastError = e;
    const delay = backoff(this.#failures, {
      baseMs: this.#minBackoffMs,
      maxMs: this.#maxBackoffMs,
      minShare: 0.5,
    }, this.#random);
    this.#failures = Math.min(this.#failures + 1, 30);
    this.#downUntil = this.#clock.now() + delay;
  }

  #onClose(conn: AcceptorSocket, reason: Error): void {
    if (this.#conn !== conn) return;
    this.#conn = null;
    this.#markDown(reason);
    this.#failAll(
      this.#stale ??
        netError("ConnectionReset", `connection to ${this.name} lost: ${reason.message}`),
    );
  }

  #onMessage(conn: AcceptorSocket, bytes: Uint8Array): void {
    let items;
    try {
      items = decodeReplyFrame(
        bytes,
        (rid) => typeof rid === "number" ? this.#pending.get(rid)?.op : undefined,
      );
    } catch (e) {
      // An acceptor that breaks the contract is not to be trusted further.
      conn.close(1007, "bad reply").catch(() => {});
      this.#onClose(conn, e as Error);
      return;
    }
    for (const item of items) {
      if (typeof item.Rid !== "number") continue;
      const p = this.#pending.get(item.Rid);
      if (p === undefined) continue; // timed out already
      this.#pending.delete(item.Rid);
      if ("Err" in item) {
        const e = this.#errorOf(item.Err);
        // (A Config refused as older is not about this client's epoch, nor
        // is a refusal by a member still joining, which it may serve later.)
        if (
          e.code === "StaleMembership" && p.op !== "Config" && this.#epoch?.() !== undefined &&
          this.#hello?.cluster?.joining !== true
        ) {
          this.#stale ??= e;
        }
        p.reject(e);
      } else p.resolve(item.Rep);
    }
  }

  // An Err reply as an error; a code we do not know (from another
  // implementation) is kept in the message.
  #errorOf(err: WireErrorBody): AcceptorError {
    return isErrorCode(err.Code)
      ? new AcceptorError(err.Code, err.Msg, this.name)
      : new AcceptorError("Internal", `${err.Code}: ${err.Msg}`, this.name);
  }

  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      this.#flush();
    });
  }

  #flush(): void {
    const conn = this.#conn;
    if (conn === null) return;
    // Requests that timed out before they could be sent are dropped here.
    const out = this.#outbox.filter((r) => this.#pending.has(r.Rid as number));
    this.#outbox = [];
    try {
      for (let i = 0; i < out.length; i += this.#maxBatch) {
        const frame = this.#encode(out.slice(i, i + this.#maxBatch));
        if (frame !== null) conn.send(frame);
      }
    } catch (e) {
      conn.close().catch(() => {});
      this.#onClose(conn, e as Error);
    }
  }

  // Encodes a batch. A request that cannot be encoded (an integer beyond 64
  // bits, say) fails alone with the encoder's error; the rest still go.
  #encode(batch: RequestEnvelope[]): Uint8Array | null {
    try {
      return encodeRequests(batch);
    } catch {
      const ok = batch.filter((r) => {
        try {
          encodeRequests([r]);
          return true;
        } catch (e) {
          const p = this.#pending.get(r.Rid as number);
          this.#pending.delete(r.Rid as number);
          p?.reject(e as Error);
          return false;
        }
      });
      return ok.length > 0 ? encodeRequests(ok) : null;
    }
  }

  #failAll(e: Error): void {
    this.#outbox = [];
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#disarmSweep();
    for (const p of pending) p.reject(e);
  }

  // Timeouts: one timer for all requests, set for the oldest one. Requests
  // are kept in the order they were made, and all wait the same time, so the
  // oldest is the first to expire. A reply costs no timer work at all.
  #armSweep(): void {
    if (this.#sweep !== null) return;
    const oldest = this.#pending.values().next().value;
    if (oldest === undefined) return;
    this.#sweep = this.#clock.setTimer(() => {
      this.#sweep = null;
      const now = this.#clock.now();
      for (const [rid, p] of this.#pending) {
        if (p.deadline > now) break;
        this.#pending.delete(rid);
        p.reject(
          netError("TimedOut", `${p.op} to ${this.name}: no reply within ${this.#timeoutMs} ms`),
        );
      }
      this.#armSweep();
    }, Math.max(0, oldest.deadline - this.#clock.now()));
  }

  #disarmSweep(): void {
    if (this.#sweep === null) return;
    this.#clock.clearTimer(this.#sweep);
    this.#sweep = null;
  }
}
