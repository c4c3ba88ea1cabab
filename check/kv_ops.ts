/**
 * Runs one KV operation of a recorded history ({@link KvInput}) and reports
 * its outcome as the linearizability checker reads it ({@link KvOutput}): a
 * version conflict is a definite refusal; any other error leaves the outcome
 * unknown (the operation may or may not have taken effect).
 *
 * @module
 */
import { type Kv, type KvValue, VersionConflictError } from "../kv.ts";
import type { KvInput, KvOutput } from "./linearizability.ts";

/** What {@link runKvOp} saw: the output, and the error behind an unknown one. */
export interface KvOpResult {
  readonly output: KvOutput;
  readonly error?: Error;
}

/**
 * Applies `input` to `key` through `kv`.
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
    return { output: { ok: false, unknown: true }, error: e as Error };
  }
}
