// The durable store: what it acknowledged survives reopening, a torn last
// record is dropped, damage elsewhere refuses to open, compaction bounds the
// log, and one process owns a directory.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Acceptor,
  LogCorruptionError,
  LogStore,
  PaxosAcceptor,
  type PaxosInstanceId,
} from "../mod.ts";
import { LOG_FILE } from "../log_store.ts";
import { LineProcess } from "./cli_process.ts";
import { promised, voted } from "./builders.ts";

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
    } finally {
      await again.close();
    }
  });
});

Deno.test("group commit: changes issued together share one sync", async () => {
  await withDir(async (dir) => {
    const store = await LogStore.open(dir);
    try {
      await Promise.all(
        Array.from({ length: 256 }, (_, i) => store.put({ Key: "g", Ver: BigInt(i) }, promised(i))),
      );
      assert.equal(store.stats.changes, 256);
      assert.equal(store.stats.syncs, 1);
      // One at a time, each change needs its own sync.
      for (let i = 0; i < 5; i++) await store.put({ Key: "s", Ver: 0n }, promised(i));
      assert.equal(store.stats.syncs, 6);
    } finally {
      await store.close();
    }
  });
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
  await withDir(async (dir) => {
    const compactAtBytes = 16 * 1024;
    const store = await LogStore.open(dir, { compactAtBytes });
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
    await Deno.writeTextFile(join(dir, LOG_FILE + ".tmp"), "half a snapshot");
    const again = await LogStore.open(dir);
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(
        again.get({ Key: `key${i}`, Ver: 0n }),
        voted(199, { Vi64: BigInt(19900 + i) }),
      );
    }
    await again.close();
    await assert.rejects(Deno.stat(join(dir, LOG_FILE + ".tmp")), Deno.errors.NotFound);
  });
});

Deno.test("writes go on while a compaction writes its snapshot, and none is lost by the switch", async () => {
  await withDir(async (dir) => {
    const events: string[] = [];
    const store = await LogStore.open(dir, {
      compactAtBytes: 64 * 1024,
      onEvent: (m) => events.push(m),
    });
    // A large live state, so that its snapshot takes many writes: 40,000
    // states in one group commit push the log past the threshold.
    await Promise.all(
      Array.from(
        { length: 40_000 },
        (_, i) => store.put({ Key: `big${i}`, Ver: 0n }, voted(1, { Vi64: BigInt(i) })),
      ),
    );
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
      assert.deepEqual(again.get({ Key: "big39999", Ver: 0n }), voted(1, { Vi64: 39999n }));
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
    let checked = 0;
    for (let round = 0; round < 4; round++) {
      const p = new LineProcess(["run", "--allow-read", "--allow-write", writer, dir]);
      let killedDuring = false;
      try {
        // Kill it just after a compaction starts (round 0, 2) or a little
        // later (1, 3: once more writes were acknowledged), mid-load.
        const started = (lines: readonly string[]) =>
          lines.filter((l) => l.startsWith("event compacting")).length;
        const at = await p.waitFor((lines) => started(lines) > round, 60_000);
        if (round % 2 === 1) await p.waitFor((lines) => lines.length > at.length + 50, 10_000);
        killedDuring = !p.lines.slice(at.length).some((l) => l.startsWith("event compacted"));
      } finally {
        await p.stop("SIGKILL");
      }
      // Every acknowledged write is there, or a later one of the same key.
      const acked = new Map<string, number>();
      for (const line of p.lines) {
        if (line === "ready") { for (let i = 0; i < 8192; i++) acked.set(`k${i}`, 0); }
        const m = /^ack (k[0-9]+) ([0-9]+)$/.exec(line);
        if (m) acked.set(m[1]!, Math.max(acked.get(m[1]!) ?? 0, Number(m[2])));
      }
      checked += acked.size;
      const store = await LogStore.open(dir);
      try {
        for (const [key, n] of acked) {
          const got = store.get({ Key: key, Ver: 0n });
          assert.ok(got?.Val !== null && got?.Val !== undefined, `${key} lost`);
          assert.ok(
            "Vi64" in got.Val && got.Val.Vi64 >= BigInt(n),
            `round ${round} (killed ${killedDuring ? "during" : "after"} a compaction): ` +
              `${key} acknowledged ${n}, recovered ${JSON.stringify(got, (_, v) => `${v}`)}`,
          );
        }
      } finally {
        await store.close();
      }
    }
    assert.ok(checked > 8192, `only ${checked} acknowledged writes to check`);
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
