// Connecting to a cluster: the trust extension's handshake with a shared
// secret, TLS, the Origin rule, and the checks that keep a client from
// mixing acceptors that do not belong together (connect.ts, cluster_view.ts,
// and the server's side in server.ts).
import assert from "node:assert/strict";
import { PaxosAcceptor } from "../acceptor.ts";
import { connectAcceptors } from "../connect.ts";
import { TrustError } from "../errors.ts";
import { Secret } from "../handshake.ts";
import { type ClusterIdentity, makeIdentity, randomId, VouchedPeers } from "../identity.ts";
import { connect } from "../kv.ts";
import { type AcceptorServer, serveAcceptor } from "../server.ts";
import { MemoryStore } from "../store.ts";
import { WebSocketAcceptorClient } from "../transport.ts";
import { decodeFrame, encodeFrame } from "../codec.ts";
import { makeCerts, opensslUnavailable } from "./certs.ts";
import { RawWs } from "./raw_ws.ts";

const secretOf = (s: string) => Secret.import(new TextEncoder().encode(s));

interface Member {
  identity: ClusterIdentity;
  server: AcceptorServer;
  store: MemoryStore;
}

interface TestCluster {
  members: Member[];
  urls: string[];
  /** Starts member `i` again: a new server on a new port, as `identity` (default: a new instance). */
  restart(i: number, identity?: ClusterIdentity): Promise<void>;
  close(): Promise<void>;
}

// Serves members 0..n-1 of one cluster in this process.
async function serveCluster(
  n: number,
  opts: {
    secret?: Secret;
    tls?: { cert: string; key: string };
    keepVersions?: (i: number) => number | null;
    clusterId?: string;
  } = {},
): Promise<TestCluster> {
  const clusterId = opts.clusterId ?? randomId();
  const members = Array.from({ length: n }, (_, i) => i);
  const serve = async (identity: ClusterIdentity, store: MemoryStore) => {
    const acceptor = new PaxosAcceptor(store, `a${identity.member}`);
    return await serveAcceptor(acceptor, {
      identity,
      peers: new VouchedPeers(),
      ...(opts.secret === undefined ? {} : { secret: opts.secret }),
      ...(opts.tls === undefined ? {} : { tls: opts.tls }),
    });
  };
  const list: Member[] = [];
  for (const i of members) {
    const identity = makeIdentity({
      cluster: "t",
      clusterId,
      member: i,
      members,
      keepVersions: opts.keepVersions?.(i) ?? null,
      instance: randomId(),
    });
    const store = new MemoryStore();
    list.push({ identity, store, server: await serve(identity, store) });
  }
  const c: TestCluster = {
    members: list,
    get urls() {
      return list.map((m) => m.server.url);
    },
    async restart(i, identity) {
      const m = list[i]!;
      await m.server.close();
      m.identity = identity ?? { ...m.identity, instance: randomId() };
      m.store = new MemoryStore();
      m.server = await serve(m.identity, m.store);
    },
    async close() {
      await Promise.all(list.map((m) => m.server.close()));
    },
  };
  return c;
}

async function refused(p: Promise<unknown>, why: RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof TrustError, `${e.name}: ${e.message}`);
    assert.match(e.message, why);
    return true;
  });
}

Deno.test("a client with the cluster's secret reads and writes; one without it, or with another, is refused", async () => {
  const secret = await secretOf("the cluster's shared secret");
  const c = await serveCluster(3, { secret });
  try {
    const kv = await connect(c.urls, { secret, timeoutMs: 2000 });
    assert.equal(await kv.set("k", "v"), 0n);
    assert.deepEqual(await kv.get("k"), { found: true, version: 0n, value: "v" });
    await kv.close();
    await refused(connect(c.urls), /asks for the cluster's shared secret: give --secret-file/);
    await refused(
      connect(c.urls, { secret: await secretOf("another secret, same length") }),
      /does not know the shared secret: the secrets differ/,
    );
  } finally {
    await c.close();
  }
});

Deno.test("a client with a secret refuses an acceptor that has none", async () => {
  const c = await serveCluster(3);
  try {
    await refused(
      connect(c.urls, { secret: await secretOf("a secret the acceptors lack") }),
      /has no shared secret: it cannot prove that it is a member of your cluster/,
    );
  } finally {
    await c.close();
  }
});

Deno.test("an acceptor with a secret serves nothing before Auth, nor after a wrong proof, and closes", async () => {
  const secret = await secretOf("the cluster's shared secret");
  const c = await serveCluster(1, { secret });
  const prepare = { Id: { Key: "k", Ver: 0n }, Bal: { N: 1n, ProposerId: 1n }, Val: null };
  try {
    const port = c.members[0]!.server.port;
    const message = async (ws: RawWs) => {
      const e = await ws.next();
      if (e.type !== "message") assert.fail(`expected a message, got ${e.type}`);
      return decodeFrame(e.data) as Record<string, Record<string, unknown>>;
    };
    // Straight to a Prepare: Unauthorized, then the connection is closed.
    const ws = await RawWs.open(port);
    try {
      await ws.send(
        encodeFrame({
          Rid: 1,
          Op: "Prepare",
          Req: { Id: { Key: "k", Ver: 0 }, Bal: { N: 1, ProposerId: 1 } },
        }),
      );
      assert.equal((await message(ws)).Err!.Code, "Unauthorized");
      assert.equal(await ws.closeCode(), 1008);
    } finally {
      await ws.close();
    }
    // A Hello, then a wrong proof: Unauthorized, closed.
    const ws2 = await RawWs.open(port);
    try {
      await ws2.send(encodeFrame({ Rid: 1, Op: "Hello", Req: { Nonce: new Uint8Array(16) } }));
      assert.equal(((await message(ws2)).Rep!.Nonce as Uint8Array).length, 16);
      await ws2.send(encodeFrame({ Rid: 2, Op: "Auth", Req: { Proof: new Uint8Array(32) } }));
      const auth = (await message(ws2)).Err!;
      assert.equal(auth.Code, "Unauthorized");
      assert.match(String(auth.Msg), /wrong proof/);
      assert.equal(await ws2.closeCode(), 1008);
    } finally {
      await ws2.close();
    }
    // The acceptor's state is untouched.
    const ok = new WebSocketAcceptorClient(c.urls[0]!, { secret });
    try {
      assert.equal((await ok.request("Prepare", prepare)).LastBal.N, 0n);
    } finally {
      await ok.close();
    }
  } finally {
    await c.close();
  }
});

Deno.test("one acceptor listed twice (a query added to its URL) counts once: refused", async () => {
  const c = await serveCluster(3);
  try {
    const twice = [c.urls[0]!, `${c.urls[0]!}?a`, `${c.urls[0]!}?b`];
    await refused(connectAcceptors(twice), /reach the same acceptor: each acceptor counts once/);
  } finally {
    await c.close();
  }
});

Deno.test("a list that is not exactly the membership is refused: a partial list cannot split the cluster", async () => {
  const c = await serveCluster(3);
  try {
    for (const part of [[c.urls[0]!], [c.urls[1]!, c.urls[2]!]]) {
      await refused(
        connect(part),
        /says cluster t has 3 members \(0,1,2\), but \d acceptors? (is|are) listed: list exactly the members/,
      );
    }
  } finally {
    await c.close();
  }
});

Deno.test("acceptors of two clusters, or members that disagree on retention, are refused", async () => {
  const a = await serveCluster(3);
  const b = await serveCluster(3);
  const mixed = await serveCluster(3, { keepVersions: (i) => i === 0 ? 2 : null });
  try {
    await refused(
      connect([a.urls[0]!, a.urls[1]!, b.urls[2]!]),
      /belongs to cluster t \(id [0-9a-f]{32}\) and .* to cluster t \(id [0-9a-f]{32}\): list the members of one cluster/,
    );
    await refused(connect(mixed.urls), /members of cluster t disagree: .*keep-versions/);
  } finally {
    await Promise.all([a.close(), b.close(), mixed.close()]);
  }
});

Deno.test("a member that comes back as another instance (a memory acceptor restarted) is refused by every client", async () => {
  const c = await serveCluster(3);
  try {
    const kv = await connect(c.urls, { timeoutMs: 500 });
    assert.equal(await kv.set("k", "v"), 0n);
    // Member 1 comes back empty, as a new instance, on a new port.
    await c.restart(1);
    const urls = c.urls;
    await refused(
      connect(urls),
      /member 1 .*came back without its state|knows member 1 as instance .*: member 1 came back without its state/,
    );
    await kv.close();
    // The old client's own connection to member 1: its URL changed with the
    // port, so the old client keeps using members 0 and 2 only; a client
    // that reconnects to the same URL is refused (transport_test covers it).
  } finally {
    await c.close();
  }
});

Deno.test("a client refuses an acceptor whose instance changed between two of its connections", async () => {
  const c = await serveCluster(1);
  try {
    const client = new WebSocketAcceptorClient(c.urls[0]!, { timeoutMs: 500, minBackoffMs: 1 });
    try {
      await client.ready();
      const port = c.members[0]!.server.port;
      await c.members[0]!.server.close();
      const again = { ...c.members[0]!.identity, instance: randomId() };
      c.members[0]!.server = await serveAcceptor(new PaxosAcceptor(), {
        port,
        identity: again,
        peers: new VouchedPeers(),
      });
      c.members[0]!.identity = again;
      await new Promise((r) => setTimeout(r, 5));
      await assert.rejects(client.ready(), (e: Error) => {
        assert.ok(e instanceof TrustError, String(e));
        assert.match(e.message, /came back as another instance .*: it lost its state/);
        return true;
      });
    } finally {
      await client.close();
    }
  } finally {
    await c.close();
  }
});

Deno.test("an upgrade that carries an Origin header is refused (403) unless the origin is allowed", async () => {
  const allowed = "https://ui.example:8443";
  const server = await serveAcceptor(new PaxosAcceptor(), { allowOrigins: [allowed] });
  try {
    const port = server.port;
    const upgrade = async (origin: string | null) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const head = `GET /paxos HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
          `Sec-WebSocket-Version: 13\r\n${origin === null ? "" : `Origin: ${origin}\r\n`}\r\n`;
        await conn.write(new TextEncoder().encode(head));
        const buf = new Uint8Array(1024);
        const n = await conn.read(buf);
        return new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\r\n")[0];
      } finally {
        conn.close();
      }
    };
    assert.equal(await upgrade(null), "HTTP/1.1 101 Switching Protocols");
    assert.equal(await upgrade(allowed), "HTTP/1.1 101 Switching Protocols");
    assert.equal(await upgrade("https://evil.example"), "HTTP/1.1 403 Forbidden");
  } finally {
    await server.close();
  }
});

Deno.test("an acceptor refuses to listen beyond loopback without a secret", async () => {
  await assert.rejects(
    serveAcceptor(new PaxosAcceptor(), { hostname: "0.0.0.0" }),
    (e: Error) => e instanceof TypeError && /without a shared secret/.test(e.message),
  );
});

Deno.test("wss://: a client that trusts the CA reads and writes; one that does not is refused", async (t) => {
  const why = await opensslUnavailable();
  if (why !== null) {
    t.step({ name: `skipped: ${why}`, ignore: true, fn: () => {} });
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-tls-" });
  try {
    const certs = await makeCerts(dir, ["127.0.0.1"]);
    const secret = await secretOf("the cluster's shared secret");
    const c = await serveCluster(3, { secret, tls: { cert: certs.cert, key: certs.key } });
    try {
      assert.ok(c.urls.every((u) => u.startsWith("wss://127.0.0.1:")));
      const kv = await connect(c.urls, { secret, caCerts: [certs.ca], timeoutMs: 2000 });
      assert.equal(await kv.set("k", "over tls"), 0n);
      assert.deepEqual(await kv.get("k"), { found: true, version: 0n, value: "over tls" });
      await kv.close();
      await refused(
        connect(c.urls, { secret }),
        /TLS certificate is not trusted \(invalid peer certificate: UnknownIssuer\): give the certificate of the CA/,
      );
    } finally {
      await c.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
