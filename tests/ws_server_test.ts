import assert from "node:assert/strict";
import { serveWebSocket, type WsServer, type WsServerConnection } from "../ws_server.ts";
import { OP } from "../ws_frames.ts";
import { WsConnection } from "../ws_client.ts";
import { RawWs, writeAll } from "./raw_ws.ts";

async function withEcho(
  fn: (server: WsServer) => Promise<void>,
  opts: { maxQueuedBytes?: number; onConnection?: (c: WsServerConnection) => void } = {},
): Promise<void> {
  const server = await serveWebSocket({
    path: "/paxos",
    ...opts,
    onConnection: opts.onConnection ?? ((c) => c.onMessage = (m) => c.send(m)),
  });
  try {
    await fn(server);
  } finally {
    await server.close();
  }
}

// Sends raw bytes and reads the answer until the server closes.
async function http(port: number, request: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, new TextEncoder().encode(request));
    let text = "";
    const buf = new Uint8Array(4096);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text;
  } finally {
    conn.close();
  }
}

const UPGRADE = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n";
const KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

Deno.test("ws_server: the upgrade, and what it answers to everything else", async () => {
  await withEcho(async ({ addr: { port } }) => {
    // A good upgrade (RFC 6455's example key) stays open: read its head.
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(
      conn,
      new TextEncoder().encode(`GET /paxos HTTP/1.1\r\nHost: x\r\n${UPGRADE}${KEY}\r\n`),
    );
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf);
    conn.close();
    assert.match(
      new TextDecoder().decode(buf.subarray(0, n ?? 0)),
      /^HTTP\/1\.1 101 [^]*Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/,
    );
    const cases: [string, RegExp][] = [
      [`GET /other HTTP/1.1\r\nHost: x\r\n${UPGRADE}${KEY}\r\n`, /^HTTP\/1\.1 404 /],
      [
        `GET /paxos HTTP/1.1\r\nHost: x\r\n\r\n`,
        /^HTTP\/1\.1 426 [^]*expected a WebSocket upgrade/,
      ],
      [`POST /paxos HTTP/1.1\r\nHost: x\r\n${UPGRADE}${KEY}\r\n`, /^HTTP\/1\.1 426 /],
      [`GET /paxos HTTP/1.1\r\nHost: x\r\n${UPGRADE}\r\n`, /^HTTP\/1\.1 400 [^]*Sec-WebSocket-Key/],
      [
        `GET /paxos HTTP/1.1\r\nHost: x\r\n${UPGRADE.replace("13", "8")}${KEY}\r\n`,
        /^HTTP\/1\.1 426 [^]*Sec-WebSocket-Version: 13/,
      ],
      [`GARBAGE\r\n\r\n`, /^HTTP\/1\.1 400 /],
      [`GET /paxos HTTP/1.1\r\n folded: header\r\n\r\n`, /^HTTP\/1\.1 400 /],
      [`GET /paxos HTTP/1.1\r\nX: ${"y".repeat(9000)}\r\n\r\n`, /^HTTP\/1\.1 431 /],
    ];
    for (const [request, answer] of cases) {
      assert.match(await http(port, request), answer, request.slice(0, 60));
    }
    // Deno's own WebSocket client gets in too.
    const ws = new WebSocket(`ws://127.0.0.1:${port}/paxos`);
    ws.binaryType = "arraybuffer";
    const echoed = await new Promise<number>((resolve, reject) => {
      ws.onopen = () => ws.send(new Uint8Array([1, 2, 3]));
      ws.onmessage = (e) => resolve((e.data as ArrayBuffer).byteLength);
      ws.onerror = () => reject(new Error("error"));
    });
    assert.equal(echoed, 3);
    const closed = new Promise((resolve) => ws.onclose = resolve);
    ws.close();
    await closed;
  });
});

Deno.test("ws_server: frames that break RFC 6455 close with 1002, text with 1003", async () => {
  await withEcho(async ({ addr: { port } }) => {
    const cases: [string, (ws: RawWs) => Promise<void>, number][] = [
      ["an unmasked frame", (ws) => writeAll(ws.conn, new Uint8Array([0x82, 0x01, 0x07])), 1002],
      ["reserved bits", (ws) => writeAll(ws.conn, new Uint8Array([0xc2, 0x80, 0, 0, 0, 0])), 1002],
      ["unknown opcode", (ws) => ws.frame(0x3, new Uint8Array(1)), 1002],
      ["a fragmented ping", (ws) => ws.frame(OP.ping, new Uint8Array(1), false), 1002],
      ["a stray continuation", (ws) => ws.frame(OP.continuation, new Uint8Array(1)), 1002],
      ["a text frame", (ws) => ws.frame(OP.text, new TextEncoder().encode("hi")), 1003],
    ];
    for (const [what, send, code] of cases) {
      const ws = await RawWs.open(port);
      try {
        await send(ws);
        assert.equal(await ws.closeCode(), code, what);
      } finally {
        await ws.close();
      }
    }
  });
});

Deno.test("ws_server: fragments with a ping between them, a pong, the closing handshake", async () => {
  await withEcho(async ({ addr: { port } }) => {
    const ws = await RawWs.open(port);
    try {
      await ws.frame(OP.binary, new Uint8Array([1, 2]), false);
      await ws.frame(OP.ping, new Uint8Array([9]));
      await ws.frame(OP.continuation, new Uint8Array([3]));
      const e = await ws.next();
      assert.ok(e.type === "message");
      assert.deepEqual(Array.from(e.data), [1, 2, 3]);
      await ws.frame(OP.close, new Uint8Array([0x03, 0xe8]));
      assert.equal(await ws.closeCode(), 1000);
      assert.equal((await ws.next()).type, "end");
    } finally {
      await ws.close();
    }
  });
});

Deno.test("ws_server: over maxQueuedBytes for a peer, it stops reading from that peer until it catches up", async () => {
  const limit = 1024 * 1024;
  let messages = 0;
  let mostQueued = 0;
  let filled!: () => void;
  const full = new Promise<void>((resolve) => filled = resolve);
  await withEcho(async ({ addr: { port } }) => {
    const ws = await RawWs.open(port, { read: false });
    try {
      // 200 requests for 256 KiB each: 50 MiB of answers.
      const frames: Uint8Array[] = [];
      for (let i = 0; i < 200; i++) frames.push(new Uint8Array([0x82, 0x81, 0, 0, 0, 0, i]));
      await writeAll(ws.conn, new Uint8Array(frames.flatMap((f) => Array.from(f))));
      await full;
      ws.startReading();
      let got = 0;
      while (got < 200) {
        const e = await ws.next();
        assert.equal(e.type, "message");
        got++;
      }
      assert.equal(messages, 200);
      // It never read a message while more than the limit waited.
      assert.ok(mostQueued <= limit, `${mostQueued} bytes queued when it read more`);
    } finally {
      await ws.close();
    }
  }, {
    maxQueuedBytes: limit,
    onConnection: (c) =>
      c.onMessage = () => {
        messages++;
        mostQueued = Math.max(mostQueued, c.queuedBytes);
        c.send(new Uint8Array(256 * 1024));
        if (c.queuedBytes > limit) filled();
      },
  });
});

Deno.test("ws_server: close() closes every connection with 1001 and waits for them", async () => {
  const server = await serveWebSocket({ path: "/paxos", onConnection: () => {} });
  const a = await WsConnection.connect(`ws://127.0.0.1:${server.addr.port}/paxos`);
  const b = await RawWs.open(server.addr.port);
  const idle = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  const why = new Promise<Error>((resolve) => a.onClose = resolve);
  assert.equal(server.connections, 3);
  await server.close();
  assert.match((await why).message, /1001/);
  assert.equal(await b.closeCode(), 1001);
  assert.equal(server.connections, 0);
  await b.close();
  await a.close();
  idle.close();
});
