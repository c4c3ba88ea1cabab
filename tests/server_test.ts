/**
 * Tests of the served acceptor (server.ts) over the network with hand-made
 * frames: replies by Rid, batches, the contract's answers to bad frames,
 * many connections, HTTP paths, and a small seeded fuzz.
 */
import assert from "node:assert/strict";
import { PaxosAcceptor } from "../acceptor.ts";
import { seededRandom } from "../clock.ts";
import {
  encodeFrame,
  encodeRequests,
  MAX_FRAME_BYTES,
  type ReplyEnvelope,
  type RequestEnvelope,
} from "../codec.ts";
import { serveAcceptor } from "../server.ts";
import { MemoryStore } from "../store.ts";
import type { Acceptor } from "../types.ts";
import { EMPTY_ACCEPTOR } from "../types.ts";
import { acceptReply, bal, env, inst, req, state } from "./builders.ts";
import { assertServing, err, RawClient, rep, withClients, withServer } from "./raw_client.ts";

// ---------------------------------------------------------------------------
// Helpers.

/** A Store whose every put fails. */
class FailingStore extends MemoryStore {
  override put(): Promise<void> {
    return Promise.reject(new Error("disk full (test store)"));
  }
}

// ---------------------------------------------------------------------------
// Over the network.

Deno.test("a single envelope gets one reply with the same Rid", async () => {
  await withServer(async (server) => {
    await withClients(server.url, 1, async ([c]) => {
      const id = inst("net-single");
      const rid = 2n ** 60n; // a Rid beyond 2^53 is copied exactly
      c!.sendRequests([{ Rid: rid, Op: "Prepare", Req: req(id, bal(1, 1)) }]);
      const [r] = (await c!.waitFor([rid]))!;
      assert.equal(r!.Rid, rid);
      assert.deepEqual(rep(r), EMPTY_ACCEPTOR);
      const [r2] = await c!.call([env("Accept", req(id, bal(1, 1), { Data: "v" }))]);
      assert.deepEqual(rep(r2), acceptReply(bal(1, 1)));
      const [r3] = await c!.call([env("Prepare", req(id, bal(2, 1)))]);
      assert.deepEqual(rep(r3), state(bal(1, 1), { Data: "v" }, bal(1, 1)));
      assert.equal(c!.frames.length, 3);
    });
  });
});

Deno.test("a batch of N requests gets N replies with matching Rids", async () => {
  await withServer(async (server) => {
    await withClients(server.url, 1, async ([c]) => {
      const envs: RequestEnvelope[] = [];
      for (let i = 0; i < 40; i++) {
        // Half on distinct instances, half on one shared instance.
        const id = i % 2 === 0 ? inst("batch", i) : inst("batch-shared");
        envs.push(env("Prepare", req(id, bal(i + 1, 1))));
      }
      const replies = await c!.call(envs);
      assert.deepEqual(replies.map((r) => r.Rid), envs.map((e) => e.Rid));
      const got = c!.frames.flat().map((r) => r.Rid).sort((x, y) => Number(x) - Number(y));
      assert.deepEqual(got, envs.map((e) => e.Rid), "exactly one reply per request");
      for (let i = 0; i < 40; i += 2) assert.deepEqual(rep(replies[i]), EMPTY_ACCEPTOR);
      const [last] = await c!.call([env("Prepare", req(inst("batch-shared"), bal(0, 0)))]);
      assert.deepEqual(rep(last), state(bal(40, 1)));
    });
  });
});

Deno.test("an Err reply answers bad request bodies and the connection keeps serving", async () => {
  await withServer(async (server) => {
    await withClients(server.url, 1, async ([c]) => {
      const good = { Id: { Key: "net-err", Ver: 0 }, Bal: { N: 1, ProposerId: 1 } };
      c!.send(encodeFrame({ Rid: 10, Op: "Commit", Req: good }));
      assert.match(err((await c!.waitFor([10]))![0], "UnknownOp"), /Commit/);
      c!.send(encodeFrame({ Rid: 11, Op: "Prepare", Req: { ...good, Bal: { N: "one" } } }));
      assert.match(err((await c!.waitFor([11]))![0], "BadRequest"), /Req\.Bal\.N/);
      c!.send(encodeFrame({ Rid: 12, Op: "Accept", Req: good }));
      assert.match(err((await c!.waitFor([12]))![0], "BadRequest"), /Req\.Val/);
      c!.send(encodeFrame({ Rid: 13, Op: "Prepare", Req: { ...good, Id: { Key: 5 } } }));
      assert.match(err((await c!.waitFor([13]))![0], "BadRequest"), /Req\.Id\.Key/);
      // A batch mixing good and bad requests: each gets its own answer.
      c!.send(encodeFrame([
        { Rid: 14, Op: "Prepare", Req: good },
        { Rid: 15, Op: "Nope", Req: good },
        { Rid: 16, Op: "Accept", Req: { ...good, Val: { Vi64: 1.5 } } },
      ]));
      const [r14, r15, r16] = (await c!.waitFor([14, 15, 16]))!;
      assert.deepEqual(rep(r14), EMPTY_ACCEPTOR);
      err(r15, "UnknownOp");
      err(r16, "BadRequest");
      // None of the bad requests changed the state.
      const [after] = await c!.call([env("Prepare", req(inst("net-err"), bal(0, 0)))]);
      assert.deepEqual(rep(after), state(bal(1, 1)));
      assert.ok(c!.isOpen);
    });
  });
});

Deno.test("a store failure is an Err StorageError reply, not a Rep", async () => {
  await withServer(async (server) => {
    await withClients(server.url, 1, async ([c]) => {
      const id = inst("net-storage");
      const [p] = await c!.call([env("Prepare", req(id, bal(1, 1)))]);
      assert.match(err(p, "StorageError"), /disk full/);
      const [a] = await c!.call([env("Accept", req(id, bal(1, 1), { Vi64: 1n }))]);
      err(a, "StorageError");
      // A Prepare that changes nothing needs no put, and is answered.
      const [z] = await c!.call([env("Prepare", req(id, bal(0, 0)))]);
      assert.deepEqual(rep(z), EMPTY_ACCEPTOR);
    });
  }, new FailingStore());
});

class BrokenStore extends MemoryStore {
  override get(): Acceptor | undefined {
    throw new TypeError("a bug in the store");
  }
}

Deno.test("an acceptor's own failure (a bug) is an Err Internal reply, not a StorageError", async () => {
  await withServer(async (server) => {
    await withClients(server.url, 1, async ([c]) => {
      const [p] = await c!.call([env("Prepare", req(inst("bug"), bal(1, 1)))]);
      assert.match(err(p, "Internal"), /a bug in the store/);
    });
  }, new BrokenStore());
});

/** Checks a served acceptor still answers, on an existing and a new connection. */
Deno.test("bad frames close that connection with the contract's code; the acceptor keeps serving", async () => {
  const errors: string[] = [];
  const acceptor = new PaxosAcceptor();
  const server = await serveAcceptor(acceptor, { onError: (m) => errors.push(m) });
  try {
    await withClients(server.url, 1, async ([bystander]) => {
      const id = inst("net-bad-frames");
      await bystander!.call([env("Accept", req(id, bal(1, 1), { Vi64: 42n }))]);
      const cases: [string, Uint8Array, number][] = [
        ["garbage", new TextEncoder().encode("this is not msgpack"), 1007],
        ["truncated", encodeRequests([env("Prepare", req(id, bal(9, 9)))]).slice(0, 10), 1007],
        ["a structured-clone reference", new Uint8Array([0xd6, 0x69, 0, 0, 0, 1, 0x80]), 1007],
        ["a number", encodeFrame(42), 1008],
        ["a string", encodeFrame("Prepare"), 1008],
        ["a map without Rid", encodeFrame({ Op: "Prepare" }), 1008],
        ["a negative Rid", encodeFrame({ Rid: -1, Op: "Prepare" }), 1008],
        ["a batch with a non-envelope", encodeFrame([{ Rid: 1, Op: "Prepare" }, 3]), 1008],
      ];
      for (const [what, bytes, code] of cases) {
        await withClients(server.url, 1, async ([c]) => {
          c!.send(bytes);
          assert.equal(await c!.closeCode(), code, what);
        });
        await assertServing(server.url, bystander!, "net-bad-frames");
      }
      // A frame over MAX_FRAME_BYTES: 1009.
      await withClients(server.url, 1, async ([c]) => {
        c!.send(new Uint8Array(MAX_FRAME_BYTES + 1));
        assert.equal(await c!.closeCode(), 1009);
      });
      await assertServing(server.url, bystander!, "net-bad-frames");
      // None of it changed the instance.
      const [r] = await bystander!.call([env("Prepare", req(id, bal(0, 0)))]);
      assert.deepEqual(rep(r), state(bal(1, 1), { Vi64: 42n }, bal(1, 1)));
    });
    // Told, at most 5 lines per cause in 10 s (the log is rate-limited).
    assert.ok(errors.length >= 6, `onError was told: ${errors.join(" | ")}`);
  } finally {
    await server.close();
  }
});

Deno.test("a text frame closes the connection with 1003", async () => {
  await withServer(async (server) => {
    await withClients(server.url, 1, async ([bystander]) => {
      const ws = new WebSocket(server.url);
      const code = await new Promise<number>((resolve) => {
        ws.onopen = () => ws.send("hello");
        ws.onerror = () => {};
        ws.onclose = (e) => resolve(e.code);
      });
      assert.equal(code, 1003);
      await assertServing(server.url, bystander!, "net-text");
    });
  });
});

Deno.test("many connections at once each get their own replies", async () => {
  await withServer(async (server) => {
    const n = 20;
    await withClients(server.url, n, async (clients) => {
      await Promise.all(clients.map(async (c, i) => {
        const own = inst("many", i);
        // Each client: a Prepare on the shared instance, then its own instance.
        const [shared, p] = await c.call([
          env("Prepare", req(inst("many-shared"), bal(i + 1, i))),
          env("Prepare", req(own, bal(1, i))),
        ]);
        assert.ok(rep(shared).LastBal.N <= BigInt(n));
        assert.deepEqual(rep(p), EMPTY_ACCEPTOR);
        for (let round = 1; round <= 5; round++) {
          const [a] = await c.call([env("Accept", req(own, bal(round, i), { Vi64: BigInt(i) }))]);
          assert.deepEqual(rep(a), acceptReply(bal(round === 1 ? 1 : round - 1, i)));
        }
        const [last] = await c.call([env("Prepare", req(own, bal(0, 0)))]);
        assert.deepEqual(rep(last), state(bal(5, i), { Vi64: BigInt(i) }, bal(5, i)));
      }));
      // The shared instance ended at the highest ballot any client sent.
      const [s] = await clients[0]!.call([env("Prepare", req(inst("many-shared"), bal(0, 0)))]);
      assert.deepEqual(rep(s), state(bal(n, n - 1)));
    });
  });
});

Deno.test("HTTP: a path other than /paxos is 404, no upgrade is 426, a bad upgrade is 400", async () => {
  await withServer(async (server) => {
    const base = `http://127.0.0.1:${server.port}`;
    for (const path of ["/", "/other", "/paxos/x"]) {
      const r = await fetch(base + path);
      await r.body?.cancel();
      assert.equal(r.status, 404, path);
    }
    const r = await fetch(base + "/paxos");
    assert.match(await r.text(), /upgrade/i);
    assert.equal(r.status, 426);
    // A malformed upgrade (no Sec-WebSocket-Key) is the peer's fault: 400.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      await conn.write(new TextEncoder().encode(
        "GET /paxos HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Version: 13\r\n\r\n",
      ));
      const buf = new Uint8Array(4096);
      let head = "";
      while (!head.includes("\r\n")) {
        const n = await conn.read(buf);
        if (n === null) break;
        head += new TextDecoder().decode(buf.subarray(0, n));
      }
      assert.match(head, /^HTTP\/1\.1 400 /);
    } finally {
      conn.close();
    }
    await withClients(server.url, 1, async ([c]) => {
      rep((await c!.call([env("Prepare", req(inst("http"), bal(1, 1)))]))[0]);
    });
  });
});

// ---------------------------------------------------------------------------
// Fuzz.

Deno.test("fuzz: random and mutated frames never stop the acceptor nor touch other instances", async () => {
  const rand = seededRandom(20240607);
  const int = (n: number) => Math.floor(rand.next() * n);
  const te = new TextEncoder();
  const guardKey = "GUARD-instance-zzz";
  const guard = inst(guardKey, 7);
  const guardBytes = te.encode(guardKey);
  const contains = (hay: Uint8Array, needle: Uint8Array): boolean => {
    outer: for (let i = 0; i + needle.length <= hay.length; i++) {
      for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
      return true;
    }
    return false;
  };

  const target = inst("fuzz-target-aaaa", 3);
  const seeds: Uint8Array[] = [
    encodeRequests([env("Prepare", req(target, bal(5, 1)))]),
    encodeRequests([env("Accept", req(target, bal(6, 2), { Vi64: 2n ** 62n }))]),
    encodeRequests([
      env("Accept", req(target, bal(7, 3), { Data: { a: [1, "x"], b: 2n ** 63n - 1n } })),
    ]),
    encodeRequests([
      env("Prepare", req(target, bal(1, 1))),
      env("Accept", req(inst("fuzz-target-bbbb"), bal(2, 2), { Data: new Uint8Array([1, 2, 3]) })),
    ]),
  ];
  const mutate = (src: Uint8Array): Uint8Array => {
    let b = Array.from(src);
    for (let k = rand.next() < 0.7 ? 1 : 2 + int(2); k > 0; k--) {
      const at = int(b.length + 1);
      switch (int(6)) {
        case 0:
          b[Math.min(at, b.length - 1)] = int(256);
          break;
        case 1:
          b[Math.min(at, b.length - 1)]! ^= 1 << int(8);
          break;
        case 2:
          b = b.slice(0, at);
          break;
        case 3:
          b.splice(at, 0, int(256));
          break;
        case 4:
          b.splice(at, 1);
          break;
        case 5:
          b.splice(at, 0, ...b.slice(int(b.length), int(b.length)));
          break;
      }
    }
    return new Uint8Array(b);
  };
  const randomBytes = (): Uint8Array => {
    const b = new Uint8Array(int(80));
    for (let i = 0; i < b.length; i++) b[i] = int(256);
    // Often start like a map or an array, to get past the first byte.
    if (b.length > 0 && rand.next() < 0.5) b[0] = 0x80 + int(32);
    return b;
  };

  await withServer(async (server) => {
    await withClients(server.url, 1, async ([bystander]) => {
      const guardState = state(bal(1000, 1), { Vi64: 42n }, bal(1000, 1));
      await bystander!.call([env("Accept", req(guard, bal(1000, 1), { Vi64: 42n }))]);
      let c = await RawClient.open(server.url);
      let closes = 0;
      let answered = 0;
      const errReplies = new Set<ReplyEnvelope>();
      try {
        for (let i = 0; i < 400; i++) {
          const bytes = i % 2 === 0 ? randomBytes() : mutate(seeds[int(seeds.length)]!);
          assert.ok(!contains(bytes, guardBytes), "the fuzz cannot name the guard instance");
          // Each fuzz frame is followed by a valid request: its reply (or the
          // connection's close) tells that the fuzz frame has been handled.
          const ping = env("Prepare", req(inst("fuzz-probe"), bal(0, 0)));
          c.send(bytes);
          if (c.isOpen) c.sendRequests([ping]);
          const got = await c.waitFor([ping.Rid]);
          for (const r of c.replies.values()) if ("Err" in r) errReplies.add(r);
          if (got === null) {
            closes++;
            await c.close();
            c = await RawClient.open(server.url);
          } else {
            answered++;
          }
        }
      } finally {
        await c.close();
      }
      // The fuzz did hit both paths.
      assert.ok(
        closes > 100 && answered > 25 && errReplies.size > 5,
        `closes ${closes}, answered ${answered}, Err replies ${errReplies.size}`,
      );
      // Still serving; the guard instance reads back unchanged (a lower ballot changes nothing).
      await assertServing(server.url, bystander!, "fuzz-after");
      const [g] = await bystander!.call([env("Prepare", req(guard, bal(1, 0)))]);
      assert.deepEqual(rep(g), guardState);
    });
  });
});
