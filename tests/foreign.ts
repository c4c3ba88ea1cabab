/**
 * The "foreign" side of the interoperability tests: programs written from
 * PROTOCOL.md alone. {@link RawPeer} is a hand-driven proposer's connection,
 * {@link ForeignAcceptor} a minimal acceptor (v1 only). They know nothing of
 * codec.ts, types.ts or msgpackr: they speak MessagePack through
 * tests/minimsgpack.ts, and make encoding choices of their own where the
 * contract allows them (int64 or uint8 for small integers, map16 headers for
 * small maps, str8 for short strings, nil written out rather than left
 * absent, unknown keys that must be ignored).
 *
 * @module
 */
import assert from "node:assert/strict";
import { decode, type Decoded, encode, type Style, type Wire } from "./minimsgpack.ts";

/** How the hand-driven proposer writes: uint8.. for integers, map16 and str8 headers. */
export const PROPOSER_STYLE: Style = { ints: "unsigned", maps: 16, arrays: 16, strs: 8, bins: 16 };
/** How the foreign acceptor writes: every integer as int64, map16, array32, bin32. */
export const ACCEPTOR_STYLE: Style = { ints: "int64", maps: 16, arrays: 32, strs: 8, bins: 32 };

export type DMap = { [key: string]: Decoded };
export interface Bal {
  N: bigint;
  ProposerId: bigint;
}
export const ZERO: Bal = { N: 0n, ProposerId: 0n };

function isMap(x: Decoded | undefined): x is DMap {
  return typeof x === "object" && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
}

function asMap(x: Decoded | undefined, what: string): DMap {
  if (!isMap(x)) throw new TypeError(`${what}: expected a map, got ${String(x)}`);
  return x;
}

function asInt(x: Decoded | undefined, what: string): bigint {
  if (typeof x !== "bigint") throw new TypeError(`${what}: expected an integer, got ${String(x)}`);
  return x;
}

/** A BallotNum: absent or nil is the ballot never set; a map must carry both fields. */
function ballot(x: Decoded | undefined, what: string): Bal {
  if (x === undefined || x === null) return ZERO;
  const m = asMap(x, what);
  return { N: asInt(m.N, `${what}.N`), ProposerId: asInt(m.ProposerId, `${what}.ProposerId`) };
}

export function ge(a: Bal, b: Bal): boolean {
  return a.N !== b.N ? a.N > b.N : a.ProposerId >= b.ProposerId;
}

/** A request envelope, with nil Val written out and unknown keys in every map. */
export function envelope(
  rid: Wire,
  op: string,
  key: string,
  ver: Wire,
  bal: [Wire, Wire],
  val: Wire = null,
): Wire {
  return {
    Rid: rid,
    Op: op,
    Req: {
      Id: { Key: key, Ver: ver, Shard: "ignored" },
      Bal: { N: bal[0], ProposerId: bal[1], Epoch: 7 },
      Val: val,
      Color: [1, "ignored", null],
    },
    Trace: { Hop: 1 },
  };
}

/** A Value with its nil fields left out: PROTOCOL.md makes nil and absent the same. */
function withoutNils(v: Decoded): Decoded {
  return isMap(v) ? Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null)) : v;
}

/** A decoded Acceptor reply, with absent fields as PROTOCOL.md defines them. */
export interface Rep {
  LastBal: Bal;
  Val: Decoded;
  VBal: Bal;
}

function show(x: Decoded | undefined): string {
  return JSON.stringify(x, (_, v) => typeof v === "bigint" ? `${v}` : v) ?? "nothing";
}

export function repOf(env: DMap, rid: bigint): Rep {
  assert.equal(asInt(env.Rid, "Rid"), rid, "Rid copied");
  assert.equal(env.Err, undefined, `no Err for Rid ${rid}: ${show(env.Err)}`);
  const r = asMap(env.Rep, "Rep");
  return {
    LastBal: ballot(r.LastBal, "Rep.LastBal"),
    Val: withoutNils(r.Val ?? null),
    VBal: ballot(r.VBal, "Rep.VBal"),
  };
}

export function errOf(env: DMap, rid: bigint): { Code: string; Msg: string } {
  assert.equal(asInt(env.Rid, "Rid"), rid, "Rid copied");
  assert.equal(env.Rep, undefined, `no Rep for Rid ${rid}`);
  const e = asMap(env.Err, "Err");
  assert.equal(typeof e.Code, "string");
  assert.equal(typeof e.Msg, "string");
  assert.ok((e.Msg as string).length > 0, "Err.Msg says what was wrong");
  return { Code: e.Code as string, Msg: e.Msg as string };
}

/**
 * A proposer-side connection over Deno's built-in WebSocket: sends frames in
 * PROPOSER_STYLE and collects reply envelopes by Rid, whatever their grouping.
 */
export class RawPeer {
  readonly #ws: WebSocket;
  readonly #replies = new Map<bigint, DMap>();
  readonly #waiters = new Map<bigint, { resolve: (e: DMap) => void; reject: (e: Error) => void }>();
  // A reply that broke the contract: every wait from then on fails with it
  // (thrown in the socket's callback, it would be lost or misreported).
  #broken: Error | null = null;
  /** Resolves with the close event once the connection is closed. */
  readonly closed: Promise<CloseEvent>;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.closed = new Promise((resolve) => {
      ws.onclose = (e) => {
        this.#failAll(new Error(`closed with ${e.code}`));
        resolve(e);
      };
    });
    ws.onmessage = (e) => {
      try {
        this.#onMessage(e);
      } catch (err) {
        this.#broken ??= err as Error;
        this.#failAll(this.#broken);
      }
    };
  }

  #onMessage(e: MessageEvent): void {
    assert.ok(e.data instanceof ArrayBuffer, "replies come in binary frames");
    const x = decode(new Uint8Array(e.data));
    for (const item of Array.isArray(x) ? x : [x]) {
      const env = asMap(item, "reply envelope");
      const rid = asInt(env.Rid, "reply Rid");
      assert.ok(!this.#replies.has(rid), `one reply per Rid (${rid})`);
      const w = this.#waiters.get(rid);
      if (w !== undefined) {
        this.#waiters.delete(rid);
        w.resolve(env);
      } else this.#replies.set(rid, env);
    }
  }

  #failAll(e: Error): void {
    for (const w of this.#waiters.values()) w.reject(e);
    this.#waiters.clear();
  }

  static async open(url: string): Promise<RawPeer> {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    });
    ws.onerror = () => {};
    return new RawPeer(ws);
  }

  send(frame: Wire): void {
    this.#ws.send(encode(frame, PROPOSER_STYLE));
  }

  sendRaw(data: Uint8Array | string): void {
    this.#ws.send(data);
  }

  /** The reply for `rid`, waiting at most 2 s for it. */
  reply(rid: bigint): Promise<DMap> {
    if (this.#broken !== null) return Promise.reject(this.#broken);
    const got = this.#replies.get(rid);
    if (got !== undefined) {
      this.#replies.delete(rid);
      return Promise.resolve(got);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(rid);
        reject(new Error(`no reply for Rid ${rid} within 2000 ms`));
      }, 2000);
      this.#waiters.set(rid, {
        resolve: (e) => (clearTimeout(timer), resolve(e)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }

  /** Sends one envelope and waits for its reply. */
  request(env: Wire, rid: bigint): Promise<DMap> {
    this.send(env);
    return this.reply(rid);
  }

  async close(): Promise<void> {
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(1000);
    await this.closed;
  }
}

interface FState {
  LastBal: Bal;
  Val: Decoded;
  VBal: Bal;
}

/**
 * A minimal acceptor following PROTOCOL.md's acceptor semantics, in
 * ACCEPTOR_STYLE. Replies to a batch come in reverse order, every other
 * batch as one frame and the others as one frame per reply; a single
 * envelope is answered every other time as an array of one.
 */
export class ForeignAcceptor {
  readonly #states = new Map<string, FState>();
  readonly #sockets = new Set<WebSocket>();
  readonly #closed = new Set<Promise<void>>();
  readonly #server: Deno.HttpServer<Deno.NetAddr>;
  readonly url: string;
  framesIn = 0;
  batchesIn = 0;
  splitReplies = 0;

  constructor() {
    this.#server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
      if (new URL(req.url).pathname !== "/paxos") return new Response("no", { status: 404 });
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.binaryType = "arraybuffer";
      this.#sockets.add(socket);
      const closed = new Promise<void>((resolve) => {
        socket.onclose = () => {
          this.#sockets.delete(socket);
          resolve();
        };
      });
      this.#closed.add(closed);
      closed.then(() => this.#closed.delete(closed));
      socket.onerror = () => {};
      socket.onmessage = (e) => {
        if (typeof e.data === "string") return socket.close(1003, "binary frames only");
        this.#onFrame(socket, new Uint8Array(e.data as ArrayBuffer));
      };
      return response;
    });
    this.url = `ws://127.0.0.1:${this.#server.addr.port}/paxos`;
  }

  /** The state of one instance, as this acceptor holds it. */
  state(key: string, ver: bigint): FState | undefined {
    return this.#states.get(`${ver}\u0000${key}`);
  }

  #onFrame(socket: WebSocket, bytes: Uint8Array): void {
    let x: Decoded;
    let envs: Decoded[];
    try {
      x = decode(bytes);
      envs = Array.isArray(x) ? x : [x];
      for (const e of envs) asInt(asMap(e, "envelope").Rid, "Rid");
    } catch (e) {
      return socket.close(1008, (e as Error).message.slice(0, 100));
    }
    const k = this.framesIn++;
    const replies = envs.map((e) => this.#serve(e as DMap)).reverse();
    const send = (w: Wire) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(encode(w, ACCEPTOR_STYLE));
    };
    if (!Array.isArray(x)) {
      send(k % 2 === 0 ? replies[0]! : replies);
    } else {
      this.batchesIn++;
      if (k % 2 === 0) send(replies);
      else {
        this.splitReplies++;
        for (const r of replies) send(r);
      }
    }
  }

  #serve(env: DMap): Wire {
    const rid = env.Rid as bigint;
    if (env.Op !== "Prepare" && env.Op !== "Accept") {
      return { Rid: rid, Err: { Code: "UnknownOp", Msg: `no such Op: ${String(env.Op)}` } };
    }
    let key: string, ver: bigint, bal: Bal, val: Decoded;
    try {
      const req = asMap(env.Req, "Req");
      const id = asMap(req.Id, "Req.Id");
      if (typeof id.Key !== "string") throw new TypeError("Req.Id.Key: expected a string");
      key = id.Key;
      ver = asInt(id.Ver, "Req.Id.Ver");
      bal = ballot(req.Bal, "Req.Bal");
      val = req.Val ?? null;
      if (val !== null) asMap(val, "Req.Val");
    } catch (e) {
      return { Rid: rid, Err: { Code: "BadRequest", Msg: (e as Error).message } };
    }
    const k = `${ver}\u0000${key}`;
    const s = this.#states.get(k) ?? { LastBal: ZERO, Val: null, VBal: ZERO };
    const wireBal = (b: Bal): Wire => ({ N: b.N, ProposerId: b.ProposerId });
    // A Value written with its other field as an explicit nil.
    const wireVal = (v: Decoded): Wire =>
      isMap(v) ? { Vi64: v.Vi64 ?? null, Data: v.Data ?? null } : null;
    let rep: Wire;
    if (env.Op === "Prepare") {
      rep = {
        LastBal: wireBal(s.LastBal),
        Val: wireVal(s.Val),
        VBal: wireBal(s.VBal),
        Extra: true,
      };
      if (ge(bal, s.LastBal)) this.#states.set(k, { ...s, LastBal: bal });
    } else {
      rep = { LastBal: wireBal(s.LastBal), Val: null, VBal: null };
      if (ge(bal, s.LastBal)) this.#states.set(k, { LastBal: bal, Val: val, VBal: bal });
    }
    return { Rid: rid, Rep: rep, Server: "foreign" };
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.close(1001, "shutting down");
    await Promise.all(this.#closed);
    await this.#server.shutdown();
  }
}
