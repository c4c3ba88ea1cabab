// check/kv_ops.ts: how a KV call's outcome is recorded for the
// linearizability checker. Only a failure to reach the acceptors leaves it
// unknown; a bug is thrown, not hidden as "may have happened".
import assert from "node:assert/strict";
import { isUnknownOutcome, runKvOp } from "../check/kv_ops.ts";
import {
  CompactedError,
  Kv,
  type KvAcceptorClient,
  NotEnoughQuorumError,
  PaxosAcceptor,
  UnknownOutcomeError,
} from "../mod.ts";

// Three in-process acceptors; `fail` makes every request of `broken` of them throw it.
function acceptors(fail?: () => Error, broken = 3): KvAcceptorClient[] {
  return Array.from({ length: 3 }, (_, i) => {
    const a = new PaxosAcceptor(undefined, `a${i}`);
    if (fail === undefined || i >= broken) return a;
    return {
      name: a.name,
      request: () => Promise.reject(fail()),
      latest: () => Promise.reject(fail()),
    };
  });
}

Deno.test("kv_ops: outcomes of successes and version conflicts are known", async () => {
  const kv = new Kv(acceptors());
  assert.deepEqual(await runKvOp(kv, "k", { op: "set", value: "a" }), {
    output: { ok: true, version: 0n },
  });
  assert.deepEqual(await runKvOp(kv, "k", { op: "get" }), {
    output: { ok: true, found: true, version: 0n, value: "a" },
  });
  assert.deepEqual(await runKvOp(kv, "k", { op: "cas", ifVersion: 5n, value: "b" }), {
    output: { ok: false, conflict: true, actual: 0n },
  });
  assert.deepEqual(await runKvOp(kv, "k", { op: "create", value: "c" }), {
    output: { ok: false, conflict: true, actual: 0n },
  });
  assert.deepEqual(await runKvOp(kv, "k", { op: "delete" }), {
    output: { ok: true, version: 1n },
  });
});

Deno.test("kv_ops: no quorum (connections refused, timeouts) is an unknown outcome", async () => {
  for (
    const fail of [
      () => new Deno.errors.ConnectionRefused("down"),
      () => new Deno.errors.TimedOut("slow"),
    ]
  ) {
    const kv = new Kv(acceptors(fail, 2), { deadlineMs: 50 });
    for (const input of [{ op: "get" as const }, { op: "set" as const, value: "v" }]) {
      const { output, error } = await runKvOp(kv, "k", input);
      assert.deepEqual(output, { ok: false, unknown: true });
      assert.ok(error instanceof NotEnoughQuorumError, String(error));
    }
  }
});

Deno.test("kv_ops: a bug is thrown, not recorded as an outcome that may have happened", async () => {
  // Acceptors that answer Latest with nothing: the KV's own code then fails
  // with a TypeError, which must not pass for a network failure.
  const kv = new Kv(
    acceptors().map((a) => ({
      name: a.name,
      request: (op, req) => a.request(op, req),
      latest: () => Promise.resolve(undefined as never),
    })),
  );
  await assert.rejects(runKvOp(kv, "k", { op: "get" }), TypeError);
  await assert.rejects(runKvOp(kv, "k", { op: "set", value: "v" }), TypeError);
  // So is a call the KV refuses outright.
  const good = new Kv(acceptors());
  await assert.rejects(runKvOp(good, "k", { op: "set", value: null }), TypeError);
  await assert.rejects(runKvOp(good, "x".repeat(5000), { op: "get" }), RangeError);
});

Deno.test("kv_ops: isUnknownOutcome names the failures that leave an outcome unknown", () => {
  for (
    const e of [
      new NotEnoughQuorumError("no quorum"),
      new UnknownOutcomeError("k", 1n, "compacted"),
      new CompactedError("k", 1n),
      new Deno.errors.TimedOut("t"),
      new Deno.errors.ConnectionRefused("r"),
      new Deno.errors.ConnectionReset("r"),
      new Deno.errors.NotConnected("n"),
    ]
  ) assert.ok(isUnknownOutcome(e), String(e));
  for (const e of [new TypeError("t"), new RangeError("r"), new Error("e"), "a string"]) {
    assert.ok(!isUnknownOutcome(e), String(e));
  }
});
