/**
 * Runs one KV operation of a recorded history ({@link KvInput}) and reports
 * its outcome as the linearizability checker reads it ({@link KvOutput}): a
 * version conflict is a definite refusal; a failure to reach the acceptors
 * leaves the outcome unknown (the operation may or may not have taken
 * effect); any other error is a bug, and is thrown.
 *
 * @module
 */
import { NotEnoughQuorumError } from "../errors.ts";
import {
  CompactedError,
  type Kv,
  type KvValue,
  UnknownOutcomeError,
  VersionConflictError,
} from "../kv.ts";
import type { KvInput, KvOutput } from "./linearizability.ts";

// The network's own errors, as the transport reports them.
const NETWORK_ERRORS = [
  Deno.errors.TimedOut,
  Deno.errors.ConnectionRefused,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.NotConnected,
  Deno.errors.BrokenPipe,
];

/**
 * Whether an error of a KV call leaves its outcome unknown, as opposed to
 * being a bug: no quorum of acceptors before the deadline
 * (`NotEnoughQuorumError`), a connection that failed or timed out, or what
 * the KV itself says cannot be known once versions are compacted
 * (`UnknownOutcomeError`, and a `CompactedError` when the version it worked
 * on was forgotten meanwhile).
 *
 * @example
 * ```ts
 * import { isUnknownOutcome } from "./kv_ops.ts";
 * isUnknownOutcome(new Deno.errors.TimedOut("no reply")); // true
 * isUnknownOutcome(new TypeError("x is undefined")); // false
 * ```
 */
export function isUnknownOutcome(e: unknown): boolean {
  return e instanceof NotEnoughQuorumError || e instanceof UnknownOutcomeError ||
    e instanceof CompactedError || NETWORK_ERRORS.some((c) => e instanceof c);
}

/** What {@link runKvOp} saw: the output, and the error behind an unknown one. */
export interface KvOpResult {
  readonly output: KvOutput;
  readonly error?: Error;
}

/**
 * Applies `input` to `key` through `kv`. Throws what
 * {@link isUnknownOutcome} calls a bug.
 *
 * @example
 * ```ts ignore
 * const { output } = await runKvOp(kv, "k", { op: "set", value: "v" }); // { ok: true, version: 0n }
 * ```
 */
export async function runKvOp(kv: Kv, key: string, input: KvInput): Promise<KvOpResult> {
  try {
    switch (input.op) {
      case "get": {
        const e = await kv.get(key);
        return {
          output: e.found
            ? { ok: true, found: true, version: e.version, value: e.value }
            : { ok: true, found: false, version: e.version },
        };
      }
      case "set":
        return { output: { ok: true, version: await kv.set(key, input.value as KvValue) } };
      case "cas":
        return {
          output: { ok: true, version: await kv.cas(key, input.ifVersion, input.value as KvValue) },
        };
      case "create":
        return {
          output: {
            ok: true,
            version: await kv.set(key, input.value as KvValue, { ifAbsent: true }),
          },
        };
      case "delete":
        return { output: { ok: true, version: await kv.delete(key) } };
    }
  } catch (e) {
    if (e instanceof VersionConflictError) {
      return { output: { ok: false, conflict: true, actual: e.actual } };
    }
    if (!isUnknownOutcome(e)) throw e;
    return { output: { ok: false, unknown: true }, error: e as Error };
  }
}
