// kv.watch: each key's chosen versions in order, without gaps or duplicates,
// from a version on, through a minority of acceptors down and back; deletes;
// compacted versions; abort ends it with nothing left running.
import assert from "node:assert/strict";
import { CompactedError, Kv, type KvWatchEvent, PaxosAcceptor, type Proposer } from "../mod.ts";
import { cluster } from "./builders.ts";
import { within } from "./waits.ts";

// The acceptors, each of which can be taken down (refusing connections) and
// brought back.
function switchable(acceptors: readonly PaxosAcceptor[]) {
  const down = new Set<number>();
  const fail = () => Promise.reject(new Deno.errors.ConnectionRefused("down"));
  const clients = acceptors.map((a, i) => ({
    name: a.name,
    latest: (k: string) => down.has(i) ? fail() : a.latest(k),
    request: (op: "Prepare" | "Accept", r: Proposer) => down.has(i) ? fail() : a.request(op, r),
    keys: (from: string, limit: number, end?: string) =>
      down.has(i) ? fail() : a.keys(from, limit, end),
  }));
  return { clients, down };
}

// Reads `n` events from a watch, then stops it.
async function take(it: AsyncIterableIterator<KvWatchEvent>, n: number): Promise<KvWatchEvent[]> {
  const out: KvWatchEvent[] = [];
  if (n === 0) return out;
  for await (const e of it) {
    out.push(e);
    if (out.length === n) break;
  }
  return out;
}

const short = (e: KvWatchEvent) =>
  `${e.key}@${e.version}=${e.deleted ? "deleted" : String(e.value)}`;

Deno.test("kv watch: versions in order from a version on, deletions as deletions", async () => {
  const kv = new Kv(cluster());
  await kv.set("k", "a");
  await kv.set("k", 1n);
  const got = take(kv.watch(["k"], { fromVersion: 1n }), 3);
  await kv.delete("k");
  await kv.set("k", { x: [1, 2] });
  assert.deepEqual(await within(got, "3 events"), [
    { key: "k", version: 1n, deleted: false, value: 1n },
    { key: "k", version: 2n, deleted: true },
    { key: "k", version: 3n, deleted: false, value: { x: [1, 2] } },
  ]);
});

Deno.test("kv watch: by default, only versions chosen after it starts", async () => {
  const acceptors = cluster();
  const kv = new Kv(acceptors);
  await kv.set("k", "old");
  // The watch's client: tells when the watch asks for k's Latest the second
  // time, its first poll, after it found where k was when it started.
  let asked = 0;
  let polling: () => void;
  const polled = new Promise<void>((r) => polling = r);
  const clients = acceptors.map((a) => ({
    name: a.name,
    latest: (k: string) => {
      if (k === "k" && ++asked === 2 * acceptors.length) polling();
      return a.latest(k);
    },
    request: (op: "Prepare" | "Accept", r: Proposer) => a.request(op, r),
  }));
  const it = new Kv(clients).watch(["k", "other"]);
  const first = it.next();
  await within(polled, "the first poll");
  await kv.set("k", "new");
  assert.equal(short((await within(first, "an event")).value!), "k@1=new");
  await it.return();
});

Deno.test("kv watch: concurrent writers on several keys: every version once, each key in order", async () => {
  const acceptors = cluster();
  const kv = new Kv(acceptors);
  const keys = ["w/a", "w/b"];
  const perWriter = 15;
  const writers = 4;
  const watch = take(kv.watch(keys, { fromVersion: 0n }), writers * perWriter);
  // Each writer its own client over the same acceptors.
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      const mine = new Kv(acceptors);
      for (let i = 0; i < perWriter; i++) await mine.set(keys[(w + i) % keys.length]!, `${w}-${i}`);
    }),
  );
  const events = await within(watch, "every version");
  for (const k of keys) {
    const versions = events.filter((e) => e.key === k).map((e) => e.version);
    assert.deepEqual(versions, Array.from({ length: versions.length }, (_, i) => BigInt(i)));
  }
  // Every value written is delivered, once.
  const values = events.map((e) => e.deleted ? "" : String(e.value)).sort();
  const written = Array.from(
    { length: writers * perWriter },
    (_, n) => `${Math.floor(n / perWriter)}-${n % perWriter}`,
  ).sort();
  assert.deepEqual(values, written);
});

Deno.test("kv watch: goes on while one acceptor is down, and after it is back", async () => {
  const { clients, down } = switchable(cluster());
  const writer = new Kv(clients, { deadlineMs: 500 });
  const kv = new Kv(clients, { deadlineMs: 500 });
  const it = kv.watch(["k"], { fromVersion: 0n, maxPollMs: 20 });
  const next = async (what: string) => short((await within(it.next(), what)).value!);
  await writer.set("k", "v0");
  assert.equal(await next("v0"), "k@0=v0");
  down.add(1); // v1 chosen by a0 and a2
  await writer.set("k", "v1");
  assert.equal(await next("v1"), "k@1=v1");
  down.clear();
  down.add(0); // v2 and v3 chosen by a1 and a2, while the watch waits
  await writer.set("k", "v2");
  assert.equal(await next("v2"), "k@2=v2");
  await writer.set("k", "v3");
  // Through a0 (which missed v2 and v3) and a2: v3 is the top vote, on
  // one of the two only; the watch settles it with a Paxos read.
  down.clear();
  down.add(1);
  assert.equal(await next("v3"), "k@3=v3");
  // Two of three down: no majority, the watch waits (and does not end)...
  down.add(2);
  const waiting = it.next();
  let settled = false;
  waiting.then(() => settled = true, () => settled = true);
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(settled, false);
  // ...and goes on once a majority is back.
  down.clear();
  await writer.set("k", "v4");
  assert.equal(short((await within(waiting, "v4")).value!), "k@4=v4");
  await it.return();
});

Deno.test("kv watch: a key that fails halfway through a poll costs no other key a version", async () => {
  const acceptors = cluster();
  const kv = new Kv(acceptors);
  await kv.set("a", "a0");
  await kv.set("b", "b0");
  // b's Latest fails on two acceptors for the first poll: no quorum for b.
  let failB = true;
  const clients = acceptors.map((a, i) => ({
    name: a.name,
    latest: (k: string) =>
      failB && k === "b" && i > 0 ? Promise.reject(new Error("b down")) : a.latest(k),
    request: (op: "Prepare" | "Accept", r: Proposer) => a.request(op, r),
  }));
  const it = new Kv(clients).watch(["a", "b"], { fromVersion: 0n, maxPollMs: 5 });
  const first = await within(it.next(), "a's version");
  failB = false;
  const second = await within(it.next(), "b's version");
  assert.deepEqual([first.value, second.value].map((e) => short(e!)), ["a@0=a0", "b@0=b0"]);
  await it.return();
});

Deno.test("kv watch: a prefix finds keys written after it started", async () => {
  const kv = new Kv(cluster());
  await kv.set("p/old", 1);
  await kv.set("q", 1);
  const got = take(kv.watch({ prefix: "p/" }, { fromVersion: 0n, relistMs: 10, maxPollMs: 10 }), 4);
  await kv.set("p/old", 2);
  await kv.set("q", 2);
  await kv.set("p/new", 3);
  await kv.delete("p/new");
  const events = (await within(got, "4 events")).map(short);
  // Each key's versions in order; the two keys' interleaving is free.
  assert.deepEqual(events.filter((e) => e.startsWith("p/old")), ["p/old@0=1", "p/old@1=2"]);
  assert.deepEqual(events.filter((e) => e.startsWith("p/new")), ["p/new@0=3", "p/new@1=deleted"]);
});

Deno.test("kv watch: a version the acceptors no longer keep ends it with CompactedError", async () => {
  const kv = new Kv(cluster(3, 2));
  for (let i = 0; i < 6; i++) await kv.set("k", i);
  const err = await within(take(kv.watch(["k"], { fromVersion: 0n }), 1), "the error").then(
    () => assert.fail("delivered a compacted version"),
    (e) => e,
  );
  assert.ok(err instanceof CompactedError, String(err));
  assert.equal(err.version, 0n);
  assert.match(err.message, /"k"@0 is compacted/);
});

Deno.test("kv watch: abort ends a waiting watch; bad arguments are refused", async () => {
  const kv = new Kv(cluster());
  const stop = new AbortController();
  const it = kv.watch(["quiet"], { signal: stop.signal, maxPollMs: 50 });
  const next = it.next();
  await new Promise((r) => setTimeout(r, 30));
  stop.abort();
  assert.deepEqual(await within(next, "the end", 1000), { done: true, value: undefined });
  assert.deepEqual(await it.next(), { done: true, value: undefined });
  assert.throws(() => kv.watch([]), /at least one key/);
  assert.throws(() => kv.watch(["k"], { fromVersion: -1n }), /fromVersion must be a version/);
  assert.throws(() => kv.watch(["k"], { maxPollMs: 0 }), /maxPollMs must be a positive/);
});

Deno.test("kv watch: next() called again before the last one resolved answers in turn", async () => {
  const kv = new Kv(cluster());
  const n = 10;
  for (let i = 0; i < n / 2; i++) await kv.set("k", i);
  const it = kv.watch(["k"], { fromVersion: 0n, maxPollMs: 5 });
  const calls = Array.from({ length: n }, () => it.next());
  for (let i = n / 2; i < n; i++) await kv.set("k", i);
  const got = await within(Promise.all(calls), `${n} events`);
  assert.deepEqual(
    got.map((r) => short(r.value!)),
    Array.from({ length: n }, (_, i) => `k@${i}=${i}`),
  );
  await it.return();
});
