import assert from "node:assert/strict";
import { pack } from "npm:msgpackr@2.1.4/pack";
import { decodeFrame } from "../codec.ts";
import {
  DECODE_COST,
  isPlainFrame,
  scanFrame,
  type ScanLimits,
  type ScanResult,
} from "../msgpack_scan.ts";
import { seededRandom } from "../clock.ts";

const LIMITS: ScanLimits = { maxDepth: 80, maxElements: 4096, maxCost: 1_000_000 };
// The decoder the codec uses.
const unpackr = { unpack: decodeFrame };

function ok(r: ScanResult) {
  if ("frameError" in r) assert.fail(`refused: ${r.frameError}`);
  return r;
}

function refusedWhole(r: ScanResult, tooLarge = false): string {
  if (!("frameError" in r)) return assert.fail(`accepted: ${JSON.stringify(r.elements)}`);
  assert.equal(r.tooLarge, tooLarge, r.frameError);
  return r.frameError;
}

const bytes = (...b: number[]) => new Uint8Array(b);
const str = (s: string) => [0xa0 | s.length, ...new TextEncoder().encode(s)];

Deno.test("scan: elements of a batch, and the one value of a frame, with their Rids", () => {
  const envs = [
    { Rid: 1, Op: "Prepare", Req: { Id: { Key: "k", Ver: 0 } } },
    {
      Op: "Accept",
      Rid: 2n ** 63n,
      Req: { Val: { Data: [1, "x", new Uint8Array(3), null, 1.5] } },
    },
    { Rid: "not an integer" },
    42,
  ];
  const frame = pack(envs);
  const r = ok(scanFrame(frame, LIMITS));
  assert.equal(r.batch, true);
  assert.equal(r.elements.length, envs.length);
  r.elements.forEach((e, i) => {
    assert.equal(e.error, undefined);
    assert.deepEqual(
      unpackr.unpack(frame.subarray(e.start, e.end)),
      unpackr.unpack(pack(envs[i])),
    );
  });
  const rid = (i: number) => {
    const at = r.elements[i]!.rid;
    return at === undefined ? undefined : unpackr.unpack(frame.subarray(at[0], at[1]));
  };
  assert.deepEqual([rid(0), rid(1), rid(2), rid(3)], [1, 2n ** 63n, undefined, undefined]);

  const one = pack(envs[0]);
  const single = ok(scanFrame(one, LIMITS));
  assert.equal(single.batch, false);
  assert.deepEqual(single.elements.map((e) => [e.start, e.end]), [[0, one.length]]);
  // An empty batch has no elements.
  assert.deepEqual(ok(scanFrame(bytes(0x90), LIMITS)), { batch: true, elements: [] });
});

Deno.test("scan: every extension type, in each of its encodings, and 0xc1, are refused", () => {
  // {Rid: 7, Data: <x>}
  const envelope = (x: number[]) => bytes(0x82, ...str("Rid"), 7, ...str("Data"), ...x);
  for (let type = -128; type < 128; type++) {
    const t = type & 0xff;
    const encodings = [
      [0xd4, t, 0],
      [0xd5, t, 0, 0],
      [0xd6, t, 0, 0, 0, 0],
      [0xd7, t, ...new Array(8).fill(0)],
      [0xd8, t, ...new Array(16).fill(0)],
      [0xc7, 3, t, 1, 2, 3],
      [0xc8, 0, 3, t, 1, 2, 3],
      [0xc9, 0, 0, 0, 3, t, 1, 2, 3],
    ];
    for (const x of encodings) {
      const r = ok(scanFrame(envelope(x), LIMITS));
      const e = r.elements[0]!;
      const name = type < 0 ? `${type}` : `0x${t.toString(16).padStart(2, "0")}`;
      assert.equal(e.error, `Data: extension type ${name}${CORE}`, `type ${type}, ${x}`);
      assert.deepEqual(e.rid, [5, 6]);
    }
  }
  const c1 = ok(scanFrame(envelope([0xc1]), LIMITS)).elements[0]!;
  assert.match(c1.error!, /^Data: the byte 0xc1, which MessagePack never uses/);
});
const CORE =
  ": only MessagePack's core types (nil, bool, int, float, str, bin, array, map) are accepted";

Deno.test("scan: an error names where it is, and only the first one counts", () => {
  // {Rid: 1, Req: {Val: {Data: {a: [1, <ext -1>, <ext 5>]}}}}
  const frame = bytes(
    0x82,
    ...str("Rid"),
    1,
    ...str("Req"),
    0x81,
    ...str("Val"),
    0x81,
    ...str("Data"),
    0x81,
    ...str("a"),
    0x93,
    1,
    0xd6,
    0xff,
    0,
    0,
    0,
    1,
    0xd4,
    5,
    0,
  );
  const e = ok(scanFrame(frame, LIMITS)).elements[0]!;
  assert.equal(e.error, `Req.Val.Data.a[1]: extension type -1${CORE}`);
  // In a batch, the path is the element's own.
  const batch = ok(scanFrame(bytes(0x92, 0x80, ...frame), LIMITS));
  assert.equal(batch.elements[0]!.error, undefined);
  assert.equal(batch.elements[1]!.error, e.error);
});

Deno.test("scan: a map key may be a string, a number, nil or a boolean, nothing else", () => {
  for (const key of [str("k"), [5], [0xcd, 1, 0], [0xc0], [0xc3], [0xcb, 0, 0, 0, 0, 0, 0, 0, 0]]) {
    const r = ok(scanFrame(bytes(0x81, ...key, 1), LIMITS));
    assert.equal(r.elements[0]!.error, undefined, `${key}`);
    unpackr.unpack(bytes(0x81, ...key, 1)); // and msgpackr decodes it
  }
  for (const key of [[0x90], [0x80], [0xc4, 1, 0], [0x91, 1]]) {
    const r = ok(scanFrame(bytes(0x82, ...str("Rid"), 3, ...key, 1), LIMITS));
    assert.equal(
      r.elements[0]!.error,
      "(a key): a map key must be a string, a number, nil or a boolean",
    );
    assert.ok(r.elements[0]!.rid !== undefined);
  }
});

Deno.test("scan: a frame cut short anywhere, with trailing bytes, or empty, is refused whole", () => {
  const frame = pack([{
    Rid: 1,
    Op: "Accept",
    Req: { Val: { Data: ["x".repeat(300), 2n ** 40n] } },
  }]);
  for (let n = 0; n < frame.length; n++) refusedWhole(scanFrame(frame.subarray(0, n), LIMITS));
  assert.match(refusedWhole(scanFrame(bytes(...frame, 0), LIMITS)), /1 bytes after/);
  // Counts beyond the bytes left are refused before anything is pushed.
  refusedWhole(scanFrame(bytes(0xdd, 0xff, 0xff, 0xff, 0xff, 1), LIMITS));
  refusedWhole(scanFrame(bytes(0xdf, 0x7f, 0xff, 0xff, 0xff, 1, 1), LIMITS));
  refusedWhole(scanFrame(bytes(0xc6, 0xff, 0xff, 0xff, 0xff), LIMITS));
  refusedWhole(scanFrame(bytes(0xc9, 0xff, 0xff, 0xff, 0xff, 0x42), LIMITS));
});

Deno.test("scan: limits on depth, batch length and cost", () => {
  const nested = (n: number) => {
    const b = new Uint8Array(n + 1).fill(0x91);
    b[n] = 1;
    return b;
  };
  ok(scanFrame(nested(LIMITS.maxDepth), LIMITS));
  assert.match(refusedWhole(scanFrame(nested(LIMITS.maxDepth + 1), LIMITS)), /deeper than 80/);
  // Far deeper than any decoder could recurse: refused without recursion.
  refusedWhole(scanFrame(nested(1_000_000), LIMITS));

  const long = (n: number) => bytes(0xdc, n >> 8, n & 0xff, ...new Array(n).fill(0x80));
  assert.equal(ok(scanFrame(long(100), { ...LIMITS, maxElements: 100 })).elements.length, 100);
  assert.match(
    refusedWhole(scanFrame(long(101), { ...LIMITS, maxElements: 100 }), true),
    /batch of 101 requests, over the 100/,
  );

  // Cost: {Rid: 1, X: [1, "s", 2^40, <bin>, [], {}]}
  const frame = bytes(
    0x82,
    ...str("Rid"),
    1,
    ...str("X"),
    0x96,
    1,
    ...str("s"),
    0xcf,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0xc4,
    1,
    9,
    0x90,
    0x80,
  );
  const c = DECODE_COST;
  const cost = c.container + 2 * (c.key + c.str) + c.scalar + c.container + c.scalar + c.str +
    c.int64 + c.bin + 2 * c.container;
  assert.equal(ok(scanFrame(frame, LIMITS)).elements[0]!.cost, cost);
  ok(scanFrame(frame, { ...LIMITS, maxCost: cost }));
  assert.match(
    refusedWhole(scanFrame(frame, { ...LIMITS, maxCost: cost - 1 }), true),
    /would cost more than/,
  );
  // The scan stops at the cost limit: a huge frame is refused as soon as it
  // is clearly over, whatever follows.
  const huge = new Uint8Array(8 * 1024 * 1024).fill(1);
  huge.set([0x81, 0xa1, 0x58, 0xdd, 0, 0x7f, 0xff, 0xf8]); // {X: [1, 1, ...]}
  assert.match(refusedWhole(scanFrame(huge, LIMITS), true), /would cost more/);
});

Deno.test("scan agrees with msgpackr: what it passes decodes to plain values only", () => {
  const rand = seededRandom(12);
  const int = (n: number) => Math.floor(rand.next() * n);
  const seeds = [
    pack([{
      Rid: 1,
      Op: "Prepare",
      Req: { Id: { Key: "k", Ver: 3 }, Bal: { N: 1, ProposerId: 2 } },
    }]),
    pack({ Rid: 2, Op: "Accept", Req: { Val: { Data: { a: [1, -2, 1.5, "é", true, null] } } } }),
    pack({ Rid: 3n ** 30n, X: new Uint8Array([1, 2, 3]), Y: [2n ** 62n, -(2n ** 62n)] }),
  ];
  const isPlain = (x: unknown): boolean => {
    if (x === null || ["boolean", "number", "string"].includes(typeof x)) return true;
    if (typeof x === "bigint") return x >= -(2n ** 63n) && x < 2n ** 64n;
    if (x instanceof Uint8Array) return true;
    if (Array.isArray(x)) return x.every(isPlain);
    return typeof x === "object" && Object.getPrototypeOf(x) === Object.prototype &&
      Object.values(x as object).every(isPlain);
  };
  let passed = 0;
  let refused = 0;
  for (let i = 0; i < 30_000; i++) {
    let b: Uint8Array;
    if (i % 2 === 0) {
      b = new Uint8Array(1 + int(40)).map(() => int(256));
    } else {
      b = new Uint8Array(seeds[int(seeds.length)]!);
      for (let k = 1 + int(3); k > 0; k--) b[int(b.length)] = int(256);
    }
    const r = scanFrame(b, LIMITS);
    const clean = !("frameError" in r) && r.elements.every((e) => e.error === undefined);
    // The fast path says the same (the cost limit is not reached here).
    assert.equal(isPlainFrame(b, LIMITS), clean, `${Array.from(b)}`);
    if (!clean) {
      refused++;
      continue;
    }
    passed++;
    let x: unknown;
    try {
      x = unpackr.unpack(b);
    } catch (e) {
      assert.fail(`scan passed ${Array.from(b)} but msgpackr refused it: ${e}`);
    }
    assert.ok(isPlain(x), `scan passed ${Array.from(b)}, which decodes to ${String(x)}`);
  }
  assert.ok(passed > 2000 && refused > 2000, `passed ${passed}, refused ${refused}`);
});

Deno.test("isPlainFrame: the fast path refuses what scanFrame refuses, limits included", () => {
  const ok = (b: Uint8Array, l: ScanLimits = LIMITS) => isPlainFrame(b, l);
  assert.equal(ok(pack([{ Rid: 1, Op: "Prepare" }, { Rid: 2, X: new Uint8Array(3) }])), true);
  assert.equal(ok(bytes(0x90)), true);
  assert.equal(ok(bytes()), false);
  assert.equal(ok(bytes(0x01, 0x02)), false, "trailing bytes");
  assert.equal(ok(bytes(0x92, 0x01)), false, "cut short");
  assert.equal(ok(bytes(0x81, 0xc4, 1, 0, 1)), false, "a binary key");
  assert.equal(ok(bytes(0x81, 0x90, 1)), false, "an array key");
  assert.equal(ok(bytes(0x81, 0xc1, 1)), false, "0xc1");
  for (const ext of [[0xd4, 0x78, 0], [0xc7, 1, 0x42, 0], [0xd6, 0xff, 0, 0, 0, 0]]) {
    assert.equal(ok(bytes(0x91, ...ext)), false, `${ext}`);
  }
  const nested = new Uint8Array(LIMITS.maxDepth + 2).fill(0x91);
  nested[nested.length - 1] = 1;
  assert.equal(ok(nested), false, "too deep");
  assert.equal(ok(nested.subarray(2)), true);
  const long = bytes(0xdc, 0, 101, ...new Array(101).fill(0));
  assert.equal(ok(long, { ...LIMITS, maxElements: 101 }), true);
  assert.equal(ok(long, { ...LIMITS, maxElements: 100 }), false, "batch too long");
  assert.equal(ok(long, { ...LIMITS, maxCost: 50 }), false, "too costly");
});
