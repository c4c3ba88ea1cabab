// Tests of the mini MessagePack codec (tests/minimsgpack.ts) that the
// interoperability tests' foreign side speaks.
import assert from "node:assert/strict";
import {
  decode,
  type Decoded,
  encode,
  Int,
  SMALLEST,
  type Style,
  type Wire,
} from "./minimsgpack.ts";
import { ACCEPTOR_STYLE, PROPOSER_STYLE } from "./foreign.ts";

// ---------------------------------------------------------------------------
// The mini codec itself, against byte strings from the MessagePack spec.

Deno.test("mini codec: spec byte strings both ways", () => {
  const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
  const cases: [Wire, Style, string, Decoded][] = [
    [null, SMALLEST, "c0", null],
    [true, SMALLEST, "c3", true],
    [-32n, SMALLEST, "e0", -32n],
    [127, SMALLEST, "7f", 127n],
    [200, SMALLEST, "cc c8", 200n],
    [-129n, SMALLEST, "d1 ff 7f", -129n],
    [2n ** 63n - 1n, SMALLEST, "cf 7f ff ff ff ff ff ff ff", 2n ** 63n - 1n],
    [-(2n ** 63n), SMALLEST, "d3 80 00 00 00 00 00 00 00", -(2n ** 63n)],
    [2n ** 64n - 1n, ACCEPTOR_STYLE, "cf ff ff ff ff ff ff ff ff", 2n ** 64n - 1n],
    [5, ACCEPTOR_STYLE, "d3 00 00 00 00 00 00 00 05", 5n],
    [5, PROPOSER_STYLE, "cc 05", 5n],
    [new Int(5n, "uint32"), SMALLEST, "ce 00 00 00 05", 5n],
    [1.5, SMALLEST, "cb 3f f8 00 00 00 00 00 00", 1.5],
    ["a", SMALLEST, "a1 61", "a"],
    ["a", PROPOSER_STYLE, "d9 01 61", "a"],
    [new Uint8Array([1]), ACCEPTOR_STYLE, "c6 00 00 00 01 01", new Uint8Array([1])],
    [[1], ACCEPTOR_STYLE, "dd 00 00 00 01 d3 00 00 00 00 00 00 00 01", [1n]],
    [{ a: null, b: undefined }, PROPOSER_STYLE, "de 00 01 d9 01 61 c0", { a: null }],
    [{ a: 1 }, SMALLEST, "81 a1 61 01", { a: 1n }],
  ];
  for (const [value, style, bytes, decoded] of cases) {
    const b = encode(value, style);
    assert.equal(hex(b), bytes, `encoding of ${String(value)}`);
    assert.deepEqual(decode(b), decoded);
  }
  // Formats the encoder does not pick, from the spec: float32, str16, bin16, map32, array16.
  const bytes = (...xs: number[]) => Uint8Array.from(xs);
  assert.equal(decode(bytes(0xca, 0x3f, 0xc0, 0, 0)), 1.5);
  assert.equal(decode(bytes(0xda, 0, 1, 0x7a)), "z");
  assert.deepEqual(decode(bytes(0xc5, 0, 2, 9, 8)), bytes(9, 8));
  assert.deepEqual(decode(bytes(0xdf, 0, 0, 0, 1, 0xa1, 0x6b, 0xc2)), { k: false });
  assert.deepEqual(decode(bytes(0xdc, 0, 2, 0xd0, 0x80, 0xcd, 1, 0)), [-128n, 256n]);
  assert.throws(() => decode(bytes(0xc1)), TypeError);
  assert.throws(() => decode(bytes(0xc0, 0xc0)), TypeError);
  assert.throws(() => decode(bytes(0xcd, 1)), TypeError);
});
