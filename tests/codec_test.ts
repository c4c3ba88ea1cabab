/**
 * Tests of the wire codec against PROTOCOL.md: round trips, the exact map
 * keys on the wire, every MessagePack integer encoding for int64 fields, the
 * Value rules, the size limits and the frame-level errors (1007/1008).
 */
import assert from "node:assert/strict";
import { unpack } from "npm:msgpackr@2.1.4/pack";
import {
  decodeFrame,
  decodeReplyFrame,
  decodeRequestFrame,
  encodeFrame,
  encodeReplies,
  encodeRequests,
  MAX_BATCH,
  MAX_DATA_DEPTH,
  MAX_ERROR_MESSAGE,
  MAX_FRAME_COST,
  MAX_KEY_BYTES,
  MAX_VALUE_BYTES,
  parseInt64,
  parseLatestRequest,
  type ReplyEnvelope,
  type RequestEnvelope,
  type RequestItem,
  WireError,
} from "../codec.ts";
import type { Acceptor, DataValue, Proposer } from "../types.ts";
import { decode } from "./minimsgpack.ts";
import { bal, inst, req as request } from "./builders.ts";
import { ZERO_BALLOT } from "../types.ts";

// ---------------------------------------------------------------------------
// Helpers.

const te = new TextEncoder();

/** Binary comes back as a Buffer (a Uint8Array subclass): compare as plain bytes. */
function plain(x: unknown): unknown {
  if (x instanceof Uint8Array) return new Uint8Array(x);
  if (Array.isArray(x)) return x.map(plain);
  if (typeof x === "object" && x !== null) {
    return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, plain(v)]));
  }
  return x;
}

function onlyItem(items: RequestItem[]): RequestItem {
  assert.equal(items.length, 1);
  return items[0]!;
}

function expectReq(item: RequestItem): { Rid: unknown; Op: string; Req: Proposer } {
  if ("Err" in item) assert.fail(`expected a request, got Err ${item.Err.Code}: ${item.Err.Msg}`);
  if (item.Op !== "Prepare" && item.Op !== "Accept") {
    assert.fail(`expected Prepare or Accept, got ${item.Op}`);
  }
  return item;
}

function expectErr(item: RequestItem, code: string, msgPart?: string): void {
  if (!("Err" in item)) assert.fail(`expected Err ${code}, got a ${item.Op} request`);
  assert.equal(item.Err.Code, code, item.Err.Msg);
  if (msgPart !== undefined) {
    assert.ok(item.Err.Msg.includes(msgPart), `${JSON.stringify(item.Err.Msg)} names ${msgPart}`);
  }
}

/** Decodes a request frame built from a plain JS object (encoded by msgpackr). */
function decodeObj(x: unknown): RequestItem[] {
  return decodeRequestFrame(encodeFrame(x));
}

function expectFrameError(bytes: Uint8Array, closeCode: 1007 | 1008 | 1009): WireError {
  try {
    decodeRequestFrame(bytes);
  } catch (e) {
    assert.ok(e instanceof WireError, `expected a WireError, got ${e}`);
    assert.equal(e.closeCode, closeCode, e.message);
    return e;
  }
  return assert.fail(`frame ${Array.from(bytes)} was accepted`);
}

// A minimal builder of raw MessagePack bytes, to write frames byte by byte
// with exactly the encodings a test wants.

type Bytes = number[];

function str(s: string): Bytes {
  const b = te.encode(s);
  if (b.length < 32) return [0xa0 | b.length, ...b];
  if (b.length < 256) return [0xd9, b.length, ...b];
  return [0xda, b.length >> 8, b.length & 0xff, ...b];
}

function map(entries: Record<string, Bytes>): Bytes {
  const keys = Object.keys(entries);
  assert.ok(keys.length < 16);
  return [0x80 | keys.length, ...keys.flatMap((k) => [...str(k), ...entries[k]!])];
}

function arr(items: Bytes[]): Bytes {
  assert.ok(items.length < 16);
  return [0x90 | items.length, ...items.flat()];
}

/** An integer written with one specific MessagePack marker byte. */
function intAs(marker: number, v: bigint): Bytes {
  const view = new DataView(new ArrayBuffer(8));
  switch (marker) {
    case 0x00: // positive fixint
      assert.ok(v >= 0n && v <= 0x7fn);
      return [Number(v)];
    case 0xe0: // negative fixint
      assert.ok(v >= -32n && v < 0n);
      return [Number(v) & 0xff];
    case 0xcc:
      view.setUint8(0, Number(v));
      return [marker, ...new Uint8Array(view.buffer, 0, 1)];
    case 0xcd:
      view.setUint16(0, Number(v));
      return [marker, ...new Uint8Array(view.buffer, 0, 2)];
    case 0xce:
      view.setUint32(0, Number(v));
      return [marker, ...new Uint8Array(view.buffer, 0, 4)];
    case 0xcf:
      view.setBigUint64(0, v);
      return [marker, ...new Uint8Array(view.buffer, 0, 8)];
    case 0xd0:
      view.setInt8(0, Number(v));
      return [marker, ...new Uint8Array(view.buffer, 0, 1)];
    case 0xd1:
      view.setInt16(0, Number(v));
      return [marker, ...new Uint8Array(view.buffer, 0, 2)];
    case 0xd2:
      view.setInt32(0, Number(v));
      return [marker, ...new Uint8Array(view.buffer, 0, 4)];
    case 0xd3:
      view.setBigInt64(0, v);
      return [marker, ...new Uint8Array(view.buffer, 0, 8)];
  }
  throw new RangeError(`not an integer marker: ${marker}`);
}

function float64(v: number): Bytes {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, v);
  return [0xcb, ...new Uint8Array(view.buffer)];
}

/** A raw Prepare envelope whose `Bal.N` (and `Id.Ver`) are the given bytes. */
function rawPrepare(n: Bytes, ver: Bytes = [0]): Uint8Array {
  return new Uint8Array(map({
    Rid: [7],
    Op: str("Prepare"),
    Req: map({ Id: map({ Key: str("k"), Ver: ver }), Bal: map({ N: n, ProposerId: [1] }) }),
  }));
}

// What we send is plain MessagePack that any library reads: checked with
// the independent strict decoder of the interop tests (standard formats only,
// no extension types, string map keys; integers as bigint).
const strictDecode = decode;

/** The keys of a map decoded by {@link strictDecode}, in order. */
function strictKeys(x: unknown): string[] {
  assert.ok(typeof x === "object" && x !== null && !Array.isArray(x), `not a map: ${x}`);
  return Object.keys(x);
}

function strictGet(x: unknown, key: string): unknown {
  assert.ok(typeof x === "object" && x !== null && Object.hasOwn(x, key), `no key ${key}`);
  return (x as Record<string, unknown>)[key];
}

// ---------------------------------------------------------------------------
// Round trips.

const BIG_VALUES = [
  0n,
  1n,
  -1n,
  127n,
  -32n,
  -33n,
  255n,
  65536n,
  2n ** 31n,
  -(2n ** 31n),
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 53n,
  2n ** 53n + 1n,
  -(2n ** 53n) - 1n,
  2n ** 63n - 1n,
  -(2n ** 63n),
];

Deno.test("requests round-trip with int64 fields beyond 2^53 kept exact", () => {
  for (const x of BIG_VALUES) {
    const reqs: RequestEnvelope[] = [
      { Rid: 1, Op: "Prepare", Req: request(inst("k", x), bal(x, -x - 1n), null) },
      { Rid: 2, Op: "Accept", Req: request(inst("k", 3n), bal(1n, x), { Vi64: x }) },
    ];
    const items = decodeRequestFrame(encodeRequests(reqs));
    assert.deepEqual(items, reqs.map((r) => ({ Rid: r.Rid, Op: r.Op, Req: r.Req })), `${x}`);
  }
});

Deno.test("Data values round-trip: string, binary, map, array, nested, bigint", () => {
  const datas: DataValue[] = [
    "",
    "hello",
    "ünïcødé ✓ 🎉",
    "x".repeat(70_000),
    new Uint8Array([0, 1, 2, 255]),
    new Uint8Array(0),
    { a: 1, b: "two", c: true, d: null },
    {},
    [1, "x", false, null, 1.5, -7],
    [],
    { list: [{ deep: [1, [2, [3, { bin: new Uint8Array([9, 9]) }]]] }], n: -0.25 },
    2n ** 63n - 1n,
    { big: 2n ** 53n + 1n, neg: -(2n ** 63n), arr: [2n ** 62n] },
    0,
    42,
    false,
    true,
  ];
  for (const d of datas) {
    const req = request(inst("data", 1n), bal(2n, 3n), { Data: d });
    const [item] = decodeRequestFrame(encodeRequests([{ Rid: 9, Op: "Accept", Req: req }]));
    const got = expectReq(item!);
    assert.equal(got.Rid, 9);
    assert.deepEqual(plain(got.Req.Val), plain({ Data: d }));
    // Binary comes back as binary (Uint8Array or its subclass Buffer), not an array.
    if (d instanceof Uint8Array) {
      assert.ok((got.Req.Val as { Data: unknown }).Data instanceof Uint8Array);
    }
  }
});

Deno.test("replies round-trip: Rep with and without a vote, Err", () => {
  const voted: Acceptor = {
    LastBal: bal(2n ** 63n - 1n, 5n),
    Val: { Data: { x: [new Uint8Array([1]), "s", 2n ** 60n] } },
    VBal: bal(2n ** 53n + 1n, -(2n ** 63n)),
  };
  const unvoted: Acceptor = { LastBal: bal(3n, 4n), Val: null, VBal: ZERO_BALLOT };
  const reps: ReplyEnvelope[] = [
    { Rid: 1, Rep: voted },
    { Rid: 2, Rep: unvoted },
    { Rid: 3, Rep: { LastBal: bal(1n, 1n), Val: { Vi64: -(2n ** 63n) }, VBal: bal(1n, 1n) } },
    { Rid: 2n ** 64n - 1n, Err: { Code: "StorageError", Msg: "disk full" } },
  ];
  const got = decodeReplyFrame(encodeReplies(reps));
  assert.deepEqual(plain(got), plain(reps));
  // A single reply is one envelope, not a batch of one.
  const one = encodeReplies([{ Rid: 1, Rep: unvoted }]);
  assert.equal(one[0]! & 0xf0, 0x80);
  assert.deepEqual(decodeReplyFrame(one), [{ Rid: 1, Rep: unvoted }]);
});

Deno.test("Rid round-trips up to 2^64-1", () => {
  for (const rid of [0, 1, 2 ** 32, Number.MAX_SAFE_INTEGER, 2n ** 53n, 2n ** 64n - 1n]) {
    const req = request(inst("k", 0n), bal(1n, 1n), null);
    const item = onlyItem(
      decodeRequestFrame(encodeRequests([{ Rid: rid, Op: "Prepare", Req: req }])),
    );
    assert.equal(item.Rid, rid);
  }
});

// ---------------------------------------------------------------------------
// int64 fields accept every MessagePack integer encoding.

Deno.test("int64 fields accept every MessagePack integer encoding", () => {
  const cases: [number, bigint][] = [
    [0x00, 0n],
    [0x00, 5n],
    [0x00, 127n],
    [0xe0, -1n],
    [0xe0, -32n],
    [0xcc, 0n],
    [0xcc, 200n],
    [0xcd, 3n],
    [0xcd, 65535n],
    [0xce, 7n],
    [0xce, 2n ** 32n - 1n],
    [0xcf, 9n],
    [0xcf, 2n ** 53n + 1n],
    [0xcf, 2n ** 63n - 1n],
    [0xd0, -128n],
    [0xd0, 100n],
    [0xd1, -32768n],
    [0xd1, 1n],
    [0xd2, -(2n ** 31n)],
    [0xd2, 2n ** 31n - 1n],
    [0xd3, -(2n ** 63n)],
    [0xd3, 2n ** 53n + 1n],
    [0xd3, 12n],
  ];
  for (const [marker, v] of cases) {
    const what = `0x${marker.toString(16)} ${v}`;
    const got = expectReq(onlyItem(decodeRequestFrame(rawPrepare(intAs(marker, v)))));
    assert.equal(got.Req.Bal.N, v, what);
    assert.equal(typeof got.Req.Bal.N, "bigint", what);
    const got2 = expectReq(onlyItem(decodeRequestFrame(rawPrepare([1], intAs(marker, v)))));
    assert.equal(got2.Req.Id.Ver, v, what);
  }
  // And in an Accept's Vi64, and in a reply's ballots.
  const accept = new Uint8Array(map({
    Rid: intAs(0xcf, 3n),
    Op: str("Accept"),
    Req: map({
      Id: map({ Key: str("k"), Ver: intAs(0xd1, -300n) }),
      Bal: map({ N: intAs(0xcd, 1000n), ProposerId: intAs(0xe0, -2n) }),
      Val: map({ Vi64: intAs(0xcf, 2n ** 63n - 1n) }),
    }),
  }));
  const a = expectReq(onlyItem(decodeRequestFrame(accept)));
  assert.deepEqual(a, {
    Rid: 3,
    Op: "Accept",
    Req: request(inst("k", -300n), bal(1000n, -2n), { Vi64: 2n ** 63n - 1n }),
  });
  const reply = new Uint8Array(map({
    Rid: intAs(0xcc, 4n),
    Rep: map({
      LastBal: map({ N: intAs(0xd3, 2n ** 62n), ProposerId: intAs(0xd0, -5n) }),
      Val: map({ Vi64: intAs(0xce, 70000n) }),
      VBal: map({ N: intAs(0xd2, -70000n), ProposerId: intAs(0x00, 1n) }),
    }),
  }));
  assert.deepEqual(decodeReplyFrame(reply), [{
    Rid: 4,
    Rep: { LastBal: bal(2n ** 62n, -5n), Val: { Vi64: 70000n }, VBal: bal(-70000n, 1n) },
  }]);
});

Deno.test("int64 fields refuse uint64 above int64 max, floats and strings, naming the field", () => {
  const badN: [string, Bytes][] = [
    ["uint64 2^63", intAs(0xcf, 2n ** 63n)],
    ["uint64 max", intAs(0xcf, 2n ** 64n - 1n)],
    ["float 1.5", float64(1.5)],
    ["float 2^60", float64(2 ** 60)],
    ["string", str("5")],
    ["bool", [0xc3]],
    ["binary", [0xc4, 1, 5]],
    ["array", arr([[1]])],
    ["map", map({ N: [1] })],
  ];
  for (const [what, n] of badN) {
    const item = onlyItem(decodeRequestFrame(rawPrepare(n)));
    assert.equal(item.Rid, 7, what);
    expectErr(item, "BadRequest", "Req.Bal.N");
    const item2 = onlyItem(decodeRequestFrame(rawPrepare([1], n)));
    expectErr(item2, "BadRequest", "Req.Id.Ver");
  }
  // The same rule in Vi64 and ProposerId.
  const vi64 = decodeObj({
    Rid: 1,
    Op: "Accept",
    Req: { Id: { Key: "k", Ver: 0 }, Bal: { N: 1, ProposerId: 1 }, Val: { Vi64: 2.5 } },
  });
  expectErr(onlyItem(vi64), "BadRequest", "Req.Val.Vi64");
  const pid = decodeObj({
    Rid: 1,
    Op: "Prepare",
    Req: { Id: { Key: "k", Ver: 0 }, Bal: { N: 1, ProposerId: "me" } },
  });
  expectErr(onlyItem(pid), "BadRequest", "Req.Bal.ProposerId");
});

// ---------------------------------------------------------------------------
// The encoder's bytes: plain MessagePack maps with exactly the protocol's keys.

Deno.test("encoded requests are plain MessagePack maps with the protocol's key names", () => {
  const prepare = encodeRequests([{
    Rid: 5,
    Op: "Prepare",
    Req: request(inst("key", 2n), bal(2n ** 53n + 1n, 7n), null),
  }]);
  // One envelope: a fixmap of three entries, no msgpackr record extension.
  assert.equal(prepare[0], 0x83);
  const env = strictDecode(prepare);
  assert.deepEqual(strictKeys(env), ["Rid", "Op", "Req"]);
  assert.equal(strictGet(env, "Rid"), 5n);
  assert.equal(strictGet(env, "Op"), "Prepare");
  const req = strictGet(env, "Req");
  // A nil Val is absent (or nil).
  const reqKeys = strictKeys(req);
  assert.deepEqual(reqKeys.filter((k) => k !== "Val"), ["Id", "Bal"]);
  if (reqKeys.includes("Val")) assert.equal(strictGet(req, "Val"), null);
  assert.deepEqual(strictKeys(strictGet(req, "Id")), ["Key", "Ver"]);
  assert.equal(strictGet(strictGet(req, "Id"), "Key"), "key");
  assert.equal(strictGet(strictGet(req, "Id"), "Ver"), 2n);
  assert.deepEqual(strictKeys(strictGet(req, "Bal")), ["N", "ProposerId"]);
  // 2^53+1 travels as an integer (not a float that would lose the last bit).
  assert.equal(strictGet(strictGet(req, "Bal"), "N"), 2n ** 53n + 1n);

  // The same seen by msgpackr's plain unpack.
  assert.deepEqual(unpack(prepare), {
    Rid: 5,
    Op: "Prepare",
    Req: { Id: { Key: "key", Ver: 2 }, Bal: { N: 2n ** 53n + 1n, ProposerId: 7 } },
  });

  const accept = encodeRequests([{
    Rid: 6,
    Op: "Accept",
    Req: request(inst("key", 0n), bal(1n, 2n), { Vi64: -(2n ** 63n) }),
  }]);
  assert.equal(accept[0], 0x83);
  const areq = strictGet(strictDecode(accept), "Req");
  assert.deepEqual(strictKeys(areq), ["Id", "Bal", "Val"]);
  assert.deepEqual(strictKeys(strictGet(areq, "Val")), ["Vi64"]);
  assert.equal(strictGet(strictGet(areq, "Val"), "Vi64"), -(2n ** 63n));

  const data = encodeRequests([{
    Rid: 7,
    Op: "Accept",
    Req: request(inst("key", 0n), bal(1n, 2n), { Data: { s: "x", b: new Uint8Array([1, 2]) } }),
  }]);
  const dval = strictGet(strictGet(strictDecode(data), "Req"), "Val");
  assert.deepEqual(strictKeys(dval), ["Data"]);
  assert.deepEqual(
    new Uint8Array(strictGet(strictGet(dval, "Data"), "b") as Uint8Array),
    new Uint8Array([1, 2]),
  );

  // A batch is an array of such maps.
  const batch = encodeRequests([
    { Rid: 1, Op: "Prepare", Req: request(inst("a", 0n), bal(1n, 1n), null) },
    { Rid: 2, Op: "Prepare", Req: request(inst("b", 0n), bal(1n, 1n), null) },
  ]);
  assert.equal(batch[0], 0x92);
  const envs = strictDecode(batch) as unknown[];
  assert.deepEqual(envs.map(strictKeys), [["Rid", "Op", "Req"], ["Rid", "Op", "Req"]]);
});

Deno.test("encoded replies use the protocol's keys; an Accept reply is {LastBal} only", () => {
  const acceptReply = encodeReplies([{
    Rid: 3,
    Rep: { LastBal: bal(4n, 5n), Val: null, VBal: ZERO_BALLOT },
  }]);
  assert.equal(acceptReply[0], 0x82);
  const env = strictDecode(acceptReply);
  assert.deepEqual(strictKeys(env), ["Rid", "Rep"]);
  assert.deepEqual(strictKeys(strictGet(env, "Rep")), ["LastBal"]);
  assert.deepEqual(strictKeys(strictGet(strictGet(env, "Rep"), "LastBal")), ["N", "ProposerId"]);
  assert.deepEqual(unpack(acceptReply), { Rid: 3, Rep: { LastBal: { N: 4, ProposerId: 5 } } });

  const prepareReply = encodeReplies([{
    Rid: 4,
    Rep: { LastBal: bal(4n, 5n), Val: { Vi64: 1n }, VBal: bal(3n, 1n) },
  }]);
  assert.deepEqual(strictKeys(strictGet(strictDecode(prepareReply), "Rep")), [
    "LastBal",
    "Val",
    "VBal",
  ]);

  const err = encodeReplies([{ Rid: 8, Err: { Code: "UnknownOp", Msg: "no" } }]);
  const e = strictDecode(err);
  assert.deepEqual(strictKeys(e), ["Rid", "Err"]);
  assert.deepEqual(strictKeys(strictGet(e, "Err")), ["Code", "Msg"]);
});

Deno.test("absent and nil fields read as the zero ballot / no value", () => {
  // A reply that carries only LastBal, and one with explicit nils.
  const short = new Uint8Array(map({ Rid: [1], Rep: map({ LastBal: map({ N: [2] }) }) }));
  assert.deepEqual(decodeReplyFrame(short), [{
    Rid: 1,
    Rep: { LastBal: bal(2n, 0n), Val: null, VBal: ZERO_BALLOT },
  }]);
  const nils = new Uint8Array(
    map({ Rid: [2], Rep: map({ LastBal: [0xc0], Val: [0xc0], VBal: [0xc0] }) }),
  );
  assert.deepEqual(decodeReplyFrame(nils), [{
    Rid: 2,
    Rep: { LastBal: ZERO_BALLOT, Val: null, VBal: ZERO_BALLOT },
  }]);
  // A Prepare whose Val is nil.
  const prep = decodeObj({
    Rid: 3,
    Op: "Prepare",
    Req: { Id: { Key: "k", Ver: 1 }, Bal: { N: 1, ProposerId: 2 }, Val: null },
  });
  assert.equal(expectReq(onlyItem(prep)).Req.Val, null);
});

// ---------------------------------------------------------------------------
// Value rules and limits.

function acceptWith(val: unknown, key = "k"): unknown {
  const req: Record<string, unknown> = { Id: { Key: key, Ver: 0 }, Bal: { N: 1, ProposerId: 1 } };
  if (val !== undefined) req.Val = val;
  return { Rid: 11, Op: "Accept", Req: req };
}

Deno.test("a Value carries exactly one of Vi64 and Data", () => {
  expectErr(onlyItem(decodeObj(acceptWith({ Vi64: 1, Data: "x" }))), "BadRequest", "Req.Val");
  expectErr(onlyItem(decodeObj(acceptWith({}))), "BadRequest", "Req.Val");
  expectErr(onlyItem(decodeObj(acceptWith({ Other: 1 }))), "BadRequest", "Req.Val");
  expectErr(onlyItem(decodeObj(acceptWith(5))), "BadRequest", "Req.Val");
  // Accept without a value at all.
  expectErr(onlyItem(decodeObj(acceptWith(undefined))), "BadRequest", "Req.Val");
  expectErr(onlyItem(decodeObj(acceptWith(null))), "BadRequest", "Req.Val");
  // One of them, the other nil: fine.
  const one = expectReq(onlyItem(decodeObj(acceptWith({ Vi64: 3, Data: null }))));
  assert.deepEqual(one.Req.Val, { Vi64: 3n });
  const two = expectReq(onlyItem(decodeObj(acceptWith({ Vi64: null, Data: [1] }))));
  assert.deepEqual(two.Req.Val, { Data: [1] });
  // The Err keeps the request's Rid.
  assert.equal(onlyItem(decodeObj(acceptWith({}))).Rid, 11);
});

Deno.test("Data with a MessagePack extension type is refused", () => {
  // {Rid: 1, Op: "Accept", Req: {..., Val: {Data: <timestamp ext -1>}}}
  const timestamp = [0xd6, 0xff, 0, 0, 0, 1]; // msgpackr decodes this as a Date
  const frame = new Uint8Array(map({
    Rid: [1],
    Op: str("Accept"),
    Req: map({
      Id: map({ Key: str("k"), Ver: [0] }),
      Bal: map({ N: [1], ProposerId: [1] }),
      Val: map({ Data: timestamp }),
    }),
  }));
  expectErr(onlyItem(decodeRequestFrame(frame)), "BadRequest", "Req.Val.Data");
  // Nested inside a map and an array too.
  const nested = new Uint8Array(map({
    Rid: [1],
    Op: str("Accept"),
    Req: map({
      Id: map({ Key: str("k"), Ver: [0] }),
      Bal: map({ N: [1], ProposerId: [1] }),
      Val: map({ Data: map({ a: arr([[1], timestamp]) }) }),
    }),
  }));
  expectErr(onlyItem(decodeRequestFrame(nested)), "BadRequest", "Req.Val.Data.a[1]");
});

Deno.test("Op: unknown -> UnknownOp, missing or nil -> BadRequest", () => {
  const req = { Id: { Key: "k", Ver: 0 }, Bal: { N: 1, ProposerId: 1 } };
  expectErr(onlyItem(decodeObj({ Rid: 1, Op: "Commit", Req: req })), "UnknownOp", "Commit");
  expectErr(onlyItem(decodeObj({ Rid: 1, Op: "prepare", Req: req })), "UnknownOp");
  expectErr(onlyItem(decodeObj({ Rid: 1, Op: 1, Req: req })), "UnknownOp");
  expectErr(onlyItem(decodeObj({ Rid: 1, Req: req })), "BadRequest", "Op");
  expectErr(onlyItem(decodeObj({ Rid: 1, Op: null, Req: req })), "BadRequest", "Op");
});

Deno.test("a request without Req, Id or Bal, or with wrong shapes, is a BadRequest", () => {
  const cases: [unknown, string][] = [
    [{ Rid: 1, Op: "Prepare" }, "Req"],
    [{ Rid: 1, Op: "Prepare", Req: 5 }, "Req"],
    [{ Rid: 1, Op: "Prepare", Req: { Bal: { N: 1, ProposerId: 1 } } }, "Req.Id"],
    [{ Rid: 1, Op: "Prepare", Req: { Id: { Key: "k", Ver: 0 } } }, "Req.Bal"],
    [{ Rid: 1, Op: "Prepare", Req: { Id: { Key: 5, Ver: 0 }, Bal: {} } }, "Req.Id.Key"],
    [{ Rid: 1, Op: "Prepare", Req: { Id: [], Bal: {} } }, "Req.Id"],
    [{ Rid: 1, Op: "Prepare", Req: { Id: { Key: "k" }, Bal: "b" } }, "Req.Bal"],
  ];
  for (const [env, path] of cases) expectErr(onlyItem(decodeObj(env)), "BadRequest", path);
});

Deno.test("limits: a key over MAX_KEY_BYTES and Data over MAX_VALUE_BYTES are TooLarge", () => {
  const prep = (key: string) => ({
    Rid: 1,
    Op: "Prepare",
    Req: { Id: { Key: key, Ver: 0 }, Bal: { N: 1, ProposerId: 1 } },
  });
  assert.equal(
    expectReq(onlyItem(decodeObj(prep("k".repeat(MAX_KEY_BYTES))))).Req.Id.Key.length,
    MAX_KEY_BYTES,
  );
  expectErr(onlyItem(decodeObj(prep("k".repeat(MAX_KEY_BYTES + 1)))), "TooLarge", "Req.Id.Key");
  // Counted in UTF-8 bytes: "€" is 3 bytes.
  const euros = Math.floor(MAX_KEY_BYTES / 3);
  expectReq(onlyItem(decodeObj(prep("€".repeat(euros)))));
  expectErr(onlyItem(decodeObj(prep("€".repeat(euros + 1) + "ab"))), "TooLarge", "Req.Id.Key");

  // bin32 has a 5-byte header: this Data encodes to exactly MAX_VALUE_BYTES.
  const atLimit = new Uint8Array(MAX_VALUE_BYTES - 5);
  const ok = expectReq(onlyItem(decodeRequestFrame(encodeRequests([{
    Rid: 2,
    Op: "Accept",
    Req: request(inst("k", 0n), bal(1n, 1n), { Data: atLimit }),
  }]))));
  assert.equal((ok.Req.Val as { Data: Uint8Array }).Data.length, MAX_VALUE_BYTES - 5);
  const over = decodeRequestFrame(encodeRequests([{
    Rid: 3,
    Op: "Accept",
    Req: request(inst("k", 0n), bal(1n, 1n), { Data: new Uint8Array(MAX_VALUE_BYTES - 4) }),
  }]));
  expectErr(onlyItem(over), "TooLarge", "Req.Val.Data");
  assert.equal(onlyItem(over).Rid, 3);
  // A large string too.
  const bigString = decodeRequestFrame(encodeRequests([{
    Rid: 4,
    Op: "Accept",
    Req: request(inst("k", 0n), bal(1n, 1n), { Data: ["s", "x".repeat(MAX_VALUE_BYTES)] }),
  }]));
  expectErr(onlyItem(bigString), "TooLarge");
});

// ---------------------------------------------------------------------------
// Frame-level errors and batches.

Deno.test("bytes that are not MessagePack are refused with close code 1007", () => {
  const garbage: number[][] = [
    [],
    [0x83, 0xa3], // truncated map
    [0xd9], // str8 without its length
    [0xdd, 0xff, 0xff, 0xff, 0xff], // array32 claiming 4G items
    [...te.encode("hello world")], // a fixint then trailing bytes
    [0x81, 0xa1, 0x61, 0xd4, 0x05, 0x00], // an extension type msgpackr does not know
  ];
  for (const g of garbage) {
    const e = expectFrameError(new Uint8Array(g), 1007);
    assert.equal(e.code, "BadRequest");
    assert.ok(e.message.includes("not valid MessagePack"), e.message);
  }
  assert.throws(() => decodeFrame(new Uint8Array([0x92, 1])), WireError);
  // Two valid values back to back are not one frame.
  const two = new Uint8Array([...encodeFrame({ Rid: 1 }), ...encodeFrame({ Rid: 2 })]);
  expectFrameError(two, 1007);
});

Deno.test("a MessagePack value that is not an envelope is refused with close code 1008", () => {
  const req = { Id: { Key: "k", Ver: 0 }, Bal: { N: 1, ProposerId: 1 } };
  const values: unknown[] = [
    42,
    "Prepare",
    null,
    true,
    new Uint8Array([1, 2]),
    {},
    { Op: "Prepare", Req: req }, // no Rid
    { Rid: -1, Op: "Prepare", Req: req },
    { Rid: 1.5, Op: "Prepare", Req: req },
    { Rid: "1", Op: "Prepare", Req: req },
    { Rid: null, Op: "Prepare", Req: req },
    [{ Rid: 1, Op: "Prepare", Req: req }, 7], // a batch with a non-envelope
    [{ Rid: 1, Op: "Prepare", Req: req }, { Op: "Prepare", Req: req }], // a batch item without Rid
    [[{ Rid: 1, Op: "Prepare", Req: req }]], // nested batch
  ];
  for (const v of values) {
    const e = expectFrameError(encodeFrame(v), 1008);
    assert.equal(e.code, "BadRequest");
  }
  // The message says what was wrong.
  const e = expectFrameError(encodeFrame({ Rid: -3, Op: "Prepare", Req: req }), 1008);
  assert.ok(e.message.includes("Rid") && e.message.includes("-3"), e.message);
  // An extension type (a timestamp, which msgpackr would make a Date) is not
  // plain MessagePack: refused before decoding.
  const d = expectFrameError(new Uint8Array([0xd6, 0xff, 0, 0, 0, 1]), 1007);
  assert.ok(d.message.includes("extension type -1"), d.message);
});

Deno.test("a batch of valid envelopes decodes to all its requests, in order", () => {
  const reqs: RequestEnvelope[] = Array.from({ length: 20 }, (_, i) => ({
    Rid: i * 3,
    Op: i % 2 === 0 ? "Prepare" : "Accept",
    Req: request(
      inst(`k${i}`, BigInt(i)),
      bal(BigInt(i + 1), 1n),
      i % 2 === 0 ? null : { Vi64: BigInt(-i) },
    ),
  }));
  const items = decodeRequestFrame(encodeRequests(reqs));
  assert.deepEqual(items, reqs.map((r) => ({ Rid: r.Rid, Op: r.Op, Req: r.Req })));
  // An empty batch is no request.
  assert.deepEqual(decodeRequestFrame(new Uint8Array([0x90])), []);
});

Deno.test("a batch mixing valid and bad-body envelopes gives Err items for the bad ones only", () => {
  const good = (rid: number) => ({
    Rid: rid,
    Op: "Prepare",
    Req: { Id: { Key: "k", Ver: rid }, Bal: { N: 1, ProposerId: 1 } },
  });
  const frame = encodeFrame([
    good(1),
    { Rid: 2, Op: "Vote", Req: good(0).Req },
    good(3),
    { Rid: 4, Op: "Prepare", Req: { Id: { Key: "k", Ver: 1.5 }, Bal: {} } },
    { Rid: 5, Op: "Accept", Req: good(0).Req },
    good(6),
  ]);
  const items = decodeRequestFrame(frame);
  assert.deepEqual(items.map((i) => i.Rid), [1, 2, 3, 4, 5, 6]);
  for (const i of [0, 2, 5]) {
    const r = expectReq(items[i]!);
    assert.equal(r.Op, "Prepare");
    assert.equal(r.Req.Id.Ver, BigInt(r.Rid as number));
  }
  expectErr(items[1]!, "UnknownOp", "Vote");
  expectErr(items[3]!, "BadRequest", "Req.Id.Ver");
  expectErr(items[4]!, "BadRequest", "Req.Val");
});

// ---------------------------------------------------------------------------
// Hostile encodings: what a small frame may not turn into.

/** A raw Accept envelope whose `Val.Data` is the given bytes. */
function rawAcceptData(data: Bytes): Uint8Array {
  return new Uint8Array([
    0x83,
    ...str("Rid"),
    1,
    ...str("Op"),
    ...str("Accept"),
    ...str("Req"),
    ...map({
      Id: map({ Key: str("k"), Ver: [0] }),
      Bal: map({ N: [1], ProposerId: [1] }),
      Val: [0x81, ...str("Data"), ...data],
    }),
  ]);
}

Deno.test("msgpackr's record extension is refused before anything is decoded", () => {
  // msgpackr's record extension: define 60 long keys once (0xd4 0x72 id),
  // then each 1-byte reference (0x40) plus 60 one-byte values would be a map
  // of 60 keys of 1000 bytes: an ~80 KB frame would hold ~18 MB of Data.
  // Read as plain MessagePack, those bytes are not one value.
  const keys = Array.from({ length: 60 }, (_, i) => String(i).padEnd(1000, "k"));
  const values = keys.map(() => 1);
  const first = [0xd4, 0x72, 0x40, 0xdc, 0, keys.length, ...keys.flatMap(str), ...values];
  const rest = [0x40, ...values];
  const n = 300;
  const data = [0xdc, n >> 8, n & 0xff, ...first];
  for (let i = 1; i < n; i++) data.push(...rest);
  const frame = rawAcceptData(data);
  assert.ok(frame.length < 100_000);
  expectFrameError(frame, 1007);
  expectFrameError(rawAcceptData([0x92, ...first, ...rest]), 1007);
  // A record definition that is one value is an extension type: an Err.
  expectErr(onlyItem(decodeRequestFrame(rawAcceptData([0xd4, 0x72, 0x40]))), "BadRequest", "0x72");
});

Deno.test("the Data size limit counts exactly the bytes the encoder writes", () => {
  const samples: DataValue[] = [
    "",
    "a",
    "x".repeat(31),
    "x".repeat(32),
    "x".repeat(255),
    "x".repeat(256),
    "é",
    "€",
    "🎉",
    "a\ud800b", // a lone surrogate is written as U+FFFD
    "\udc00",
    "é".repeat(40_000),
    0,
    127,
    128,
    255,
    256,
    65535,
    65536,
    2 ** 32 - 1,
    2 ** 32,
    -1,
    -32,
    -33,
    -128,
    -129,
    -32768,
    -32769,
    -(2 ** 31),
    -(2 ** 31) - 1,
    1.5,
    -0,
    Number.NaN,
    5n,
    -(2n ** 63n),
    true,
    null,
    new Uint8Array(255),
    new Uint8Array(256),
    new Uint8Array(65536),
    { a: 1, "ключ": [1, 2], "🎉": { x: null } },
    Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i])),
    Array.from({ length: 15 }, (_, i) => i * 1000),
    Array.from({ length: 16 }, (_, i) => -i),
    [[[["deep", 2n ** 60n]]]],
  ];
  for (const v of samples) {
    // [v, padding] encodes to exactly MAX_VALUE_BYTES: an array header of 1
    // byte, v, and a bin32 of the rest.
    const pad = MAX_VALUE_BYTES - 1 - encodeFrame(v).length - 5;
    const at = [v, new Uint8Array(pad)];
    assert.equal(encodeFrame(at).length, MAX_VALUE_BYTES);
    const req = (d: DataValue) => [{
      Rid: 1,
      Op: "Accept" as const,
      Req: request(inst("k", 0n), bal(1n, 1n), { Data: d }),
    }];
    const what = typeof v === "string" ? JSON.stringify(v.slice(0, 10)) : String(v);
    const ok = onlyItem(decodeRequestFrame(encodeRequests(req(at))));
    assert.ok(!("Err" in ok), `${what} at the limit: ${"Err" in ok ? ok.Err.Msg : ""}`);
    const over = onlyItem(decodeRequestFrame(encodeRequests(req([v, new Uint8Array(pad + 1)]))));
    assert.ok("Err" in over && over.Err.Code === "TooLarge", `${what} one byte over the limit`);
  }
});

Deno.test("msgpackr structured-clone references are refused (no shared-node graphs)", () => {
  // ext 0x69 "id" and 0x70 "pointer": level i is [ptr(i-1), ptr(i-1)], so
  // a few hundred bytes would make a value with 2^depth leaves.
  const id = (i: number) => [(i >>> 24) & 255, (i >>> 16) & 255, (i >>> 8) & 255, i & 255];
  const depth = 10;
  const levels: Bytes = [0xd6, 0x69, ...id(0), 0x92, 1, 2];
  for (let i = 1; i <= depth; i++) {
    levels.push(0xd6, 0x69, ...id(i), 0x92, 0xd6, 0x70, ...id(i - 1), 0xd6, 0x70, ...id(i - 1));
  }
  const frame = rawAcceptData([0xdc, 0, depth + 1, ...levels]);
  assert.ok(frame.length < 300);
  expectFrameError(frame, 1007);
});

Deno.test("nesting: Data up to MAX_DATA_DEPTH is fine, deeper is refused, absurd depth closes", () => {
  const nest = (levels: number): DataValue => {
    let d: DataValue = 1;
    for (let i = 0; i < levels; i++) d = [d];
    return d;
  };
  const req = (d: DataValue) =>
    encodeRequests([{
      Rid: 1,
      Op: "Accept",
      Req: request(inst("k", 0n), bal(1n, 1n), { Data: d }),
    }]);
  expectReq(onlyItem(decodeRequestFrame(req(nest(MAX_DATA_DEPTH)))));
  expectErr(onlyItem(decodeRequestFrame(req(nest(MAX_DATA_DEPTH + 1)))), "BadRequest", "nested");
  // A frame nested far beyond what a decoder can recurse into: refused, not a crash.
  const deep = new Uint8Array(200_000).fill(0x91);
  deep[deep.length - 1] = 1;
  const e = expectFrameError(deep, 1007);
  assert.equal(e.code, "BadRequest");
});

Deno.test("codec: the kv extension's Next on Accept and NextOk on its reply round-trip, and only when set", () => {
  const req: Proposer = {
    Id: { Key: "k", Ver: 4n },
    Bal: { N: 2n, ProposerId: 9n },
    Val: { Data: "v", Wid: 77n },
    Next: true,
  };
  const item = decodeRequestFrame(encodeRequests([{ Rid: 1, Op: "Accept", Req: req }]))[0]!;
  assert.ok(!("Err" in item) && item.Op === "Accept");
  assert.deepEqual(item.Req, req);
  const plain = { ...req };
  delete (plain as { Next?: true }).Next;
  const raw = unpack(encodeRequests([{ Rid: 2, Op: "Accept", Req: plain }])) as {
    Req: Record<string, unknown>;
  };
  assert.deepEqual(Object.keys(raw.Req).sort(), ["Bal", "Id", "Val"]);

  const rep: Acceptor = { LastBal: ZERO_BALLOT, Val: null, VBal: ZERO_BALLOT, NextOk: true };
  const back = decodeReplyFrame(encodeReplies([{ Rid: 3, Rep: rep }]))[0]!;
  assert.ok("Rep" in back);
  assert.deepEqual(back.Rep, rep);
  assert.deepEqual(
    unpack(encodeReplies([{ Rid: 4, Rep: { ...rep, NextOk: undefined } as unknown as Acceptor }])),
    { Rid: 4, Rep: { LastBal: { N: 0, ProposerId: 0 } } },
  );
});

// ---------------------------------------------------------------------------
// Hostile frames (issue 12): refused before decoding, answered per request.

Deno.test("an extension type in one request of a batch is an Err for it alone, by its Rid", () => {
  const good = (rid: number) =>
    map({
      Rid: [rid],
      Op: str("Prepare"),
      Req: map({
        Id: map({ Key: str("k"), Ver: [0] }),
        Bal: map({ N: [1], ProposerId: [1] }),
      }),
    });
  // An 85-byte Accept whose Data is msgpackr's 128-bit integer (ext 0x42).
  const bigint = [0xc7, 16, 0x42, ...new Array(16).fill(0xff)];
  const bad = map({
    Rid: [2],
    Op: str("Accept"),
    Req: map({
      Id: map({ Key: str("k"), Ver: [0] }),
      Bal: map({ N: [1], ProposerId: [1] }),
      Val: map({ Data: bigint }),
    }),
  });
  const items = decodeRequestFrame(new Uint8Array(arr([good(1), bad, good(3)])));
  assert.equal(items.length, 3);
  expectReq(items[0]!);
  expectErr(items[1]!, "BadRequest", "Req.Val.Data: extension type 0x42");
  assert.equal(items[1]!.Rid, 2);
  expectReq(items[2]!);
  // Without a readable Rid the frame is refused whole, as not MessagePack.
  const noRid = map({ Op: str("Accept"), Data: bigint });
  expectFrameError(new Uint8Array(arr([good(1), noRid])), 1007);
});

Deno.test("every integer of Data must fit an int64; a Rid may be any uint64", () => {
  const data = (x: Bytes) => rawAcceptData(x);
  expectErr(onlyItem(decodeRequestFrame(data(intAs(0xcf, 2n ** 63n)))), "BadRequest", "int64");
  expectErr(
    onlyItem(decodeRequestFrame(data(arr([[1], intAs(0xcf, 2n ** 64n - 1n)])))),
    "BadRequest",
    "Req.Val.Data[1]",
  );
  expectReq(onlyItem(decodeRequestFrame(data(intAs(0xcf, 2n ** 63n - 1n)))));
  expectReq(onlyItem(decodeRequestFrame(data(intAs(0xd3, -(2n ** 63n))))));
  const rid = new Uint8Array(
    map({ Rid: intAs(0xcf, 2n ** 64n - 1n), Op: str("Latest"), Req: map({ Key: str("k") }) }),
  );
  assert.equal(onlyItem(decodeRequestFrame(rid)).Rid, 2n ** 64n - 1n);
});

Deno.test("what a frame may cost to decode is bounded: TooLarge, Overloaded, or close 1009", () => {
  // A Data array of n small integers costs about n.
  const ints = (
    n: number,
  ) => [
    0xdd,
    (n >>> 24) & 255,
    (n >>> 16) & 255,
    (n >>> 8) & 255,
    n & 255,
    ...new Array(n).fill(1),
  ];
  const accept = (rid: number, n: number) =>
    map({
      Rid: [rid],
      Op: str("Accept"),
      Req: map({
        Id: map({ Key: str("k"), Ver: [0] }),
        Bal: map({ N: [1], ProposerId: [1] }),
        Val: map({ Data: ints(n) }),
      }),
    });
  const third = Math.floor(MAX_FRAME_COST / 3);
  // Alone over the limit: TooLarge, final.
  expectErr(
    onlyItem(decodeRequestFrame(new Uint8Array(accept(1, MAX_FRAME_COST)))),
    "TooLarge",
    "cost",
  );
  // Three thirds fit; a fourth request goes over: Overloaded, the first three served.
  const items = decodeRequestFrame(
    new Uint8Array([
      0x94,
      ...accept(1, third - 1000),
      ...accept(2, third - 1000),
      ...accept(3, third - 1000),
      ...accept(4, third - 1000),
    ]),
  );
  assert.deepEqual(items.map((i) => "Err" in i ? i.Err.Code : "ok"), [
    "ok",
    "ok",
    "ok",
    "Overloaded",
  ]);
  // Over twice the limit: the frame is refused whole.
  const e = expectFrameError(new Uint8Array(accept(1, 2 * MAX_FRAME_COST)), 1009);
  assert.equal(e.code, "TooLarge");
  // So is a batch of more than MAX_BATCH requests.
  const many = new Uint8Array([
    0xdd,
    0,
    0,
    (MAX_BATCH + 1) >> 8,
    (MAX_BATCH + 1) & 255,
    ...new Array(MAX_BATCH + 1).fill(0x80),
  ]);
  assert.equal(expectFrameError(many, 1009).code, "TooLarge");
});

Deno.test("an empty batch decodes to no requests, and an empty reply batch is []", () => {
  assert.deepEqual(decodeRequestFrame(new Uint8Array([0x90])), []);
  assert.deepEqual(Array.from(encodeReplies([])), [0x90]);
});

Deno.test("a reply that cannot be encoded is an Err Internal alone; Err messages are cut", () => {
  const ok: ReplyEnvelope = { Rid: 1, Rep: { LastBal: bal(1, 1), Val: null, VBal: ZERO_BALLOT } };
  const bad: ReplyEnvelope = {
    Rid: 2,
    Rep: { LastBal: bal(1, 1), Val: { Data: 2n ** 70n }, VBal: bal(1, 1) },
  };
  const replies = decodeReplyFrame(encodeReplies([ok, bad]));
  assert.deepEqual(replies[0], ok);
  assert.equal(replies[1]!.Rid, 2);
  assert.ok("Err" in replies[1]! && replies[1].Err.Code === "Internal", JSON.stringify(replies[1]));
  const long = decodeReplyFrame(
    encodeReplies([{ Rid: 3, Err: { Code: "BadRequest", Msg: "x".repeat(10_000) } }]),
  );
  assert.ok("Err" in long[0]! && long[0].Err.Msg.length === MAX_ERROR_MESSAGE);
});

Deno.test("Keys (kv extension): requests and replies round-trip; a bad limit or an unsorted page is refused", () => {
  const reqs = [
    { Rid: 1, Op: "Keys" as const, Req: { From: "a", Limit: 10 } },
    { Rid: 2, Op: "Keys" as const, Req: { From: "", End: "b", Limit: 1000 } },
  ];
  assert.deepEqual(decodeRequestFrame(encodeRequests(reqs)), reqs);
  for (const Limit of [0, 1001, 1.5, "10", -1]) {
    const [item] = decodeRequestFrame(
      encodeFrame({ Rid: 3, Op: "Keys", Req: { From: "", Limit } }),
    );
    assert.ok(item !== undefined && "Err" in item, `Limit ${JSON.stringify(Limit)} accepted`);
    assert.equal(item.Err.Code, "BadRequest");
    assert.match(item.Err.Msg, /Req\.Limit/);
  }
  const page = { Keys: ["a", "b\0", "c"], More: true };
  assert.deepEqual(decodeReplyFrame(encodeReplies([{ Rid: 4, Rep: page }]), () => "Keys"), [
    { Rid: 4, Rep: page },
  ]);
  const unsorted = encodeFrame({ Rid: 5, Rep: { Keys: ["b", "a"], More: false } });
  assert.throws(() => decodeReplyFrame(unsorted, () => "Keys"), /Rep\.Keys\[1\].*ascending/);
});

Deno.test("a Latest request's Bal (folded phase 1) is a ballot or nothing: anything else is refused naming the field", () => {
  assert.deepEqual(parseLatestRequest({ Key: "k" }, "Req"), { Key: "k" });
  assert.deepEqual(parseLatestRequest({ Key: "k", Bal: { N: 2n, ProposerId: 7n } }, "Req"), {
    Key: "k",
    Bal: { N: 2n, ProposerId: 7n },
  });
  // (A missing N or ProposerId is 0, as every ballot on the wire.)
  for (const bad of ["x", 5, true, { N: "1" }, { N: 1n, ProposerId: 2n ** 63n }]) {
    assert.throws(() => parseLatestRequest({ Key: "k", Bal: bad }, "Req"), /Req\.Bal/);
  }
});

Deno.test("a Latest request's Val (a first write) is a Value that comes with a Bal: anything else is refused naming the field", () => {
  const Bal = { N: 1n, ProposerId: 7n };
  assert.deepEqual(parseLatestRequest({ Key: "k", Bal, Val: { Data: "v", Wid: 3n } }, "Req"), {
    Key: "k",
    Bal,
    Val: { Data: "v", Wid: 3n },
  });
  // It round-trips through the request encoding.
  const env = { Rid: 1, Op: "Latest" as const, Req: { Key: "k", Bal, Val: { Vi64: 5n } } };
  assert.deepEqual(decodeRequestFrame(encodeRequests([env])), [env]);
  // Without a Bal no ballot could carry it.
  assert.throws(
    () => parseLatestRequest({ Key: "k", Val: { Vi64: 1n } }, "Req"),
    /Req\.Bal: expected a BallotNum with Val/,
  );
  for (const bad of ["x", 5, {}, { Vi64: 1n, Data: "x" }, { Del: false }]) {
    assert.throws(() => parseLatestRequest({ Key: "k", Bal, Val: bad }, "Req"), /Req\.Val/);
  }
});

Deno.test("parseInt64 reads every integer as its BigInt, around the small ones made once too", () => {
  for (
    const n of [
      -(2 ** 53) + 1,
      -1000,
      -2,
      -1,
      -0,
      0,
      1,
      2,
      1021,
      1022,
      1023,
      1024,
      2 ** 32,
      2 ** 53 - 1,
    ]
  ) {
    assert.equal(parseInt64(n, "x"), BigInt(n));
  }
  assert.equal(parseInt64(-(2n ** 63n), "x"), -(2n ** 63n));
  assert.throws(() => parseInt64(2n ** 63n, "x"), /x: expected an int64/);
  assert.throws(() => parseInt64(1.5, "x"), /x: expected an int64/);
  assert.throws(() => parseInt64(2 ** 53, "x"), /x: expected an int64/);
});
