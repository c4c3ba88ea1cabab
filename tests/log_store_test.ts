// The durable store: what it acknowledged survives reopening, a torn last
// record is dropped, damage elsewhere refuses to open, compaction bounds the
// log, and one process owns a directory.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Acceptor,
  GE,
  LogCorruptionError,
  LogStore,
  PaxosAcceptor,
  type PaxosInstanceId,
} from "../mod.ts";
import { DEFAULT_MAX_KEYS, HINT_FILE, LOG_FILE } from "../log_store.ts";
import { MAX_KEYS_IN_MEMORY } from "../store.ts";
import { LineProcess } from "./cli_process.ts";
import { inst, promised, voted } from "./builders.ts";
import { MemFs } from "./mem_fs.ts";
import { settle } from "./waits.ts";

function snapshot(store: LogStore): Map<string, Acceptor> {
  const m = new Map<string, Acceptor>();
  for (const [id, state] of store.entries()) m.set(`${id.Key}@${id.Ver}`, state);
  return m;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-log-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// Writes `n` changes one at a time, one record each; returns the file size
// after each record and the expected state after each.
async function writeSequential(
  dir: string,
  n: number,
): Promise<{ ends: number[]; states: Map<string, Acceptor>[] }> {
  const store = await LogStore.open(dir, { compactAtBytes: 1 << 30 });
  const ends = [store.stats.logBytes];
  const states = [snapshot(store)];
  for (let i = 0; i < n; i++) {
    const id: PaxosInstanceId = { Key: `k${i % 4}`, Ver: BigInt(i % 3) };
    await store.put(id, i % 2 ? promised(i) : voted(i, { Data: `v${i}` }));
    ends.push(store.stats.logBytes);
    states.push(snapshot(store));
  }
  await store.close();
  return { ends, states };
}

async function copyLog(from: string, to: string, edit: (b: Uint8Array) => Uint8Array) {
  await Deno.mkdir(to, { recursive: true });
  await Deno.writeFile(join(to, LOG_FILE), edit(await Deno.readFile(join(from, LOG_FILE))));
}

// Where the tests on the file system in memory (tests/mem_fs.ts: it holds,
// fails or counts any operation, and cuts the power, keeping only what was
// synced) keep their store.

const MEM_DIR = "/mem/acceptor-0";
const MEM_LOG = join(MEM_DIR, LOG_FILE);

/**
 * Cuts the power, reopens the store on what survived, and returns the
 * acknowledged changes it lost: each `[id, state]` must be there, or a later
 * state of the same instance (a higher VBal).
 */
async function lostByPowerCut(
  fs: MemFs,
  acked: readonly (readonly [PaxosInstanceId, Acceptor])[],
): Promise<string[]> {
  fs.powerCut();
  fs.before = () => {};
  const store = await LogStore.open(MEM_DIR, { fs, compactAtBytes: 1 << 30 });
  try {
    return acked.flatMap(([id, state]) => {
      const got = store.get(id);
      return got !== undefined && GE(got.VBal, state.VBal) ? [] : [`${id.Key}@${id.Ver}`];
    });
  } finally {
    await store.close();
  }
}

Deno.test("acknowledged states of every kind survive a reopen", async () => {
  await withDir(async (dir) => {
    const ids: PaxosInstanceId[] = [
      { Key: "a", Ver: 0n },
      { Key: "a", Ver: 2n ** 63n - 1n },
      { Key: "ключ", Ver: 1n },
      { Key: "", Ver: 0n },
    ];
    const states: Acceptor[] = [
      voted(1, { Vi64: -(2n ** 63n) }),
      voted(2, { Data: new Uint8Array([1, 2, 3]) }),
      voted(3, { Data: { a: [1, "x", null, 2n ** 60n] } }),
      promised(2 ** 40),
    ];
    const store = await LogStore.open(dir);
    await Promise.all(ids.map((id, i) => store.put(id, states[i]!)));
    await store.close();

    const again = await LogStore.open(dir);
    try {
      ids.forEach((id, i) => {
        const got = again.get(id)!;
        const want = states[i]!;
        if (want.Val !== null && "Data" in want.Val && want.Val.Data instanceof Uint8Array) {
          assert.deepEqual(new Uint8Array((got.Val as { Data: Uint8Array }).Data), want.Val.Data);
          assert.deepEqual(got.LastBal, want.LastBal);
        } else {
          assert.deepEqual(got, want);
        }
      });
      assert.equal(again.get({ Key: "a", Ver: 1n }), undefined);
      // The keys held come back in order after the reopen.
      assert.deepEqual(again.keys("", 10), ["", "a", "ключ"]);
    } finally {
      await again.close();
    }
  });
});

Deno.test("group commit: changes issued together share one sync", async () => {
  // Syncs counted where they happen: at the file system.
  const fs = new MemFs();
  const store = await LogStore.open(MEM_DIR, { fs });
  try {
    const syncs = () => fs.count("syncData", MEM_LOG);
    const before = syncs();
    await Promise.all(
      Array.from({ length: 256 }, (_, i) => store.put({ Key: "g", Ver: BigInt(i) }, promised(i))),
    );
    assert.equal(store.stats.changes, 256);
    assert.equal(syncs() - before, 1);
    // One at a time, each change needs its own sync.
    for (let i = 0; i < 5; i++) await store.put({ Key: "s", Ver: 0n }, promised(i));
    assert.equal(syncs() - before, 6);
    assert.equal(store.stats.syncs, 6);
    // Each commit writes where the one before ended: only the first after
    // the open moves the file's position (a seek per commit cost CPU).
    assert.equal(fs.count("seek", MEM_LOG), 1);
  } finally {
    await store.close();
  }
});

Deno.test("a log cut at any offset recovers exactly the records before the cut", async () => {
  await withDir(async (dir) => {
    const { ends, states } = await writeSequential(join(dir, "src"), 12);
    const total = ends.at(-1)!;
    for (let cut = 0; cut <= total; cut++) {
      const to = join(dir, `cut${cut}`);
      await copyLog(join(dir, "src"), to, (b) => b.subarray(0, cut));
      const store = await LogStore.open(to);
      try {
        // The last whole record before the cut.
        let k = 0;
        while (k + 1 < ends.length && ends[k + 1]! <= cut) k++;
        assert.deepEqual(snapshot(store), states[k], `cut at ${cut}`);
        // The torn part was cut off the file, so appends follow good records.
        assert.equal((await Deno.stat(join(to, LOG_FILE))).size, Math.max(ends[k]!, 8));
        await store.put({ Key: "after", Ver: 0n }, promised(1));
      } finally {
        await store.close();
      }
      const reopened = await LogStore.open(to);
      assert.deepEqual(reopened.get({ Key: "after", Ver: 0n }), promised(1));
      await reopened.close();
      await Deno.remove(to, { recursive: true });
    }
  });
});

Deno.test("a flipped byte before the last record refuses to open, naming file and offset", async () => {
  await withDir(async (dir) => {
    const { ends, states } = await writeSequential(join(dir, "src"), 6);
    const total = ends.at(-1)!;
    for (let at = 0; at < total; at++) {
      const to = join(dir, `flip${at}`);
      await copyLog(join(dir, "src"), to, (b) => {
        const c = b.slice();
        c[at] = c[at]! ^ 0x5a;
        return c;
      });
      const record = ends.findLastIndex((e) => e <= at); // index of the damaged record's start
      // The length checks itself, so only damage to the last record's payload
      // (or its payload checksum) can be a torn write.
      const isLast = record === ends.length - 2 && at >= ends[record]! + 8;
      try {
        const store = await LogStore.open(to);
        // Only damage in the last record is a torn write; it is dropped.
        assert.ok(isLast, `flip at ${at} should have refused to open`);
        assert.deepEqual(snapshot(store), states[ends.length - 2]);
        await store.close();
      } catch (e) {
        if (!(e instanceof LogCorruptionError)) throw e;
        assert.ok(!isLast, `flip at ${at} in the last record should be dropped: ${e.message}`);
        assert.equal(e.path, join(to, LOG_FILE));
        assert.equal(e.offset, at < 8 ? 0 : ends[record]!);
        assert.match(e.message, new RegExp(`offset ${e.offset}`));
      }
      await Deno.remove(to, { recursive: true });
    }
  });
});

Deno.test("a zero-filled tail (file extended, data lost) is dropped", async () => {
  await withDir(async (dir) => {
    const { states } = await writeSequential(join(dir, "src"), 5);
    const to = join(dir, "zeros");
    await copyLog(join(dir, "src"), to, (b) => {
      const c = new Uint8Array(b.length + 4096);
      c.set(b);
      return c;
    });
    const store = await LogStore.open(to);
    assert.deepEqual(snapshot(store), states.at(-1));
    await store.close();
  });
});

Deno.test("compaction keeps the log proportional to the live state and loses nothing", async () => {
  // On the file system in memory, every operation takes no time, so how
  // commits and background snapshots interleave does not depend on how fast
  // the disk syncs: the run is the same every time.
  const fs = new MemFs();
  const compactAtBytes = 16 * 1024;
  const store = await LogStore.open(MEM_DIR, { fs, compactAtBytes });
  let maxBytes = 0;
  for (let round = 0; round < 200; round++) {
    await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) =>
          store.put({ Key: `key${i}`, Ver: 0n }, voted(round, { Vi64: BigInt(round * 100 + i) })),
      ),
    );
    maxBytes = Math.max(maxBytes, store.stats.logBytes);
  }
  assert.ok(store.stats.compactions > 5, `compactions: ${store.stats.compactions}`);
  // 20 live states; the log never grows far past the compaction threshold
  // (writes go on while a snapshot is written, so it may pass it a little).
  assert.ok(maxBytes < 2 * compactAtBytes, `log reached ${maxBytes} bytes`);
  await store.close();
  // A leftover temporary file from an interrupted compaction is ignored.
  const tmp = await fs.open(MEM_LOG + ".tmp", { create: true });
  await tmp.write(new TextEncoder().encode("half a snapshot"));
  tmp.close();
  const again = await LogStore.open(MEM_DIR, { fs });
  for (let i = 0; i < 20; i++) {
    assert.deepEqual(
      again.get({ Key: `key${i}`, Ver: 0n }),
      voted(199, { Vi64: BigInt(19900 + i) }),
    );
  }
  await again.close();
  assert.equal(fs.written(MEM_LOG + ".tmp"), undefined, "the leftover was removed");
});

Deno.test("a log of new states only is not compacted: a compaction waits until a quarter of the log is overwritten", async () => {
  const fs = new MemFs();
  const compactAtBytes = 8 * 1024;
  const store = await LogStore.open(MEM_DIR, { fs, compactAtBytes });
  // Every state new (as when a store fills with keys written once): the log
  // grows to many times the threshold and every byte of it is live.
  const fill = (round: number) =>
    Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        store.put({ Key: `key${i}`, Ver: 0n }, voted(round, { Vi64: BigInt(i) }))),
    );
  await fill(0);
  const filled = store.stats.logBytes;
  assert.ok(filled > 4 * compactAtBytes, `the log holds ${filled} bytes`);
  assert.equal(store.stats.compactions, 0);
  // Each state once more: half of the log is then overwritten.
  await fill(1);
  for (let i = 0; i < 1000 && store.stats.compactions === 0; i++) await settle();
  assert.ok(store.stats.compactions >= 1);
  await store.close();
  const again = await LogStore.open(MEM_DIR, { fs });
  assert.deepEqual(again.get({ Key: "key999", Ver: 0n }), voted(1, { Vi64: 999n }));
  assert.ok(again.stats.logBytes < 1.5 * filled, `${again.stats.logBytes} bytes after`);
  await again.close();
});

Deno.test("writes go on while a compaction writes its snapshot, and none is lost by the switch", async () => {
  await withDir(async (dir) => {
    const events: string[] = [];
    const store = await LogStore.open(dir, {
      compactAtBytes: 64 * 1024,
      onEvent: (m) => events.push(m),
    });
    // A large live state, so that its snapshot takes many writes: 40,000
    // states in one group commit, then each once more, so that half the log
    // is overwritten states, past the threshold.
    for (const round of [1, 3]) {
      await Promise.all(
        Array.from(
          { length: 40_000 },
          (_, i) => store.put({ Key: `big${i}`, Ver: 0n }, voted(round, { Vi64: BigInt(i) })),
        ),
      );
    }
    // The compaction has started. Writes made now are acknowledged before it
    // is switched in: they do not wait for the snapshot.
    let during = 0;
    let n = 0;
    for (; n < 10_000 && store.stats.compactions === 0; n++) {
      await store.put({ Key: `during${n}`, Ver: 0n }, voted(2, { Vi64: BigInt(n) }));
      if (store.stats.compactions === 0) during++;
    }
    assert.equal(store.stats.compactions, 1, "the compaction finished");
    assert.ok(during > 0, "no write was acknowledged while the snapshot was written");
    assert.match(events.join("\n"), /compacted .* writes going on meanwhile/);
    await store.close();

    // Every write, before and during the compaction, is in the new log.
    const again = await LogStore.open(dir);
    try {
      assert.deepEqual(again.get({ Key: "big39999", Ver: 0n }), voted(3, { Vi64: 39999n }));
      for (let i = 0; i < n; i++) {
        assert.deepEqual(
          again.get({ Key: `during${i}`, Ver: 0n }),
          voted(2, { Vi64: BigInt(i) }),
          `during${i}`,
        );
      }
    } finally {
      await again.close();
    }
  });
});

Deno.test("a process killed at any point of a compaction loses no acknowledged write", async () => {
  await withDir(async (dir) => {
    const writer = join(import.meta.dirname!, "log_store_writer.ts");
    // Each round kills the writer (on the same directory) at one step of its
    // first compaction, held there for good: while the snapshot is written
    // (writes going on), before the rename, before the directory sync; and
    // last, after a whole compaction.
    const rounds = ["snapshot", "rename", "dir-sync", "none"] as const;
    let acks = 0;
    for (const hold of rounds) {
      const p = new LineProcess(["run", "--allow-read", "--allow-write", writer, dir, hold]);
      try {
        if (hold === "none") {
          const done = await p.waitFor(
            (ls) => ls.some((l) => l.startsWith("event compacted")),
            60_000,
          );
          await p.waitFor((ls) => ls.length > done.length + 50, 10_000);
        } else {
          const held = await p.waitFor((ls) => ls.includes(`held ${hold}`), 60_000);
          // Writes go on while the snapshot is written; the switch holds them.
          if (hold === "snapshot") await p.waitFor((ls) => ls.length > held.length + 50, 10_000);
        }
      } finally {
        await p.stop("SIGKILL");
      }
      const compacted = p.lines.some((l) => l.startsWith("event compacted"));
      assert.equal(compacted, hold === "none", `${hold}: killed during its compaction`);
      assert.ok(p.lines.some((l) => l.startsWith("event compacting")), `${hold}: no compaction`);
      // Every acknowledged write is there, or a later one of the same key.
      const acked = new Map<string, number>();
      for (const line of p.lines) {
        if (line === "ready") { for (let i = 0; i < 8192; i++) acked.set(`k${i}`, 0); }
        const m = /^ack (k[0-9]+) ([0-9]+)$/.exec(line);
        if (m) {
          acked.set(m[1]!, Math.max(acked.get(m[1]!) ?? 0, Number(m[2])));
          acks++;
        }
      }
      assert.equal(acked.size, 8192, `${hold}: the writer was not ready`);
      const store = await LogStore.open(dir);
      try {
        for (const [key, n] of acked) {
          const got = store.get({ Key: key, Ver: 0n });
          assert.ok(got?.Val !== null && got?.Val !== undefined, `${key} lost`);
          assert.ok(
            "Vi64" in got.Val && got.Val.Vi64 >= BigInt(n),
            `killed at ${hold}: ${key} acknowledged ${n}, recovered ` +
              JSON.stringify(got, (_, v) => `${v}`),
          );
        }
      } finally {
        await store.close();
      }
    }
    // Beyond the seeding: at least the 50 writes waited for in two rounds.
    assert.ok(acks >= 100, `only ${acks} acknowledged writes after the seeding`);
  });
});

Deno.test("one store per directory: a second open fails until the first closes", async () => {
  await withDir(async (dir) => {
    const first = await LogStore.open(dir);
    await assert.rejects(LogStore.open(dir), (e: Error) => {
      assert.ok(e instanceof Deno.errors.AddrInUse);
      assert.match(e.message, /in use by another acceptor/);
      return true;
    });
    await first.close();
    const second = await LogStore.open(dir);
    await second.close();
  });
});

Deno.test("a log that is not ours refuses to open", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(join(dir, LOG_FILE), "this is not a paxoskv log at all");
    await assert.rejects(LogStore.open(dir), (e: Error) => {
      assert.ok(e instanceof LogCorruptionError);
      assert.equal(e.offset, 0);
      return true;
    });
  });
});

// Disk full needs a tiny file system: a tmpfs, which only root can mount.
const canMount = await new Deno.Command("id", { args: ["-u"], stdout: "piped", stderr: "null" })
  .output().then((o) => new TextDecoder().decode(o.stdout).trim() === "0", () => false);

Deno.test({
  name: "disk full: the change is refused, never acknowledged, and nothing is lost",
  ignore: !canMount,
  async fn() {
    const mnt = await Deno.makeTempDir({ prefix: "paxoskv-full-" });
    const mount = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt],
    }).output();
    assert.ok(mount.success, new TextDecoder().decode(mount.stderr));
    try {
      const store = await LogStore.open(mnt, { compactAtBytes: 1 << 30 });
      const acceptor = new PaxosAcceptor(store);
      const acked: [PaxosInstanceId, Acceptor][] = [];
      let refused = 0;
      for (let i = 0; i < 400 && refused < 3; i++) {
        const id = { Key: `full${i}`, Ver: 0n };
        const val = { Data: "x".repeat(1000) };
        try {
          await acceptor.accept({ Id: id, Bal: { N: 1n, ProposerId: 7n }, Val: val });
          acked.push([id, voted(1, val)]);
        } catch (e) {
          assert.match((e as Error).message, /cannot write .*acceptor\.log/);
          refused++;
          // The refused change is not visible either.
          assert.equal(store.get(id), undefined);
        }
      }
      assert.ok(refused > 0, "the 64 KiB file system should have filled up");
      await store.close();
      const again = await LogStore.open(mnt);
      assert.equal([...again.entries()].length, acked.length);
      for (const [id, state] of acked) {
        assert.deepEqual(again.get(id)!.VBal, state.VBal, `${id.Key} lost`);
      }
      await again.close();
    } finally {
      // Lazy, so that a failure above is reported rather than a busy mount.
      await new Deno.Command("umount", { args: ["-l", mnt] }).output();
      await Deno.remove(mnt, { recursive: true });
    }
  },
});

Deno.test("latest voted version and compaction floors survive reopening and log compaction", async () => {
  await withDir(async (dir) => {
    const store = await LogStore.open(dir, { compactAtBytes: 4096 });
    for (let v = 0; v < 50; v++) {
      await store.put({ Key: "f", Ver: BigInt(v) }, voted(1, { Vi64: 1n }));
    }
    await store.put({ Key: "f", Ver: 60n }, promised(2)); // a promise is not a vote
    assert.deepEqual(store.latest("f"), { Ver: 49n, Floor: 0n });
    await store.compact("f", 45n);
    assert.deepEqual(store.latest("f"), { Ver: 49n, Floor: 45n });
    assert.equal(store.get({ Key: "f", Ver: 44n }), undefined);
    assert.ok(store.get({ Key: "f", Ver: 45n }) !== undefined);
    // A lower floor changes nothing; writes below the floor are ignored.
    await store.compact("f", 10n);
    await store.put({ Key: "f", Ver: 3n }, voted(9, { Vi64: 3n }));
    assert.equal(store.get({ Key: "f", Ver: 3n }), undefined);
    // Fill the log past its compaction threshold, so the floor must survive a snapshot too.
    for (let i = 0; i < 100; i++) await store.put({ Key: "g", Ver: 0n }, promised(i));
    assert.ok(store.stats.compactions > 0);
    await store.close();

    const again = await LogStore.open(dir);
    try {
      assert.deepEqual(again.latest("f"), { Ver: 49n, Floor: 45n });
      assert.deepEqual(again.latest("never"), { Ver: -1n, Floor: 0n });
      assert.equal(again.get({ Key: "f", Ver: 44n }), undefined);
      assert.deepEqual(again.get({ Key: "f", Ver: 49n }), voted(1, { Vi64: 1n }));
      assert.deepEqual(again.get({ Key: "f", Ver: 60n }), promised(2));
    } finally {
      await again.close();
    }
  });
});

// ---------------------------------------------------------------------------
// The sync rules and power cuts, on the file system in memory.

Deno.test("put() stays pending until its sync resolves", async () => {
  const fs = new MemFs();
  const store = await LogStore.open(MEM_DIR, { fs });
  const sync = fs.hold("syncData", LOG_FILE);
  const put = store.put(inst("k"), voted(1));
  let resolved = false;
  put.then(() => resolved = true);
  const first = await Promise.race([put.then(() => "put"), sync.arrived.then(() => "sync")]);
  assert.equal(first, "sync", "put() resolved before its change was synced");
  await settle();
  assert.equal(resolved, false, "put() resolved while its sync was held");
  assert.equal(store.get(inst("k")), undefined, "the change is visible before it is durable");
  sync.release();
  await put;
  assert.deepEqual(store.get(inst("k")), voted(1));
  assert.equal(store.stats.syncs, 1);
  assert.deepEqual(await lostByPowerCut(fs, [[inst("k"), voted(1)]]), []);
});

Deno.test("a failed sync rejects the put and cuts its write off the log; the store goes on", async () => {
  const fs = new MemFs();
  const store = await LogStore.open(MEM_DIR, { fs });
  await store.put(inst("a"), voted(1));
  const before = fs.written(MEM_LOG)!.length;
  fs.failNext("syncData", LOG_FILE, new Error("EIO (test)"));
  await assert.rejects(
    store.put(inst("b"), voted(2)),
    /cannot write .*acceptor\.log: EIO \(test\)/,
  );
  assert.equal(store.get(inst("b")), undefined, "a refused change is not visible");
  assert.equal(fs.written(MEM_LOG)!.length, before, "the unsynced record was cut off");
  assert.equal(fs.count("truncate", LOG_FILE), 1);
  // Later writes follow the good records: the position is found again.
  const seeks = fs.count("seek", LOG_FILE);
  await store.put(inst("c"), voted(3));
  assert.equal(fs.count("seek", LOG_FILE), seeks + 1);
  assert.deepEqual(await lostByPowerCut(fs, [[inst("a"), voted(1)], [inst("c"), voted(3)]]), []);
  const again = await LogStore.open(MEM_DIR, { fs });
  assert.equal(again.get(inst("b")), undefined);
  await again.close();
});

Deno.test("a failed truncate after a failed sync stops every later write", async () => {
  const fs = new MemFs();
  const store = await LogStore.open(MEM_DIR, { fs });
  await store.put(inst("a"), voted(1));
  fs.failNext("syncData", LOG_FILE, new Error("EIO (test)"));
  fs.failNext("truncate", LOG_FILE, new Error("EROFS (test)"));
  await assert.rejects(store.put(inst("b"), voted(2)), /cannot write .*: EIO \(test\)/);
  const writes = fs.count("write", LOG_FILE);
  // The log may end in garbage now: nothing more is written after it.
  await assert.rejects(store.put(inst("c"), voted(3)), /failed earlier: EROFS \(test\)/);
  await assert.rejects(store.compact("a", 1n), /failed earlier/);
  assert.equal(fs.count("write", LOG_FILE), writes, "a write reached the log after the failure");
  await store.close();
  assert.deepEqual(await lostByPowerCut(fs, [[inst("a"), voted(1)]]), []);
});

Deno.test("a directory sync that fails after a compaction stops acknowledgements", async () => {
  const fs = new MemFs();
  const events: string[] = [];
  const store = await LogStore.open(MEM_DIR, {
    fs,
    compactAtBytes: 1024,
    onEvent: (m) => events.push(m),
  });
  fs.failNext("syncDir", MEM_DIR, new Error("EIO on the directory (test)"));
  const acked: [PaxosInstanceId, Acceptor][] = [];
  let refused: Error | null = null;
  for (let i = 1; i <= 500 && refused === null; i++) {
    try {
      await store.put(inst(`k${i % 8}`), voted(i));
      acked.push([inst(`k${i % 8}`), voted(i)]);
    } catch (e) {
      refused = e as Error;
    }
  }
  assert.ok(refused !== null, "writes went on being acknowledged after the failed directory sync");
  assert.match(refused.message, /cannot sync \/mem\/acceptor-0 after compaction: .*EIO/);
  assert.equal(fs.count("rename", ".tmp"), 1, "the failure came after the rename");
  assert.equal(store.stats.compactions, 0);
  assert.ok(!events.some((e) => e.startsWith("compacted")), events.join("\n"));
  await assert.rejects(store.put(inst("late"), voted(999)), /failed earlier/);
  // The rename is not durable: a power cut brings back the old log, which
  // holds every acknowledged change.
  assert.ok(acked.length > 8, `only ${acked.length} changes acknowledged`);
  assert.deepEqual(await lostByPowerCut(fs, acked), []);
});

// Concurrent puts on a few instances, each instance's ballots growing, with
// compactions on the way; `acked` gets every change once its put resolved.
async function powerCutWorkload(
  store: LogStore,
  acked: [PaxosInstanceId, Acceptor][],
): Promise<void> {
  for (let round = 1; round <= 30; round++) {
    await Promise.all(Array.from({ length: 1 + round % 4 }, (_, j) => {
      const id = inst(`k${(round + j) % 6}`, j % 2);
      const state = voted(round * 10 + j);
      return store.put(id, state).then(() => void acked.push([id, state]));
    }));
  }
}

const POWER_CUT_OPTIONS = { compactAtBytes: 512 };

Deno.test("a power cut before any file operation loses no acknowledged change", async () => {
  // The whole run once, to know its operations.
  const whole = new MemFs();
  const all = await LogStore.open(MEM_DIR, { fs: whole, ...POWER_CUT_OPTIONS });
  await powerCutWorkload(all, []);
  assert.ok(all.stats.compactions >= 2, `only ${all.stats.compactions} compactions`);
  await all.close();
  const total = whole.ops.length;
  assert.ok(whole.count("rename") >= 2 && whole.count("syncDir") >= 3);

  // Then the power is cut just before each operation in turn: the one cut
  // never happens, nor anything after it.
  let checked = 0;
  for (let at = 1; at <= total; at++) {
    const fs = new MemFs();
    const acked: [PaxosInstanceId, Acceptor][] = [];
    let cut!: () => void;
    const cutDone = new Promise<void>((resolve) => cut = resolve);
    let n = 0;
    fs.before = () => {
      if (++n === at) {
        fs.powerCut(); // the operation asked for, and everything after it, never happen
        cut();
      }
    };
    const run = (async () => {
      const store = await LogStore.open(MEM_DIR, { fs, ...POWER_CUT_OPTIONS });
      await powerCutWorkload(store, acked);
      await store.close();
    })();
    await Promise.race([run, cutDone]);
    await settle(); // acknowledgements already on their way are counted too
    const lost = await lostByPowerCut(fs, acked);
    assert.deepEqual(lost, [], `power cut before operation ${at} of ${total}`);
    checked += acked.length;
  }
  // Cuts fall all along the run: on average a third of its 75 changes or
  // more were acknowledged before them.
  assert.ok(checked > total * 25, `only ${checked} acknowledged changes checked in ${total} cuts`);
});

Deno.test("the power-cut check sees the loss when a store acknowledges before the disk has it", async () => {
  // A disk whose sync returns without making anything durable: every
  // acknowledgement is then an early reply, and the power cut must show it.
  const fs = new MemFs();
  fs.lies = true;
  const store = await LogStore.open(MEM_DIR, { fs, ...POWER_CUT_OPTIONS });
  const acked: [PaxosInstanceId, Acceptor][] = [];
  await powerCutWorkload(store, acked);
  await store.close();
  const lost = await lostByPowerCut(fs, acked);
  assert.ok(lost.length > 0, "a power cut after early replies lost nothing");
});

Deno.test("states are read back from the log once the cache lets them go, also after compactions moved them", async () => {
  const fs = new MemFs();
  const opts = { fs, compactAtBytes: 8 * 1024, cacheStates: 1 };
  const store = await LogStore.open(MEM_DIR, opts);
  const want = new Map<string, Acceptor>();
  const check = (s: LogStore, where: string) => {
    for (const [k, v] of want) {
      const [key, ver] = k.split("@");
      assert.deepEqual(s.get({ Key: key!, Ver: BigInt(ver!) }), v, `${k} ${where}`);
    }
    assert.deepEqual(snapshot(s), want, where);
  };
  // Some states written once at the start, moved by every compaction after.
  for (let i = 0; i < 10; i++) {
    const v = voted(i, { Data: `early${i}` });
    await store.put(inst(`early${i}`), v);
    want.set(`early${i}@0`, v);
  }
  for (let round = 0; round < 60; round++) {
    await Promise.all(Array.from({ length: 12 }, (_, i) => {
      const id = inst(`hot${i}`, round % 3);
      const v = i % 2 ? promised(round) : voted(round, { Data: "x".repeat(round) });
      // (Versions below a floor are not kept.)
      if (!(i === 0 && round > 30 && round % 3 < 2)) want.set(`hot${i}@${round % 3}`, v);
      return store.put(id, v);
    }));
    if (round === 30) {
      await store.compact("hot0", 2n);
      for (const k of [...want.keys()]) if (/^hot0@[01]$/.test(k)) want.delete(k);
    }
    check(store, `after round ${round}`);
  }
  assert.ok(store.stats.compactions >= 3, `${store.stats.compactions} compactions`);
  await store.close();
  const again = await LogStore.open(MEM_DIR, opts);
  check(again, "after reopening");
  assert.deepEqual(again.latest("hot0"), { Ver: 2n, Floor: 2n });
  await again.close();
});

// Everything a store tells of its states, to compare two opens.
function everything(s: LogStore) {
  return {
    states: snapshot(s),
    latest: ["a", "b", "c", "k0", "k1", "k2", "k3"].map((k) => s.latest(k)),
    usedBytes: s.usedBytes,
    size: s.size,
  };
}

Deno.test("the index saved at close opens the store without reading the log; one that does not fit is not used", async () => {
  const fs = new MemFs();
  const HINT = join(MEM_DIR, HINT_FILE);
  const opts = { fs, cacheStates: 1 };
  let store = await LogStore.open(MEM_DIR, opts);
  for (let i = 0; i < 40; i++) {
    await store.put(inst(`k${i % 4}`, i % 5), i % 3 ? promised(i) : voted(i, { Data: `v${i}` }));
  }
  await store.compact("k1", 3n);
  await store.close();
  const saved = fs.written(HINT)!;
  assert.ok(saved.length > 0, "an index was saved");

  // Read with the index: the same as read from the log alone.
  store = await LogStore.open(MEM_DIR, opts);
  const hinted = everything(store);
  assert.match(store.stats.opened, /index read, and 0 bytes of log after it/);
  assert.equal(fs.written(HINT), undefined, "the index is removed once used");
  // Changes made after it: the next open reads them from the log, after a
  // saved index that covers the log as it was.
  await store.put(inst("c", 7), voted(99, { Data: "after" }));
  await store.compact("k2", 4n);
  const later = everything(store);
  // (A store that stops without closing leaves no newer index.)
  const reopen = async () => {
    const f = await fs.open(HINT, { create: true });
    await f.write(saved);
    f.close();
  };
  await store.close();
  await fs.remove(HINT);
  await reopen();
  store = await LogStore.open(MEM_DIR, opts);
  assert.match(store.stats.opened, /index read, and \d+ bytes of log after it/);
  assert.doesNotMatch(store.stats.opened, / 0 bytes of log after it/);
  assert.deepEqual(everything(store), later);
  await store.close();
  await fs.remove(HINT);
  store = await LogStore.open(MEM_DIR, opts);
  assert.deepEqual(everything(store), later, "the same read from the log alone");
  assert.notDeepEqual(hinted, later);
  await store.close();

  // A damaged index, or one cut short, is not used.
  for (
    const [what, edit] of [
      ["damaged", (b: Uint8Array) => (b[40]! ^= 1, b)],
      ["cut short", (b: Uint8Array) => b.subarray(0, b.length - 9)],
    ] as const
  ) {
    await fs.remove(HINT).catch(() => {});
    const f = await fs.open(HINT, { create: true });
    await f.write(edit(saved.slice()));
    f.close();
    store = await LogStore.open(MEM_DIR, opts);
    assert.match(store.stats.opened, /not used, the log is read instead/, what);
    assert.deepEqual(everything(store), later, what);
    await store.close();
  }
  // The saved index of a log since compacted is not used either.
  await fs.remove(HINT);
  const f = await fs.open(HINT, { create: true });
  await f.write(saved);
  f.close();
  const compacting = await LogStore.open(MEM_DIR, { ...opts, compactAtBytes: 1 });
  for (let i = 1; i <= 500 && compacting.stats.compactions === 0; i++) {
    await compacting.put(inst("a"), promised(i));
    await settle();
  }
  assert.ok(compacting.stats.compactions >= 1);
  const a = compacting.get(inst("a"));
  await compacting.close();
  await fs.remove(HINT);
  const g = await fs.open(HINT, { create: true });
  await g.write(saved);
  g.close();
  store = await LogStore.open(MEM_DIR, opts);
  assert.match(
    store.stats.opened,
    /not used, the log is read instead \(it (is of another log|covers)/,
  );
  assert.deepEqual(store.get(inst("a")), a);
  await store.close();
});

Deno.test("the key limit: a change that would add a key past maxKeys is refused before anything is written; a log holding more opens", async () => {
  await withDir(async (dir) => {
    let store = await LogStore.open(dir);
    assert.equal(store.maxKeys, DEFAULT_MAX_KEYS);
    await store.close();
    for (const bad of [0, 1.5, MAX_KEYS_IN_MEMORY + 1]) {
      await assert.rejects(
        LogStore.open(dir, { maxKeys: bad }),
        (e: Error) => e instanceof RangeError && e.message.includes(`got ${bad}`),
      );
    }
    store = await LogStore.open(dir, { maxKeys: 3 });
    // Four new keys in one tick: the fourth is refused at once, counting
    // the three whose writes are under way.
    const puts = ["a", "b", "c"].map((k) => store.put(inst(k), promised(1)));
    await assert.rejects(store.put(inst("x"), promised(1)), /"x": the store holds 3 keys/);
    await Promise.all(puts);
    const { logBytes, changes } = store.stats;
    await assert.rejects(
      store.put(inst("d"), voted(2)),
      (e: Error) =>
        e instanceof RangeError && /"d": the store holds 3 keys and may hold 3/.test(e.message),
    );
    await assert.rejects(store.compact("e", 5n), RangeError);
    assert.equal(store.stats.logBytes, logBytes, "nothing appended");
    assert.equal(store.stats.changes, changes);
    assert.equal(store.keyCount, 3);
    // The keys held take any change.
    await store.put(inst("a", 1), voted(3));
    await store.compact("b", 1n);
    await store.close();
    // Read back from the log alone, with a lower limit: it opens, and still
    // refuses a new key.
    await Deno.remove(join(dir, HINT_FILE));
    store = await LogStore.open(dir, { maxKeys: 1 });
    try {
      assert.equal(store.keyCount, 3);
      assert.deepEqual(store.get(inst("a", 1)), voted(3));
      await store.put(inst("c", 1), voted(4));
      await assert.rejects(store.put(inst("d"), voted(2)), /holds 3 keys and may hold 1/);
    } finally {
      await store.close();
    }
  });
});
