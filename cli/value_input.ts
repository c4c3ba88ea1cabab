/**
 * Where `set` gets its VALUE (the argument, standard input for `-`, or a
 * file with `--file`) and what it is stored as (`--type`).
 *
 * @module
 */
import { encodeFrame, MAX_VALUE_BYTES } from "../codec.ts";
import { INT64_MAX, INT64_MIN, isInt64 } from "../types.ts";
import type { DataValue, Value } from "../types.ts";
import { quote } from "./args.ts";
import { messageOf, UsageError } from "./exit.ts";
import { parseValueArg } from "./format.ts";

/** What `--type` can say. */
export const VALUE_TYPES = ["string", "int", "json", "bytes"] as const;

/** A `--type`, or `auto` (the rule of {@link parseValueArg}) when none is given. */
export type ValueType = typeof VALUE_TYPES[number] | "auto";

// What is read of standard input or a file, at most: more than any value.
const MAX_INPUT_BYTES = MAX_VALUE_BYTES + 64;

/** The raw VALUE: text from the argument, or the bytes of standard input or a file. */
export type ValueSource =
  | { readonly arg: string }
  | { readonly bytes: Uint8Array; readonly from: string };

/** Reads `--type`: one of {@link VALUE_TYPES}, or `auto` when not given. */
export function parseValueType(s: string | undefined): ValueType {
  if (s === undefined) return "auto";
  if (!(VALUE_TYPES as readonly string[]).includes(s)) {
    throw new UsageError(`--type must be one of ${VALUE_TYPES.join(", ")}, got ${quote(s)}`);
  }
  return s as ValueType;
}

/**
 * Reads all of `readable` (standard input), refusing more than a value can
 * hold.
 */
export async function readBounded(
  readable: ReadableStream<Uint8Array>,
  from: string,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of readable) {
    size += chunk.length;
    if (size > MAX_INPUT_BYTES) {
      throw new UsageError(`${from} holds more than ${MAX_VALUE_BYTES} bytes, the largest value`);
    }
    chunks.push(chunk);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Reads the file of `--file`, refusing one larger than a value can be. */
export async function readValueFile(path: string): Promise<Uint8Array> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (e) {
    throw new UsageError(`--file ${quote(path)}: ${messageOf(e)}`);
  }
  try {
    return await readBounded(file.readable, `--file ${quote(path)}`);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(`--file ${quote(path)}: ${messageOf(e)}`);
  }
}

/**
 * The Value that `set` proposes for `source` read as `type`:
 *
 * - `auto` (no `--type`): a canonical decimal int64 is a `Vi64`, anything
 *   else a string ({@link parseValueArg});
 * - `string`: the text as it is; `int`: a decimal int64 (a `Vi64`), else
 *   refused; `json`: the JSON value (integers exact, any size up to 64 bits),
 *   not `null`; `bytes`: the bytes of standard input or the file as they
 *   are, or the argument read as base64.
 *
 * Text must be UTF-8. Throws a {@link UsageError} saying what is wrong.
 *
 * @example
 * ```ts
 * import { typedValue } from "./value_input.ts";
 * typedValue({ arg: "12345" }, "string"); // { Data: "12345" }
 * typedValue({ arg: "[1,2]" }, "json"); // { Data: [1, 2] }
 * ```
 */
export function typedValue(source: ValueSource, type: ValueType): Value {
  const from = "arg" in source ? "VALUE" : source.from;
  let value: Value;
  if (type === "bytes") {
    value = { Data: "arg" in source ? fromBase64(source.arg) : source.bytes };
  } else {
    const text = "arg" in source ? source.arg : utf8(source.bytes, from);
    value = type === "auto"
      ? parseOrUsage(() => parseValueArg(text))
      : type === "string"
      ? { Data: text }
      : type === "int"
      ? { Vi64: int64(text, from) }
      : { Data: json(text, from) };
  }
  if ("Data" in value) {
    const size = encodeFrame(value.Data).length;
    if (size > MAX_VALUE_BYTES) {
      throw new UsageError(
        `${from} is ${size} bytes encoded, over the ${MAX_VALUE_BYTES} byte limit`,
      );
    }
  }
  return value;
}

function parseOrUsage(f: () => Value): Value {
  try {
    return f();
  } catch (e) {
    throw new UsageError(messageOf(e));
  }
}

function utf8(bytes: Uint8Array, from: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`${from} is not UTF-8 text: give --type bytes to store it as bytes`);
  }
}

function int64(text: string, from: string): bigint {
  const t = text.trim();
  if (!/^-?[0-9]+$/.test(t) || !isInt64(BigInt(t))) {
    throw new UsageError(
      `--type int: ${from} must be a decimal integer in ${INT64_MIN}..${INT64_MAX}, ` +
        `got ${quote(t.length > 40 ? t.slice(0, 40) + "..." : t)}`,
    );
  }
  return BigInt(t);
}

// JSON with integers kept exact: beyond 2^53 they become bigints.
function json(text: string, from: string): DataValue {
  let v: unknown;
  try {
    v = JSON.parse(text, (_key, value, context?: { source?: string }) => {
      if (typeof value === "number" && !Number.isSafeInteger(value)) {
        const src = context?.source;
        if (src !== undefined && /^-?(0|[1-9][0-9]*)$/.test(src)) {
          const n = BigInt(src);
          if (!isInt64(n)) throw new RangeError(`the integer ${src} is outside int64`);
          return n;
        }
      }
      return value;
    });
  } catch (e) {
    throw new UsageError(`--type json: ${from} is not JSON: ${messageOf(e)}`);
  }
  if (v === null) {
    throw new UsageError(`--type json: ${from} is null: the KV stores no nil, use delete`);
  }
  return v as DataValue;
}

function fromBase64(s: string): Uint8Array {
  let bin: string;
  try {
    bin = atob(s);
  } catch {
    throw new UsageError(
      `--type bytes: VALUE must be base64 (or give the bytes on standard input with "-", or ` +
        `--file)`,
    );
  }
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
