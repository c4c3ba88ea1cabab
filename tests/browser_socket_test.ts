// The transport over the platform's WebSocket (what a browser page uses),
// here Deno's own: Paxos and the KV over it, and failures as errors.
import assert from "node:assert/strict";
import { PaxosAcceptor } from "../acceptor.ts";
import { browserSocket } from "../browser_socket.ts";
import { Kv } from "../kv.ts";
import { serveAcceptor } from "../server.ts";
import { WebSocketAcceptorClient } from "../transport.ts";

Deno.test("browser socket: a KV over the platform's WebSocket writes and reads", async () => {
  const servers = await Promise.all([0, 1, 2].map(() => serveAcceptor(new PaxosAcceptor())));
  const clients = servers.map((s) =>
    new WebSocketAcceptorClient(s.url, { openSocket: browserSocket, timeoutMs: 2000 })
  );
  const kv = new Kv(clients);
  try {
    assert.equal(await kv.set("k", "a"), 0n);
    assert.equal(await kv.set("k", "b"), 1n);
    assert.deepEqual(await kv.get("k"), { found: true, version: 1n, value: "b" });
    // One acceptor gone: its requests fail as a network error, the KV goes on.
    await servers[2]!.close();
    await assert.rejects(
      clients[2]!.latest("k"),
      (e: Error) => /Connection|NotConnected/.test(e.name),
    );
    assert.equal(await kv.set("k", "c"), 2n);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(servers.map((s) => s.close()));
  }
});

Deno.test("browser socket: nobody listening is a ConnectionRefused", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await assert.rejects(
    browserSocket(`ws://127.0.0.1:${port}/paxos`, { timeoutMs: 2000 }),
    (e: Error) => e.name === "ConnectionRefused",
  );
});
