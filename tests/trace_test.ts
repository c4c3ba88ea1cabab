// The tracer seam: what the proposer and the KV tell a tracer, in which
// order, for the seed's slide 33, a proposer that must raise its ballot and
// back off, a failed request, and a KV write and read.
import assert from "node:assert/strict";
import { PaxosAcceptor } from "../acceptor.ts";
import { seededRandom } from "../clock.ts";
import { Kv } from "../kv.ts";
import { PaxosProposer } from "../proposer.ts";
import { traceAcceptors, type TraceEvent, TraceRecorder } from "../trace.ts";
import type { AcceptorClient } from "../transport.ts";
import type { Acceptor, Op, Proposer } from "../types.ts";

function acceptors(n: number): PaxosAcceptor[] {
  return Array.from({ length: n }, (_, i) => new PaxosAcceptor(undefined, `a${i}`));
}

const kinds = (rec: TraceRecorder) => rec.events.map((e) => e.event);

function only<K extends TraceEvent["kind"]>(
  rec: TraceRecorder,
  kind: K,
): Extract<TraceEvent, { kind: K }>[] {
  return kinds(rec).filter((e): e is Extract<TraceEvent, { kind: K }> => e.kind === kind);
}

Deno.test("trace: slide 33 shows X's Accept refused by acceptor 1, which promised Y's ballot", async () => {
  const rec = new TraceRecorder();
  const traced = traceAcceptors(acceptors(3), rec);
  const pick = (...ids: number[]) => ids.map((i) => traced[i]!);
  const id = { Key: "i", Ver: 0n };
  const px = new PaxosProposer({ Id: id, Bal: { N: 1n, ProposerId: 10n } }, { tracer: rec });
  const py = new PaxosProposer({ Id: id, Bal: { N: 2n, ProposerId: 11n } }, { tracer: rec });

  assert.equal((await px.phase1(pick(0, 1), 2)).err, null);
  assert.equal((await py.phase1(pick(1, 2), 2)).err, null);
  px.Val = { Vi64: 100n };
  const failed = rec.events.length;
  assert.notEqual((await px.phase2(pick(0, 1), 2)).err, null);

  const x2 = rec.events.slice(failed).map((e) => e.event);
  assert.deepEqual(
    x2.map((e) => e.kind === "reply" ? `${e.acceptor}:${e.verdict}` : e.kind),
    ["send", "send", "a0:voted", "a1:refused", "quorum"],
  );
  const refusal = x2[3] as Extract<TraceEvent, { kind: "reply" }>;
  assert.deepEqual(refusal.lastBal, { N: 2n, ProposerId: 11n }, "a1 promised Y's ballot");
  assert.deepEqual(x2[4], {
    kind: "quorum",
    phase: "Phase2",
    key: "i",
    ver: 0n,
    bal: { N: 1n, ProposerId: 10n },
    ok: false,
    count: 1,
    need: 2,
  });

  // Y's Accept wins; X, at (3,x), finds Y's vote in its Prepare replies.
  py.Val = { Vi64: 200n };
  assert.equal((await py.phase2(pick(1, 2), 2)).err, null);
  px.Bal = { N: 3n, ProposerId: 10n };
  const retry = rec.events.length;
  assert.deepEqual((await px.phase1(pick(0, 1), 2)).latestVal, { Vi64: 200n });
  const votes = rec.events.slice(retry).map((e) => e.event).filter((e) => e.kind === "reply");
  assert.deepEqual(
    votes.map((e) => [e.acceptor, e.verdict, e.val ?? null]),
    [["a0", "promised", { Vi64: 100n }], ["a1", "promised", { Vi64: 200n }]],
  );
  // Every event after its request: each reply follows a send to the same acceptor.
  const sent = new Set<string>();
  for (const e of kinds(rec)) {
    if (e.kind === "send") sent.add(`${e.acceptor} ${e.op} ${e.bal?.N}`);
    if (e.kind === "reply") assert.ok(sent.has(`${e.acceptor} ${e.op} ${e.bal?.N}`));
  }
});

// An acceptor client that refuses the first `n` Prepares as if some other
// proposer had just promised a ballot one above the request's.
class Contested implements AcceptorClient {
  readonly name: string;
  #left: number;
  constructor(readonly inner: PaxosAcceptor, n: number) {
    this.name = inner.name;
    this.#left = n;
  }
  request(op: Op, req: Proposer): Promise<Acceptor> {
    if (op === "Prepare" && this.#left > 0) {
      this.#left--;
      const LastBal = { N: req.Bal.N + 1n, ProposerId: 99n };
      return Promise.resolve({ LastBal, Val: null, VBal: { N: 0n, ProposerId: 0n } });
    }
    return this.inner.request(op, req);
  }
}

Deno.test("trace: runPaxos tells each ballot it raises and the backoff before its third round", async () => {
  const rec = new TraceRecorder();
  const clients = traceAcceptors(acceptors(3).map((a) => new Contested(a, 2)), rec);
  const p = new PaxosProposer(
    { Id: { Key: "k", Ver: 0n }, Bal: { N: 1n, ProposerId: 7n } },
    { tracer: rec, random: seededRandom(1) },
  );
  assert.deepEqual(await p.runPaxos(clients, { Vi64: 1n }, { maxBackoffMs: 2 }), { Vi64: 1n });

  const steps = kinds(rec).filter((e) => e.kind !== "send" && e.kind !== "reply");
  assert.deepEqual(
    steps.map((e) =>
      e.kind === "quorum"
        ? `${e.phase}:${e.ok}`
        : e.kind === "raise"
        ? `raise ${e.from.N}->${e.to.N} above ${e.seen.N}`
        : e.kind === "backoff"
        ? `backoff after round ${e.round}`
        : e.kind
    ),
    [
      "Phase1:false",
      "raise 1->3 above 2",
      "Phase1:false",
      "raise 3->5 above 4",
      "backoff after round 2",
      "Phase1:true",
      "Phase2:true",
    ],
  );
  const backoff = only(rec, "backoff")[0]!;
  assert.ok(backoff.ms >= 0 && backoff.ms <= 2, `backoff ${backoff.ms} ms within maxBackoffMs`);
});

Deno.test("trace: a failed request is told as an error, with its message", async () => {
  const rec = new TraceRecorder();
  const down: AcceptorClient = {
    name: "down",
    request: () => Promise.reject(new Error("connection refused")),
  };
  const clients = traceAcceptors([...acceptors(2), down], rec);
  const p = new PaxosProposer({ Id: { Key: "k", Ver: 0n }, Bal: { N: 1n, ProposerId: 1n } }, {
    tracer: rec,
  });
  await p.runPaxos(clients, { Vi64: 1n });
  const errors = only(rec, "error");
  assert.ok(errors.length >= 1);
  assert.deepEqual(
    { ...errors[0]!, op: "Prepare" },
    {
      kind: "error",
      acceptor: "down",
      op: "Prepare",
      key: "k",
      ver: 0n,
      message: "connection refused",
    },
  );
  // The trace does not change what the proposer sees.
  assert.ok(only(rec, "quorum").every((q) => q.ok));
});

Deno.test("trace: a first KV write is one Latest round, voted at round 0 by every acceptor; the next write of the key is one Accept round", async () => {
  const rec = new TraceRecorder();
  const kv = new Kv(acceptors(3), { tracer: rec });
  assert.equal(await kv.set("k", "a"), 0n);
  const phases = () => only(rec, "quorum").map((q) => `${q.phase}:${q.ok}`);
  assert.deepEqual(phases(), ["Latest:true"]);
  const sends = (from: number) =>
    rec.events.slice(from).map((e) => e.event).filter((e) => e.kind === "send").map((e) => e.op);
  assert.deepEqual(sends(0), Array(3).fill("Latest"));
  // The Latest carried the value, which each acceptor voted in version 0
  // at the round-0 ballot of the Latest's.
  const sent = only(rec, "send")[0]!;
  assert.deepEqual(sent.val && "Data" in sent.val ? sent.val.Data : null, "a");
  const look = only(rec, "reply").filter((e) => e.op === "Latest");
  assert.deepEqual(look.map((e) => [e.verdict, e.latestVer]), Array(3).fill(["voted", 0n]));
  assert.deepEqual(look[0]!.vBal, { N: 0n, ProposerId: sent.bal!.ProposerId });

  const second = rec.events.length;
  assert.equal(await kv.set("k", "b"), 1n);
  assert.deepEqual(sends(second), ["Accept", "Accept", "Accept"], "the fast write");
  const accept = only(rec, "send").at(-1)!;
  assert.equal(accept.ver, 1n);
  assert.deepEqual(accept.val && "Data" in accept.val ? accept.val.Data : null, "b");

  const read = rec.events.length;
  assert.deepEqual(await kv.get("k"), { found: true, version: 1n, value: "b" });
  assert.deepEqual(sends(read), ["Latest", "Latest", "Latest"], "a read of a settled key");
  const latest = only(rec, "reply").filter((e) => e.op === "Latest").at(-1)!;
  assert.equal(latest.latestVer, 1n);
  await kv.close();
});

Deno.test("trace: time stamps grow from the recorder's start", () => {
  let t = 100;
  const rec = new TraceRecorder(() => t);
  t = 103;
  rec.event({ kind: "backoff", key: "k", ver: 0n, round: 2, ms: 1 });
  t = 110;
  rec.event({ kind: "backoff", key: "k", ver: 0n, round: 3, ms: 2 });
  assert.deepEqual(rec.events.map((e) => e.at), [3, 10]);
});
