/**
 * Builders of KV histories for the linearizability checker's tests: inputs,
 * outputs and operations, from plain values, and the checks that a history
 * is accepted or rejected.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  checkKv,
  type CheckResult,
  type KvInput,
  type KvOperation,
  type KvOutput,
} from "../check/linearizability.ts";

export const set = (value: unknown): KvInput => ({ op: "set", value });
export const cas = (ifVersion: bigint, value: unknown): KvInput => ({
  op: "cas",
  ifVersion,
  value,
});
export const create = (value: unknown): KvInput => ({ op: "create", value });
export const del: KvInput = { op: "delete" };
export const get: KvInput = { op: "get" };

export const wrote = (version: bigint): KvOutput => ({ ok: true, version });
export const found = (version: bigint, value: unknown): KvOutput => ({
  ok: true,
  version,
  value,
  found: true,
});
export const notFound = (version: bigint): KvOutput => ({ ok: true, version, found: false });
export const conflict = (actual: bigint): KvOutput => ({ ok: false, conflict: true, actual });
export const unknown: KvOutput = { ok: false, unknown: true };

/** One operation on key "k" unless told otherwise. */
export function o(
  client: number,
  input: KvInput,
  output: KvOutput,
  call: number,
  ret: number,
  key = "k",
): KvOperation {
  return { client, key, input, output, call, ret };
}

/** Checks that the checker accepts `history`. */
export function assertAccepted(history: KvOperation[]): CheckResult {
  const r = checkKv(history);
  assert.equal(r.ok, true, `expected linearizable, got: ${r.reason}`);
  assert.equal(r.timedOut, undefined);
  return r;
}

/** Checks that the checker rejects `history`, naming `key`. */
export function assertRejected(history: KvOperation[], key = "k"): CheckResult {
  const r = checkKv(history);
  assert.equal(r.ok, false, "expected a violation, but the history was accepted");
  assert.equal(r.timedOut, undefined, `expected a verdict, got: ${r.reason}`);
  assert.equal(r.key, key);
  assert.match(r.reason ?? "", new RegExp(`key "${key}" is not linearizable`));
  return r;
}
