/**
 * The wire codec: MessagePack frames as docs/protocol.md describes them, and the
 * validation that turns a decoded frame into typed requests and replies.
 *
 * Nothing decoded from the network is trusted: every field is checked for its
 * type and range, and a bad frame becomes a {@link WireError} naming the field
 * and the value that was wrong.
 *
 * @module
 */
import { Packr, Unpackr } from "npm:msgpackr@2.1.4/pack";
import type {
  Acceptor,
  BallotNum,
  DataValue,
  KeysReply,
  LatestReply,
  Op,
  PaxosInstanceId,
  Proposer,
  Value,
} from "./types.ts";
import { isInt64, ZERO_BALLOT } from "./types.ts";
import type { ErrorCode } from "./errors.ts";
import { isPlainFrame, scanFrame } from "./msgpack_scan.ts";
import {
  type HelloCluster,
  type HelloReply,
  MAX_MEMBERS,
  NONCE_BYTES,
  PROOF_BYTES,
} from "./handshake.ts";

/**
 * The body of an `Err` reply: a machine-readable code and a message. A
 * reply from another implementation may carry a code we do not know, so the
 * code is a string here.
 */
export interface WireErrorBody {
  /** What kind of failure, one of {@link ErrorCode} when it comes from us. */
  readonly Code: string;
  /** A human-readable explanation naming the bad value. */
  readonly Msg: string;
}

/** A request id: unique among a proposer's requests in flight on one connection. */
export type Rid = number | bigint;

/** The request of the kv extension's `Latest`: which key. */
export interface LatestRequest {
  /** The key whose versions are asked about. */
  readonly Key: string;
  /**
   * A ballot to promise at the version after the highest voted one, as a
   * Prepare there would (the reply then carries `NextBal`): a writer's
   * phase 1 folded into its Latest. Acceptors that do not know it ignore it.
   */
  readonly Bal?: BallotNum;
  /**
   * With `Bal`: a first write's value, voted at `Bal` in version 0 when
   * this acceptor holds nothing of the key (see `PaxosAcceptor.latest`):
   * a first write folded into its Latest. Acceptors that do not know it
   * ignore it.
   */
  readonly Val?: Value;
}

/** The request of the kv extension's `Keys`: a page of the keys an acceptor holds. */
export interface KeysRequest {
  /** The first key of the page (included; "" for the start). */
  readonly From: string;
  /** Where the range ends (excluded); no bound when absent. */
  readonly End?: string;
  /** The most keys to return, 1 to {@link MAX_KEYS_PAGE}. */
  readonly Limit: number;
}

/** The trust extension's `Hello`: the client's nonce. */
export interface HelloRequest {
  /** A fresh random nonce ({@link NONCE_BYTES} bytes). */
  readonly Nonce: Uint8Array;
  /**
   * Membership extension: the epoch of the membership the client uses; the
   * connection is bound to it (absent: the acceptor's current one).
   */
  readonly Epoch?: number;
}

/**
 * The membership extension's `Config`: a configuration for the acceptor to
 * install (identity.ts, `MemberConfig`).
 */
export interface ConfigRequest {
  /** The configuration's epoch. */
  readonly Epoch: number;
  /** Its members, ascending. */
  readonly Members: readonly number[];
  /** While the change is under way: the old members. */
  readonly Joint?: readonly number[];
  /** The members' URLs by member id. */
  readonly Urls?: ReadonlyMap<number, string>;
  /** The last key the catch-up settled. */
  readonly Cursor?: string;
}

/** The trust extension's `Auth`: the client's proof of the shared secret. */
export interface AuthRequest {
  /** HMAC-SHA256 of the nonces (see handshake.ts). */
  readonly Proof: Uint8Array;
}

/** The trust extension's `Attest`: the members' instances a client vouches for. */
export interface AttestRequest {
  /** Instance id by member id. */
  readonly Peers: ReadonlyMap<number, string>;
}

/** The reply to `Auth` and `Attest`: done. */
export interface Ack {
  /** Always true. */
  readonly Ok: true;
}

/** The operations of the trust extension, which a connection uses before the others. */
export type TrustOp = "Hello" | "Auth" | "Attest";

/** Most bytes of one member's URL in `Config` and `Hello`. */
export const MAX_URL_BYTES = 2048;

/**
 * A request as it travels to an acceptor: `{Rid, Op, Req}`, where `Req` is
 * the proposer's state for Prepare and Accept, `{Key}` for the kv
 * extension's `Latest` and `{From, End?, Limit}` for its `Keys`, and the trust extension's handshake for `Hello`,
 * `Auth` and `Attest`.
 */
export type RequestEnvelope =
  | { readonly Rid: Rid; readonly Op: Op; readonly Req: Proposer }
  | { readonly Rid: Rid; readonly Op: "Latest"; readonly Req: LatestRequest }
  | { readonly Rid: Rid; readonly Op: "Keys"; readonly Req: KeysRequest }
  | { readonly Rid: Rid; readonly Op: "Hello"; readonly Req: HelloRequest }
  | { readonly Rid: Rid; readonly Op: "Auth"; readonly Req: AuthRequest }
  | { readonly Rid: Rid; readonly Op: "Attest"; readonly Req: AttestRequest }
  | { readonly Rid: Rid; readonly Op: "Config"; readonly Req: ConfigRequest };

/** A reply as it travels back: `{Rid, Rep}` or `{Rid, Err}`. */
export type ReplyEnvelope =
  | { readonly Rid: Rid; readonly Rep: Acceptor | LatestReply | KeysReply | HelloReply | Ack }
  | { readonly Rid: Rid; readonly Err: WireErrorBody };

/** One decoded item of a request frame: a request to serve, or an error to answer. */
export type RequestItem = RequestEnvelope | { readonly Rid: Rid; readonly Err: WireErrorBody };

/** Largest frame an acceptor reads (larger ones close the connection with 1009). */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024;
/** Largest encoded `Data` of a single Value. */
export const MAX_VALUE_BYTES = 1024 * 1024;
/** Largest key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 4096;
/** Most keys one `Keys` reply carries. */
export const MAX_KEYS_PAGE = 1000;
/** Deepest nesting of arrays and maps inside a `Data` value. */
export const MAX_DATA_DEPTH = 64;
/**
 * Deepest nesting of a request frame: a batch, an envelope, `Req`, `Val`,
 * then `Data`. A frame nested deeper is refused whole before it is decoded;
 * one whose `Data` alone is too deep gets an `Err`.
 */
export const MAX_FRAME_DEPTH = MAX_DATA_DEPTH + 8;
/**
 * What decoding one request frame may cost, in the units of
 * `DECODE_COST` (msgpack_scan.ts) (about 20 ms of decoding on a 2020s core at worst):
 * e.g. 500,000 numbers, or 25,000 binaries, or 10,000 map entries. The first
 * request of a frame that goes over it, and the rest, are not decoded:
 * `TooLarge` for a request that alone costs more, `Overloaded` for the
 * others. A frame that costs more than twice as much is refused whole
 * (close 1009) as soon as the scan gets there.
 */
export const MAX_FRAME_COST = 500_000;
/**
 * Most requests in one frame (a batch of more is refused whole, closing the
 * connection with 1009). Our proposer sends at most 128.
 */
export const MAX_BATCH = 4096;
// The scan's limits (twice the cost: past it, a frame is refused whole).
const SCAN_LIMITS = {
  maxDepth: MAX_FRAME_DEPTH,
  maxElements: MAX_BATCH,
  maxCost: 2 * MAX_FRAME_COST,
};
/** Longest `Msg` of an `Err` reply, in UTF-16 units (longer ones are cut). */
export const MAX_ERROR_MESSAGE = 300;

const UINT64_MAX = 2n ** 64n - 1n;

/**
 * The size of a key in UTF-8 bytes when it is over {@link MAX_KEY_BYTES},
 * or undefined when it fits. Only keys long enough to be over are encoded:
 * a UTF-16 unit is at most 3 UTF-8 bytes.
 *
 * @example
 * ```ts
 * import { keyBytesOverLimit } from "./codec.ts";
 * keyBytesOverLimit("foo"); // undefined
 * keyBytesOverLimit("x".repeat(5000)); // 5000
 * ```
 */
export function keyBytesOverLimit(key: string): number | undefined {
  if (key.length <= MAX_KEY_BYTES / 3) return undefined;
  const n = new TextEncoder().encode(key).length;
  return n > MAX_KEY_BYTES ? n : undefined;
}

/**
 * A frame or field that does not follow the wire contract. `code` is the
 * `Err` code an acceptor answers with.
 *
 * @example
 * ```ts
 * import { WireError } from "./codec.ts";
 * const e = new WireError("BadRequest", "Req.Bal.N: expected an int64, got \"x\"");
 * e.code; // "BadRequest"
 * ```
 */
export class WireError extends Error {
  /** The `Err` code for this failure. */
  readonly code: ErrorCode;
  /**
   * The WebSocket close code for when no `Rid` can be answered: 1007 for
   * bytes that are not (plain) MessagePack, 1009 for a frame that would cost
   * too much to decode, 1008 for anything else.
   */
  readonly closeCode: 1007 | 1008 | 1009;
  /** Builds a WireError with its code, message and close code. */
  constructor(code: ErrorCode, message: string, closeCode: 1007 | 1008 | 1009 = 1008) {
    super(message);
    this.name = "WireError";
    this.code = code;
    this.closeCode = closeCode;
  }
}

// One encoder and one decoder for the process: plain maps, never msgpackr's
// record extension; bigints come back as bigint. A request frame reaches the
// decoder only once scanFrame has found nothing but MessagePack's core types
// in it (so none of msgpackr's extensions: records, structured-clone
// references that would make a graph of shared nodes, RegExp, Date, ...).
const packr = new Packr({ useRecords: false, variableMapSize: true, encodeUndefinedAsNil: true });
const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  int64AsType: "bigint",
  structuredClone: false,
  // Binary values get their own memory instead of pinning the whole frame.
  copyBuffers: true,
});

/**
 * Encodes one value as a MessagePack frame.
 *
 * @example
 * ```ts
 * import { decodeFrame, encodeFrame } from "./codec.ts";
 * decodeFrame(encodeFrame({ a: 1 })); // { a: 1 }
 * ```
 */
export function encodeFrame(value: unknown): Uint8Array {
  return packr.pack(value);
}

/**
 * Decodes one MessagePack frame; throws a {@link WireError} on anything that
 * is not exactly one valid MessagePack value.
 */
export function decodeFrame(bytes: Uint8Array): unknown {
  try {
    return unpackr.unpack(bytes);
  } catch (e) {
    throw new WireError(
      "BadRequest",
      `frame of ${bytes.length} bytes is not valid MessagePack: ${(e as Error).message}`,
      1007,
    );
  }
}

// ---------------------------------------------------------------------------
// From typed values to wire maps.

/**
 * The wire form of an int64: a number when it fits msgpackr's compact integer
 * encodings, a bigint (int64 on the wire) otherwise. msgpackr would write a
 * number above 2^32 as a float64, which is why the switch is at 32 bits.
 */
export function wireInt(n: bigint): number | bigint {
  return n >= -0x80000000n && n <= 0xffffffffn ? Number(n) : n;
}

function wireBallot(b: BallotNum): Record<string, unknown> {
  return { N: wireInt(b.N), ProposerId: wireInt(b.ProposerId) };
}

function wireValue(v: Value): Record<string, unknown> {
  const m: Record<string, unknown> = "Vi64" in v
    ? { Vi64: wireInt(v.Vi64) }
    : "Data" in v
    ? { Data: v.Data }
    : { Del: true };
  if (v.Wid !== undefined) m.Wid = wireInt(v.Wid);
  return m;
}

/** The wire map of a Proposer (the request of Prepare and Accept). */
export function wireProposer(p: Proposer): Record<string, unknown> {
  const m: Record<string, unknown> = {
    Id: { Key: p.Id.Key, Ver: wireInt(p.Id.Ver) },
    Bal: wireBallot(p.Bal),
  };
  if (p.Val !== null) m.Val = wireValue(p.Val);
  if (p.Next) m.Next = true;
  return m;
}

/**
 * The wire map of an Acceptor (a reply). `Val` and `VBal` are written only
 * when there is a vote, so an Accept reply, which carries only `LastBal` as
 * in the seed, is `{LastBal}`; absent ballots read back as `{0, 0}`.
 */
export function wireAcceptor(a: Acceptor): Record<string, unknown> {
  const m: Record<string, unknown> = a.Val === null
    ? { LastBal: wireBallot(a.LastBal) }
    : { LastBal: wireBallot(a.LastBal), Val: wireValue(a.Val), VBal: wireBallot(a.VBal) };
  if (a.NextOk) m.NextOk = true;
  return m;
}

/** The wire map of a `Latest` reply (kv extension). */
export function wireLatest(r: LatestReply): Record<string, unknown> {
  const m: Record<string, unknown> = { Ver: wireInt(r.Ver), Floor: wireInt(r.Floor) };
  if (r.Val !== null) {
    m.Val = wireValue(r.Val);
    m.VBal = wireBallot(r.VBal);
  }
  if (r.NextBal !== undefined) m.NextBal = wireBallot(r.NextBal);
  return m;
}

/** Encodes requests (one envelope, or a batch when more than one). */
export function encodeRequests(reqs: readonly RequestEnvelope[]): Uint8Array {
  const envs = reqs.map((r) => ({ Rid: r.Rid, Op: r.Op, Req: wireRequest(r) }));
  return encodeFrame(envs.length === 1 ? envs[0] : envs);
}

function wireRequest(r: RequestEnvelope): unknown {
  switch (r.Op) {
    case "Prepare":
    case "Accept":
      return wireProposer(r.Req);
    case "Latest":
      return r.Req.Bal === undefined
        ? { Key: r.Req.Key }
        : r.Req.Val === undefined
        ? { Key: r.Req.Key, Bal: wireBallot(r.Req.Bal) }
        : { Key: r.Req.Key, Bal: wireBallot(r.Req.Bal), Val: wireValue(r.Req.Val) };
    case "Keys":
      return r.Req.End === undefined
        ? { From: r.Req.From, Limit: r.Req.Limit }
        : { From: r.Req.From, End: r.Req.End, Limit: r.Req.Limit };
    case "Hello":
      return r.Req.Epoch === undefined
        ? { Nonce: r.Req.Nonce }
        : { Nonce: r.Req.Nonce, Epoch: r.Req.Epoch };
    case "Config":
      return wireConfig(r.Req);
    case "Auth":
      return { Proof: r.Req.Proof };
    case "Attest":
      return { Peers: Object.fromEntries(r.Req.Peers) };
  }
}

function wireConfig(c: ConfigRequest): Record<string, unknown> {
  const m: Record<string, unknown> = { Epoch: c.Epoch, Members: c.Members };
  if (c.Joint !== undefined) m.Joint = c.Joint;
  if (c.Urls !== undefined) m.Urls = Object.fromEntries(c.Urls);
  if (c.Cursor !== undefined) m.Cursor = c.Cursor;
  return m;
}

/** The wire map of a `Hello` reply (trust extension). */
export function wireHello(h: HelloReply): Record<string, unknown> {
  const m: Record<string, unknown> = { Instance: h.instance };
  if (h.cluster !== undefined) {
    const c = h.cluster;
    const cluster: Record<string, unknown> = {
      Name: c.name,
      Id: c.id,
      Member: c.member,
      Members: c.members,
      KeepVersions: c.keepVersions,
    };
    // Membership extension: only what differs from a fixed membership.
    if (c.epoch !== undefined && c.epoch !== 0) cluster.Epoch = c.epoch;
    if (c.joint !== undefined) cluster.Joint = c.joint;
    if (c.urls !== undefined && c.urls.size > 0) cluster.Urls = Object.fromEntries(c.urls);
    if (c.cursor !== undefined) cluster.Cursor = c.cursor;
    if (c.joining === true) cluster.Joining = true;
    m.Cluster = cluster;
  }
  if (h.peers.size > 0) m.Peers = Object.fromEntries(h.peers);
  if (h.nonce !== undefined) m.Nonce = h.nonce;
  if (h.proof !== undefined) m.Proof = h.proof;
  return m;
}

/**
 * Encodes replies (one envelope, or a batch when more than one; an empty
 * batch for none). A reply that cannot be encoded (a value given in process
 * that MessagePack cannot carry) becomes an `Err` `Internal` alone: the
 * others still go.
 */
export function encodeReplies(reps: readonly ReplyEnvelope[]): Uint8Array {
  const envs = reps.map(wireReply);
  try {
    return encodeFrame(envs.length === 1 ? envs[0] : envs);
  } catch {
    const safe = envs.map((env, i) => {
      try {
        encodeFrame(env);
        return env;
      } catch (e) {
        return wireReply({ Rid: reps[i]!.Rid, Err: errBody(e, "Internal") });
      }
    });
    return encodeFrame(safe.length === 1 ? safe[0] : safe);
  }
}

function wireReply(r: ReplyEnvelope): Record<string, unknown> {
  if ("Err" in r) return { Rid: r.Rid, Err: { Code: r.Err.Code, Msg: cutMessage(r.Err.Msg) } };
  const rep = r.Rep;
  return {
    Rid: r.Rid,
    Rep: "Floor" in rep
      ? wireLatest(rep)
      : "More" in rep
      ? { Keys: rep.Keys, More: rep.More }
      : "instance" in rep
      ? wireHello(rep)
      : "Ok" in rep
      ? { Ok: true }
      : wireAcceptor(rep),
  };
}

function cutMessage(msg: string): string {
  return msg.length <= MAX_ERROR_MESSAGE ? msg : msg.slice(0, MAX_ERROR_MESSAGE - 3) + "...";
}

// ---------------------------------------------------------------------------
// From decoded wire maps to typed values, checking everything.

function describe(x: unknown): string {
  if (x === undefined) return "nothing";
  if (x === null) return "nil";
  if (x instanceof Uint8Array) return `binary(${x.length})`;
  if (Array.isArray(x)) return `array(${x.length})`;
  if (typeof x === "string") return JSON.stringify(x.length > 40 ? x.slice(0, 40) + "..." : x);
  if (typeof x === "object") return isMap(x) ? "map" : `${x.constructor?.name ?? "object"} object`;
  return `${typeof x} ${String(x)}`;
}

function bad(path: string, want: string, got: unknown): never {
  throw new WireError("BadRequest", `${path}: expected ${want}, got ${describe(got)}`);
}

function isMap(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array) &&
    Object.getPrototypeOf(x) === Object.prototype;
}

function asMap(x: unknown, path: string): Record<string, unknown> {
  if (!isMap(x)) bad(path, "a map", x);
  return x;
}

// The int64s from -1 to 1022 as BigInts, made once: most int64 fields
// decoded (versions, floors, ballot numbers, small values) are small, and
// each BigInt(n) would be a new object on the heap (some of them kept as
// long as the state that holds them).
const SMALL_INT64 = Array.from({ length: 1024 }, (_, i) => BigInt(i - 1));

/** Reads an int64 field: any MessagePack integer within int64's range. */
export function parseInt64(x: unknown, path: string): bigint {
  if (typeof x === "bigint") {
    if (!isInt64(x)) bad(path, "an int64", x);
    return x;
  }
  if (typeof x === "number" && Number.isSafeInteger(x)) {
    return x >= -1 && x < SMALL_INT64.length - 1 ? SMALL_INT64[x + 1]! : BigInt(x);
  }
  return bad(path, "an int64", x);
}

/** Reads a request id: a non-negative integer up to 2^64-1. */
export function parseRid(x: unknown): Rid {
  if (typeof x === "number" && Number.isSafeInteger(x) && x >= 0) return x;
  if (typeof x === "bigint" && x >= 0n && x <= UINT64_MAX) {
    return x <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(x) : x;
  }
  return bad("Rid", "an unsigned integer", x);
}

/** Reads a BallotNum map. */
export function parseBallot(x: unknown, path: string): BallotNum {
  const m = asMap(x, path);
  return {
    N: parseInt64(m.N ?? 0, `${path}.N`),
    ProposerId: parseInt64(m.ProposerId ?? 0, `${path}.ProposerId`),
  };
}

// The bytes a string takes in MessagePack (UTF-8 and the smallest header),
// as msgpackr writes it.
function strBytes(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      n += 1;
    } else if (
      (c & 0xfc00) === 0xd800 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00
    ) {
      n += 2; // a surrogate pair: 4 bytes for 2 code units
      i++;
    } else {
      n += 2;
    }
  }
  return n + (n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5);
}

// The bytes a number takes in MessagePack, as msgpackr writes it.
function numberBytes(x: number): number {
  if (x >>> 0 === x) return x < 128 ? 1 : x < 256 ? 2 : x < 65536 ? 3 : 5;
  if (x >> 0 === x) return x >= -32 ? 1 : x >= -128 ? 2 : x >= -32768 ? 3 : 5;
  return 9;
}

/**
 * Checks a decoded `Data` value: plain MessagePack types only, at most
 * {@link MAX_DATA_DEPTH} levels deep, and at most {@link MAX_VALUE_BYTES} once
 * encoded. The size is counted while walking and the walk stops as soon as it
 * is over the limit, so its cost is bounded by the limit, whatever the frame:
 * msgpackr's record extension lets a small frame decode into a far larger
 * value, which must be refused without ever being encoded.
 */
function checkData(data: unknown, path: string, limit = MAX_VALUE_BYTES): number {
  // The usual small values, without setting up a walk.
  if (typeof data === "number") return numberBytes(data);
  if (typeof data === "string" && data.length < 1024) return strBytes(data);
  let left = limit;
  const spend = (n: number): void => {
    left -= n;
    if (left < 0) throw new WireError("TooLarge", `${path}: larger than ${limit} bytes`);
  };
  // Where the walk is, as the keys and indexes that lead there: the path is
  // built only for an error message.
  const trail: (string | number)[] = [];
  const at = () => path + trail.map((k) => typeof k === "number" ? `[${k}]` : `.${k}`).join("");
  const walk = (x: unknown, depth: number): void => {
    if (depth > MAX_DATA_DEPTH) {
      throw new WireError("BadRequest", `${at()}: nested deeper than ${MAX_DATA_DEPTH} levels`);
    }
    switch (typeof x) {
      case "boolean":
        return spend(1);
      case "number":
        return spend(numberBytes(x));
      case "bigint":
        if (!isInt64(x)) bad(at(), "an int64", x);
        return spend(9);
      case "string":
        return spend(strBytes(x));
      case "object": {
        if (x === null) return spend(1);
        if (x instanceof Uint8Array) {
          const n = x.length;
          return spend(n + (n < 256 ? 2 : n < 65536 ? 3 : 5));
        }
        const head = (n: number) => n < 16 ? 1 : n < 65536 ? 3 : 5;
        if (Array.isArray(x)) {
          spend(head(x.length));
          for (let i = 0; i < x.length; i++) {
            trail.push(i);
            walk(x[i], depth + 1);
            trail.pop();
          }
          return;
        }
        if (isMap(x)) {
          const keys = Object.keys(x);
          spend(head(keys.length));
          for (const k of keys) {
            spend(strBytes(k));
            trail.push(k);
            walk(x[k], depth + 1);
            trail.pop();
          }
          return;
        }
      }
    }
    bad(at(), "a plain MessagePack value (no extension types)", x);
  };
  walk(data, 0);
  return limit - left;
}

// The encoded sizes of the Data values that take a walk to measure (arrays,
// maps, long strings), measured once each.
const dataSizes = new WeakMap<object, number>();

/**
 * About how many bytes a Value takes encoded: exact for `Data` (an array, a
 * map or a long string measured once), a bound for the rest.
 *
 * @example
 * ```ts
 * import { valueBytes } from "./codec.ts";
 * valueBytes({ Data: "hello" }); // 6 (the string) + 32 (the keys around it)
 * ```
 */
export function valueBytes(v: Value): number {
  if (!("Data" in v)) return VALUE_OVERHEAD;
  const d = v.Data;
  if (d instanceof Uint8Array) return d.length + 5 + VALUE_OVERHEAD;
  if (typeof d === "string" ? d.length < 1024 : typeof d !== "object" || d === null) {
    return dataBytes(d) + VALUE_OVERHEAD;
  }
  // An array, a map or a long string (kept by its Value).
  const key: object = typeof d === "object" && d !== null ? d : v;
  let n = dataSizes.get(key);
  if (n === undefined) dataSizes.set(key, n = dataBytes(d));
  return n + VALUE_OVERHEAD;
}

function dataBytes(d: unknown): number {
  try {
    return checkData(d, "Data", Number.MAX_SAFE_INTEGER);
  } catch {
    return MAX_VALUE_BYTES; // not plain: encoding it will fail anyway
  }
}
// A Value's map, its keys, and a Wid: an upper bound.
const VALUE_OVERHEAD = 32;

/**
 * Reads a Value map: exactly one of `Vi64` (int64), `Data` (any value) and
 * the kv extension's `Del` (true), and the kv extension's optional `Wid`
 * (int64).
 */
export function parseValue(x: unknown, path: string): Value {
  const m = asMap(x, path);
  const hasI = m.Vi64 !== undefined && m.Vi64 !== null;
  const hasD = m.Data !== undefined && m.Data !== null;
  const hasDel = m.Del !== undefined && m.Del !== null;
  if (Number(hasI) + Number(hasD) + Number(hasDel) !== 1) {
    throw new WireError(
      "BadRequest",
      `${path}: a Value carries exactly one of Vi64, Data and Del`,
    );
  }
  const wid = m.Wid === undefined || m.Wid === null
    ? {}
    : { Wid: parseInt64(m.Wid, `${path}.Wid`) };
  if (hasI) return { Vi64: parseInt64(m.Vi64, `${path}.Vi64`), ...wid };
  if (hasDel) {
    if (m.Del !== true) bad(`${path}.Del`, "true", m.Del);
    return { Del: true, ...wid };
  }
  checkData(m.Data, `${path}.Data`);
  return { Data: m.Data as DataValue, ...wid };
}

function parseOptionalValue(x: unknown, path: string): Value | null {
  return x === undefined || x === null ? null : parseValue(x, path);
}

// Reads the `Key` of a map: a string of at most MAX_KEY_BYTES.
function parseKey(x: unknown, path: string): string {
  const m = asMap(x, path);
  if (typeof m.Key !== "string") bad(`${path}.Key`, "a string", m.Key);
  if (keyBytesOverLimit(m.Key) !== undefined) {
    throw new WireError("TooLarge", `${path}.Key: longer than ${MAX_KEY_BYTES} bytes`);
  }
  return m.Key;
}

/** Reads a PaxosInstanceId map. */
export function parseInstanceId(x: unknown, path: string): PaxosInstanceId {
  const m = asMap(x, path);
  return { Key: parseKey(m, path), Ver: parseInt64(m.Ver ?? 0, `${path}.Ver`) };
}

/**
 * Reads a `Latest` request map (kv extension): the key, maybe a ballot to
 * promise, and with it maybe a first write's value (a `Val` without `Bal`
 * is refused: it could be voted at no ballot).
 */
export function parseLatestRequest(x: unknown, path: string): LatestRequest {
  const key = parseKey(x, path);
  const { Bal: bal, Val: val } = asMap(x, path);
  const noVal = val === undefined || val === null;
  if (bal === undefined || bal === null) {
    if (!noVal) bad(`${path}.Bal`, "a BallotNum with Val (a first write's ballot)", bal);
    return { Key: key };
  }
  const withBal = { Key: key, Bal: parseBallot(bal, `${path}.Bal`) };
  return noVal ? withBal : { ...withBal, Val: parseValue(val, `${path}.Val`) };
}

/** Reads a `Latest` reply map (kv extension). */
export function parseLatest(x: unknown, path: string): LatestReply {
  const m = asMap(x, path);
  const reply = {
    Ver: parseInt64(m.Ver ?? -1, `${path}.Ver`),
    Floor: parseInt64(m.Floor ?? 0, `${path}.Floor`),
    Val: parseOptionalValue(m.Val, `${path}.Val`),
    VBal: parseOptionalBallot(m.VBal, `${path}.VBal`),
  };
  if (m.NextBal === undefined || m.NextBal === null) return reply;
  return { ...reply, NextBal: parseBallot(m.NextBal, `${path}.NextBal`) };
}

/** Reads a `Keys` request map (kv extension). */
export function parseKeysRequest(x: unknown, path: string): KeysRequest {
  const m = asMap(x, path);
  const from = m.From ?? "";
  if (typeof from !== "string") bad(`${path}.From`, "a string", from);
  const limit = typeof m.Limit === "bigint" ? Number(m.Limit) : m.Limit;
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > MAX_KEYS_PAGE) {
    bad(`${path}.Limit`, `an integer from 1 to ${MAX_KEYS_PAGE}`, limit);
  }
  for (const [name, k] of [["From", from], ["End", m.End]] as const) {
    if (name === "End" && (k === undefined || k === null)) continue;
    if (typeof k !== "string") bad(`${path}.${name}`, "a string", k);
    if (keyBytesOverLimit(k) !== undefined) {
      throw new WireError("TooLarge", `${path}.${name}: longer than ${MAX_KEY_BYTES} bytes`);
    }
  }
  return typeof m.End === "string"
    ? { From: from, End: m.End, Limit: limit }
    : { From: from, Limit: limit };
}

/** Reads a `Keys` reply map (kv extension). */
export function parseKeysReply(x: unknown, path: string): KeysReply {
  const m = asMap(x, path);
  if (!Array.isArray(m.Keys)) bad(`${path}.Keys`, "an array of keys", m.Keys);
  if (m.Keys.length > MAX_KEYS_PAGE) {
    bad(`${path}.Keys`, `at most ${MAX_KEYS_PAGE} keys`, `${m.Keys.length} keys`);
  }
  const keys: string[] = [];
  for (const [i, k] of m.Keys.entries()) {
    if (typeof k !== "string") bad(`${path}.Keys[${i}]`, "a string", k);
    if (i > 0 && !(keys[i - 1]! < k)) bad(`${path}.Keys[${i}]`, "keys in ascending order", k);
    keys.push(k);
  }
  if (typeof m.More !== "boolean") bad(`${path}.More`, "a boolean", m.More);
  return { Keys: keys, More: m.More };
}

/** Reads a Proposer map (a Prepare or Accept request). */
export function parseProposer(x: unknown, path: string): Proposer {
  const m = asMap(x, path);
  if (m.Id === undefined || m.Id === null) bad(`${path}.Id`, "a PaxosInstanceId", m.Id);
  if (m.Bal === undefined || m.Bal === null) bad(`${path}.Bal`, "a BallotNum", m.Bal);
  const p: Proposer = {
    Id: parseInstanceId(m.Id, `${path}.Id`),
    Bal: parseBallot(m.Bal, `${path}.Bal`),
    Val: parseOptionalValue(m.Val, `${path}.Val`),
  };
  return m.Next === true ? { ...p, Next: true } : p;
}

function parseOptionalBallot(x: unknown, path: string): BallotNum {
  return x === undefined || x === null ? ZERO_BALLOT : parseBallot(x, path);
}

/** Reads an Acceptor map (a Prepare or Accept reply). */
export function parseAcceptor(x: unknown, path: string): Acceptor {
  const m = asMap(x, path);
  const a: Acceptor = {
    LastBal: parseOptionalBallot(m.LastBal, `${path}.LastBal`),
    Val: parseOptionalValue(m.Val, `${path}.Val`),
    VBal: parseOptionalBallot(m.VBal, `${path}.VBal`),
  };
  return m.NextOk === true ? { ...a, NextOk: true } : a;
}

// ---------------------------------------------------------------------------
// The trust extension's handshake.

function parseBytes(x: unknown, path: string, n: number): Uint8Array {
  if (!(x instanceof Uint8Array) || x.length !== n) bad(path, `binary(${n})`, x);
  return new Uint8Array(x);
}

function parseNonce(x: unknown, path: string): Uint8Array {
  return parseBytes(x, path, NONCE_BYTES);
}

function parseProof(x: unknown, path: string): Uint8Array {
  return parseBytes(x, path, PROOF_BYTES);
}

const HEX128 = /^[0-9a-f]{32}$/;

function parseHex128(x: unknown, path: string): string {
  if (typeof x !== "string" || !HEX128.test(x)) bad(path, "32 lowercase hex digits", x);
  return x;
}

function parseMemberId(x: unknown, path: string): number {
  if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0) {
    bad(path, "a member id (a non-negative integer)", x);
  }
  return x;
}

// Instances by member id: a map of decimal member ids to instance ids.
function parsePeers(x: unknown, path: string): Map<number, string> {
  const peers = new Map<number, string>();
  if (x === undefined || x === null) return peers;
  const m = asMap(x, path);
  const keys = Object.keys(m);
  if (keys.length > MAX_MEMBERS) bad(path, `at most ${MAX_MEMBERS} members`, x);
  for (const k of keys) {
    if (!/^(0|[1-9][0-9]{0,14})$/.test(k)) bad(`${path} key`, "a member id", k);
    peers.set(Number(k), parseHex128(m[k], `${path}.${k}`));
  }
  return peers;
}

/** Reads a `Hello` reply map (trust extension). */
export function parseHello(x: unknown, path: string): HelloReply {
  const m = asMap(x, path);
  const out: {
    instance: string;
    peers: Map<number, string>;
    cluster?: HelloCluster;
    nonce?: Uint8Array;
    proof?: Uint8Array;
  } = {
    instance: parseHex128(m.Instance, `${path}.Instance`),
    peers: parsePeers(m.Peers, `${path}.Peers`),
  };
  if (m.Cluster !== undefined && m.Cluster !== null) {
    const c = asMap(m.Cluster, `${path}.Cluster`);
    if (typeof c.Name !== "string" || c.Name.length > 64) {
      bad(`${path}.Cluster.Name`, "a name", c.Name);
    }
    if (!Array.isArray(c.Members) || c.Members.length === 0 || c.Members.length > MAX_MEMBERS) {
      bad(`${path}.Cluster.Members`, `1 to ${MAX_MEMBERS} member ids`, c.Members);
    }
    const keep = c.KeepVersions;
    if (
      keep !== undefined && keep !== null &&
      !(typeof keep === "number" && Number.isSafeInteger(keep) && keep > 0)
    ) {
      bad(`${path}.Cluster.KeepVersions`, "a positive integer or nil", keep);
    }
    const cfg = parseConfigFields(c, `${path}.Cluster`, false);
    out.cluster = {
      name: c.Name,
      id: parseHex128(c.Id, `${path}.Cluster.Id`),
      member: parseMemberId(c.Member, `${path}.Cluster.Member`),
      members: cfg.Members,
      keepVersions: typeof keep === "number" ? keep : null,
      ...(cfg.Epoch === 0 ? {} : { epoch: cfg.Epoch }),
      ...(cfg.Joint === undefined ? {} : { joint: cfg.Joint }),
      ...(cfg.Urls === undefined ? {} : { urls: cfg.Urls }),
      ...(cfg.Cursor === undefined ? {} : { cursor: cfg.Cursor }),
      ...(c.Joining === true ? { joining: true } : {}),
    };
  }
  if (m.Nonce !== undefined && m.Nonce !== null) out.nonce = parseNonce(m.Nonce, `${path}.Nonce`);
  if (m.Proof !== undefined && m.Proof !== null) out.proof = parseProof(m.Proof, `${path}.Proof`);
  return out;
}

function parseMemberList(x: unknown, path: string): number[] {
  if (!Array.isArray(x) || x.length === 0 || x.length > MAX_MEMBERS) {
    bad(path, `1 to ${MAX_MEMBERS} member ids`, x);
  }
  return x.map((m, i) => parseMemberId(m, `${path}[${i}]`));
}

// The configuration fields of `Config` and of a `Hello` reply's `Cluster`
// (membership extension). Only shapes are checked here; what they mean
// together is identity.ts's `checkConfig`.
function parseConfigFields(m: Record<string, unknown>, path: string, needEpoch: boolean) {
  let epoch = 0;
  if (needEpoch || (m.Epoch !== undefined && m.Epoch !== null)) {
    if (typeof m.Epoch !== "number" || !Number.isSafeInteger(m.Epoch) || m.Epoch < 0) {
      bad(`${path}.Epoch`, "a non-negative integer", m.Epoch);
    }
    epoch = m.Epoch;
  }
  const members = parseMemberList(m.Members, `${path}.Members`);
  const joint = m.Joint === undefined || m.Joint === null
    ? undefined
    : parseMemberList(m.Joint, `${path}.Joint`);
  let urls: Map<number, string> | undefined;
  if (m.Urls !== undefined && m.Urls !== null) {
    const u = asMap(m.Urls, `${path}.Urls`);
    const keys = Object.keys(u);
    if (keys.length > 2 * MAX_MEMBERS) bad(`${path}.Urls`, `at most ${2 * MAX_MEMBERS} URLs`, u);
    urls = new Map();
    for (const k of keys) {
      if (!/^(0|[1-9][0-9]{0,14})$/.test(k)) bad(`${path}.Urls key`, "a member id", k);
      const v = u[k];
      if (typeof v !== "string" || v.length > MAX_URL_BYTES) {
        bad(`${path}.Urls.${k}`, `a URL of at most ${MAX_URL_BYTES} characters`, v);
      }
      urls.set(Number(k), v);
    }
  }
  let cursor: string | undefined;
  if (m.Cursor !== undefined && m.Cursor !== null) {
    if (typeof m.Cursor !== "string") bad(`${path}.Cursor`, "a key", m.Cursor);
    if (keyBytesOverLimit(m.Cursor) !== undefined) {
      throw new WireError("TooLarge", `${path}.Cursor: longer than ${MAX_KEY_BYTES} bytes`);
    }
    cursor = m.Cursor;
  }
  return {
    Epoch: epoch,
    Members: members,
    ...(joint === undefined ? {} : { Joint: joint }),
    ...(urls === undefined ? {} : { Urls: urls }),
    ...(cursor === undefined ? {} : { Cursor: cursor }),
  };
}

function parseAck(x: unknown, path: string): Ack {
  if (asMap(x, path).Ok !== true) bad(`${path}.Ok`, "true", asMap(x, path).Ok);
  return { Ok: true };
}

function errBody(e: unknown, code: ErrorCode = "Internal"): WireErrorBody {
  if (e instanceof WireError) return { Code: e.code, Msg: e.message };
  return { Code: code, Msg: e instanceof Error ? e.message : String(e) };
}

function parseRequestEnvelope(x: unknown): RequestItem {
  if (!isMap(x)) throw new WireError("BadRequest", `envelope: expected a map, got ${describe(x)}`);
  const rid = parseRid(x.Rid);
  try {
    if (
      x.Op !== "Prepare" && x.Op !== "Accept" && x.Op !== "Latest" && x.Op !== "Keys" &&
      x.Op !== "Hello" && x.Op !== "Auth" && x.Op !== "Attest" && x.Op !== "Config"
    ) {
      if (x.Op === undefined || x.Op === null) bad("Op", '"Prepare" or "Accept"', x.Op);
      throw new WireError("UnknownOp", `Op: unknown operation ${describe(x.Op)}`);
    }
    if (x.Req === undefined || x.Req === null) bad("Req", "a Proposer", x.Req);
    if (x.Op === "Latest") return { Rid: rid, Op: x.Op, Req: parseLatestRequest(x.Req, "Req") };
    if (x.Op === "Keys") return { Rid: rid, Op: x.Op, Req: parseKeysRequest(x.Req, "Req") };
    if (x.Op === "Hello") {
      const m = asMap(x.Req, "Req");
      const nonce = parseNonce(m.Nonce, "Req.Nonce");
      if (m.Epoch === undefined || m.Epoch === null) {
        return { Rid: rid, Op: x.Op, Req: { Nonce: nonce } };
      }
      if (typeof m.Epoch !== "number" || !Number.isSafeInteger(m.Epoch) || m.Epoch < 0) {
        bad("Req.Epoch", "a non-negative integer", m.Epoch);
      }
      return { Rid: rid, Op: x.Op, Req: { Nonce: nonce, Epoch: m.Epoch } };
    }
    if (x.Op === "Config") {
      return { Rid: rid, Op: x.Op, Req: parseConfigFields(asMap(x.Req, "Req"), "Req", true) };
    }
    if (x.Op === "Auth") {
      return {
        Rid: rid,
        Op: x.Op,
        Req: { Proof: parseProof(asMap(x.Req, "Req").Proof, "Req.Proof") },
      };
    }
    if (x.Op === "Attest") {
      return {
        Rid: rid,
        Op: x.Op,
        Req: { Peers: parsePeers(asMap(x.Req, "Req").Peers, "Req.Peers") },
      };
    }
    const req = parseProposer(x.Req, "Req");
    if (x.Op === "Accept" && req.Val === null) bad("Req.Val", "a Value in Accept", req.Val);
    return { Rid: rid, Op: x.Op, Req: req };
  } catch (e) {
    return { Rid: rid, Err: errBody(e) };
  }
}

/**
 * Decodes and validates a request frame (one envelope or a batch). Requests
 * whose body is bad come back as `Err` items to answer. The whole frame is
 * refused with a {@link WireError} when it is not MessagePack, not an
 * envelope, or an envelope has no readable `Rid`: the acceptor then closes
 * the connection (1007/1008).
 *
 * @example
 * ```ts
 * import { decodeRequestFrame, encodeRequests } from "./codec.ts";
 * const frame = encodeRequests([{
 *   Rid: 1,
 *   Op: "Prepare",
 *   Req: { Id: { Key: "i", Ver: 0n }, Bal: { N: 1n, ProposerId: 10n }, Val: null },
 * }]);
 * decodeRequestFrame(frame)[0]?.Rid; // 1
 * ```
 */
export function decodeRequestFrame(bytes: Uint8Array): RequestItem[] {
  // The usual case: the whole frame plain and within the limits, decoded in
  // one go.
  if (isPlainFrame(bytes, { ...SCAN_LIMITS, maxCost: MAX_FRAME_COST })) {
    const x = decodeFrame(bytes);
    return (Array.isArray(x) ? x : [x]).map(parseRequestEnvelope);
  }
  const scan = scanFrame(bytes, SCAN_LIMITS);
  if ("frameError" in scan) {
    throw scan.tooLarge
      ? new WireError("TooLarge", `frame of ${bytes.length} bytes: ${scan.frameError}`, 1009)
      : new WireError(
        "BadRequest",
        `frame of ${bytes.length} bytes is not valid MessagePack: ${scan.frameError}`,
        1007,
      );
  }
  const { elements } = scan;
  let cost = 0;
  let plain = true;
  for (const e of elements) {
    cost += e.cost;
    if (e.error !== undefined) plain = false;
  }
  if (plain && cost <= MAX_FRAME_COST) {
    const x = decodeFrame(bytes);
    return (scan.batch ? x as unknown[] : [x]).map(parseRequestEnvelope);
  }
  // Else each element apart: those refused are answered by their Rid, and
  // never decoded.
  cost = 0;
  return elements.map((e, i): RequestItem => {
    if (e.error === undefined && cost + e.cost <= MAX_FRAME_COST) {
      cost += e.cost;
      return parseRequestEnvelope(decodeFrame(bytes.subarray(e.start, e.end)));
    }
    const [code, msg, close]: [ErrorCode, string, 1007 | 1009] = e.error !== undefined
      ? ["BadRequest", e.error, 1007]
      : e.cost > MAX_FRAME_COST
      ? [
        "TooLarge",
        `decoding this request would cost ${e.cost} units, over the ${MAX_FRAME_COST} a frame may take`,
        1009,
      ]
      : [
        "Overloaded",
        `this frame would cost more than ${MAX_FRAME_COST} units to decode: send fewer requests per frame`,
        1009,
      ];
    if (e.rid === undefined) {
      const what = e.error !== undefined ? "not valid MessagePack for this protocol" : "too costly";
      const where = scan.batch ? `[${i}]` : "envelope";
      throw new WireError(
        code,
        `frame of ${bytes.length} bytes is ${what}: ${where}: ${msg}`,
        close,
      );
    }
    return {
      Rid: parseRid(decodeFrame(bytes.subarray(e.rid[0], e.rid[1]))),
      Err: { Code: code, Msg: msg },
    };
  });
}

/**
 * Decodes and validates a reply frame; throws a {@link WireError} when any
 * part of it breaks the contract. A reply's shape depends on its request:
 * `opOf` tells the operation of a request id (Prepare and Accept replies are
 * Acceptor maps, `Latest` replies are `{Ver, Floor}`).
 */
export function decodeReplyFrame(
  bytes: Uint8Array,
  opOf: (rid: Rid) => string | undefined = () => undefined,
): ReplyEnvelope[] {
  const x = decodeFrame(bytes);
  return (Array.isArray(x) ? x : [x]).map((env): ReplyEnvelope => {
    if (!isMap(env)) {
      throw new WireError("BadRequest", `reply: expected a map, got ${describe(env)}`);
    }
    const rid = parseRid(env.Rid);
    if (env.Err !== undefined && env.Err !== null) {
      const e = asMap(env.Err, "Err");
      return { Rid: rid, Err: { Code: String(e.Code), Msg: String(e.Msg) } };
    }
    const op = opOf(rid);
    const rep = op === "Latest"
      ? parseLatest(env.Rep, "Rep")
      : op === "Keys"
      ? parseKeysReply(env.Rep, "Rep")
      : op === "Hello"
      ? parseHello(env.Rep, "Rep")
      : op === "Auth" || op === "Attest" || op === "Config"
      ? parseAck(env.Rep, "Rep")
      : parseAcceptor(env.Rep, "Rep");
    return { Rid: rid, Rep: rep };
  });
}
