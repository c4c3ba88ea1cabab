// Many KV clients in one process, over real WebSocket connections to three
// acceptors, doing set/get/cas/create/delete on a few hot keys; the recorded
// history must be linearizable. (Separate client processes, with faults, are
// in real_faults_test.ts; simulated faults in simulation_test.ts.)
import assert from "node:assert/strict";
import { connect, PaxosAcceptor, seededRandom, serveAcceptor } from "../mod.ts";
import {
  checkKv,
  type KvInput,
  type KvOperation,
  type KvOutput,
} from "../check/linearizability.ts";
import { runKvOp } from "../check/kv_ops.ts";

Deno.test("kv: 8 concurrent clients on 3 hot keys produce a linearizable history", async () => {
  const servers = await Promise.all([0, 1, 2].map(() => serveAcceptor(new PaxosAcceptor())));
  const urls = servers.map((s) => s.url);
  const clients = await Promise.all(Array.from({ length: 8 }, () => connect(urls)));
  const history: KvOperation[] = [];
  try {
    await Promise.all(clients.map(async (kv, c) => {
      const random = seededRandom(1000 + c);
      let seen = -1n;
      for (let i = 0; i < 60; i++) {
        const key = `hot${Math.floor(random.next() * 3)}`;
        const r = random.next();
        const value = `c${c}-${i}`;
        const input: KvInput = r < 0.35
          ? { op: "set", value }
          : r < 0.65
          ? { op: "get" }
          : r < 0.85
          ? { op: "cas", ifVersion: seen, value }
          : r < 0.93
          ? { op: "create", value }
          : { op: "delete" };
        const call = performance.now();
        const { output } = await runKvOp(kv, key, input);
        history.push({ client: c, key, input, output, call, ret: performance.now() });
        if ("version" in output) seen = output.version;
        else if ("actual" in output) seen = output.actual;
      }
    }));
  } finally {
    await Promise.all(clients.map((kv) => kv.close()));
    await Promise.all(servers.map((s) => s.close()));
  }
  assert.equal(history.length, 480);
  assert.ok(history.every((o) => !("unknown" in o.output)), "no operation failed");
  const writes = history.filter((o) => o.input.op !== "get" && o.output.ok);
  assert.ok(writes.length > 100, `only ${writes.length} writes succeeded`);
  const verdict = checkKv(history);
  assert.ok(verdict.ok, verdict.reason);

  // And the checker is live on this very history: a read of a value that was
  // never written makes it fail.
  const i = history.findIndex((o) => o.input.op === "get" && "found" in o.output && o.output.found);
  const bad = history.map((o, j) =>
    j === i ? { ...o, output: { ...o.output, value: "never written" } as KvOutput } : o
  );
  assert.equal(checkKv(bad).ok, false);
});
