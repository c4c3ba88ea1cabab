// The log's record format: what recovery reads of a change without decoding
// its value is what decoding it would say, and records place each change
// where `recordOf` says.
import assert from "node:assert/strict";
import {
  decodeChange,
  encodeChange,
  type Entry,
  HEADER,
  recordOf,
  summarizeChange,
} from "../log_format.ts";
import { decodeFrame } from "../codec.ts";
import { bal, promised, state, voted } from "./builders.ts";

const big = "é".repeat(70_000);
const changes: Entry[] = [
  { id: { Key: "k", Ver: 0n }, state: promised(1) },
  { id: { Key: "", Ver: 2n ** 63n - 1n }, state: voted(2, { Vi64: -(2n ** 63n) }) },
  { id: { Key: "ключ", Ver: -5n }, state: voted(3, { Data: new Uint8Array(300) }) },
  { id: { Key: "x".repeat(4096), Ver: 70_000n }, state: voted(4, { Data: big }) },
  {
    id: { Key: "m", Ver: 1n },
    state: voted(5, { Data: { a: [1.5, "x", null, 2n ** 60n, true, [], {}], b: "y".repeat(300) } }),
  },
  { id: { Key: "d", Ver: 3n }, state: state(bal(9, 2), { Del: true, Wid: 7n }, bal(8, 1)) },
  { key: "f", floor: 0n },
  { key: "g", floor: 2n ** 40n },
];

Deno.test("a change's summary (key, version, vote; or floor) is what decoding it says", () => {
  for (const c of changes) {
    const bytes = encodeChange(c);
    const full = decodeChange(bytes);
    assert.deepEqual(
      summarizeChange(bytes),
      "state" in full
        ? { key: full.id.Key, ver: full.id.Ver, voted: full.state.Val !== null }
        : { key: full.key, floor: full.floor },
    );
  }
});

Deno.test("a record is an array of the changes, each where recordOf says", () => {
  for (const n of [1, 15, 16, 300]) {
    const encoded = Array.from({ length: n }, (_, i) => encodeChange(changes[i % changes.length]!));
    const at: number[] = [];
    const rec = recordOf(encoded, at);
    const decoded = decodeFrame(rec.subarray(HEADER));
    assert.ok(Array.isArray(decoded));
    assert.equal(decoded.length, n);
    encoded.forEach((e, i) =>
      assert.deepEqual(rec.subarray(at[i]!, at[i]! + e.length), new Uint8Array(e))
    );
  }
});
