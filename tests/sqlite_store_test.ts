// The SQLite store: it keeps exactly what the memory store keeps (states,
// voted versions, floors, keys in JavaScript's order, the bytes a quota
// counts), while writes are in flight and after reopening; what it
// acknowledged survives a SIGKILL; a damaged state is named, not served;
// one process owns a directory, and a directory keeps its engine.
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { seededRandom } from "../clock.ts";
import { LogStore } from "../log_store.ts";
import { keyBytes, MemoryStore } from "../store.ts";
import {
  blobKey,
  keyBlob,
  SQLITE_FILE,
  SqliteStore,
  StoreCorruptionError,
} from "../sqlite_store.ts";
import { PaxosAcceptor } from "../acceptor.ts";
import type { Acceptor, PaxosInstanceId } from "../types.ts";
import { LineProcess } from "./cli_process.ts";
import { promised, voted } from "./builders.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-sqlite-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const KEYS = ["a", "b", "ab", "", "é", "\u{1F600}", "\uFFFF", "z\0", "Z"];

// Everything a store tells, for the keys and versions touched.
function view(
  store:
    & { get(id: PaxosInstanceId): Acceptor | undefined }
    & Pick<
      SqliteStore,
      "latest" | "keys" | "usedBytes" | "keyCount"
    >,
  touched: Iterable<string>,
): unknown {
  const states: Record<string, Acceptor | undefined> = {};
  for (const t of touched) {
    const [key, ver] = JSON.parse(t) as [string, string];
    states[t] = store.get({ Key: key, Ver: BigInt(ver) });
  }
  return {
    states,
    latest: KEYS.map((k) => store.latest(k)),
    keys: store.keys("", 1000),
    pages: [store.keys("a", 2), store.keys("", 3, "b"), store.keys("b\0", 100)],
    usedBytes: store.usedBytes,
    keyCount: store.keyCount,
  };
}

Deno.test("keys are stored so that their bytes sort as JavaScript sorts the strings", () => {
  const sorted = [...KEYS].sort();
  const byBytes = KEYS.map(keyBlob).sort((x, y) => {
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
    return x.length - y.length;
  }).map(blobKey);
  assert.deepEqual(byBytes, sorted);
  assert.ok(
    sorted.indexOf("\u{1F600}") < sorted.indexOf("\uFFFF"),
    "UTF-16 order, not code points",
  );
});

Deno.test("SqliteStore keeps what a memory store keeps, while writes are in flight and after reopening", async () => {
  await withDir(async (dir) => {
    for (let seed = 1; seed <= 6; seed++) {
      const rnd = seededRandom(seed);
      const pick = (n: number) => Math.floor(rnd.next() * n);
      const path = join(dir, `s${seed}`);
      // Odd seeds keep almost no key cached: reads go to the database.
      const cacheKeys = seed % 2 === 1 ? 2 : 1000;
      let store = await SqliteStore.open(path, { cacheKeys });
      const memory = new MemoryStore();
      const touched = new Set<string>();
      let pending: Promise<void>[] = [];
      for (let step = 0; step < 300; step++) {
        const key = KEYS[pick(KEYS.length)]!;
        const ver = BigInt(pick(8)) - (pick(20) === 0 ? 3n : 0n);
        if (pick(12) === 0) {
          const floor = BigInt(pick(6));
          pending.push(store.compact(key, floor));
          await memory.compact(key, floor);
        } else {
          const s = pick(2) === 0 ? voted(step, { Data: "x".repeat(pick(300)) }) : promised(step);
          pending.push(store.put({ Key: key, Ver: ver }, s));
          memory.put({ Key: key, Ver: ver }, s);
          touched.add(JSON.stringify([key, `${ver}`]));
        }
        // Sometimes wait, so that reads see both committed and pending changes.
        if (pick(10) === 0) {
          assert.deepEqual(
            view(store, touched),
            view(memory, touched),
            `seed ${seed} step ${step}`,
          );
          await Promise.all(pending);
          pending = [];
        }
      }
      assert.deepEqual(view(store, touched), view(memory, touched), `seed ${seed}: in flight`);
      await Promise.all(pending);
      assert.deepEqual(view(store, touched), view(memory, touched), `seed ${seed}: committed`);
      await store.close();
      store = await SqliteStore.open(path, { cacheKeys });
      assert.deepEqual(view(store, touched), view(memory, touched), `seed ${seed}: reopened`);
      await store.close();
    }
  });
});

Deno.test("SqliteStore: put resolves after its commit; changes issued together share one", async () => {
  await withDir(async (dir) => {
    const store = await SqliteStore.open(dir);
    try {
      const puts = Array.from(
        { length: 100 },
        (_, i) => store.put({ Key: `k${i}`, Ver: 0n }, voted(i)),
      );
      // Visible at once (the overlay), durable once resolved.
      assert.deepEqual(store.get({ Key: "k7", Ver: 0n }), voted(7));
      assert.equal(store.stats.commits, 0);
      await Promise.all(puts);
      assert.equal(store.stats.changes, 100);
      assert.ok(store.stats.commits <= 2, `${store.stats.commits} commits for one frame`);
      // What a second connection sees is committed.
      const db = new DatabaseSync(join(dir, SQLITE_FILE), { readOnly: true });
      const n = db.prepare("SELECT count(*) AS n FROM states").get() as { n: number };
      db.close();
      assert.equal(n.n, 100);
    } finally {
      await store.close();
    }
  });
});

Deno.test("SqliteStore: a damaged state is refused naming its key and version, and the store goes on", async () => {
  await withDir(async (dir) => {
    let store = await SqliteStore.open(dir);
    await store.put({ Key: "good", Ver: 0n }, voted(1));
    await store.put({ Key: "bad", Ver: 3n }, voted(2, { Data: "hello" }));
    await store.close();
    const db = new DatabaseSync(join(dir, SQLITE_FILE));
    const row = db.prepare("SELECT st FROM states WHERE k = ?").get(keyBlob("bad")) as {
      st: Uint8Array;
    };
    row.st[row.st.length - 1]! ^= 1;
    db.prepare("UPDATE states SET st = ? WHERE k = ?").run(row.st, keyBlob("bad"));
    db.close();
    store = await SqliteStore.open(dir);
    try {
      assert.throws(() => store.get({ Key: "bad", Ver: 3n }), (e: Error) => {
        assert.ok(e instanceof StoreCorruptionError);
        assert.match(e.message, /checksum mismatch in the state of key "bad" version 3/);
        return true;
      });
      // The acceptor answers that request with an error and serves the rest.
      const acceptor = new PaxosAcceptor(store);
      await assert.rejects(
        acceptor.prepare({
          Id: { Key: "bad", Ver: 3n },
          Bal: { N: 9n, ProposerId: 1n },
          Val: null,
        }),
        /checksum mismatch/,
      );
      assert.deepEqual(store.get({ Key: "good", Ver: 0n }), voted(1));
    } finally {
      await store.close();
    }
  });
});

Deno.test("SqliteStore: one store per directory, and a directory keeps its engine", async () => {
  await withDir(async (dir) => {
    const first = await SqliteStore.open(join(dir, "s"));
    await assert.rejects(SqliteStore.open(join(dir, "s")), (e: Error) => {
      assert.ok(e instanceof Deno.errors.AddrInUse);
      assert.match(e.message, /in use by another acceptor/);
      return true;
    });
    await assert.rejects(LogStore.open(join(dir, "s")), Deno.errors.AddrInUse);
    await first.close();
    await assert.rejects(
      LogStore.open(join(dir, "s")),
      /holds data of the sqlite engine \(acceptor\.sqlite\), not of the log engine/,
    );
    const log = await LogStore.open(join(dir, "l"));
    await log.close();
    await assert.rejects(
      SqliteStore.open(join(dir, "l")),
      /holds data of the log engine \(acceptor\.log\), not of the sqlite engine/,
    );
    const again = await SqliteStore.open(join(dir, "s"));
    await again.close();
  });
});

Deno.test("SqliteStore: the quota counts as in memory, and refuses growth past it", async () => {
  await withDir(async (dir) => {
    const store = await SqliteStore.open(dir);
    try {
      const memory = new MemoryStore();
      const acceptor = new PaxosAcceptor(store, "a", { quotaBytes: 4000 });
      let refused = 0;
      for (let i = 0; i < 40; i++) {
        const id = { Key: `q${i}`, Ver: 0n };
        const val = { Data: "x".repeat(100) };
        try {
          await acceptor.accept({ Id: id, Bal: { N: 1n, ProposerId: 7n }, Val: val });
          memory.put(id, store.get(id)!);
        } catch (e) {
          assert.match((e as Error).message, /quota/i);
          refused++;
        }
      }
      assert.ok(refused > 0, "the quota should have been reached");
      assert.equal(store.usedBytes, memory.usedBytes);
      assert.ok(store.usedBytes <= 4000);
      // Compaction frees what it drops.
      for (const key of store.keys("", 1000)) await store.compact(key, 1n);
      const keys = store.keys("", 1000);
      assert.equal(store.usedBytes, keys.reduce((n, k) => n + keyBytes(k), 0));
    } finally {
      await store.close();
    }
  });
});

Deno.test("SqliteStore: a writer killed with SIGKILL loses no acknowledged write", async () => {
  await withDir(async (dir) => {
    const writer = join(import.meta.dirname!, "sqlite_store_writer.ts");
    let acks = 0;
    const acked = new Map<string, number>();
    for (let round = 0; round < 2; round++) {
      const p = new LineProcess([
        "run",
        "--allow-read",
        "--allow-write",
        writer,
        dir,
        `${round * 1_000_000}`,
      ]);
      try {
        const ready = await p.waitFor((ls) => ls.includes("ready"), 60_000);
        await p.waitFor((ls) => ls.length > ready.length + 300, 30_000);
      } finally {
        await p.stop("SIGKILL");
      }
      for (const line of p.lines) {
        const m = /^ack (k[0-9]+) ([0-9]+)$/.exec(line);
        if (m) {
          acked.set(m[1]!, Math.max(acked.get(m[1]!) ?? 0, Number(m[2])));
          acks++;
        }
      }
      const store = await SqliteStore.open(dir);
      try {
        for (const [key, n] of acked) {
          const got = store.get({ Key: key, Ver: 0n });
          assert.ok(got !== undefined && got.LastBal.N >= BigInt(n), `${key}: ack ${n} lost`);
        }
      } finally {
        await store.close();
      }
    }
    assert.ok(acks >= 600, `only ${acks} acknowledged writes`);
  });
});

// Disk full needs a tiny file system: a tmpfs, which only root can mount.
const canMount = await new Deno.Command("id", { args: ["-u"], stdout: "piped", stderr: "null" })
  .output().then((o) => new TextDecoder().decode(o.stdout).trim() === "0", () => false);

Deno.test({
  name:
    "SqliteStore: disk full rejects the put, is never acknowledged, stops the store, and loses nothing",
  ignore: !canMount,
  async fn() {
    const mnt = await Deno.makeTempDir({ prefix: "paxoskv-sqlite-full-" });
    const mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt],
    }).output();
    assert.ok(mount.success, new TextDecoder().decode(mount.stderr));
    try {
      const store = await SqliteStore.open(mnt, { cacheKeys: 1 });
      const acceptor = new PaxosAcceptor(store);
      const acked: PaxosInstanceId[] = [];
      let refused: Error | null = null;
      for (let i = 0; i < 1000 && refused === null; i++) {
        const id = { Key: `full${i}`, Ver: 0n };
        try {
          await acceptor.accept({
            Id: id,
            Bal: { N: 1n, ProposerId: 7n },
            Val: { Data: "x".repeat(1000) },
          });
          acked.push(id);
        } catch (e) {
          refused = e as Error;
        }
      }
      assert.ok(refused !== null, "the 256 KiB file system should have filled up");
      assert.match(refused.message, /commit failed/);
      assert.match(store.failure ?? "", /failed: commit failed/);
      await assert.rejects(store.put({ Key: "after", Ver: 0n }, voted(1)), /failed earlier/);
      await store.close();
      const again = await SqliteStore.open(mnt);
      try {
        for (const id of acked) assert.ok(again.get(id) !== undefined, `${id.Key} lost`);
        assert.ok(acked.length > 0);
      } finally {
        await again.close();
      }
    } finally {
      await new Deno.Command("umount", { args: ["-l", mnt] }).output();
      await Deno.remove(mnt, { recursive: true });
    }
  },
});
