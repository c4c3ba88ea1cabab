// ui/server.ts: what the page server serves (the page, the library's .ts
// files stripped to JavaScript, msgpackr's browser build, the state), what
// it refuses (paths outside what it serves, however spelled; requests that
// change something from another origin). The --ui options of the command
// line, and their Origin rule, are tested in cli_ui_test.ts.
import assert from "node:assert/strict";
import { ListedStore, serveUi, type UiCluster } from "../ui/server.ts";
import { MemoryStore } from "../store.ts";

const DENO_JSON_NAME = "@paxoskv/paxoskv";

/** A cluster of three stores for the page, with stop and start recorded. */
function fakeCluster(): UiCluster & { calls: string[] } {
  const stores = [0, 1, 2].map(() => new ListedStore());
  const up = [true, true, true];
  const calls: string[] = [];
  return {
    urls: [0, 1, 2].map((i) => `ws://127.0.0.1:${40000 + i}/paxos`),
    stores,
    calls,
    running: (i) => up[i]!,
    stopAcceptor: (i) => {
      calls.push(`stop ${i}`);
      up[i] = false;
      return Promise.resolve();
    },
    startAcceptor: (i) => {
      calls.push(`start ${i}`);
      up[i] = true;
      return Promise.resolve();
    },
  };
}

/**
 * Sends one raw HTTP/1.1 request line, exactly as written (fetch would
 * normalise `..` away before sending), and returns the status and body.
 */
async function rawGet(port: number, target: string): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
      ),
    );
    const text = await new Response(conn.readable).text();
    const status = Number(text.match(/^HTTP\/1\.1 ([0-9]{3})/)?.[1]);
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } catch (e) {
    conn.close();
    throw e;
  }
}

Deno.test("ui server: the page, the library as JavaScript, msgpackr and the state", async () => {
  const cluster = fakeCluster();
  cluster.stores[1]!.put({ Key: "k", Ver: 2n }, {
    LastBal: { N: 3n, ProposerId: 7n },
    VBal: { N: 3n, ProposerId: 7n },
    Val: { Data: "v" },
  });
  const ui = await serveUi(() => cluster);
  try {
    assert.match(ui.url, /^http:\/\/127\.0\.0\.1:[0-9]+\/$/);
    assert.equal(ui.url, `${ui.origin}/`);

    const index = await fetch(ui.url);
    assert.equal(index.status, 200);
    assert.match(index.headers.get("content-type")!, /^text\/html/);
    assert.match(await index.text(), /<script type="module" src="\/lib\/ui\/page\.ts">/);

    // The page's module: its types are gone, its imports stay relative.
    const page = await fetch(`${ui.origin}/lib/ui/page.ts`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type")!, /^text\/javascript/);
    const pageJs = await page.text();
    assert.match(pageJs, /from "\.\.\/kv\.ts"/);
    assert.doesNotMatch(pageJs, /interface ClusterState/);
    assert.doesNotMatch(pageJs, /import \{ type /);

    // The codec imports msgpackr from the server's copy, not npm:.
    const codec = await (await fetch(`${ui.origin}/lib/codec.ts`)).text();
    assert.match(codec, /"\/vendor\/msgpackr\/index\.js"/);
    assert.doesNotMatch(codec, /npm:msgpackr/);
    const msgpackr = await fetch(`${ui.origin}/vendor/msgpackr/index.js`);
    assert.equal(msgpackr.status, 200);
    assert.match(msgpackr.headers.get("content-type")!, /^text\/javascript/);
    assert.match(await msgpackr.text(), /export/);

    // A module of the demo's folder too (the page draws its chart).
    const chart = await fetch(`${ui.origin}/lib/demo/chart.ts`);
    assert.equal(chart.status, 200);
    await chart.body?.cancel();

    const state = await (await fetch(`${ui.origin}/api/state`)).json();
    assert.deepEqual(state.urls, cluster.urls);
    assert.deepEqual(state.acceptors.map((a: { running: boolean }) => a.running), [
      true,
      true,
      true,
    ]);
    assert.deepEqual(state.acceptors[0].instances, []);
    assert.deepEqual(state.acceptors[1].instances, [
      { key: "k", ver: 2, lastBal: [3, 7], vBal: [3, 7], val: "v" },
    ]);
  } finally {
    await ui.close();
  }
});

Deno.test("ui server: every module the page imports, transitively, is served as a browser can load it", async () => {
  const ui = await serveUi(() => fakeCluster());
  try {
    const seen = new Set<string>();
    const todo = [`${ui.origin}/lib/ui/page.ts`];
    const foreign: string[] = [];
    while (todo.length > 0) {
      const url = todo.pop()!;
      if (seen.has(url)) continue;
      seen.add(url);
      const r = await fetch(url);
      assert.equal(r.status, 200, `${url}: ${r.status}`);
      assert.match(r.headers.get("content-type")!, /^text\/javascript/, url);
      const js = await r.text();
      for (const m of js.matchAll(/(?:\bfrom|\bimport)\s*\(?\s*(["'])([^"'\n]+)\1/g)) {
        const spec = m[2]!;
        // A browser resolves only URLs and paths: no node:, npm:, jsr: or bare names.
        if (!/^(\.{1,2}\/|\/)/.test(spec)) foreign.push(`${url} imports ${spec}`);
        else todo.push(new URL(spec, url).href);
      }
    }
    assert.deepEqual(foreign, []);
    assert.ok(seen.has(`${ui.origin}/lib/kv.ts`));
    assert.ok(seen.has(`${ui.origin}/vendor/msgpackr/index.js`));
    assert.ok(seen.size > 20, `only ${seen.size} modules`);
  } finally {
    await ui.close();
  }
});

Deno.test("ui server: nothing outside what it serves, however the path is spelled (404)", async () => {
  const ui = await serveUi(() => fakeCluster());
  try {
    const port = Number(new URL(ui.origin).port);
    for (
      const target of [
        "/../deno.json",
        "/../../../../etc/passwd",
        "/lib/../deno.json",
        "/lib/%2e%2e/deno.json",
        "/lib/%2E%2E/%2E%2E/deno.json",
        "/lib/..%2fdeno.json",
        "/lib/..%2Fcli.ts",
        "/lib/ui/..%2f..%2fdeno.json",
        "/lib/%2fetc%2fpasswd",
        "/lib/deno.json",
        "/lib/tests/cli_process.ts",
        "/lib/tests/browser/page.ts",
        "/lib/.git/config",
        "/vendor/msgpackr/../../../deno.json",
        "/vendor/msgpackr/..%2f..%2fdeno.json",
        "/vendor/msgpackr/package.json",
        "/deno.json",
        "/README.md",
        "/ui/server.ts",
        "/nope",
        "/lib/nope.ts",
        "/vendor/msgpackr/nope.js",
      ]
    ) {
      const { status, body } = await rawGet(port, target);
      assert.equal(status, 404, `${target}: status ${status}`);
      assert.ok(!body.includes(DENO_JSON_NAME), `${target} served deno.json`);
      assert.ok(!body.includes("root:"), `${target} served /etc/passwd`);
    }
  } finally {
    await ui.close();
  }
});

Deno.test("ui server: stop and start only from the page's own origin; other methods 405", async () => {
  const cluster = fakeCluster();
  const ui = await serveUi(() => cluster);
  try {
    const post = (path: string, origin?: string) =>
      fetch(`${ui.origin}${path}`, {
        method: "POST",
        ...(origin === undefined ? {} : { headers: { origin } }),
      });
    for (const origin of [undefined, "http://evil.example", "http://127.0.0.1:1", "null"]) {
      const r = await post("/api/acceptor/0/stop", origin);
      assert.equal(r.status, 403, `origin ${origin}`);
      assert.match(await r.text(), /not the page's origin/);
    }
    assert.deepEqual(cluster.calls, []);

    const stopped = await post("/api/acceptor/0/stop", ui.origin);
    assert.equal(stopped.status, 200);
    assert.deepEqual((await stopped.json()).acceptors.map((a: { running: boolean }) => a.running), [
      false,
      true,
      true,
    ]);
    const started = await post("/api/acceptor/0/start", ui.origin);
    assert.equal(started.status, 200);
    await started.body?.cancel();
    assert.deepEqual(cluster.calls, ["stop 0", "start 0"]);

    const none = await post("/api/acceptor/3/stop", ui.origin);
    assert.equal(none.status, 404);
    assert.equal(await none.text(), "no acceptor 3");
    const bad = await post("/api/acceptor/0/kill", ui.origin);
    assert.equal(bad.status, 404);
    await bad.body?.cancel();

    const put = await fetch(ui.url, { method: "PUT", body: "x" });
    assert.equal(put.status, 405);
    await put.body?.cancel();
  } finally {
    await ui.close();
  }
});

Deno.test("ui server: the state is 503 until the acceptors are there", async () => {
  const ui = await serveUi(() => null);
  try {
    const r = await fetch(`${ui.origin}/api/state`);
    assert.equal(r.status, 503);
    assert.equal(await r.text(), "starting");
  } finally {
    await ui.close();
  }
});

Deno.test("ui server: ListedStore lists what the store it wraps held, and what is written since", async () => {
  const inner = new MemoryStore({ maxKeys: 10 });
  const bal = { N: 1n, ProposerId: 1n };
  const voted = (d: string) => ({ LastBal: bal, VBal: bal, Val: { Data: d } });
  for (let v = 0n; v < 12n; v++) inner.put({ Key: "a", Ver: v }, voted(`a${v}`));
  // A promise above the last vote.
  inner.put({ Key: "a", Ver: 12n }, { LastBal: bal, VBal: { N: 0n, ProposerId: 0n }, Val: null });
  inner.put({ Key: "b", Ver: 0n }, voted("b0"));
  const listed = new ListedStore(inner);
  listed.put({ Key: "c", Ver: 5n }, voted("c5"));
  const names = listed.instances(1000).map(({ id }) => `${id.Key}@${id.Ver}`);
  // The last ten versions of a key and the promise above them; then what came since.
  assert.deepEqual(names.sort(), [
    "a@10",
    "a@11",
    "a@12",
    "a@2",
    "a@3",
    "a@4",
    "a@5",
    "a@6",
    "a@7",
    "a@8",
    "a@9",
    "b@0",
    "c@5",
  ]);
  assert.equal(listed.instances(1)[0]!.id.Key, "c", "the latest written first");
  assert.deepEqual(inner.get({ Key: "c", Ver: 5n }), voted("c5"), "written through");
  // The key count and the key limit of the store it wraps, for the acceptor.
  assert.equal(listed.keyCount, 3);
  assert.equal(listed.maxKeys, 10);
  await listed.close();
});

Deno.test("ui server: a page that cannot stop its acceptor says so (405) and tells the page", async () => {
  const store = new ListedStore();
  const ui = await serveUi(() => ({
    urls: ["ws://127.0.0.1:1/paxos"],
    stores: [store],
    running: () => true,
  }));
  try {
    const state = await (await fetch(`${ui.origin}/api/state`)).json();
    assert.equal(state.controls, false);
    const r = await fetch(`${ui.origin}/api/acceptor/0/stop`, {
      method: "POST",
      headers: { origin: ui.origin },
    });
    assert.equal(r.status, 405);
    assert.equal(await r.text(), "the page cannot stop this acceptor: its operator does");
  } finally {
    await ui.close();
  }
});
