/**
 * Values on the command line: how a VALUE argument is read, and how values
 * and results are printed, as text or as one line of JSON.
 *
 * @module
 */
import { encodeFrame, MAX_VALUE_BYTES } from "../codec.ts";
import { isInt64 } from "../types.ts";
import type { KvValue } from "../kv.ts";
import type { DataValue, Value } from "../types.ts";

const CANONICAL_INT = /^-?(0|[1-9][0-9]*)$/;

/**
 * Turns a VALUE argument into the Value proposed: a canonical decimal integer
 * (no sign but `-`, no leading zeros, not `-0`) becomes a `Vi64`, anything
 * else a `Data` string (so is an integer outside int64). Throws a RangeError
 * for a string over {@link MAX_VALUE_BYTES} encoded.
 *
 * @example
 * ```ts
 * import { parseValueArg } from "./format.ts";
 * parseValueArg("5"); // { Vi64: 5n }
 * parseValueArg("05"); // { Data: "05" }
 * parseValueArg("hello"); // { Data: "hello" }
 * parseValueArg("9223372036854775808"); // { Data: "9223372036854775808" }
 * ```
 */
export function parseValueArg(s: string): Value {
  if (CANONICAL_INT.test(s) && s !== "-0") {
    const n = BigInt(s);
    // An integer outside int64 is a string, as `set --help` says.
    if (isInt64(n)) return { Vi64: n };
  }
  const size = encodeFrame(s).length;
  if (size > MAX_VALUE_BYTES) {
    throw new RangeError(`VALUE is ${size} bytes encoded, over the ${MAX_VALUE_BYTES} byte limit`);
  }
  return { Data: s };
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/**
 * Renders a value as compact JSON, in which integers of any size are exact
 * decimals, binary is a base64 string, and NaN and the infinities are
 * strings. This is the one JSON writer of the CLI's `--json` output.
 *
 * @example
 * ```ts
 * import { toJson } from "./format.ts";
 * toJson({ key: "k", version: 2n ** 60n }); // '{"key":"k","version":1152921504606846976}'
 * ```
 */
export function toJson(x: DataValue): string {
  if (x === null) return "null";
  switch (typeof x) {
    case "boolean":
    case "bigint":
      return String(x);
    case "number":
      if (Number.isFinite(x)) return Object.is(x, -0) ? "-0" : JSON.stringify(x);
      return JSON.stringify(String(x)); // NaN, Infinity, -Infinity
    case "string":
      return JSON.stringify(x);
  }
  if (x instanceof Uint8Array) return JSON.stringify(base64(x));
  if (Array.isArray(x)) return `[${x.map(toJson).join(",")}]`;
  const m = x as { readonly [key: string]: DataValue };
  return `{${Object.keys(m).map((k) => `${JSON.stringify(k)}:${toJson(m[k]!)}`).join(",")}}`;
}

/**
 * Renders a chosen value as the CLI prints it: a `Vi64` as its decimal; a
 * `Data` string as it is; any other `Data` as compact JSON ({@link toJson});
 * a tombstone (the kv extension's `Del`) as `(deleted)`.
 *
 * @example
 * ```ts
 * import { formatValue } from "./format.ts";
 * formatValue({ Vi64: 9007199254740993n }); // "9007199254740993"
 * formatValue({ Data: "hello" }); // "hello"
 * formatValue({ Data: { a: [1n, new Uint8Array([1, 2])] } }); // '{"a":[1,"AQI="]}'
 * ```
 */
export function formatValue(v: Value): string {
  if ("Vi64" in v) return String(v.Vi64);
  if ("Del" in v) return "(deleted)";
  return typeof v.Data === "string" ? v.Data : toJson(v.Data);
}

/**
 * Renders a value the KV layer read (see {@link formatValue}): a `bigint`
 * as its decimal, a string as it is, anything else as compact JSON.
 *
 * @example
 * ```ts
 * import { formatKvValue } from "./format.ts";
 * formatKvValue(5n); // "5"
 * formatKvValue("hello"); // "hello"
 * formatKvValue([1, "a"]); // '[1,"a"]'
 * ```
 */
export function formatKvValue(v: KvValue): string {
  return typeof v === "string" ? v : toJson(v);
}
