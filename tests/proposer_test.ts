// The seed's scenarios (paxos_slides_case_test.go and example_set_get_test.go)
// with the same ballots, acceptor sets and assertions, over real WebSocket
// acceptors; then failures and concurrency.
import assert from "node:assert/strict";
import {
  AcceptorError,
  GE,
  MAX_BALLOT_STEP,
  MemoryStore,
  NotEnoughQuorumError,
  PaxosAcceptor,
  PaxosProposer,
  serveAcceptor,
  type Value,
  WebSocketAcceptorClient,
  ZERO_BALLOT,
} from "../mod.ts";
import type { AcceptorServer } from "../server.ts";

interface Cluster {
  servers: AcceptorServer[];
  acceptors: WebSocketAcceptorClient[];
  close(): Promise<void>;
}

// Serves acceptors 0..n-1 on free ports, with one client each, as the seed's
// ServeAcceptors does on fixed ports.
async function serveAcceptors(n: number, timeoutMs = 1000): Promise<Cluster> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      (_, i) => serveAcceptor(new PaxosAcceptor(undefined, `acceptor-${i}`)),
    ),
  );
  const acceptors = servers.map((s) => new WebSocketAcceptorClient(s.url, { timeoutMs }));
  return {
    servers,
    acceptors,
    async close() {
      await Promise.all(acceptors.map((a) => a.close()));
      await Promise.all(servers.map((s) => s.close()));
    },
  };
}

function pick<T>(xs: readonly T[], ids: readonly number[]): T[] {
  return ids.map((i) => xs[i]!);
}

Deno.test("TestCase1SingleProposer (slide 32)", async () => {
  // slide-32: 1 Proposer, 3 Acceptor, only two of them are involved.
  // The Proposer finishes a paxos without conflict.
  const c = await serveAcceptors(3);
  try {
    const quorum = 2;
    const px = new PaxosProposer({ Id: { Key: "i", Ver: 0n }, Bal: { N: 0n, ProposerId: 10n } });

    // Phase 1 will be done without seeing other ballot, nor other voted value.
    const p1 = await px.phase1(pick(c.acceptors, [0, 1]), quorum);
    assert.equal(p1.err, null, "constituted a quorum");
    assert.equal(p1.higherBal, null, "no other proposer is seen");
    assert.equal(p1.latestVal, null, "no voted value");

    // Thus the Proposer chooses a new value to propose.
    px.Val = { Vi64: 10n };

    const p2 = await px.phase2(pick(c.acceptors, [0, 1]), quorum);
    assert.equal(p2.err, null, "constituted a quorum");
    assert.equal(p2.higherBal, null, "no other proposer is seen");
  } finally {
    await c.close();
  }
});

Deno.test("TestCase2DoubleProposer (slide 33)", async () => {
  // slide-33: 2 Proposer X and Y, 3 Acceptor. Y overrides X then decides a
  // value; X re-runs paxos with a higher ballot and proposes the value Y chose.
  const c = await serveAcceptors(3);
  try {
    const quorum = 2;
    const paxosId = { Key: "i", Ver: 0n };

    // X prepares on acceptors 0, 1 with ballot (1, x) and succeeds.
    const px = new PaxosProposer({ Id: paxosId, Bal: { N: 1n, ProposerId: 10n } });
    let p1 = await px.phase1(pick(c.acceptors, [0, 1]), quorum);
    assert.ok(p1.err === null && p1.higherBal === null && p1.latestVal === null, "success");

    // Y prepares on acceptors 1, 2 with a higher ballot (2, y) and succeeds
    // too, overriding X's ballot on acceptor 1.
    const py = new PaxosProposer({ Id: paxosId, Bal: { N: 2n, ProposerId: 11n } });
    p1 = await py.phase1(pick(c.acceptors, [1, 2]), quorum);
    assert.ok(p1.err === null && p1.higherBal === null && p1.latestVal === null, "success");

    // X does not know of Y: it proposes its value on 0, 1 and fails, seeing Y's ballot.
    px.Val = { Vi64: 100n };
    let p2 = await px.phase2(pick(c.acceptors, [0, 1]), quorum);
    assert.ok(p2.err instanceof NotEnoughQuorumError, "Proposer X should fail in phase-2");
    assert.deepEqual(p2.higherBal, py.Bal, "X should see a higher bal, which is written by Y");

    // Y has the higher ballot, so its phase 2 succeeds.
    py.Val = { Vi64: 200n };
    p2 = await py.phase2(pick(c.acceptors, [1, 2]), quorum);
    assert.equal(p2.err, null, "Proposer Y succeeds in phase-2");
    assert.equal(p2.higherBal, null, "Y would not see a higher bal");

    // X retries with (3, x); it sees the value voted for Y and must propose it.
    px.Val = null;
    px.Bal = { N: 3n, ProposerId: 10n };
    p1 = await px.phase1(pick(c.acceptors, [0, 1]), quorum);
    assert.equal(p1.err, null, "constituted a quorum");
    assert.equal(p1.higherBal, null, "X should not see other bal");
    assert.deepEqual(p1.latestVal, py.Val, "X should see the value Acceptor voted for Y");

    // X proposes the seen value and finishes phase 2.
    px.Val = p1.latestVal;
    p2 = await px.phase2(pick(c.acceptors, [0, 1]), quorum);
    assert.equal(p2.err, null, "Proposer X should succeed in phase-2");
    assert.equal(p2.higherBal, null, "X should succeed");
  } finally {
    await c.close();
  }
});

Deno.test("Example_setAndGetByKeyVer: foo0=5, foo1=6", async () => {
  const c = await serveAcceptors(3);
  try {
    const run = (ver: bigint, val: Value | null) =>
      new PaxosProposer({ Id: { Key: "foo", Ver: ver }, Bal: { N: 0n, ProposerId: 2n } })
        .runPaxos(c.acceptors, val);
    assert.deepEqual(await run(0n, { Vi64: 5n }), { Vi64: 5n }, "written: Vi64:5");
    assert.deepEqual(await run(0n, null), { Vi64: 5n }, "read: Vi64:5");
    assert.deepEqual(await run(1n, { Vi64: 6n }), { Vi64: 6n }, "written: Vi64:6");
    assert.deepEqual(await run(1n, null), { Vi64: 6n }, "read: Vi64:6");
  } finally {
    await c.close();
  }
});

Deno.test("a read of an instance nobody wrote returns nil without phase 2", async () => {
  const c = await serveAcceptors(3);
  try {
    const p = new PaxosProposer({
      Id: { Key: "nothing", Ver: 0n },
      Bal: { N: 0n, ProposerId: 1n },
    });
    assert.equal(await p.runPaxos(c.acceptors, null), null);
    // Prepare raised the promise, but no acceptor voted.
    for (const a of c.acceptors) {
      const rep = await a.request("Prepare", {
        Id: { Key: "nothing", Ver: 0n },
        Bal: { N: 0n, ProposerId: 0n },
        Val: null,
      });
      assert.equal(rep.Val, null);
      assert.deepEqual(rep.LastBal, { N: 0n, ProposerId: 1n });
    }
  } finally {
    await c.close();
  }
});

Deno.test("a read completes a value voted by a minority before returning it", async () => {
  const c = await serveAcceptors(3);
  try {
    // A writer got its value voted by acceptor 0 only, then died.
    const w = new PaxosProposer({
      Id: { Key: "half", Ver: 0n },
      Bal: { N: 1n, ProposerId: 1n },
      Val: { Data: "half-written" },
    });
    assert.equal((await w.phase1(c.acceptors, 2)).err, null);
    assert.equal((await w.phase2(pick(c.acceptors, [0]), 1)).err, null);

    // The reader sees the vote through acceptors 0 and 1, and makes it chosen.
    const r = new PaxosProposer({ Id: { Key: "half", Ver: 0n }, Bal: { N: 0n, ProposerId: 2n } });
    assert.deepEqual(await r.runPaxos(c.acceptors, null), { Data: "half-written" });

    // Chosen now: acceptors 1 and 2 (a quorum without 0) agree.
    const r2 = new PaxosProposer({ Id: { Key: "half", Ver: 0n }, Bal: { N: 9n, ProposerId: 3n } });
    const p1 = await r2.phase1(pick(c.acceptors, [1, 2]), 2);
    assert.deepEqual(p1.latestVal, { Data: "half-written" });
  } finally {
    await c.close();
  }
});

Deno.test("one of three acceptors down: writes and reads still succeed", async () => {
  const c = await serveAcceptors(3);
  try {
    await c.servers[2]!.close();
    const p = new PaxosProposer({ Id: { Key: "k", Ver: 0n }, Bal: { N: 0n, ProposerId: 1n } });
    assert.deepEqual(await p.runPaxos(c.acceptors, { Vi64: 42n }), { Vi64: 42n });
    const r = new PaxosProposer({ Id: { Key: "k", Ver: 0n }, Bal: { N: 0n, ProposerId: 2n } });
    assert.deepEqual(await r.runPaxos(c.acceptors, null), { Vi64: 42n });
  } finally {
    await c.close();
  }
});

Deno.test("two of three acceptors down: a clear error within the deadline", async () => {
  const c = await serveAcceptors(3, 200);
  try {
    await c.servers[0]!.close();
    await c.servers[1]!.close();
    const p = new PaxosProposer({ Id: { Key: "k", Ver: 0n }, Bal: { N: 0n, ProposerId: 1n } });
    const t0 = performance.now();
    const err = await p.runPaxos(c.acceptors, { Vi64: 1n }, { deadlineMs: 500 }).then(
      () => assert.fail("runPaxos should have failed"),
      (e: unknown) => e,
    );
    const took = performance.now() - t0;
    assert.ok(err instanceof NotEnoughQuorumError, String(err));
    assert.match(err.message, /no value chosen for "k"@0 within 500 ms/);
    assert.match(err.message, /[01] of 3 acceptors accepted, 2 needed/);
    assert.match(err.message, new RegExp(c.servers[0]!.url.replace(/[.]/g, "\\.")));
    // The deadline bounds the run (plus at most one round's request timeout).
    assert.ok(took < 500 + 2 * 200 + 300, `took ${took} ms`);
  } finally {
    await c.close();
  }
});

Deno.test("a slow acceptor costs nothing once a quorum answered", async () => {
  // Acceptor 2 never answers: a raw WebSocket server that swallows requests.
  const ac = new AbortController();
  const silent = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = () => {};
      return response;
    },
  );
  const c = await serveAcceptors(2, 5000);
  const slow = new WebSocketAcceptorClient(`ws://127.0.0.1:${silent.addr.port}/paxos`, {
    timeoutMs: 5000,
  });
  try {
    const acceptors = [...c.acceptors, slow];
    const t0 = performance.now();
    for (let v = 0n; v < 5n; v++) {
      const p = new PaxosProposer({ Id: { Key: "s", Ver: v }, Bal: { N: 0n, ProposerId: 1n } });
      assert.deepEqual(await p.runPaxos(acceptors, { Vi64: v }), { Vi64: v });
    }
    // Ten phases; waiting for the silent acceptor would cost 5 s each.
    assert.ok(performance.now() - t0 < 5000);
  } finally {
    await slow.close();
    await c.close();
    ac.abort();
    await silent.finished;
  }
});

Deno.test("dueling proposers on one instance always agree (300 trials)", async () => {
  const c = await serveAcceptors(3);
  try {
    for (let trial = 0; trial < 300; trial++) {
      const id = { Key: "duel", Ver: BigInt(trial) };
      const proposers = [1n, 2n, 3n, 4n].map((pid) =>
        new PaxosProposer({ Id: id, Bal: { N: 0n, ProposerId: pid } })
      );
      const chosen = await Promise.all(
        proposers.map((p, i) => p.runPaxos(c.acceptors, { Vi64: BigInt(trial * 10 + i) })),
      );
      // Every proposer returns the same value, and it is one that was proposed.
      for (const v of chosen) assert.deepEqual(v, chosen[0]);
      const v0 = chosen[0] as { Vi64: bigint };
      assert.ok(v0.Vi64 >= BigInt(trial * 10) && v0.Vi64 < BigInt(trial * 10 + 4));
      // A later read sees it too.
      const r = new PaxosProposer({ Id: id, Bal: { N: 0n, ProposerId: 9n } });
      assert.deepEqual(await r.runPaxos(c.acceptors, null), chosen[0]);
    }
  } finally {
    await c.close();
  }
});

Deno.test("dueling proposers with a mixed acceptor subset never choose two values", async () => {
  // Each proposer talks to its own majority (like slides 33), so the two
  // majorities overlap in exactly one acceptor.
  const c = await serveAcceptors(3);
  try {
    for (let trial = 0; trial < 200; trial++) {
      const id = { Key: "overlap", Ver: BigInt(trial) };
      const x = new PaxosProposer({ Id: id, Bal: { N: 0n, ProposerId: 1n } });
      const y = new PaxosProposer({ Id: id, Bal: { N: 0n, ProposerId: 2n } });
      const [vx, vy] = await Promise.all([
        x.runPaxos(pick(c.acceptors, [0, 1]), { Data: `x${trial}` }),
        y.runPaxos(pick(c.acceptors, [1, 2]), { Data: `y${trial}` }),
      ]);
      assert.deepEqual(vx, vy);
    }
  } finally {
    await c.close();
  }
});

Deno.test("many instances in flight on one connection per acceptor", async () => {
  const c = await serveAcceptors(3, 5000);
  try {
    const n = 1000;
    const written = await Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          new PaxosProposer({
            Id: { Key: `m${i % 10}`, Ver: BigInt(i) },
            Bal: { N: 0n, ProposerId: 1n },
          })
            .runPaxos(c.acceptors, { Vi64: BigInt(i) * 3n }),
      ),
    );
    written.forEach((v, i) => assert.deepEqual(v, { Vi64: BigInt(i) * 3n }));
    const read = await Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          new PaxosProposer({
            Id: { Key: `m${i % 10}`, Ver: BigInt(i) },
            Bal: { N: 0n, ProposerId: 2n },
          })
            .runPaxos(c.acceptors, null),
      ),
    );
    read.forEach((v, i) => assert.deepEqual(v, { Vi64: BigInt(i) * 3n }));
    // Each run ends at a quorum's replies; the slowest acceptor's come after
    // (on a busy machine, hundreds of them). Every one does come, well within
    // the requests' timeout (5 s), which would otherwise drop them unreplied.
    const until = performance.now() + 2000;
    while (c.acceptors.some((a) => a.inFlight > 0) && performance.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (const a of c.acceptors) assert.equal(a.inFlight, 0);
  } finally {
    await c.close();
  }
});

Deno.test("int64 values and ballots beyond 2^53 round-trip exactly", async () => {
  const c = await serveAcceptors(3);
  try {
    const values = [2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n), -(2n ** 53n) - 3n, 4294967296n];
    for (const [i, v] of values.entries()) {
      const p = new PaxosProposer({
        Id: { Key: "big", Ver: 2n ** 62n + BigInt(i) },
        Bal: { N: 2n ** 47n + 7n, ProposerId: 2n ** 63n - 2n },
      });
      assert.deepEqual(await p.runPaxos(c.acceptors, { Vi64: v }), { Vi64: v });
      const r = new PaxosProposer({
        Id: { Key: "big", Ver: 2n ** 62n + BigInt(i) },
        Bal: { N: 0n, ProposerId: 1n },
      });
      assert.deepEqual(await r.runPaxos(c.acceptors, null), { Vi64: v });
      // The reader had to raise its ballot above the writer's huge one.
      assert.ok(GE(r.Bal, { N: 2n ** 47n + 8n, ProposerId: 1n }));
    }
  } finally {
    await c.close();
  }
});

Deno.test("Data values of every MessagePack kind are chosen and read back", async () => {
  const c = await serveAcceptors(3);
  try {
    const values: Value[] = [
      { Data: "hello" },
      { Data: 3.5 },
      { Data: true },
      { Data: new Uint8Array([0, 1, 2, 255]) },
      { Data: ["a", 1, null, { b: [2n ** 60n] }] },
      { Data: { name: "x", n: -1, nested: { deep: "y" } } },
      { Data: "x".repeat(100_000) },
    ];
    for (const [i, v] of values.entries()) {
      const w = new PaxosProposer({
        Id: { Key: "d", Ver: BigInt(i) },
        Bal: { N: 0n, ProposerId: 1n },
      });
      await w.runPaxos(c.acceptors, v);
      const r = new PaxosProposer({
        Id: { Key: "d", Ver: BigInt(i) },
        Bal: { N: 0n, ProposerId: 2n },
      });
      const got = await r.runPaxos(c.acceptors, null);
      assert.ok(got !== null && "Data" in got);
      const want = v as { Data: unknown };
      if (want.Data instanceof Uint8Array) {
        assert.deepEqual(new Uint8Array(got.Data as Uint8Array), want.Data);
      } else {
        assert.deepEqual(got.Data, want.Data);
      }
    }
  } finally {
    await c.close();
  }
});

Deno.test("phase2 reports every refusal to onRefused, also those that come after it returned", async () => {
  const acceptors = [0, 1, 2].map(() => new PaxosAcceptor());
  const id = { Key: "r", Ver: 0n };
  const high = new PaxosProposer({ Id: id, Bal: { N: 9n, ProposerId: 1n } });
  assert.equal((await high.phase1(acceptors, 2)).err, null);
  // The third acceptor answers only when released.
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  const clients = acceptors.map((a, i) => ({
    name: `a${i}`,
    request: async (op: "Prepare" | "Accept", req: Parameters<PaxosAcceptor["request"]>[1]) => {
      const rep = await a.request(op, req);
      if (i === 2) await gate;
      return rep;
    },
  }));
  let refused = 0;
  const low = new PaxosProposer({ Id: id, Bal: { N: 1n, ProposerId: 2n }, Val: { Vi64: 1n } });
  const r = await low.phase2(clients, 2, { onRefused: () => refused++ });
  assert.ok(r.err instanceof NotEnoughQuorumError);
  assert.equal(refused, 2, "phase 2 returned once a quorum was out of reach");
  release();
  await gate;
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(refused, 3);
});

Deno.test("no single message bricks a key: a max-ballot Prepare to two of three, then the key is written", async () => {
  const c = await serveAcceptors(3);
  try {
    const top = 2n ** 63n - 1n;
    const attack = { Id: { Key: "brick", Ver: 0n }, Bal: { N: top, ProposerId: top }, Val: null };
    for (const a of c.acceptors.slice(0, 2)) {
      await assert.rejects(a.request("Prepare", attack), /BallotTooFar/);
    }
    const p = new PaxosProposer({ Id: { Key: "brick", Ver: 0n }, Bal: { N: 1n, ProposerId: 5n } });
    assert.deepEqual(await p.runPaxos(c.acceptors, { Vi64: 1n }, { deadlineMs: 5000 }), {
      Vi64: 1n,
    });
  } finally {
    await c.close();
  }
});

Deno.test("a proposer climbs in steps above a promise one client raised as far as it could", async () => {
  // Another client raised acceptor 0 two full steps, one message each;
  // acceptor 2 is down, so the quorum must include acceptor 0, and acceptor
  // 1 can only be raised one step at a time.
  const acceptors = [0, 1, 2].map((i) => new PaxosAcceptor(undefined, `a${i}`));
  const id = { Key: "climb", Ver: 0n };
  for (const N of [MAX_BALLOT_STEP, 2n * MAX_BALLOT_STEP]) {
    await acceptors[0]!.prepare({ Id: id, Bal: { N, ProposerId: 2n ** 62n }, Val: null });
  }
  const down = {
    name: "a2 (down)",
    request: () => Promise.reject(new Deno.errors.ConnectionRefused("down")),
  };
  const p = new PaxosProposer({ Id: id, Bal: { N: 1n, ProposerId: 5n } });
  assert.deepEqual(
    await p.runPaxos([acceptors[0]!, acceptors[1]!, down], { Vi64: 7n }, { deadlineMs: 5000 }),
    { Vi64: 7n },
  );
  assert.equal(p.Bal.N, 2n * MAX_BALLOT_STEP + 1n);
});

Deno.test("a proposer above which no ballot is left fails with a clear error, not an overflow", async () => {
  const store = new MemoryStore();
  const top = 2n ** 63n - 1n;
  const id = { Key: "full", Ver: 0n };
  store.put(id, { LastBal: { N: top, ProposerId: top }, Val: null, VBal: ZERO_BALLOT });
  const acceptors = [new PaxosAcceptor(store), new PaxosAcceptor(store), new PaxosAcceptor(store)];
  const p = new PaxosProposer({ Id: id, Bal: { N: top, ProposerId: 1n } });
  await assert.rejects(
    p.runPaxos(acceptors, { Vi64: 1n }, { deadlineMs: 5000 }),
    (e: Error) =>
      e instanceof NotEnoughQuorumError && /no ballot is left for "full"@0/.test(e.message),
  );
});

// Found by the membership simulation: a member that refuses as stale (a new
// member that missed the joint configuration, serving nothing yet) made
// every lost round final: the proposer threw its StaleMembership at once,
// though the other members could still make a quorum on a retry.
Deno.test("a member refusing as stale does not end a run that the others can still finish", async () => {
  const b = new PaxosAcceptor(undefined, "b");
  const c = new PaxosAcceptor(undefined, "c");
  const joining = {
    name: "joining",
    request: () =>
      Promise.reject(
        new AcceptorError("StaleMembership", "member 3 is joining: it serves nothing", "joining"),
      ),
  };
  const Id = { Key: "k", Ver: 0n };
  // Another proposer's promise on b makes the first round lose there.
  await b.request("Prepare", { Id, Bal: { N: 5n, ProposerId: 99n }, Val: null });
  const named = (a: PaxosAcceptor, name: string) => ({
    name,
    request: (op: "Prepare" | "Accept", req: Parameters<PaxosAcceptor["request"]>[1]) =>
      a.request(op, req),
  });
  const px = new PaxosProposer({ Id, Bal: { N: 1n, ProposerId: 10n } });
  const got = await px.runPaxos([named(b, "b"), named(c, "c"), joining], { Data: "v" }, {
    deadlineMs: 2000,
  });
  assert.deepEqual(got, { Data: "v" });
  // When the others cannot make a quorum, the refusal is the answer, at once.
  const alone = new PaxosProposer({ Id: { Key: "k2", Ver: 0n }, Bal: { N: 1n, ProposerId: 11n } });
  await assert.rejects(
    alone.runPaxos([named(b, "b"), joining, { ...joining, name: "joining2" }], { Data: "w" }, {
      deadlineMs: 2000,
    }),
    /StaleMembership: member 3 is joining/,
  );
  // Nor when the only other one failed (a member that is down): at once.
  const dead = {
    name: "dead",
    request: () => Promise.reject(new Deno.errors.TimedOut("dead: no reply within 20 ms")),
  };
  const d = new PaxosAcceptor(undefined, "d");
  const t0 = Date.now();
  const lone = new PaxosProposer({ Id: { Key: "k3", Ver: 0n }, Bal: { N: 1n, ProposerId: 12n } });
  await assert.rejects(
    lone.runPaxos([named(d, "d"), joining, dead], { Data: "x" }, { deadlineMs: 2000 }),
    /StaleMembership: member 3 is joining/,
  );
  assert.ok(Date.now() - t0 < 1000, "refused at once, not at the deadline");
});
