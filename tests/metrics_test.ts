/**
 * Tests of metrics.ts (histograms, the Prometheus text) and of the pages an
 * acceptor serves on its port (server_metrics.ts): `/healthz` and
 * `/metrics`, whose counts go up with the requests served.
 */
import assert from "node:assert/strict";
import { SqliteStore } from "../sqlite_store.ts";
import { DEFAULT_MAX_KEYS, LogStore } from "../log_store.ts";
import { Histogram, PromText } from "../metrics.ts";
import { MemoryStore } from "../store.ts";
import { bal, env, inst, req } from "./builders.ts";
import { makeCerts, opensslUnavailable } from "./certs.ts";
import { PaxosAcceptor } from "../acceptor.ts";
import { serveAcceptor } from "../server.ts";
import { Secret } from "../handshake.ts";
import { acceptorStatus } from "../cli/status_command.ts";
import { err, rep, withClients, withServer } from "./raw_client.ts";

/** The value of the sample `line` (name and labels as printed), or undefined. */
function sample(text: string, line: string): number | undefined {
  for (const l of text.split("\n")) {
    if (l.startsWith(line + " ")) return Number(l.slice(line.length + 1));
  }
  return undefined;
}

/** Checks the page's shape: every sample's metric has one HELP and one TYPE before it. */
function assertExposition(text: string): void {
  assert.ok(text.endsWith("\n"));
  const typed = new Map<string, string>();
  const helped = new Set<string>();
  for (const l of text.trimEnd().split("\n")) {
    const head = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(l);
    if (head !== null) {
      if (head[1] === "HELP") helped.add(head[2]!);
      else {
        assert.ok(!typed.has(head[2]!), `two TYPE lines for ${head[2]}`);
        typed.set(head[2]!, head[3]!);
      }
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(l);
    assert.ok(m !== null, `not a sample line: ${JSON.stringify(l)}`);
    assert.ok(!Number.isNaN(Number(m[3])), l);
    const base = m[1]!.replace(/_(bucket|sum|count)$/, "");
    const name = typed.has(m[1]!) ? m[1]! : base;
    assert.ok(typed.has(name) && helped.has(name), `no HELP/TYPE for ${m[1]}`);
  }
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: r.status, body: await r.text() };
}

Deno.test("a histogram counts into its buckets; the text has HELP, TYPE, buckets, sum, count", () => {
  const h = new Histogram([0.001, 0.01]);
  for (const v of [0.0005, 0.001, 0.005, 3]) h.observe(v);
  assert.deepEqual(h.cumulative(), [2, 3, 4]);
  assert.equal(h.count, 4);
  const t = new PromText();
  t.histogram("x_seconds", "A histogram.", [[{ op: 'a"b' }, h]]);
  t.metric("y_total", "counter", "A counter.", [[{}, 7]]);
  const text = t.text();
  assertExposition(text);
  assert.equal(sample(text, 'x_seconds_bucket{op="a\\"b",le="0.001"}'), 2);
  assert.equal(sample(text, 'x_seconds_bucket{op="a\\"b",le="+Inf"}'), 4);
  assert.equal(sample(text, 'x_seconds_count{op="a\\"b"}'), 4);
  assert.equal(sample(text, "y_total"), 7);
  assert.throws(() => new Histogram([2, 1]), /ascending/);
});

Deno.test("/healthz answers 200 with JSON; /metrics counts requests by op and outcome", async () => {
  class FailingOnce extends MemoryStore {
    fail = false;
    override put(...a: Parameters<MemoryStore["put"]>) {
      return this.fail ? Promise.reject(new Error("disk full (test)")) : super.put(...a);
    }
  }
  const store = new FailingOnce();
  await withServer(async (server) => {
    const h = await get(server.port, "/healthz");
    assert.equal(h.status, 200);
    const health = JSON.parse(h.body);
    assert.equal(health.status, "ok");
    assert.equal(health.keys, 0);
    assert.equal(health.logBytes, null);

    const before = await get(server.port, "/metrics");
    assert.equal(before.status, 200);
    assertExposition(before.body);
    assert.equal(sample(before.body, 'paxoskv_requests_total{op="Accept",outcome="ok"}'), 0);

    await withClients(server.url, 1, async ([c]) => {
      const id = inst("metrics");
      rep((await c!.call([env("Prepare", req(id, bal(1, 1)))]))[0]);
      rep((await c!.call([env("Accept", req(id, bal(1, 1), { Data: "v" }))]))[0]);
      rep((await c!.call([env("Accept", req(inst("metrics", 1), bal(1, 1), { Data: "w" }))]))[0]);
      store.fail = true;
      err((await c!.call([env("Prepare", req(inst("other"), bal(1, 1)))]))[0], "StorageError");
      const text = (await get(server.port, "/metrics")).body;
      assertExposition(text);
      assert.equal(sample(text, 'paxoskv_requests_total{op="Prepare",outcome="ok"}'), 1);
      assert.equal(sample(text, 'paxoskv_requests_total{op="Accept",outcome="ok"}'), 2);
      assert.equal(
        sample(text, 'paxoskv_requests_total{op="Prepare",outcome="StorageError"}'),
        1,
      );
      assert.equal(sample(text, 'paxoskv_request_duration_seconds_count{op="Accept"}'), 2);
      assert.equal(
        sample(text, 'paxoskv_request_duration_seconds_bucket{op="Accept",le="+Inf"}'),
        2,
      );
      assert.equal(sample(text, "paxoskv_frames_total"), 4);
      assert.equal(sample(text, "paxoskv_keys"), 1);
      // The raw client's connection, and the one asking for the page.
      assert.ok(sample(text, "paxoskv_connections")! >= 1);
      assert.equal(sample(text, "paxoskv_queue_depth"), 0);
      assert.equal(sample(text, "paxoskv_up"), 1);
    });
    // Other paths and methods are still 404.
    assert.equal((await get(server.port, "/metricsx")).status, 404);
    const post = await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: "POST" });
    await post.body?.cancel();
    assert.equal(post.status, 404);
  }, store);
});

// One frame of 8 promises on different keys: one group commit or a few.
async function promiseEight(url: string): Promise<void> {
  await withClients(url, 1, async ([c]) => {
    const envs = Array.from(
      { length: 8 },
      (_, i) => env("Prepare", req(inst(`g${i}`), bal(1, 1))),
    );
    for (const r of await c!.call(envs)) rep(r);
  });
}

// Once its store is closed, the acceptor says it is down: /healthz 503
// naming why, and paxoskv_up 0.
async function assertDownOnceClosed(port: number, store: { close(): Promise<void> }) {
  await store.close();
  const down = await get(port, "/healthz");
  assert.equal(down.status, 503);
  const health = JSON.parse(down.body);
  assert.equal(health.status, "unavailable");
  assert.match(health.reason, /closed/);
  assert.equal(sample((await get(port, "/metrics")).body, "paxoskv_up"), 0);
}

Deno.test("on a log store: syncs, group commits and log bytes; /healthz is 503 once the store is closed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-metrics-" });
  const store = await LogStore.open(dir);
  try {
    await withServer(async (server) => {
      await promiseEight(server.url);
      const text = (await get(server.port, "/metrics")).body;
      assertExposition(text);
      const syncs = sample(text, "paxoskv_syncs_total")!;
      assert.ok(syncs >= 1 && syncs <= 8, `syncs ${syncs}`);
      assert.equal(sample(text, "paxoskv_group_commit_size_count"), syncs);
      assert.equal(sample(text, "paxoskv_group_commit_size_sum"), 8);
      assert.equal(sample(text, "paxoskv_changes_total"), 8);
      assert.equal(sample(text, "paxoskv_log_bytes"), store.stats.logBytes);
      assert.equal(sample(text, "paxoskv_keys"), 8);
      assert.equal(sample(text, "paxoskv_max_keys"), DEFAULT_MAX_KEYS);
      const ok = JSON.parse((await get(server.port, "/healthz")).body);
      assert.equal(ok.logBytes, store.stats.logBytes);
      assert.equal(ok.keys, 8);

      await assertDownOnceClosed(server.port, store);
    }, store);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("on a sqlite store: commits, changes and disk bytes; /healthz is 503 once the store is closed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-metrics-" });
  const store = await SqliteStore.open(dir);
  try {
    await withServer(async (server) => {
      await promiseEight(server.url);
      const text = (await get(server.port, "/metrics")).body;
      assertExposition(text);
      const commits = sample(text, "paxoskv_syncs_total")!;
      assert.ok(commits >= 1 && commits <= 8, `commits ${commits}`);
      assert.equal(sample(text, "paxoskv_changes_total"), 8);
      assert.ok(sample(text, "paxoskv_log_bytes")! > 0);
      assert.equal(sample(text, "paxoskv_keys"), 8);
      // Its keys are on disk: no key limit of its own.
      assert.equal(sample(text, "paxoskv_max_keys"), undefined);
      const ok = JSON.parse((await get(server.port, "/healthz")).body);
      assert.equal(ok.keys, 8);
      assert.ok(ok.logBytes > 0);

      await assertDownOnceClosed(server.port, store);
    }, store);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("over wss:// with a secret: /healthz answers without it, to a client that trusts the CA", async (t) => {
  const why = await opensslUnavailable();
  if (why !== null) {
    t.step({ name: `skipped: ${why}`, ignore: true, fn: () => {} });
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-tls-" });
  try {
    const certs = await makeCerts(dir, ["127.0.0.1"]);
    const secret = await Secret.import(new TextEncoder().encode("the cluster's shared secret"));
    const server = await serveAcceptor(new PaxosAcceptor(), {
      secret,
      tls: { cert: certs.cert, key: certs.key },
    });
    try {
      assert.ok(server.url.startsWith("wss://"));
      const ok = await acceptorStatus(server.url, 5000, [certs.ca]);
      assert.equal(ok.reachable, true, ok.error);
      assert.equal(ok.health?.status, "ok");
      assert.ok(ok.rttMs! > 0);
      // Without the CA, the certificate is not trusted: unreachable, and why.
      const untrusted = await acceptorStatus(server.url, 5000, undefined);
      assert.equal(untrusted.reachable, false);
      assert.match(untrusted.error!, /certificate|UnknownIssuer/i);
    } finally {
      await server.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
