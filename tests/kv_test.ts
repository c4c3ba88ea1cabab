// The KV layer: automatic versions, latest reads, compare-and-set, delete,
// history and retention, over in-process acceptors and over WebSocket.
import assert from "node:assert/strict";
import {
  AcceptorError,
  type BallotNum,
  CompactedError,
  connect,
  Kv,
  type KvAcceptorClient,
  type KvEntry,
  type LatestReply,
  LogStore,
  MemoryStore,
  NotFoundError,
  PaxosAcceptor,
  PaxosProposer,
  type Proposer,
  serveAcceptor,
  UnknownOutcomeError,
  type Value,
  VersionConflictError,
  WebSocketAcceptorClient,
  ZERO_BALLOT,
} from "../mod.ts";
import { SimClock } from "../sim/sim_clock.ts";
import { cluster, inst, req } from "./builders.ts";
import { MemFs } from "./mem_fs.ts";

// The acceptors, with every request and every Latest shown to `see` first
// (a Latest with the ballot it asks to promise, if any, and a first write's
// value); `down` lists those that fail every request.
function watched(
  acceptors: readonly PaxosAcceptor[],
  see: (
    op: "Prepare" | "Accept" | "Latest",
    req: Proposer | null,
    bal?: BallotNum,
    first?: Value,
  ) => void,
  down: readonly number[] = [],
): KvAcceptorClient[] {
  const refuse = (i: number) =>
    down.includes(i) ? Promise.reject(new Error(`acceptor ${i} is down`)) : null;
  return acceptors.map((a, i) => ({
    name: a.name,
    latest: (key: string, bal?: BallotNum, first?: Value) => (
      see("Latest", null, bal, first), refuse(i) ?? a.latest(key, bal, first)
    ),
    request: (op: "Prepare" | "Accept", req: Proposer) => (
      see(op, req), refuse(i) ?? a.request(op, req)
    ),
  }));
}

// Random numbers in [lo, hi), to order the proposer ids of clients.
function between(lo: number, hi: number) {
  return { next: () => lo + Math.random() * (hi - lo) };
}

// A writer voted `val` for key@ver on the first acceptor only, then died.
async function halfWrite(
  acceptors: readonly PaxosAcceptor[],
  key: string,
  ver: bigint,
  val: string,
) {
  const w = new PaxosProposer({
    Id: { Key: key, Ver: ver },
    Bal: { N: 5n, ProposerId: 77n },
    Val: { Data: val },
  });
  assert.equal((await w.phase1(acceptors, 2)).err, null);
  assert.equal((await w.phase2([acceptors[0]!], 1)).err, null);
}

// The acceptors, but the first Prepare for version `ver` waits for
// `interlude` (run once, then) to finish first. Returns them and the
// interlude's result.
function pausedAt<T>(
  acceptors: readonly PaxosAcceptor[],
  ver: bigint,
  interlude: () => Promise<T>,
): { acceptors: KvAcceptorClient[]; ran: () => Promise<T> | null } {
  let ran: Promise<T> | null = null;
  return {
    acceptors: acceptors.map((a) => ({
      name: a.name,
      latest: (key: string) => a.latest(key),
      request: async (op: "Prepare" | "Accept", r: Proposer) => {
        if (op === "Prepare" && r.Id.Ver === ver) await (ran ??= interlude()).catch(() => {});
        return await a.request(op, r);
      },
    })),
    ran: () => ran,
  };
}

Deno.test("kv: set gives the next version; get returns the latest", async () => {
  const kv = new Kv(cluster());
  assert.deepEqual(await kv.get("k"), { found: false, version: -1n });
  assert.equal(await kv.set("k", "a"), 0n);
  assert.equal(await kv.set("k", "b"), 1n);
  assert.deepEqual(await kv.get("k"), { found: true, version: 1n, value: "b" });
  assert.equal(await kv.set("other", 1), 0n);
  assert.deepEqual(await kv.get("k"), { found: true, version: 1n, value: "b" });
});

Deno.test("kv: values of every kind round-trip; bad values are refused", async () => {
  const kv = new Kv(cluster());
  const values = [
    "text",
    42,
    -1.5,
    true,
    2n ** 62n,
    -5n,
    new Uint8Array([1, 2, 3]),
    ["a", 1, null],
    { a: { b: [1, "c"] } },
  ];
  for (const [i, v] of values.entries()) {
    await kv.set(`v${i}`, v);
    const got = await kv.get(`v${i}`);
    assert.ok(got.found);
    if (v instanceof Uint8Array) assert.deepEqual(new Uint8Array(got.value as Uint8Array), v);
    else assert.deepEqual(got.value, v);
  }
  // bigint is stored as Vi64 and comes back as bigint, even when small.
  assert.equal(
    (await kv.get("v5")).found && typeof (await kv.get("v5") as { value: unknown }).value,
    "bigint",
  );
  await assert.rejects(kv.set("n", null as never), TypeError);
  await assert.rejects(kv.set("d", new Date() as never), TypeError);
  await assert.rejects(kv.set("big", "x".repeat(1024 * 1024 + 1)), RangeError);
  await assert.rejects(kv.set("x".repeat(5000), 1), RangeError);
  await assert.rejects(kv.set("i", 2n ** 63n), RangeError);
});

Deno.test("kv: compare-and-set succeeds only on the latest version", async () => {
  const kv = new Kv(cluster());
  assert.equal(await kv.cas("c", -1n, "first"), 0n);
  assert.equal(await kv.cas("c", 0n, "second"), 1n);
  const e = await kv.cas("c", 0n, "stale").catch((e) => e);
  assert.ok(e instanceof VersionConflictError);
  assert.equal(e.actual, 1n);
  assert.equal(e.expected, 0n);
  assert.match(e.message, /version conflict on "c": expected latest version 0, found 1/);
  assert.deepEqual(await kv.get("c"), { found: true, version: 1n, value: "second" });
});

Deno.test("kv: create-only writes succeed on absent or deleted keys only", async () => {
  const kv = new Kv(cluster());
  assert.equal(await kv.set("n", "x", { ifAbsent: true }), 0n);
  await assert.rejects(kv.set("n", "y", { ifAbsent: true }), (e: Error) => {
    assert.ok(e instanceof VersionConflictError);
    assert.equal(e.actual, 0n);
    return true;
  });
  assert.equal(await kv.delete("n"), 1n);
  assert.equal(await kv.set("n", "z", { ifAbsent: true }), 2n);
});

Deno.test("kv: delete writes a tombstone; history lists versions oldest first", async () => {
  const kv = new Kv(cluster());
  await kv.set("h", "a");
  await kv.set("h", "b");
  assert.equal(await kv.delete("h"), 2n);
  assert.deepEqual(await kv.get("h"), { found: false, version: 2n });
  await kv.set("h", "c");
  assert.deepEqual(await kv.history("h"), [
    { version: 0n, deleted: false, value: "a" },
    { version: 1n, deleted: false, value: "b" },
    { version: 2n, deleted: true },
    { version: 3n, deleted: false, value: "c" },
  ]);
  assert.deepEqual((await kv.history("h", { limit: 2 })).map((e) => e.version), [2n, 3n]);
  assert.deepEqual(await kv.history("never"), []);
});

Deno.test("kv: concurrent writers each get their own version, none lost", async () => {
  const acceptors = cluster();
  const clients = Array.from({ length: 8 }, () => new Kv(acceptors));
  const versions = await Promise.all(
    clients.flatMap((kv, c) => Array.from({ length: 5 }, (_, i) => kv.set("hot", `c${c}-${i}`))),
  );
  assert.deepEqual(
    [...versions].sort((a, b) => Number(a - b)),
    Array.from({ length: 40 }, (_, i) => BigInt(i)),
  );
  const history = await clients[0]!.history("hot");
  assert.equal(history.length, 40);
  // Each version holds the value of the write that returned it.
  const byVersion = new Map(versions.map((v, i) => [v, `c${Math.floor(i / 5)}-${i % 5}`]));
  for (const h of history) {
    assert.deepEqual(h, { version: h.version, deleted: false, value: byVersion.get(h.version) });
  }
});

Deno.test("kv: concurrent compare-and-set on one version: exactly one wins", async () => {
  const acceptors = cluster();
  const kv = new Kv(acceptors);
  await kv.set("lock", "free");
  for (let round = 0n; round < 20n; round++) {
    const results = await Promise.allSettled(
      Array.from({ length: 4 }, (_, i) => new Kv(acceptors).cas("lock", round, `owner${i}`)),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    assert.equal(won.length, 1, `round ${round}: ${won.length} winners`);
    for (const r of results) {
      if (r.status === "rejected") assert.ok(r.reason instanceof VersionConflictError);
    }
  }
});

Deno.test("kv: a half-written version is finished by a get and then stays", async () => {
  const acceptors = cluster();
  const kv = new Kv(acceptors);
  await kv.set("half", "old");
  // A writer voted version 1 on acceptor 0 only, then died.
  await halfWrite(acceptors, "half", 1n, "new");
  // The get asks a majority that includes acceptor 0 (in-process acceptors
  // answer in order), sees version 1 and finishes it.
  assert.deepEqual(await kv.get("half"), { found: true, version: 1n, value: "new" });
  // Now a majority without acceptor 0 has it too.
  assert.deepEqual(await new Kv(acceptors.slice(1)).get("half"), {
    found: true,
    version: 1n,
    value: "new",
  });
});

Deno.test("kv: retention keeps the last versions; older ones are 'compacted'", async () => {
  const acceptors = cluster(3, 3);
  const kv = new Kv(acceptors);
  for (let i = 0; i < 10; i++) await kv.set("r", i);
  assert.deepEqual(await kv.get("r"), { found: true, version: 9n, value: 9 });
  await assert.rejects(kv.getVersion("r", 2n), (e: Error) => {
    assert.ok(e instanceof CompactedError);
    assert.match(e.message, /"r"@2 is compacted/);
    return true;
  });
  // An old version can never be written again either.
  await assert.rejects(kv.setVersion("r", 0n, { Vi64: 1n }), CompactedError);
  assert.deepEqual((await kv.history("r")).map((e) => e.version), [7n, 8n, 9n]);
  assert.equal(await kv.set("r", "ten"), 10n);
});

Deno.test("kv: a get whose version is compacted while it reads it asks again, and finds the newer one", async () => {
  const acceptors = cluster(3, 2);
  const other = new Kv(acceptors);
  for (let i = 0; i < 3; i++) await other.set("c", `v${i}`);
  // Version 3 voted on a0 only: a get must read it with Paxos, not from
  // Latest alone.
  await halfWrite(acceptors, "c", 3n, "half");
  // When the get comes to read version 3, another client first finishes it
  // and writes versions 4 and 5: the acceptors then keep only 4 and 5.
  const paused = pausedAt(acceptors, 3n, async () => [
    await other.set("c", "v4"),
    await other.set("c", "v5"),
  ]);
  const kv = new Kv(paused.acceptors);
  assert.deepEqual(await kv.get("c"), { found: true, version: 5n, value: "v5" });
  assert.deepEqual(await paused.ran(), [4n, 5n]);
  assert.deepEqual((await other.history("c")).map((e) => e.version), [4n, 5n]);
});

Deno.test("kv: a write whose version is compacted before it could run there has an unknown outcome", async () => {
  const acceptors = cluster(3, 2);
  const other = new Kv(acceptors);
  for (let i = 0; i < 3; i++) await other.set("u", `v${i}`);
  // When the write comes to run at version 3, another client writes 3, 4
  // and 5 first: version 3 is no longer kept. (That the write's own run had
  // sent no Accept there is more than the KV knows.)
  const paused = pausedAt(acceptors, 3n, async () => [
    await other.set("u", "v3"),
    await other.set("u", "v4"),
    await other.set("u", "v5"),
  ]);
  const kv = new Kv(paused.acceptors);
  await assert.rejects(kv.set("u", "mine"), (e: Error) => {
    assert.ok(e instanceof UnknownOutcomeError, String(e));
    assert.equal(e.version, 3n);
    assert.ok(e.cause instanceof CompactedError);
    return true;
  });
  assert.deepEqual(await paused.ran(), [3n, 4n, 5n]);
});

Deno.test("kv: explicit-version calls keep the seed's meaning", async () => {
  const kv = new Kv(cluster());
  assert.deepEqual(await kv.setVersion("foo", 0n, { Vi64: 5n }), { Vi64: 5n });
  assert.deepEqual(await kv.setVersion("foo", 0n, { Vi64: 6n }), { Vi64: 5n });
  assert.deepEqual(await kv.getVersion("foo", 0n), { Vi64: 5n });
  assert.equal(await kv.getVersion("foo", 1n), null);
});

Deno.test("kv: connect over WebSocket; a majority down is a clear error", async () => {
  const servers = await Promise.all([0, 1, 2].map(() => serveAcceptor(new PaxosAcceptor())));
  const kv = await connect(servers.map((s) => s.url), { timeoutMs: 300, deadlineMs: 1000 });
  try {
    assert.equal(await kv.set("w", { hello: "world" }), 0n);
    assert.deepEqual(await kv.get("w"), { found: true, version: 0n, value: { hello: "world" } });
    await servers[0]!.close();
    assert.equal(await kv.set("w", "still"), 1n);
    await servers[1]!.close();
    await assert.rejects(
      kv.get("w"),
      // How many answered, of how many, and how many were needed.
      /cannot find the latest version of "w": [01] of 3 acceptors answered, 2 needed/,
    );
  } finally {
    await kv.close();
    await Promise.all(servers.map((s) => s.close()));
  }
  await assert.rejects(connect([]), RangeError);
  await assert.rejects(connect(["ws://127.0.0.1:1/paxos", "ws://127.0.0.1:1/paxos"]), RangeError);
});

Deno.test("kv extension over the wire: Latest replies and Compacted errors", async () => {
  const servers = await Promise.all(
    [0, 1, 2].map((i) =>
      serveAcceptor(new PaxosAcceptor(new MemoryStore(), `a${i}`, { keepVersions: 2 }))
    ),
  );
  const raw = new WebSocketAcceptorClient(servers[0]!.url);
  const kv = await connect(servers.map((s) => s.url));
  try {
    assert.deepEqual(await raw.latest("k"), {
      Ver: -1n,
      Floor: 0n,
      Val: null,
      VBal: { N: 0n, ProposerId: 0n },
    });
    for (let i = 0; i < 5; i++) await kv.set("k", i);
    // The highest voted version, the floor, and the vote held there.
    const top = await raw.latest("k");
    assert.deepEqual([top.Ver, top.Floor], [4n, 3n]);
    assert.ok(top.Val !== null && "Data" in top.Val && top.Val.Data === 4);
    assert.ok(top.VBal.N > 0n);
    const e = await raw.request("Prepare", {
      Id: { Key: "k", Ver: 1n },
      Bal: { N: 100n, ProposerId: 1n },
      Val: null,
    }).catch((e) => e);
    assert.ok(e instanceof AcceptorError);
    assert.equal(e.code, "Compacted");
    assert.equal(e.detail, '"k"@1 was compacted: versions of "k" below 3 are no longer kept');
    // A tombstone travels as {Del: true}, with the id of the write.
    assert.equal(await kv.delete("k"), 5n);
    const tomb = await kv.getVersion("k", 5n);
    assert.ok(tomb !== null && "Del" in tomb && tomb.Del === true);
    assert.equal(typeof tomb.Wid, "bigint");
  } finally {
    await raw.close();
    await kv.close();
    await Promise.all(servers.map((s) => s.close()));
  }
});

Deno.test("kv: a client's next write of a key skips phase 1, and falls back when it must", async () => {
  const acceptors = cluster();
  const prepares: string[] = [];
  // Counts the Prepares (at a real ballot; a read's zero-ballot peek is not
  // phase 1) and the Latest requests.
  let latests = 0;
  // (Our proposer ids above the other client's: see the test after next.)
  const kv = new Kv(
    watched(acceptors, (op, req) => {
      if (op === "Latest") latests++;
      if (op === "Prepare" && req!.Bal.N > 0n) prepares.push(`${req!.Id.Key}@${req!.Id.Ver}`);
    }),
    { random: between(0.99, 1) },
  );
  // The first write's Latest promised version 0 (no Prepare either).
  assert.equal(await kv.set("f", "a"), 0n);
  assert.equal(prepares.length, 0);
  // Version 0's Accept got version 1 promised: no Prepare now, and no look
  // at the latest version either: one Accept round trip.
  const before = latests;
  assert.equal(await kv.set("f", "b"), 1n);
  assert.equal(await kv.set("f", "c", { ifVersion: 1n }), 2n);
  assert.equal(prepares.length, 0);
  assert.equal(latests, before, "no Latest for a write on a held promise");
  assert.deepEqual(await kv.get("f"), { found: true, version: 2n, value: "c" });

  // Another client writes version 3: the promise for 3 no longer fits.
  // (That client's look was refused by our promise of version 3, so it
  // wrote at N 2, and holds version 4 promised at N 2.) The write looks at
  // the latest version, whose promise of version 4 (at N 1) is refused; one
  // Prepare round above the other client's promise, and Accept.
  assert.equal(await new Kv(acceptors, { random: between(0.4, 0.5) }).set("f", "other"), 3n);
  const looks = latests;
  assert.equal(await kv.set("f", "d"), 4n);
  assert.equal(latests, looks + 3, "one look at the latest version");
  assert.deepEqual(prepares, ["f@4", "f@4", "f@4"]);

  // A higher ballot at version 5 (promised to our client by version 4's
  // Accept) makes the one-round-trip write fail, and the look's promise too;
  // the full run still wins.
  const intruder = new PaxosProposer({
    Id: { Key: "f", Ver: 5n },
    Bal: { N: 99n, ProposerId: 1n },
  });
  assert.equal((await intruder.phase1(acceptors, 2)).err, null);
  assert.equal(await kv.set("f", "e"), 5n);
  assert.ok(prepares.includes("f@5"), "a full run for version 5");
  assert.deepEqual(await kv.get("f"), { found: true, version: 5n, value: "e" });
  assert.deepEqual((await kv.history("f")).map((h) => h.deleted ? null : h.value), [
    "a",
    "b",
    "c",
    "other",
    "d",
    "e",
  ]);
});

Deno.test("kv: the first write of a fresh key is one round trip: a Latest carrying the value, voted at round 0 by every acceptor", async () => {
  const acceptors = cluster();
  const seen: string[] = [];
  // (Ballots are ordered by the first random number drawn for them: the
  // other client's, below, come after this one's.)
  const kv = new Kv(
    watched(acceptors, (op, r, b, first) => {
      const extra = `${b === undefined ? "" : " +promise"}${first === undefined ? "" : " +value"}`;
      seen.push(r === null ? `${op}${extra}` : `${op} ${r.Id.Ver}`);
    }),
    { random: between(0.4, 0.5) },
  );
  assert.equal(await kv.set("fresh", "a"), 0n);
  // Each round trip is one request to each of the three acceptors.
  assert.deepEqual(seen, Array(3).fill("Latest +promise +value"));
  // Then the next write is one round trip too (version 1 was promised).
  seen.length = 0;
  assert.equal(await kv.set("fresh", "b"), 1n);
  assert.deepEqual(seen, Array(3).fill("Accept 1"));
  assert.deepEqual(await kv.get("fresh"), { found: true, version: 1n, value: "b" });
  // Another client's first write of the key: it is not new, so the Latest
  // is the usual folded phase 1, then one Accept.
  seen.length = 0;
  const other = new Kv(
    watched(acceptors, (op, r, _, first) => {
      seen.push(r === null ? `${op}${first === undefined ? "" : " +value"}` : `${op} ${r.Id.Ver}`);
    }),
    { random: between(0.99, 1) },
  );
  assert.equal(await other.set("fresh", "c"), 2n);
  assert.deepEqual(seen, [...Array(3).fill("Latest +value"), ...Array(3).fill("Accept 2")]);
});

Deno.test("kv: the client remembers the promises of its last promisedKeys to twice as many keys, no more", async () => {
  assert.throws(() => new Kv(cluster(), { promisedKeys: 0 }), /promisedKeys .* not 0/);
  const seen: string[] = [];
  // (Each ballot above the one before: a forgotten promise is not above
  // the next look's ballot, which would take a Prepare more.)
  let x = 0.1;
  const kv = new Kv(
    watched(cluster(), (op, r) => seen.push(r === null ? op : `${op} ${r.Id.Ver}`)),
    { promisedKeys: 2, random: { next: () => x += 1e-6 } },
  );
  // Written in turn: a, b (the first generation is full: it becomes the
  // older), c, d (full again: a and b are forgotten).
  for (const key of ["a", "b", "c", "d"]) await kv.set(key, 0);
  seen.length = 0;
  // c and d are remembered: one Accept round trip each.
  assert.equal(await kv.set("d", 1), 1n);
  assert.equal(await kv.set("c", 1), 1n);
  assert.deepEqual(seen, [...Array(3).fill("Accept 1"), ...Array(3).fill("Accept 1")]);
  // a is not: a look (its Latest) first, then the Accept.
  seen.length = 0;
  assert.equal(await kv.set("a", 1), 1n);
  assert.deepEqual(seen, [...Array(3).fill("Latest"), ...Array(3).fill("Accept 1")]);
});

Deno.test("kv: with one acceptor down, a first write is two round trips: a quorum's round-0 votes, then Accept", async () => {
  const acceptors = cluster();
  const seen: string[] = [];
  const kv = new Kv(
    watched(acceptors, (op, r) => seen.push(r === null ? op : `${op} ${r.Id.Ver}`), [2]),
  );
  assert.equal(await kv.set("one-down", "a"), 0n);
  assert.deepEqual(seen, [...Array(3).fill("Latest"), ...Array(3).fill("Accept 0")]);
  // Chosen at a ballot above round 0 on the two that answered: any client
  // reads it, the third acceptor back.
  assert.deepEqual(await new Kv(acceptors).get("one-down"), {
    found: true,
    version: 0n,
    value: "a",
  });
});

Deno.test("kv: a first write waits for the last round-0 vote twice as long as its quorum took, then goes on with Accept", async () => {
  // a0 and a1 answer Latest 10 ms after it went out, a2 `lateMs` after:
  // the quorum at 10 ms, so the write waits for a2 until 30 ms.
  const run = async (lateMs: number) => {
    const clock = new SimClock();
    const acceptors = cluster();
    const seen: string[] = [];
    // (Each request is seen as it goes out; a Latest is served when it arrives.)
    const clients = watched(acceptors, (op, r) => seen.push(r === null ? op : `${op} ${r.Id.Ver}`))
      .map((c, i) => ({
        ...c,
        latest: (key: string, bal?: BallotNum, first?: Value) => {
          seen.push("Latest");
          return new Promise<LatestReply>((resolve, reject) =>
            clock.setTimer(
              () => acceptors[i]!.latest(key, bal, first).then(resolve, reject),
              i === 2 ? lateMs : 10,
            )
          );
        },
      }));
    const kv = new Kv(clients, { clock });
    let version: bigint | null = null;
    const write = kv.set("late", "v").then((v) => version = v);
    await clock.run(() => version !== null, 1000);
    await write;
    return { version, seen };
  };
  // Within the wait: chosen by the three round-0 votes, one round trip.
  const within = await run(29);
  assert.equal(within.version, 0n);
  assert.deepEqual(within.seen, Array(3).fill("Latest"));
  // Past it: a quorum's round-0 votes, then Accept (two round trips).
  const past = await run(31);
  assert.equal(past.version, 0n);
  assert.deepEqual(past.seen, [...Array(3).fill("Latest"), ...Array(3).fill("Accept 0")]);
});

Deno.test("kv: round-0 votes of two first writes that raced, none chosen, are settled once by the next read", async () => {
  // "x" got the votes of a0 and a1, "y" that of a2: a round-0 vote is chosen
  // only by every acceptor's, so neither is; a read chooses one of them.
  const acceptors = cluster();
  const x = { Data: "x" };
  const y = { Data: "y" };
  await acceptors[0]!.latest("race", { N: 1n, ProposerId: 5n }, x);
  await acceptors[1]!.latest("race", { N: 1n, ProposerId: 5n }, x);
  await acceptors[2]!.latest("race", { N: 1n, ProposerId: 9n }, y);
  const read = await new Kv(acceptors).get("race");
  assert.ok(read.found && (read.value === "x" || read.value === "y"), Deno.inspect(read));
  assert.equal(read.version, 0n);
  // Settled: a read of any two of them finds the same (a Paxos run there
  // adopts the read's vote, above round 0).
  for (const skip of [0, 1, 2]) {
    const two = new Kv(acceptors.filter((_, i) => i !== skip));
    assert.deepEqual(await two.get("race"), read, `without a${skip}`);
  }
});

Deno.test("kv: a write after another client's is a look and an Accept, or a Prepare more below its promise", async () => {
  // Ballots are (N, a random proposer id), whose order is that of the first
  // random number drawn for it: ours in [0.99, 1) or in [0, 0.01), the
  // other client's in [0.4, 0.5).
  for (const [r, extra] of [[0.99, []], [0, Array(3).fill("Prepare 1")]] as const) {
    const acceptors = cluster();
    const seen: string[] = [];
    const kv = new Kv(
      watched(acceptors, (op, q, b) => {
        seen.push(q === null ? `${op}${b === undefined ? "" : " +promise"}` : `${op} ${q.Id.Ver}`);
      }),
      { random: between(r, r + 0.01) },
    );
    // The other client's write of version 0 holds its promise of version 1.
    assert.equal(await new Kv(acceptors, { random: between(0.4, 0.5) }).set("w", "x"), 0n);
    assert.equal(await kv.set("w", "y"), 1n);
    assert.deepEqual(seen, [
      ...Array(3).fill("Latest +promise"),
      ...extra, // at N 2, above that promise (N 1): one Prepare round, not two
      ...Array(3).fill("Accept 1"),
    ], `random ${r}`);
    assert.deepEqual(await kv.get("w"), { found: true, version: 1n, value: "y" });
  }
});

Deno.test("kv: when the Latest replies disagree on the latest version, the write runs phase 1 at the look's ballot", async () => {
  const acceptors = cluster();
  assert.equal(await new Kv(acceptors).set("d", "zero"), 0n);
  // Version 1 half-written: voted on a0 only. a0's promise goes to version
  // 2, a1's and a2's to version 1: no quorum's promise at one version.
  await halfWrite(acceptors, "d", 1n, "half");
  const looks: BallotNum[] = [];
  const prepares: Proposer[] = [];
  const kv = new Kv(watched(acceptors, (op, r, b) => {
    if (op === "Latest" && b !== undefined) looks.push(b);
    if (op === "Prepare" && r!.Bal.N > 0n) prepares.push(r!);
  }));
  assert.equal(await kv.set("d", "mine"), 2n);
  // The read of version 1 finished it; version 2 got a Prepare, at the
  // ballot its look had promised (no higher ballot to climb over).
  const at2 = prepares.filter((p) => p.Id.Ver === 2n);
  assert.ok(at2.length > 0, "phase 1 of version 2 ran");
  assert.deepEqual(at2[0]!.Bal, looks[0]);
  assert.deepEqual((await kv.history("d")).map((h) => h.deleted ? null : h.value), [
    "zero",
    "half",
    "mine",
  ]);
});

Deno.test("kv: acceptors that ignore the Latest's ballot (older ones) get Prepare and Accept, as before", async () => {
  for (const old of [[0], [0, 1, 2]]) {
    const acceptors = cluster();
    const seen: string[] = [];
    // The older acceptors answer a plain Latest: no NextBal.
    const clients = watched(acceptors, (op, r) => seen.push(r === null ? op : `${op} ${r.Id.Ver}`))
      .map((c, i) => old.includes(i) ? { ...c, latest: (key: string) => c.latest(key) } : c);
    const kv = new Kv(clients);
    assert.equal(await kv.set("o", "a"), 0n, `older: ${old}`);
    // With one older acceptor, the two others voted the first write at
    // round 0 and promised its ballot: one Accept finishes it. With three,
    // none did: Prepare and Accept, as before.
    assert.deepEqual(seen, [
      ...Array(3).fill("Latest"),
      ...(old.length === 3 ? Array(3).fill("Prepare 0") : []),
      ...Array(3).fill("Accept 0"),
    ], `older: ${old}`);
    assert.deepEqual(await kv.get("o"), { found: true, version: 0n, value: "a" });
  }
});

// A one-round-trip write of g@1 gets partly through: its Accept reaches a0
// only, and meanwhile another client reads g (which finishes version 1) and
// writes version 2. Returns the writer's client, its write (under way), and
// what the other client saw, to check in the test itself (an assertion
// failing inside an acceptor's request would pass for a lost request).
async function overtakenWrite(keepVersions?: number): Promise<{
  kv: Kv;
  write: Promise<bigint>;
  interlude: Promise<{ read: KvEntry; wrote: bigint }>;
}> {
  const acceptors = cluster(3, keepVersions);
  const kv0 = new Kv(acceptors);
  let armed = false;
  let firstVoted!: () => void;
  const voted = new Promise<void>((resolve) => firstVoted = resolve);
  let startInterlude!: () => void;
  const interlude = new Promise<void>((resolve) => startInterlude = resolve).then(async () => ({
    read: await kv0.get("g"),
    wrote: await kv0.set("g", "theirs"),
  }));
  // The writer's Accept of g@1 reaches a0 only; to a1 and a2 it is lost
  // (an error: its outcome unknown), and meanwhile other clients read g,
  // which finishes our half-written version 1, and write version 2.
  const lossy = acceptors.map((a, i) => ({
    name: a.name,
    latest: (key: string) => a.latest(key),
    request: async (op: "Prepare" | "Accept", r: Proposer) => {
      if (!(armed && op === "Accept" && r.Id.Key === "g" && r.Id.Ver === 1n)) {
        return await a.request(op, r);
      }
      if (i === 0) {
        const rep = await a.request(op, r);
        firstVoted();
        return rep;
      }
      await voted;
      startInterlude();
      await interlude.catch(() => {});
      throw new Error(`Accept to ${a.name} lost`);
    },
  }));
  const kv = new Kv(lossy);
  assert.equal(await kv.set("g", "first"), 0n);
  armed = true;
  const write = kv.set("g", "mine");
  write.finally(() => armed = false).catch(() => {});
  return { kv, write, interlude };
}

Deno.test("kv: a one-round-trip write that got partly through and was finished by a reader is not written twice", async () => {
  const { kv, write, interlude } = await overtakenWrite();
  // The reader finished our write at version 1; the other write came after.
  assert.deepEqual(await interlude, {
    read: { found: true, version: 1n, value: "mine" },
    wrote: 2n,
  });
  // Our write was chosen at version 1 (by the reader): that is its version.
  assert.equal(await write, 1n);
  assert.deepEqual((await kv.history("g")).map((h) => h.deleted ? null : h.value), [
    "first",
    "mine",
    "theirs",
  ]);
});

Deno.test("kv: a write chosen at a version compacted before the writer could look has an unknown outcome", async () => {
  // As above, on acceptors that keep one version: version 1 is forgotten by
  // the time the writer comes to read it, so it cannot tell whether it won.
  const { write, interlude } = await overtakenWrite(1);
  assert.deepEqual(await interlude, {
    read: { found: true, version: 1n, value: "mine" },
    wrote: 2n,
  });
  await assert.rejects(write, (e: Error) => {
    assert.ok(e instanceof UnknownOutcomeError, String(e));
    assert.equal(e.version, 1n);
    assert.ok(e.cause instanceof CompactedError);
    return true;
  });
});

Deno.test("kv: a stale promise refused by every acceptor costs no read of its version", async () => {
  const acceptors = cluster();
  let peeks = 0;
  // Counts the zero-ballot Prepares: the reads that settle a version.
  const kv = new Kv(watched(acceptors, (op, req) => {
    if (op === "Prepare" && req!.Bal.N === 0n) peeks++;
  }));
  assert.equal(await kv.set("s", "a"), 0n);
  assert.equal(await kv.set("s", "b"), 1n); // holds a promise for version 2
  const other = new Kv(acceptors);
  assert.equal(await other.set("s", "x"), 2n);
  assert.equal(await other.set("s", "y"), 3n);
  peeks = 0;
  // The short write at 2 is refused everywhere: nothing of ours is voted
  // there, so there is nothing to settle before writing version 4.
  assert.equal(await kv.set("s", "c"), 4n);
  assert.equal(peeks, 0);
  assert.deepEqual((await kv.history("s")).map((h) => h.deleted ? null : h.value), [
    "a",
    "b",
    "x",
    "y",
    "c",
  ]);
});

Deno.test("kv: one v1-only acceptor (Latest answered UnknownOp) makes every KV call fail, naming it", async () => {
  const [a0, a1] = cluster(2);
  const v1 = new PaxosAcceptor(new MemoryStore(), "old");
  const acceptors = [a0!, a1!, {
    name: "old",
    request: (op: "Prepare" | "Accept", req: Proposer) => v1.request(op, req),
    latest: () =>
      Promise.reject(new AcceptorError("UnknownOp", 'Op: unknown operation "Latest"', "old")),
  }];
  const kv = new Kv(acceptors);
  const refused = (e: Error) => {
    assert.ok(e instanceof AcceptorError, String(e));
    assert.equal(e.code, "UnknownOp");
    assert.match(e.message, /^old answered UnknownOp: .*it serves v1 only/);
    return true;
  };
  // A majority answered (a0, a1), but the refusal came in too.
  await assert.rejects(kv.get("k"), refused);
  // From then on, nothing more is sent for the KV calls.
  await assert.rejects(kv.set("k", "v"), refused);
  await assert.rejects(kv.history("k"), refused);
  assert.equal(a0!.store.get({ Key: "k", Ver: 0n }), undefined, "nothing was written");
  // The seed's calls run Paxos alone, which v1 serves.
  assert.deepEqual(await kv.setVersion("k", 0n, { Vi64: 1n }), { Vi64: 1n });
});

Deno.test("kv: a get of a settled key costs one round trip (Latest only) and no sync", async () => {
  // Durable acceptors, on a file system in memory that counts their syncs.
  const fs = new MemFs();
  const stores = await Promise.all(
    [0, 1, 2].map((i) => LogStore.open(`/mem/acceptor-${i}`, { fs })),
  );
  try {
    const acceptors = stores.map((s, i) => new PaxosAcceptor(s, `a${i}`));
    assert.equal(await new Kv(acceptors).set("s", "settled"), 0n);
    // Every acceptor has stored its vote (a request waits for the key's
    // writes before it; this one, at the zero ballot, writes nothing).
    for (const a of acceptors) {
      assert.ok((await a.prepare(req(inst("s"), ZERO_BALLOT))).Val !== null);
    }
    const seen: string[] = [];
    const kv = new Kv(
      watched(acceptors, (op, r) => seen.push(r === null ? op : `${op} ${r.Id.Ver}`)),
    );
    const [syncs, writes] = [fs.count("syncData"), fs.count("write")];
    assert.deepEqual(await kv.get("s"), { found: true, version: 0n, value: "settled" });
    assert.deepEqual(seen, ["Latest", "Latest", "Latest"], "one request to each acceptor");
    assert.equal(fs.count("syncData"), syncs, "a settled read synced");
    assert.equal(fs.count("write"), writes, "a settled read wrote");
    assert.ok(syncs >= 6, `the set synced only ${syncs} times`);
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
});

Deno.test("kv: delete with ifPresent leaves a key with no value alone and says not found", async () => {
  const kv = new Kv(cluster());
  await assert.rejects(
    kv.delete("d", { ifPresent: true }),
    (e) => e instanceof NotFoundError && e.version === -1n && e.message === '"d": not found',
  );
  assert.deepEqual(await kv.history("d"), []);
  assert.equal(await kv.set("d", "x"), 0n);
  assert.equal(await kv.delete("d", { ifPresent: true }), 1n);
  await assert.rejects(
    kv.delete("d", { ifPresent: true }),
    (e) =>
      e instanceof NotFoundError && e.version === 1n &&
      e.message === '"d": not found (deleted at version 1)',
  );
  // One tombstone, not two.
  assert.deepEqual((await kv.history("d")).map((h) => h.version), [0n, 1n]);
  // Without it, delete writes a tombstone whatever the state (as before).
  assert.equal(await kv.delete("d"), 2n);
});

Deno.test("kv: a key at the last int64 version refuses the next write without sending it", async () => {
  const acceptors = cluster();
  const sent: bigint[] = [];
  const kv = new Kv(watched(acceptors, (_, r) => r !== null && sent.push(r.Id.Ver)));
  const max = 2n ** 63n - 1n;
  await kv.setVersion("ovf", max, { Data: "x" });
  sent.length = 0;
  for (const write of [() => kv.set("ovf", "y"), () => kv.delete("ovf")]) {
    await assert.rejects(
      write(),
      (e) =>
        e instanceof RangeError &&
        e.message === '"ovf" is at version 9223372036854775807, the largest int64: ' +
            "there is no next version to write",
    );
  }
  assert.ok(sent.every((v) => v <= max), `sent ${sent}`);
  assert.deepEqual(await kv.get("ovf"), { found: true, version: max, value: "x" });
});

Deno.test("kv: history pages back with before", async () => {
  const kv = new Kv(cluster());
  for (const v of ["a", "b", "c", "d", "e"]) await kv.set("p", v);
  const page = async (opts: { limit?: number; before?: bigint }) =>
    (await kv.history("p", opts)).map((h) => h.version);
  assert.deepEqual(await page({ limit: 2 }), [3n, 4n]);
  assert.deepEqual(await page({ limit: 2, before: 3n }), [1n, 2n]);
  assert.deepEqual(await page({ limit: 2, before: 1n }), [0n]);
  assert.deepEqual(await page({ before: 99n }), [0n, 1n, 2n, 3n, 4n]);
});

Deno.test("kv: keys are quoted in messages; a key with a lone surrogate is refused", async () => {
  const kv = new Kv(cluster());
  await kv.set("", "x");
  await kv.set("a\nb", "x");
  await assert.rejects(kv.set("", "y", { ifAbsent: true }), {
    message: 'version conflict on "": it exists, at version 0',
  });
  await assert.rejects(kv.cas("a\nb", 5n, "y"), {
    message: 'version conflict on "a\\nb": expected latest version 5, found 0',
  });
  // "\uD800" alone has no UTF-8 form: it would go out as U+FFFD, as "\uFFFD" does.
  await assert.rejects(kv.set("k\uD800", "x"), TypeError);
  await assert.rejects(kv.get("k\uDC00"), /not well-formed Unicode/);
  assert.deepEqual(await kv.get("k\uFFFD"), { found: false, version: -1n });
});

// Clients of `acceptors` where those at the indexes in `down` fail every request.
function withDown(acceptors: readonly PaxosAcceptor[], down: readonly number[]) {
  const fail = () => Promise.reject(new Deno.errors.ConnectionRefused("down"));
  return acceptors.map((a, i) =>
    down.includes(i) ? { name: a.name, latest: fail, request: fail, keys: fail } : {
      name: a.name,
      latest: (k: string) => a.latest(k),
      request: (op: "Prepare" | "Accept", r: Proposer) => a.request(op, r),
      keys: (from: string, limit: number, end?: string) => a.keys(from, limit, end),
    }
  );
}

Deno.test("kv: list gives every key of a prefix with its latest value, in order, from pages of a majority", async () => {
  const acceptors = cluster();
  const key = (i: number) => `k/${String(i).padStart(3, "0")}`;
  // Keys below 300 are held by a0 and a2 only, the others by a1 and a2: a
  // majority each. a0's first page (256 keys) ends at k/255, a1's at k/555:
  // the keys between are known only up to the smaller one.
  const evens = new Kv(withDown(acceptors, [1]));
  const odds = new Kv(withDown(acceptors, [0]));
  for (let i = 0; i < 600; i++) await (i < 300 ? evens : odds).set(key(i), i);
  await evens.set("k/000", "latest");
  await evens.set("k/gone", "x");
  await evens.delete("k/gone");
  await evens.set("l/other", 1);
  await evens.set("k", "the prefix itself");
  // A promise without a chosen value: held, but not a chosen key.
  await acceptors[0]!.request(
    "Prepare",
    req({ Key: "k/promised", Ver: 0n }, { N: 9n, ProposerId: 9n }),
  );
  // Listed through a0 and a1 (a2 down): their union holds every key.
  const kv = new Kv(withDown(acceptors, [2]));
  const all = [];
  for await (const e of kv.list({ prefix: "k/" })) all.push(e);
  assert.equal(all.length, 600);
  assert.deepEqual(all.map((e) => e.key), Array.from({ length: 600 }, (_, i) => key(i)));
  assert.deepEqual(all[0], { key: "k/000", version: 1n, value: "latest" });
  assert.deepEqual(all[599], { key: "k/599", version: 0n, value: 599 });
  // A range; the prefix "" is every key.
  const keysOf = async (it: AsyncIterable<{ key: string }>) => {
    const out = [];
    for await (const e of it) out.push(e.key);
    return out;
  };
  assert.deepEqual(await keysOf(kv.list({ start: "k/597", end: "k/gone" })), [
    "k/597",
    "k/598",
    "k/599",
  ]);
  assert.equal((await keysOf(kv.list({ prefix: "" }))).length, 602);
  // A majority down: a clear error.
  const none = new Kv(withDown(acceptors, [0, 1]));
  await assert.rejects(
    keysOf(none.list({ prefix: "k/" })),
    /cannot list keys from "k\/": [01] of 3 acceptors answered, 2 needed/,
  );
});

Deno.test("kv: list pages with limit and cursor, forward and in reverse", async () => {
  const kv = new Kv(cluster());
  for (const k of ["p/a", "p/b", "p/c", "p/d", "p/e", "q"]) await kv.set(k, k);
  const page = async (opts: { limit?: number; cursor?: string; reverse?: boolean }) => {
    const it = kv.list({ prefix: "p/" }, opts);
    const keys = [];
    for await (const e of it) keys.push(e.key);
    return { keys, cursor: it.cursor };
  };
  const first = await page({ limit: 2 });
  assert.deepEqual(first.keys, ["p/a", "p/b"]);
  const second = await page({ limit: 2, cursor: first.cursor });
  assert.deepEqual(second.keys, ["p/c", "p/d"]);
  assert.deepEqual((await page({ cursor: second.cursor })).keys, ["p/e"]);
  const back = await page({ limit: 3, reverse: true });
  assert.deepEqual(back.keys, ["p/e", "p/d", "p/c"]);
  assert.deepEqual((await page({ reverse: true, cursor: back.cursor })).keys, ["p/b", "p/a"]);
  assert.throws(() => kv.list({ prefix: "p/" }, { cursor: "!!" }), TypeError);
  assert.throws(() => kv.list({ prefix: "p/" }, { limit: 0 }), RangeError);
});

Deno.test("kv: past the acceptors' quota a write fails at once with QuotaExceeded; reads and deletes work", async () => {
  const acceptors = Array.from(
    { length: 3 },
    (_, i) => new PaxosAcceptor(new MemoryStore(), `a${i}`, { quotaBytes: 8192, keepVersions: 1 }),
  );
  const kv = new Kv(acceptors);
  const big = "x".repeat(1000);
  let written = 0;
  const err = await (async () => {
    for (; written < 20; written++) {
      try {
        await kv.set(`k${written}`, big);
      } catch (e) {
        return e;
      }
    }
    return null;
  })();
  assert.ok(err instanceof AcceptorError, String(err));
  assert.equal(err.code, "QuotaExceeded");
  assert.match(err.message, /answered QuotaExceeded: .* over the quota of 8192 bytes/);
  assert.ok(written >= 5, `${written} written`);
  assert.deepEqual(await kv.get("k0"), { found: true, version: 0n, value: big });
  // Deleting keys frees their values (retention keeps one version): writes fit again.
  await kv.delete("k0");
  await kv.delete("k1");
  assert.equal((await kv.get("k0")).found, false);
  assert.equal(await kv.set("again", big), 0n);
});
