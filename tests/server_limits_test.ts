// Issue 12's attacks on an acceptor, one test per row of its table: each
// one failed on the code before (5a6ea95). What an unauthenticated peer can
// make an acceptor do is bounded, answered with a clear error or close code,
// and nobody else notices.
import assert from "node:assert/strict";
import { DEFAULT_MAX_QUEUED_PER_PEER, PaxosAcceptor } from "../acceptor.ts";
import {
  decodeReplyFrame,
  encodeFrame,
  encodeRequests,
  type ReplyEnvelope,
  type RequestEnvelope,
} from "../codec.ts";
import { LogStore } from "../log_store.ts";
import { serveAcceptor, type ServeAcceptorOptions } from "../server.ts";
import { MemoryStore, type Store } from "../store.ts";
import { concatBytes, OP } from "../ws_frames.ts";
import { bal, inst, req } from "./builders.ts";
import { LineProcess, memberFlags, RUN, URL_LINE } from "./cli_process.ts";
import { RawWs, writeAll } from "./raw_ws.ts";

let nextRid = 1;
function prepare(key: string, ver: number, n: number, pid = 1): RequestEnvelope {
  return { Rid: nextRid++, Op: "Prepare", Req: req(inst(key, ver), bal(n, pid)) };
}

/** Sends `reqs` in one frame and returns the replies of the next message. */
async function call(ws: RawWs, reqs: RequestEnvelope[]): Promise<ReplyEnvelope[]> {
  await ws.send(encodeRequests(reqs));
  return await replies(ws);
}

async function replies(ws: RawWs, timeoutMs = 10_000): Promise<ReplyEnvelope[]> {
  const e = await ws.next(timeoutMs);
  if (e.type !== "message") assert.fail(`expected replies, got ${JSON.stringify(e)}`);
  return decodeReplyFrame(e.data);
}

function codeOf(r: ReplyEnvelope | undefined): string {
  assert.ok(r !== undefined);
  return "Err" in r ? r.Err.Code : "Rep";
}

/** A served acceptor on `store`, closed after `fn`. */
async function withServer(
  opts: ServeAcceptorOptions,
  fn: (port: number, acceptor: PaxosAcceptor) => Promise<void>,
  store: Store = new MemoryStore(),
): Promise<void> {
  const acceptor = new PaxosAcceptor(store, "test");
  const server = await serveAcceptor(acceptor, { port: 0, ...opts });
  try {
    await fn(server.port, acceptor);
  } finally {
    await server.close();
  }
}

/** Checks that a new connection is served within a few seconds (connections closed just before may still count). */
async function eventuallyServing(port: number): Promise<void> {
  for (let i = 0;; i++) {
    try {
      return await assertServing(port);
    } catch (e) {
      if (i === 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Checks that a new connection is served at once. */
async function assertServing(port: number): Promise<void> {
  const ws = await RawWs.open(port);
  try {
    assert.equal(codeOf((await call(ws, [prepare("probe", 0, 0, 0)]))[0]), "Rep");
  } finally {
    await ws.close();
  }
}

// msgpackr's 128-bit integer (extension 0x42) as Data: an 85-byte Accept.
function bigintAccept(rid: number, key: string): Uint8Array {
  const env = encodeFrame({
    Rid: rid,
    Op: "Accept",
    Req: { Id: { Key: key, Ver: 0 }, Bal: { N: 1, ProposerId: 1 }, Val: { Data: 0 } },
  });
  // Data's value is the last byte: replace it with the extension.
  return new Uint8Array([
    ...env.subarray(0, env.length - 1),
    0xc7,
    16,
    0x42,
    ...new Array(16).fill(0x7f),
  ]);
}

Deno.test("a 128-bit integer in Data is refused (memory): the key and its batch are answered", async () => {
  await withServer({}, async (port) => {
    const ws = await RawWs.open(port);
    try {
      const bad = bigintAccept(1, "k");
      assert.ok(bad.length <= 90);
      // A batch: the bad Accept, then a Prepare of the same key.
      const prep = encodeRequests([{ Rid: 2, Op: "Prepare", Req: req(inst("k"), bal(2, 1)) }]);
      await ws.send(new Uint8Array([0x92, ...bad, ...prep]));
      const reps = await replies(ws);
      assert.deepEqual(reps.map(codeOf), ["BadRequest", "Rep"]);
      assert.match((reps[0] as { Err: { Msg: string } }).Err.Msg, /extension type 0x42/);
      const [p] = await call(ws, [prepare("k", 0, 3)]);
      assert.ok(p !== undefined && "Rep" in p && "LastBal" in p.Rep);
      assert.deepEqual([p.Rep.LastBal, p.Rep.Val], [bal(2, 1), null], "k has no vote");
    } finally {
      await ws.close();
    }
  });
});

Deno.test("a 128-bit integer in Data is refused (durable process): it lives on, and restarts clean", async () => {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-bigint-" });
  try {
    for (let life = 0; life < 2; life++) {
      const args = ["acceptor", "--port", "0", ...memberFlags(0, [0], { data: dir })];
      const server = new LineProcess([...RUN, ...args]);
      try {
        const [url] = await server.waitFor((l) => l.length >= 1, 10_000);
        assert.match(url!, URL_LINE);
        const port = Number(new URL(url!).port);
        const ws = await RawWs.open(port);
        await ws.send(bigintAccept(7, "k"));
        assert.deepEqual((await replies(ws)).map(codeOf), ["BadRequest"]);
        await ws.close();
        await assertServing(port);
      } finally {
        const { status, stderr } = await server.stop("SIGTERM");
        assert.equal(status.code, 0, `exit ${status.code}: ${stderr}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("msgpackr's RegExp extension (0x78) is refused before any RegExp is built", async () => {
  // Count the RegExps built from a long pattern while the frame is served.
  const original = globalThis.RegExp;
  let built = 0;
  globalThis.RegExp = new Proxy(original, {
    construct(target, args) {
      if (String(args[0]).length > 1000) built++;
      return Reflect.construct(target, args);
    },
  });
  try {
    await withServer({}, async (port) => {
      const ws = await RawWs.open(port);
      try {
        // {Rid, Op: "Accept", Req: {..., Val: {Data: [RegExp x 20]}}}, each
        // RegExp an ext 0x78 header followed by [source, flags].
        const pattern = encodeFrame(["(a|aa)*".repeat(2000) + "b", "g"]);
        const regexps = Array.from({ length: 20 }, () => [0xd4, 0x78, 0x00, ...pattern]).flat();
        const env = encodeFrame({
          Rid: 5,
          Op: "Accept",
          Req: { Id: { Key: "r", Ver: 0 }, Bal: { N: 1, ProposerId: 1 }, Val: { Data: 0 } },
        });
        const frame = new Uint8Array([...env.subarray(0, env.length - 1), 0xdc, 0, 20, ...regexps]);
        await ws.send(frame);
        const e = await ws.next();
        // Read as plain MessagePack these bytes are not one value: refused
        // whole (1007), or by their Rid.
        if (e.type === "message") {
          const [r] = decodeReplyFrame(e.data);
          assert.equal(codeOf(r), "BadRequest");
        } else {
          assert.ok(e.type === "close" && e.code === 1007, JSON.stringify(e));
        }
        assert.equal(built, 0, "no RegExp was built from the frame");
      } finally {
        await ws.close();
      }
      await assertServing(port);
    });
  } finally {
    globalThis.RegExp = original;
  }
});

Deno.test("out of file descriptors (EMFILE), the acceptor lives on and serves once they are back", async () => {
  // An acceptor allowed 64 open files, and 150 connections that never upgrade.
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `ulimit -n 64 && exec "$0" "$@"`,
      Deno.execPath(),
      ...RUN,
      "acceptor",
      "--id",
      "0",
      "--memory",
      "--port",
      "0",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const conns: Deno.TcpConn[] = [];
  try {
    let line = "";
    while (!line.includes("\n")) line += (await out.read()).value ?? "";
    const port = Number(new URL(line.trim()).port);
    for (let i = 0; i < 150; i++) conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    // Give its accept loop time to run into the limit.
    await new Promise((r) => setTimeout(r, 300));
    for (const c of conns.splice(0)) c.close();
    // Served again once descriptors are free (the accept loop retries).
    await eventuallyServing(port);
  } finally {
    for (const c of conns) c.close();
    try {
      child.kill("SIGTERM");
    } catch { /* ended */ }
    const status = await child.status;
    await out.cancel();
    const err = await stderr;
    assert.equal(status.code, 0, `exit ${status.code}, signal ${status.signal}: ${err}`);
    assert.match(err, /cannot accept a connection/);
  }
});

Deno.test("past maxConnections, a connection is answered 503; the open ones are served", async () => {
  await withServer({ maxConnections: 20 }, async (port) => {
    const ws = await RawWs.open(port);
    const idle: Deno.TcpConn[] = [];
    try {
      for (let i = 0; i < 19; i++) idle.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      const extra = await Deno.connect({ hostname: "127.0.0.1", port });
      idle.push(extra);
      assert.match(await readHead(extra, 5000), /^HTTP\/1\.1 503 /);
      assert.equal(codeOf((await call(ws, [prepare("c", 0, 1)]))[0]), "Rep");
    } finally {
      for (const c of idle) {
        try {
          c.close();
        } catch { /* closed by readHead */ }
      }
      await ws.close();
    }
    await eventuallyServing(port);
  });
});

// Reads what comes until the end of the connection (or `timeoutMs`).
async function readHead(conn: Deno.TcpConn, timeoutMs: number): Promise<string> {
  const timer = setTimeout(() => conn.close(), timeoutMs);
  let text = "";
  try {
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
  } catch {
    // closed by the timer: nothing came in time
  } finally {
    clearTimeout(timer);
  }
  return text;
}

Deno.test("a connection that does not finish its upgrade in time is answered 408 and closed", async () => {
  await withServer({ handshakeTimeoutMs: 300 }, async (port) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await writeAll(conn, new TextEncoder().encode("GET /paxos HTTP/1.1\r\nHost: x\r\n"));
      assert.match(await readHead(conn, 5000), /^HTTP\/1\.1 408 /);
    } finally {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  });
});

Deno.test("a fragmented message that never ends is closed with 1009 at the message limit", async () => {
  await withServer({}, async (port) => {
    const ws = await RawWs.open(port);
    try {
      const mib = new Uint8Array(1024 * 1024);
      await ws.frame(OP.binary, mib, false);
      let code = 0;
      // Continuations, until the server closes (at 8 MiB), or 12 MiB sent.
      const closed = ws.closeCode(5000).then((c) => code = c);
      for (let i = 0; i < 11 && code === 0; i++) {
        await ws.frame(OP.continuation, mib, false).catch(() => {});
      }
      await closed;
      assert.equal(code, 1009);
    } finally {
      await ws.close();
    }
    await assertServing(port);
  });
});

// A value of (nearly) 1 MiB at big@0: the largest there may be.
async function withBigValue(acceptor: PaxosAcceptor): Promise<void> {
  await acceptor.accept(req(inst("big"), bal(1, 1), { Data: new Uint8Array(1024 * 1024 - 8) }));
}

Deno.test("a peer that sends requests and never reads: what waits for it is bounded", async () => {
  await withServer({}, async (port, acceptor) => {
    await withBigValue(acceptor);
    const bystander = await RawWs.open(port);
    const attacker = await RawWs.open(port, { read: false });
    try {
      await assertServing(port);
      const before = Deno.memoryUsage().rss;
      // 600 reads of the 1 MiB value, one per frame: 600 MiB of replies.
      const frames = Array.from(
        { length: 600 },
        () => encodeRequests([{ Rid: nextRid++, Op: "Latest", Req: { Key: "big" } }]),
      );
      const all = new Uint8Array(frames.reduce((n, f) => n + f.length + 6, 0));
      let at = 0;
      for (const f of frames) {
        // A masked binary frame with a zero mask: header, mask, payload.
        all.set([0x82, 0x80 | f.length, 0, 0, 0, 0], at);
        all.set(f, at + 6);
        at += f.length + 6;
      }
      await writeAll(attacker.conn, all);
      // The frames are read (or reading stopped) by the time others get replies.
      for (let i = 0; i < 3; i++) {
        assert.equal(codeOf((await call(bystander, [prepare("by", i, 1)]))[0]), "Rep");
      }
      const grew = Deno.memoryUsage().rss - before;
      assert.ok(grew < 200 * 1024 * 1024, `RSS grew by ${Math.round(grew / 1048576)} MiB`);
    } finally {
      await attacker.close();
      await bystander.close();
    }
  });
});

Deno.test("one frame's replies are bounded: many Prepares on a 1 MiB value get Overloaded past the budget", async () => {
  await withServer({}, async (port, acceptor) => {
    await withBigValue(acceptor);
    const ws = await RawWs.open(port);
    try {
      // 128 Prepares at the zero ballot (they change nothing) in one frame.
      const reqs = Array.from({ length: 128 }, () => prepare("big", 0, 0, 0));
      const frame = encodeRequests(reqs);
      assert.ok(frame.length < 10_000);
      await ws.send(frame);
      // In one frame or several (a frame's replies of over 1 MiB are split).
      const reps: ReplyEnvelope[] = [];
      while (reps.length < 128) reps.push(...await replies(ws));
      assert.equal(reps.length, 128);
      const codes = reps.map(codeOf);
      const served = codes.filter((c) => c === "Rep").length;
      assert.ok(served >= 1 && served <= 16, `${served} served`);
      assert.equal(codes.filter((c) => c === "Overloaded").length, 128 - served);
      assert.ok(ws.messageBytes <= 17 * 1024 * 1024, `${ws.messageBytes} bytes of replies`);
    } finally {
      await ws.close();
    }
  });
});

Deno.test("a flood of Prepares on one key (durable) delays another client's request by a write or two", async () => {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-flood-" });
  const store = await LogStore.open(dir);
  try {
    await withServer({}, async (port) => {
      const attacker = await RawWs.open(port);
      const normal = await RawWs.open(port);
      try {
        // 3000 Prepares at rising ballots, one per frame: each one a write.
        let bytes: Uint8Array[] = [];
        for (let i = 0; i < 3000; i++) {
          const f = encodeRequests([prepare("hot", 0, i + 1)]);
          bytes.push(new Uint8Array([0x82, 0x80 | f.length, 0, 0, 0, 0]), f);
        }
        await writeAll(attacker.conn, concatBytes(bytes));
        bytes = [];
        // Until the flood fills what one peer may have waiting on the key.
        let answered = 0;
        let overloaded = 0;
        while (overloaded === 0 && answered < 200) {
          const [r] = await replies(attacker);
          answered++;
          if (codeOf(r) === "Overloaded") overloaded++;
        }
        // Now an Accept on the same key, another version.
        await normal.send(encodeRequests([{
          Rid: 1,
          Op: "Accept",
          Req: req(inst("hot", 1), bal(1, 99), { Vi64: 1n }),
        }]));
        const mine = replies(normal);
        let servedBefore = 0;
        let done = false;
        mine.then(() => done = true);
        while (!done) {
          const e = await Promise.race([attacker.next(), mine.then(() => null)]);
          if (e === null) break;
          if (e.type !== "message") break;
          if (decodeReplyFrame(e.data).some((r) => codeOf(r) === "Rep")) servedBefore++;
        }
        assert.equal(codeOf((await mine)[0]), "Rep");
        // Served first: a write or two of the flood, and the replies that were
        // already on their way when the Accept arrived (a few ms of writes on
        // a loaded machine; up to 8 were seen). Unfair turns would serve the
        // flood's whole queue first: DEFAULT_MAX_QUEUED_PER_PEER (128).
        assert.ok(
          servedBefore <= 16,
          `${servedBefore} of the flood were served first (its queue holds ${DEFAULT_MAX_QUEUED_PER_PEER})`,
        );
      } finally {
        await attacker.close();
        await normal.close();
      }
    }, store);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

// `p`, or a failure naming `what` after `ms`.
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new Error(what)), ms)
  );
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("a flood of bad frames with stderr unread: the acceptor serves on, and logs a bounded number of lines", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...RUN, "acceptor", "--id", "0", "--memory", "--port", "0"],
    stdout: "piped",
    stderr: "piped", // never read until the end: a pipe nobody reads
  }).spawn();
  const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let line = "";
    while (!line.includes("\n")) line += (await out.read()).value ?? "";
    const port = Number(new URL(line.trim()).port);
    // 1500 bad frames, each closing its connection with 1007, 25 at a time.
    for (let i = 0; i < 1500; i += 25) {
      const batch = Promise.all(Array.from({ length: 25 }, async () => {
        const ws = await RawWs.open(port);
        try {
          await ws.send(new TextEncoder().encode("not MessagePack at all"));
          assert.equal(await ws.closeCode(), 1007);
        } finally {
          await ws.close();
        }
      }));
      await within(batch, 10_000, `the acceptor froze after ${i} bad frames`);
    }
    await within(assertServing(port), 10_000, "the acceptor froze");
  } finally {
    child.kill("SIGTERM");
    // A frozen process cannot even handle SIGTERM.
    const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await child.status;
    clearTimeout(killer);
    await out.cancel();
  }
  const lines = (await new Response(child.stderr).text()).trim().split("\n");
  assert.ok(lines.length <= 12, `${lines.length} lines: ${lines.slice(0, 12).join(" | ")}`);
  assert.ok(lines.some((l) => /bad frame: [0-9]+ more not shown/.test(l)), lines.join("\n"));
});

Deno.test("an empty batch is answered with an empty batch", async () => {
  await withServer({}, async (port) => {
    const ws = await RawWs.open(port);
    try {
      await ws.send(new Uint8Array([0x90]));
      const e = await ws.next(3000);
      assert.ok(e.type === "message", JSON.stringify(e));
      assert.deepEqual(Array.from(e.data), [0x90]);
      assert.equal(codeOf((await call(ws, [prepare("e", 0, 1)]))[0]), "Rep");
    } finally {
      await ws.close();
    }
  });
});

Deno.test("a frame of 64 MiB or more is closed with 1009, not reset", async () => {
  await withServer({}, async (port) => {
    const ws = await RawWs.open(port);
    try {
      // The header of a 64 MiB + 1 frame, then 1 MiB of it.
      const head = new Uint8Array(14);
      head[0] = 0x82;
      head[1] = 0x80 | 127;
      new DataView(head.buffer).setBigUint64(2, 64n * 1024n * 1024n + 1n);
      await writeAll(ws.conn, head);
      await writeAll(ws.conn, new Uint8Array(1024 * 1024)).catch(() => {});
      assert.equal(await ws.closeCode(5000), 1009);
    } finally {
      await ws.close();
    }
    await assertServing(port);
  });
});
