// WebSocketAcceptorClient against real acceptor servers, and against
// hand-made servers that answer late, out of order, badly or not at all.
import assert from "node:assert/strict";
import { WebSocketAcceptorClient } from "../transport.ts";
import { AcceptorError } from "../errors.ts";
import { PaxosAcceptor } from "../acceptor.ts";
import { serveAcceptor } from "../server.ts";
import { type Clock, systemClock } from "../clock.ts";
import {
  decodeRequestFrame,
  encodeFrame,
  encodeReplies,
  type ReplyEnvelope,
  type RequestItem,
} from "../codec.ts";
import type { Value } from "../types.ts";
import { EMPTY_ACCEPTOR } from "../types.ts";
import { startWsServer } from "./ws_test_server.ts";
import { bal, inst, req } from "./builders.ts";
import { RawWsPeer, startRawServer } from "./raw_net.ts";
import { errorOf, within } from "./waits.ts";

// The errors of `n` Prepares sent at once on one client, each of which must fail.
function failuresOf(c: WebSocketAcceptorClient, n: number): Promise<Error[]> {
  return within(
    Promise.all(
      Array.from(
        { length: n },
        (_, i) => errorOf(c.request("Prepare", req(inst("k", BigInt(i)), bal(1n, 1n)))),
      ),
    ),
    "the failures",
  );
}

// ---------------------------------------------------------------------------
// A fake acceptor: a Deno.serve WebSocket server that decodes request frames
// and lets the test decide what to answer.

interface FakeServer {
  url: string;
  /** Request frames received, over all connections. */
  frames: number;
  /** Items in each request frame, in arrival order. */
  batchSizes: number[];
  /** Connections accepted. */
  connections: number;
  /** Resolves with the close code of the first connection that closes. */
  firstClose: Promise<number>;
  close(): Promise<void>;
}

async function startFake(
  onFrame: (items: RequestItem[], socket: WebSocket) => void,
): Promise<FakeServer> {
  let firstClosed!: (code: number) => void;
  const server = await startWsServer((socket) => {
    fake.connections++;
    socket.addEventListener("close", (e) => firstClosed(e.code));
    socket.onmessage = (e) => {
      const items = decodeRequestFrame(new Uint8Array(e.data as ArrayBuffer));
      // It speaks v1 only: a client's Hello (its first frame) is answered
      // UnknownOp, and not counted.
      const first = items[0];
      if (items.length === 1 && first !== undefined && "Op" in first && first.Op === "Hello") {
        socket.send(encodeReplies([{ Rid: first.Rid, Err: { Code: "UnknownOp", Msg: "v1" } }]));
        return;
      }
      fake.frames++;
      fake.batchSizes.push(items.length);
      onFrame(items, socket);
    };
  });
  const fake: FakeServer = {
    url: `ws://127.0.0.1:${server.port}/paxos`,
    frames: 0,
    batchSizes: [],
    connections: 0,
    firstClose: within(new Promise((resolve) => firstClosed = resolve), "a server-side close"),
    close: () => server.close(),
  };
  // Nobody may wait on firstClose; keep its timeout from failing the test.
  fake.firstClose.catch(() => {});
  return fake;
}

/** The reply an echoing acceptor gives: the request's own ballot and value. */
function echoReply(item: RequestItem): ReplyEnvelope {
  if ("Err" in item) return item;
  const r = item.Req;
  if (!("Bal" in r && "Val" in r)) {
    return { Rid: item.Rid, Err: { Code: "UnknownOp", Msg: "not served here" } };
  }
  return { Rid: item.Rid, Rep: { LastBal: r.Bal, Val: r.Val, VBal: r.Bal } };
}

/** A clock on real time that a test can move forward at will. */
function skewedClock(): Clock & { skew: number } {
  const c = {
    skew: 0,
    now: () => performance.now() + c.skew,
    setTimer: systemClock.setTimer,
    clearTimer: systemClock.clearTimer,
    sleep: systemClock.sleep,
  };
  return c;
}

// ---------------------------------------------------------------------------

Deno.test("Prepare and Accept return the acceptor's replies", async () => {
  const server = await serveAcceptor(new PaxosAcceptor());
  const c = new WebSocketAcceptorClient(server.url);
  try {
    // A fresh instance: the empty state.
    assert.deepEqual(await c.request("Prepare", req(inst("k", 0n), bal(1n, 1n))), EMPTY_ACCEPTOR);
    // Accept replies the promise as it was before.
    assert.deepEqual(await c.request("Accept", req(inst("k", 0n), bal(1n, 1n), { Vi64: 5n })), {
      LastBal: { N: 1n, ProposerId: 1n },
      Val: null,
      VBal: { N: 0n, ProposerId: 0n },
    });
    // A later Prepare sees the vote.
    assert.deepEqual(await c.request("Prepare", req(inst("k", 0n), bal(2n, 1n))), {
      LastBal: { N: 1n, ProposerId: 1n },
      Val: { Vi64: 5n },
      VBal: { N: 1n, ProposerId: 1n },
    });
    // A lower ballot is refused: the reply shows the higher promise.
    const low = await c.request("Accept", req(inst("k", 0n), bal(1n, 9n), { Vi64: 6n }));
    assert.deepEqual(low.LastBal, { N: 2n, ProposerId: 1n });
    // Data values and int64 beyond 2^53 survive the trip.
    const data: Value = { Data: { s: "x", b: new Uint8Array([1, 2]), big: 2n ** 60n } };
    // (N within MAX_BALLOT_STEP of a fresh promise; a ProposerId beyond 2^53.)
    await c.request("Accept", req(inst("d", 2n ** 62n), bal(2n ** 47n, 2n ** 61n), data));
    const seen = await c.request("Prepare", req(inst("d", 2n ** 62n), bal(2n ** 47n + 1n, 3n)));
    assert.deepEqual(seen.Val, data);
    assert.deepEqual(seen.VBal, { N: 2n ** 47n, ProposerId: 2n ** 61n });
    assert.equal(c.inFlight, 0);
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("2000 concurrent requests on one client each get their own instance's reply", async () => {
  const server = await serveAcceptor(new PaxosAcceptor());
  const c = new WebSocketAcceptorClient(server.url, { timeoutMs: 10000 });
  const n = 2000;
  try {
    const valueOf = (i: number): Value => i % 2 ? { Vi64: BigInt(i) } : { Data: `v${i}` };
    const accepts = await Promise.all(
      Array.from(
        { length: n },
        (_, i) => c.request("Accept", req(inst(`key${i}`, BigInt(i)), bal(1n, 1n), valueOf(i))),
      ),
    );
    assert.ok(accepts.every((a) => a.LastBal.N === 0n && a.Val === null));
    assert.ok(c.inFlight === 0);
    const prepares = await Promise.all(
      Array.from(
        { length: n },
        (_, i) => c.request("Prepare", req(inst(`key${i}`, BigInt(i)), bal(2n, 1n))),
      ),
    );
    prepares.forEach((p, i) => {
      assert.deepEqual(p.Val, valueOf(i), `instance ${i}`);
      assert.deepEqual(p.VBal, { N: 1n, ProposerId: 1n });
    });
    assert.equal(c.inFlight, 0);
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("requests of one tick share batch frames; replies in any order match by Rid", async () => {
  // Answers each frame's requests in reverse order: the first half one reply
  // per frame, the rest in a single batch frame.
  const server = await startFake((items, socket) => {
    const replies = items.map(echoReply).reverse();
    const half = replies.length >> 1;
    for (const r of replies.slice(0, half)) socket.send(encodeReplies([r]));
    if (replies.length > half) socket.send(encodeReplies(replies.slice(half)));
  });
  const c = new WebSocketAcceptorClient(server.url, { timeoutMs: 10000 });
  try {
    const run = (count: number, base: number) =>
      Promise.all(
        Array.from({ length: count }, async (_, i) => {
          const val: Value = { Vi64: BigInt(base + i) };
          const rep = await c.request("Accept", req(inst("k", BigInt(base + i)), bal(7n, 1n), val));
          assert.deepEqual(rep.Val, val, `request ${base + i}`);
        }),
      );
    // Issued while connecting: sent together once connected, 128 per frame.
    await run(2000, 0);
    assert.deepEqual(server.batchSizes, [...Array(15).fill(128), 2000 - 15 * 128]);
    // Issued on an open connection.
    await run(300, 10000);
    assert.deepEqual(server.batchSizes.slice(16), [128, 128, 44]);
    assert.equal(server.connections, 1);
    assert.equal(c.inFlight, 0);
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("maxBatch bounds the requests per frame", async () => {
  const server = await startFake((items, socket) =>
    socket.send(encodeReplies(items.map(echoReply)))
  );
  const c = new WebSocketAcceptorClient(server.url, { maxBatch: 10 });
  try {
    await c.request("Prepare", req(inst("warm-up", 0n), bal(1n, 1n)));
    await Promise.all(
      Array.from(
        { length: 25 },
        (_, i) => c.request("Prepare", req(inst("k", BigInt(i)), bal(1n, 1n))),
      ),
    );
    assert.deepEqual(server.batchSizes, [1, 10, 10, 5]);
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("a request with no reply fails with TimedOut and leaves nothing pending", async () => {
  const server = await startFake(() => {});
  const c = new WebSocketAcceptorClient(server.url, { timeoutMs: 100 });
  try {
    const t0 = performance.now();
    const e = await within(
      errorOf(c.request("Prepare", req(inst("k", 0n), bal(1n, 1n)))),
      "the timeout",
    );
    assert.ok(e instanceof Deno.errors.TimedOut, String(e));
    assert.match(e.message, /Prepare to ws:.*no reply within 100 ms/);
    assert.ok(performance.now() - t0 >= 90);
    assert.equal(c.inFlight, 0);
    // The connection stays: the next request goes over it and times out too.
    const e2 = await within(
      errorOf(c.request("Accept", req(inst("k", 0n), bal(1n, 1n), { Vi64: 1n }))),
      "",
    );
    assert.ok(e2 instanceof Deno.errors.TimedOut, String(e2));
    assert.equal(server.connections, 1);
    assert.equal(server.frames, 2);
    assert.equal(c.inFlight, 0);
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("a request times out even while the handshake hangs", async () => {
  // Accepts, never answers, and waits for the client to hang up.
  const silent = startRawServer(async (conn) => {
    while (await conn.read(new Uint8Array(1024)) !== null) { /* ignore */ }
  });
  const c = new WebSocketAcceptorClient(silent.url, { timeoutMs: 100, connectTimeoutMs: 300 });
  try {
    const e = await within(
      errorOf(c.request("Prepare", req(inst("k", 0n), bal(1n, 1n)))),
      "the timeout",
    );
    assert.ok(e instanceof Deno.errors.TimedOut, String(e));
    assert.equal(c.inFlight, 0);
  } finally {
    await c.close();
    await silent.close();
  }
});

Deno.test("a late reply after the timeout, or one for an unknown Rid, is ignored", async () => {
  let held: { items: RequestItem[]; socket: WebSocket } | null = null;
  const server = await startFake((items, socket) => {
    if (held === null) held = { items, socket }; // the first request waits
    else socket.send(encodeReplies(items.map(echoReply)));
  });
  const c = new WebSocketAcceptorClient(server.url, { timeoutMs: 100 });
  try {
    const e = await within(
      errorOf(c.request("Prepare", req(inst("slow", 0n), bal(1n, 1n)))),
      "the timeout",
    );
    assert.ok(e instanceof Deno.errors.TimedOut);
    const h = held as { items: RequestItem[]; socket: WebSocket } | null;
    assert.ok(h !== null);
    // Now the late reply, and one for a Rid never used, then a live request.
    h.socket.send(encodeReplies(h.items.map(echoReply)));
    h.socket.send(encodeReplies([{ Rid: 987654, Rep: EMPTY_ACCEPTOR }]));
    const val: Value = { Vi64: 42n };
    const rep = await c.request("Accept", req(inst("fast", 0n), bal(1n, 1n), val));
    assert.deepEqual(rep.Val, val);
    assert.equal(server.connections, 1);
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("requests in flight fail at once with ConnectionReset when the acceptor closes", async () => {
  const server = await startFake((_, socket) => socket.close(1011, "going away"));
  const c = new WebSocketAcceptorClient(server.url, { timeoutMs: 5000 });
  try {
    const t0 = performance.now();
    const errors = await failuresOf(c, 50);
    const took = performance.now() - t0;
    for (const e of errors) {
      assert.ok(e instanceof Deno.errors.ConnectionReset, String(e));
      assert.match(e.message, /1011 going away/);
    }
    assert.ok(took < 1000, `failed after ${took} ms`);
    assert.equal(c.inFlight, 0);
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("requests in flight fail at once with ConnectionReset when the TCP connection drops", async () => {
  // Completes the handshake, reads the first bytes of the requests, hangs up.
  const server = startRawServer(async (conn) => {
    const peer = new RawWsPeer(conn);
    await peer.handshake();
    await peer.answerHelloAsV1();
    await conn.read(new Uint8Array(1024));
    conn.close();
  });
  const c = new WebSocketAcceptorClient(server.url, { timeoutMs: 5000 });
  try {
    const t0 = performance.now();
    const errors = await failuresOf(c, 50);
    const took = performance.now() - t0;
    for (const e of errors) assert.ok(e instanceof Deno.errors.ConnectionReset, String(e));
    assert.ok(took < 1000, `failed after ${took} ms`);
    assert.equal(c.inFlight, 0);
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("after the acceptor restarts on its port, requests succeed again; while down they fail fast", async () => {
  const first = await serveAcceptor(new PaxosAcceptor());
  const port = first.port;
  // Backoffs on a clock the test moves: with no jitter, 5 s after the first
  // failure, then 10 s, then 20 s. Requests never time out (60 s), so every
  // failure below comes at once or `within` reports it.
  const clock = skewedClock();
  const c = new WebSocketAcceptorClient(first.url, {
    timeoutMs: 60_000,
    minBackoffMs: 10_000,
    maxBackoffMs: 40_000,
    clock,
    random: { next: () => 0 },
  });
  const fails = () =>
    within(errorOf(c.request("Prepare", req(inst("k", 0n), bal(2n, 1n)))), "a failure");
  let second: Awaited<ReturnType<typeof serveAcceptor>> | null = null;
  try {
    await c.request("Accept", req(inst("k", 0n), bal(1n, 1n), { Vi64: 1n }));
    await first.close();

    // Down. The first request may still go out on the dying connection, or
    // find it gone; either way the client now knows, and backs off.
    const e1 = await fails();
    assert.ok(
      e1 instanceof Deno.errors.ConnectionReset || e1 instanceof Deno.errors.ConnectionRefused,
      String(e1),
    );
    // During the backoff, requests fail at once without trying.
    const e2 = await fails();
    assert.ok(e2 instanceof Deno.errors.ConnectionRefused, String(e2));
    assert.match(e2.message, /unreachable \(retrying later\)/);
    // After it, the next request tries again (and is refused: nothing listens).
    clock.skew += 30_000;
    const e3 = await fails();
    assert.ok(e3 instanceof Deno.errors.ConnectionRefused, String(e3));
    assert.match(e3.message, /cannot connect/);
    assert.match((await fails()).message, /retrying later/);

    // Back up: still no try before the backoff ends, then one that succeeds.
    second = await serveAcceptor(new PaxosAcceptor(), { port });
    assert.match((await fails()).message, /retrying later/);
    clock.skew += 30_000;
    const rep = await within(c.request("Prepare", req(inst("k", 0n), bal(2n, 1n))), "the reply");
    // The new acceptor has no state: proof the request reached it.
    assert.deepEqual(rep, EMPTY_ACCEPTOR);
    assert.equal(c.inFlight, 0);
  } finally {
    await c.close();
    await second?.close();
  }
});

Deno.test("reconnect attempts back off exponentially up to maxBackoffMs", async () => {
  // Accepts and hangs up at once: every connection attempt fails, and the
  // server counts them.
  const server = startRawServer((conn) => Promise.resolve(conn.close()));
  const clock = skewedClock();
  const c = new WebSocketAcceptorClient(server.url, {
    minBackoffMs: 10_000,
    maxBackoffMs: 40_000,
    clock,
    random: { next: () => 0 }, // the shortest jitter: half the ceiling
  });
  const attempt = async () => {
    const e = await within(
      errorOf(c.request("Prepare", req(inst("k", 0n), bal(1n, 1n)))),
      "a failure",
    );
    assert.ok(e instanceof Deno.errors.ConnectionRefused, String(e));
    return server.accepted;
  };
  try {
    assert.equal(await attempt(), 1);
    // Waits of 5 s, 10 s, 20 s, then 20 s again (the 40 s ceiling, halved).
    let tries = 1;
    for (const wait of [5_000, 10_000, 20_000, 20_000]) {
      clock.skew += wait - 1000;
      assert.equal(await attempt(), tries, `no new attempt 1 s before the ${wait} ms backoff ends`);
      clock.skew += 2000;
      assert.equal(await attempt(), ++tries, `a new attempt 1 s after the ${wait} ms backoff`);
    }
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("an Err reply rejects that request with AcceptorError and its code", async () => {
  const server = await serveAcceptor(new PaxosAcceptor());
  const c = new WebSocketAcceptorClient(server.url);
  try {
    const [bad, tooLong, good] = await Promise.allSettled([
      c.request("Accept", req(inst("k", 0n), bal(1n, 1n), null)), // Accept without a value
      c.request("Prepare", req(inst("x".repeat(5000), 0n), bal(1n, 1n))),
      c.request("Prepare", req(inst("k", 0n), bal(1n, 1n))),
    ]);
    assert.ok(bad.status === "rejected" && bad.reason instanceof AcceptorError);
    assert.equal(bad.reason.code, "BadRequest");
    assert.match(bad.reason.message, /Req\.Val/);
    assert.ok(tooLong.status === "rejected" && tooLong.reason instanceof AcceptorError);
    assert.equal(tooLong.reason.code, "TooLarge");
    // The other request in the same batch is unaffected.
    assert.ok(good.status === "fulfilled");
    assert.deepEqual(good.value, EMPTY_ACCEPTOR);
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("an Err reply carries the acceptor's code and message; the connection stays", async () => {
  const server = await startFake((items, socket) =>
    socket.send(
      encodeReplies(
        items.map((i) => ({ Rid: i.Rid, Err: { Code: "StorageError", Msg: "disk full" } })),
      ),
    )
  );
  const c = new WebSocketAcceptorClient(server.url);
  try {
    for (let i = 0; i < 2; i++) {
      const e = await within(
        errorOf(c.request("Prepare", req(inst("k", 0n), bal(1n, 1n)))),
        "the Err",
      );
      assert.ok(e instanceof AcceptorError, String(e));
      assert.equal(e.code, "StorageError");
      assert.equal(e.message, `${server.url} answered StorageError: disk full`);
    }
    assert.equal(server.connections, 1);
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("an Err code this client does not know becomes Internal, keeping the code in the message", async () => {
  const server = await startFake((items, socket) =>
    socket.send(
      encodeReplies(items.map((i) => ({ Rid: i.Rid, Err: { Code: "Busy", Msg: "busy" } }))),
    )
  );
  const c = new WebSocketAcceptorClient(server.url);
  try {
    const e = await within(
      errorOf(c.request("Prepare", req(inst("k", 0n), bal(1n, 1n)))),
      "the Err",
    );
    assert.ok(e instanceof AcceptorError, String(e));
    assert.equal(e.code, "Internal");
    assert.equal(e.detail, "Busy: busy");
    assert.equal(e.isFinal, false);
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("a reply frame that breaks the contract drops the connection", async (t) => {
  const garbage: [string, Uint8Array][] = [
    ["not MessagePack", new Uint8Array([0xc1])],
    ["not an envelope", encodeFrame("hello")],
    ["an envelope with a bad Rep", encodeFrame({ Rid: 1, Rep: { LastBal: "high" } })],
  ];
  for (const [name, bytes] of garbage) {
    await t.step(name, async () => {
      const server = await startFake((_, socket) => socket.send(bytes));
      const c = new WebSocketAcceptorClient(server.url, { timeoutMs: 5000 });
      try {
        const errors = await failuresOf(c, 3);
        for (const e of errors) assert.ok(e instanceof Deno.errors.ConnectionReset, String(e));
        assert.equal(c.inFlight, 0);
        // The client closed its side with 1007.
        assert.equal(await server.firstClose, 1007);
      } finally {
        await c.close();
        await server.close();
      }
    });
  }
});

Deno.test("a request that cannot be encoded fails alone", async () => {
  const server = await serveAcceptor(new PaxosAcceptor());
  const c = new WebSocketAcceptorClient(server.url);
  try {
    await c.request("Prepare", req(inst("warm-up", 0n), bal(1n, 1n)));
    // An int beyond 64 bits has no MessagePack encoding.
    const [bad, good] = await Promise.allSettled([
      c.request("Accept", req(inst("k", 0n), bal(1n, 1n), { Vi64: 2n ** 64n })),
      c.request("Accept", req(inst("k", 1n), bal(1n, 1n), { Vi64: 1n })),
    ]);
    assert.ok(bad.status === "rejected", "the bad request fails");
    assert.ok(bad.reason instanceof RangeError, String(bad.reason));
    assert.ok(good.status === "fulfilled", String(good.status === "rejected" && good.reason));
    assert.deepEqual(await c.request("Prepare", req(inst("k", 1n), bal(2n, 1n))), {
      LastBal: { N: 1n, ProposerId: 1n },
      Val: { Vi64: 1n },
      VBal: { N: 1n, ProposerId: 1n },
    });
    assert.equal(c.inFlight, 0);
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("close() fails requests in flight, closes the connection, and refuses new ones", async () => {
  let gotFrame!: () => void;
  const received = new Promise<void>((resolve) => gotFrame = resolve);
  const server = await startFake(() => gotFrame()); // never answers
  const c = new WebSocketAcceptorClient(server.url, { timeoutMs: 5000 });
  const failed = errorOf(c.request("Prepare", req(inst("k", 0n), bal(1n, 1n))));
  try {
    await within(received, "the request at the server");
    assert.equal(c.inFlight, 1);
    await c.close();
    const e = await within(failed, "the failure");
    assert.ok(e instanceof Deno.errors.NotConnected, String(e));
    assert.equal(c.inFlight, 0);
    assert.equal(await server.firstClose, 1000);
    await assert.rejects(
      c.request("Prepare", req(inst("k", 0n), bal(1n, 1n))),
      Deno.errors.NotConnected,
    );
    await c.close(); // twice is fine
  } finally {
    await c.close();
    await server.close();
  }
});

Deno.test("close() of a client that never connected resolves", async () => {
  const c = new WebSocketAcceptorClient("ws://127.0.0.1:1/paxos");
  await c.close();
  await assert.rejects(
    c.request("Prepare", req(inst("k", 0n), bal(1n, 1n))),
    Deno.errors.NotConnected,
  );
});

Deno.test("the constructor rejects a bad URL with a TypeError", () => {
  for (const bad of ["https://127.0.0.1:3333/paxos", "http://127.0.0.1:3333/paxos", "nonsense"]) {
    assert.throws(() => new WebSocketAcceptorClient(bad), TypeError, bad);
  }
});

Deno.test("Keys pages through every key an acceptor holds, and says when more remain", async () => {
  const acceptor = new PaxosAcceptor();
  const server = await serveAcceptor(acceptor);
  const c = new WebSocketAcceptorClient(server.url, { timeoutMs: 10000 });
  try {
    const want = Array.from({ length: 2500 }, (_, i) => `key/${String(i).padStart(4, "0")}`);
    await Promise.all(want.map((k) => c.request("Prepare", req(inst(k, 0n), bal(1n, 1n)))));
    const got: string[] = [];
    let from = "";
    for (;;) {
      const page = await c.keys(from, 1000);
      got.push(...page.Keys);
      if (!page.More) break;
      from = page.Keys[page.Keys.length - 1]! + "\0";
    }
    assert.deepEqual(got, want);
    // A bounded range: its end is excluded, and nothing past it counts as more.
    assert.deepEqual(await c.keys("key/0998", 1000, "key/1001"), {
      Keys: ["key/0998", "key/0999", "key/1000"],
      More: false,
    });
    assert.deepEqual(await c.keys("key/0998", 2, "key/1001"), {
      Keys: ["key/0998", "key/0999"],
      More: true,
    });
    // Long keys end a page early, below the limit, with More.
    const long = Array.from({ length: 40 }, (_, i) => `long/${i}/` + "x".repeat(4000));
    await Promise.all(long.map((k) => c.request("Prepare", req(inst(k, 0n), bal(1n, 1n)))));
    const page = await c.keys("long/", 1000, "long0");
    assert.ok(
      page.More && page.Keys.length < long.length,
      `${page.Keys.length} long keys in one page`,
    );
    // A limit outside 1..1000 is the client's mistake: BadRequest, and the connection serves on.
    await assert.rejects(c.keys("", 0), /BadRequest.*Limit/);
    await assert.rejects(c.keys("", 1001), /BadRequest.*Limit/);
    assert.deepEqual(await c.keys("key/2499", 5, "key0"), { Keys: ["key/2499"], More: false });
  } finally {
    c.close();
    await server.close();
  }
});
