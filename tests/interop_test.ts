// Interoperability with programs written from PROTOCOL.md alone: the
// "foreign" side of tests/foreign.ts (a hand-driven proposer and a minimal
// v1 acceptor) against our acceptors, proposer and KV.
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { PaxosAcceptor } from "../acceptor.ts";
import { type AcceptorServer, serveAcceptor } from "../server.ts";
import {
  AcceptorError,
  connect,
  Kv,
  PaxosProposer,
  type Value,
  WebSocketAcceptorClient,
} from "../mod.ts";
import { type Decoded, encode, Int, type Wire } from "./minimsgpack.ts";
import { envelope, errOf, ForeignAcceptor, ge, RawPeer, type Rep, repOf, ZERO } from "./foreign.ts";

// ---------------------------------------------------------------------------
// 1. A foreign proposer drives our acceptors.

Deno.test("foreign proposer drives our acceptors: slide 33 by hand, batches, errors", async () => {
  const servers: AcceptorServer[] = [];
  const peers: RawPeer[] = [];
  try {
    for (let i = 0; i < 3; i++) servers.push(await serveAcceptor(new PaxosAcceptor()));
    for (const s of servers) peers.push(await RawPeer.open(s.url));
    const [a0, a1, a2] = peers as [RawPeer, RawPeer, RawPeer];
    let nextRid = 1n;
    const rids = () => nextRid++;
    const prepare = async (p: RawPeer, bal: [Wire, Wire]) => {
      const rid = rids();
      return repOf(
        await p.request(envelope(new Int(rid, "uint64"), "Prepare", "i", 0, bal), rid),
        rid,
      );
    };
    const accept = async (p: RawPeer, bal: [Wire, Wire], vi64: Wire) => {
      const rid = rids();
      const val = { Vi64: vi64, Data: null };
      const env = envelope(rid, "Accept", "i", new Int(0n, "int64"), bal, val);
      const rep = repOf(await p.request(env, rid), rid);
      assert.equal(rep.Val, null, "an Accept reply carries only LastBal");
      assert.deepEqual(rep.VBal, ZERO, "an Accept reply carries only LastBal");
      return rep.LastBal;
    };
    const X1: [Wire, Wire] = [new Int(1n, "int64"), 10];
    const Y2: [Wire, Wire] = [new Int(2n, "uint16"), new Int(11n, "int8")];
    const X3: [Wire, Wire] = [3, new Int(10n, "uint64")];
    const x1 = { N: 1n, ProposerId: 10n };
    const y2 = { N: 2n, ProposerId: 11n };
    const x3 = { N: 3n, ProposerId: 10n };
    const empty = { LastBal: ZERO, Val: null, VBal: ZERO };

    // X prepares (1,10) on 0 and 1: both are fresh.
    assert.deepEqual(await prepare(a0, X1), empty);
    assert.deepEqual(await prepare(a1, X1), empty);
    // Y prepares (2,11) on 1 and 2: 1 replies X's promise, and now promises Y.
    assert.deepEqual(await prepare(a1, Y2), { LastBal: x1, Val: null, VBal: ZERO });
    assert.deepEqual(await prepare(a2, Y2), empty);
    // X accepts 100 at (1,10) on 0 (which votes) and 1 (which refuses, showing Y's ballot).
    assert.deepEqual(await accept(a0, X1, new Int(100n, "int16")), x1);
    assert.deepEqual(await accept(a1, X1, new Int(100n, "int16")), y2);
    // Y accepts 200 at (2,11) on 1 and 2.
    assert.deepEqual(await accept(a1, Y2, new Int(200n, "uint64")), y2);
    assert.deepEqual(await accept(a2, Y2, new Int(200n, "uint64")), y2);
    // X prepares (3,10) on 0 and 1 and sees both votes; the higher VBal is Y's 200.
    assert.deepEqual(await prepare(a0, X3), { LastBal: x1, Val: { Vi64: 100n }, VBal: x1 });
    assert.deepEqual(await prepare(a1, X3), { LastBal: y2, Val: { Vi64: 200n }, VBal: y2 });
    // X accepts 200 at (3,10) on 0 and 1.
    assert.deepEqual(await accept(a0, X3, 200), x3);
    assert.deepEqual(await accept(a1, X3, 200), x3);
    // Prepare at ballot 0 reads the state without changing it.
    const zero: [Wire, Wire] = [0, new Int(0n, "int64")];
    for (let i = 0; i < 2; i++) {
      assert.deepEqual(await prepare(a0, zero), { LastBal: x3, Val: { Vi64: 200n }, VBal: x3 });
      assert.deepEqual(await prepare(a1, zero), { LastBal: x3, Val: { Vi64: 200n }, VBal: x3 });
      assert.deepEqual(await prepare(a2, zero), { LastBal: y2, Val: { Vi64: 200n }, VBal: y2 });
    }

    // A batch: replies matched by Rid, whatever their order and grouping.
    const BIG_VER = 2n ** 63n - 1n;
    const RID_MAX = 2n ** 64n - 1n;
    const bin = Uint8Array.from([0, 1, 0xff]);
    a0.send([
      envelope(new Int(RID_MAX, "uint64"), "Prepare", "b", BIG_VER, [7, 3]),
      envelope(0, "Accept", "b", 1, [new Int(2n, "int32"), 2], { Data: bin, Note: "ignored" }),
      envelope(new Int(300n, "uint16"), "Learn", "learn", 0, [9, 9]),
      { Rid: new Int(9n, "int16"), Op: "Prepare" },
      envelope(new Int(5n, "int32"), "Accept", "big", 0, [1, 1], {
        Vi64: new Int(-(2n ** 63n), "int64"),
      }),
    ]);
    assert.deepEqual(repOf(await a0.reply(RID_MAX), RID_MAX), empty);
    assert.deepEqual(repOf(await a0.reply(0n), 0n), { LastBal: ZERO, Val: null, VBal: ZERO });
    assert.equal(errOf(await a0.reply(300n), 300n).Code, "UnknownOp");
    assert.equal(errOf(await a0.reply(9n), 9n).Code, "BadRequest");
    assert.deepEqual(repOf(await a0.reply(5n), 5n).LastBal, ZERO);
    // Their effects: the promise at a Ver of 2^63-1, the binary Data, the most
    // negative int64, and nothing at all from the unknown Op.
    const read = async (key: string, ver: Wire) => {
      const rid = rids();
      return repOf(await a0.request(envelope(rid, "Prepare", key, ver, zero), rid), rid);
    };
    assert.deepEqual(await read("b", BIG_VER), {
      LastBal: { N: 7n, ProposerId: 3n },
      Val: null,
      VBal: ZERO,
    });
    const b2 = { N: 2n, ProposerId: 2n };
    assert.deepEqual(await read("b", new Int(1n, "uint64")), {
      LastBal: b2,
      Val: { Data: bin },
      VBal: b2,
    });
    const b1 = { N: 1n, ProposerId: 1n };
    assert.deepEqual(await read("big", 0), { LastBal: b1, Val: { Vi64: -(2n ** 63n) }, VBal: b1 });
    assert.deepEqual(await read("learn", 0), empty);

    // A text frame closes that connection with 1003; so do bytes that are
    // not MessagePack (1007) and MessagePack that is not an envelope (1008).
    const bad: [Uint8Array | string, number[]][] = [
      ["hello", [1003]],
      [Uint8Array.from([0xc1]), [1007, 1008]],
      [encode(5), [1007, 1008]],
      [encode({ Op: "Prepare", Rid: "one" }), [1007, 1008]],
    ];
    for (const [frame, codes] of bad) {
      const p = await RawPeer.open(servers[1]!.url);
      peers.push(p);
      p.sendRaw(frame);
      const ev = await p.closed;
      assert.ok(codes.includes(ev.code), `${String(frame)}: closed with ${ev.code}, want ${codes}`);
    }
    // The acceptor keeps serving its other connections.
    assert.deepEqual(await prepare(a1, zero), { LastBal: x3, Val: { Vi64: 200n }, VBal: x3 });
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await Promise.all(servers.map((s) => s.close()));
  }
});

// ---------------------------------------------------------------------------
// 2. Our proposer drives foreign acceptors.

async function withClients<T>(
  urls: readonly string[],
  fn: (clients: WebSocketAcceptorClient[]) => Promise<T>,
): Promise<T> {
  // A generous request timeout: a retry in an uncontended run then means a
  // lost reply, not a slow machine.
  const clients = urls.map((u) => new WebSocketAcceptorClient(u, { timeoutMs: 5000 }));
  try {
    return await fn(clients);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/**
 * Runs Paxos from ballot (0, proposerId). Without contention it must take
 * exactly one round: a retry (a higher N) would mean a reply was lost or
 * misread.
 */
async function run(
  clients: readonly WebSocketAcceptorClient[],
  key: string,
  ver: bigint,
  proposerId: bigint,
  val: Value | null,
  contended = false,
): Promise<Value | null> {
  const p = new PaxosProposer({
    Id: { Key: key, Ver: ver },
    Bal: { N: 0n, ProposerId: proposerId },
  });
  const got = await p.runPaxos(clients, val);
  if (!contended) assert.equal(p.Bal.N, 0n, `${key}@${ver}: one round, no retry`);
  return got;
}

/** Every acceptor that voted holds `want`, and at least a quorum voted. */
function assertVoted(fs: readonly ForeignAcceptor[], key: string, ver: bigint, want: Decoded) {
  const votes = fs.map((f) => f.state(key, ver)?.Val ?? null).filter((v) => v !== null);
  assert.ok(votes.length >= 2, `${key}@${ver}: only ${votes.length} votes`);
  for (const v of votes) assert.deepEqual(v, want, `${key}@${ver}`);
}

Deno.test("our proposer drives foreign acceptors: set/get, int64, Data, duels, batches", async () => {
  const fs = [new ForeignAcceptor(), new ForeignAcceptor(), new ForeignAcceptor()];
  try {
    await withClients(fs.map((f) => f.url), async (cs) => {
      // The seed's example: foo0=5, foo1=6, each written then read.
      assert.deepEqual(await run(cs, "foo", 0n, 2n, { Vi64: 5n }), { Vi64: 5n });
      assert.deepEqual(await run(cs, "foo", 0n, 3n, null), { Vi64: 5n });
      assert.deepEqual(await run(cs, "foo", 1n, 2n, { Vi64: 6n }), { Vi64: 6n });
      assert.deepEqual(await run(cs, "foo", 1n, 3n, null), { Vi64: 6n });
      assertVoted(fs, "foo", 0n, { Vi64: 5n });
      assertVoted(fs, "foo", 1n, { Vi64: 6n });
      assert.equal(await run(cs, "foo", 2n, 3n, null), null, "nothing written at foo2");

      // int64 beyond 2^53, in the value, the version and the ballot, both ways.
      const MAX = 2n ** 63n - 1n;
      const MIN = -(2n ** 63n);
      const bigVer = 2n ** 62n + 1n;
      for (const [ver, v] of [[bigVer, MAX], [bigVer + 1n, MIN]] as const) {
        assert.deepEqual(await run(cs, "big", ver, 2n ** 53n + 1n, { Vi64: v }), { Vi64: v });
        assert.deepEqual(await run(cs, "big", ver, 2n ** 60n, null), { Vi64: v });
        assertVoted(fs, "big", ver, { Vi64: v });
        assert.deepEqual(fs[0]!.state("big", ver)?.LastBal, { N: 0n, ProposerId: 2n ** 60n });
      }

      // Data: short strings (fixstr from us, str8 back), long ones (str16),
      // binary (bin8 from us, bin32 back), and a map of mixed values.
      const data = [
        "héllo, 世界",
        "x".repeat(300),
        Uint8Array.from([0, 255, 7]),
        { k: "v", n: -(2n ** 40n), list: ["a", true, null, Uint8Array.from([1])] },
      ];
      for (const [i, d] of data.entries()) {
        const ver = BigInt(i);
        assert.deepEqual(await run(cs, "data", ver, 1n, { Data: d }), { Data: d });
        assert.deepEqual(await run(cs, "data", ver, 2n, null), { Data: d });
        assertVoted(fs, "data", ver, { Data: d });
      }

      // Many instances at once: requests share batch frames, replies come
      // back reversed, split or grouped.
      const n = 30;
      const ws = await Promise.all(
        Array.from({ length: n }, (_, i) => run(cs, "many", BigInt(i), 1n, { Vi64: BigInt(i) })),
      );
      assert.deepEqual(ws, Array.from({ length: n }, (_, i) => ({ Vi64: BigInt(i) })));
      const rs = await Promise.all(
        Array.from({ length: n }, (_, i) => run(cs, "many", BigInt(i), 2n, null)),
      );
      assert.deepEqual(rs, ws);
      assert.ok(fs.some((f) => f.batchesIn > 0), "some requests came as batch frames");
      assert.ok(fs.some((f) => f.splitReplies > 0), "some batches were answered frame by frame");
    });

    // Dueling proposers, each with its own connections, on one instance: they agree.
    await withClients(
      fs.map((f) => f.url),
      (cs1) =>
        withClients(fs.map((f) => f.url), async (cs2) => {
          for (let ver = 0n; ver < 5n; ver++) {
            const [r1, r2] = await Promise.all([
              run(cs1, "duel", ver, 1n, { Vi64: 100n + ver }, true),
              run(cs2, "duel", ver, 2n, { Data: `two-${ver}` }, true),
            ]);
            assert.deepEqual(r1, r2, `duel@${ver}`);
            assert.ok(
              isDeepStrictEqual(r1, { Vi64: 100n + ver }) ||
                isDeepStrictEqual(r1, { Data: `two-${ver}` }),
              `duel@${ver} chose one of the two proposals, not ${String(r1)}`,
            );
            assert.deepEqual(await run(cs1, "duel", ver, 3n, null, true), r1);
          }
        }),
    );
  } finally {
    await Promise.all(fs.map((f) => f.close()));
  }
});

// ---------------------------------------------------------------------------
// 3. A mixed cluster.

Deno.test("mixed cluster: 2 of our acceptors and 1 foreign one agree on 50 instances", async () => {
  const ours = [await serveAcceptor(new PaxosAcceptor()), await serveAcceptor(new PaxosAcceptor())];
  const foreign = new ForeignAcceptor();
  const peers: RawPeer[] = [];
  try {
    const urls = [ours[0]!.url, foreign.url, ours[1]!.url];
    const n = 50;
    const valueOf = (i: number): Value =>
      i % 2 === 0 ? { Vi64: BigInt(i) * 1_000_000_007n } : { Data: `v${i}` };
    await withClients(urls, async (cs) => {
      const ws = await Promise.all(
        Array.from({ length: n }, (_, i) => run(cs, "mixed", BigInt(i), 1n, valueOf(i))),
      );
      assert.deepEqual(ws, Array.from({ length: n }, (_, i) => valueOf(i)));
      for (let i = 0; i < n; i++) {
        assert.deepEqual(await run(cs, "mixed", BigInt(i), 2n, null), valueOf(i));
      }
    });

    // Raw Prepare at ballot 0 on every acceptor, 10 instances per batch frame.
    for (const u of urls) peers.push(await RawPeer.open(u));
    const reps = await Promise.all(peers.map(async (p, j) => {
      const out: Rep[] = [];
      for (let from = 0; from < n; from += 10) {
        const rids = Array.from({ length: 10 }, (_, k) => BigInt(1000 * j + from + k));
        p.send(rids.map((rid) => envelope(rid, "Prepare", "mixed", rid % 1000n, [0, 0])));
        for (const rid of rids) out.push(repOf(await p.reply(rid), rid));
      }
      return out;
    }));
    for (let i = 0; i < n; i++) {
      const want = valueOf(i);
      const voters = reps.map((r) => r[i]!).filter((r) => r.Val !== null);
      assert.ok(voters.length >= 2, `mixed@${i}: ${voters.length} votes`);
      for (const r of voters) {
        assert.deepEqual(r.Val, want, `mixed@${i}`);
        assert.ok(ge(r.LastBal, r.VBal), `mixed@${i}: VBal <= LastBal`);
      }
    }
  } finally {
    await Promise.all(peers.map((p) => p.close()));
    await Promise.all(ours.map((s) => s.close()));
    await foreign.close();
  }
});

// ---------------------------------------------------------------------------
// 4. Our KV over foreign acceptors, which serve v1 only.

Deno.test("our KV over v1-only acceptors fails at once naming one; the seed's calls still work", async () => {
  const fs = [new ForeignAcceptor(), new ForeignAcceptor(), new ForeignAcceptor()];
  try {
    const urls = fs.map((f) => f.url);
    await assert.rejects(connect(urls, { timeoutMs: 5000, deadlineMs: 5000 }), (e: Error) => {
      assert.ok(e instanceof AcceptorError, String(e));
      assert.equal(e.code, "UnknownOp");
      assert.ok(urls.some((u) => e.message.startsWith(`${u} answered UnknownOp: `)), e.message);
      assert.match(e.message, /no such Op: Latest \(it serves v1 only, without the kv extension/);
      return true;
    });
    // The explicit-version calls are v1: they work over the same acceptors.
    await withClients(urls, async (cs) => {
      const kv = new Kv(cs);
      assert.deepEqual(await kv.setVersion("v1", 0n, { Vi64: 5n }), { Vi64: 5n });
      assert.deepEqual(await kv.getVersion("v1", 0n), { Vi64: 5n });
      // A latest read is refused, quickly, with the same error.
      const t0 = performance.now();
      await assert.rejects(kv.get("v1"), (e: Error) => e instanceof AcceptorError);
      assert.ok(performance.now() - t0 < 2500, "refused before the deadline");
      assert.ok(fs.every((f) => f.framesIn > 0));
    });
  } finally {
    await Promise.all(fs.map((f) => f.close()));
  }
});
