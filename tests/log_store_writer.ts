/**
 * A child process for the log store's crash tests: it writes to a
 * {@link LogStore} in `Deno.args[0]` without end, and prints `ack KEY N` once
 * the write of N to KEY is durable, and `event ...` for the store's events.
 * Each key is written by one loop, with growing N.
 *
 *   deno run --allow-read --allow-write tests/log_store_writer.ts DIR [HOLD]
 *
 * HOLD stops the first compaction at one of its steps, for good, so that the
 * test can kill the process right there: `snapshot` (the snapshot's sync:
 * writes go on meanwhile), `rename` (the new log complete and synced, not yet
 * renamed over the old one), `dir-sync` (renamed, the directory not synced
 * yet). It prints `held STEP` when it gets there. Without HOLD, compactions
 * run to their end.
 *
 * @module
 */
import { denoFs, type LogFile, type LogFs, LogStore } from "../log_store.ts";

const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
const hold = Deno.args[1] ?? "none";
if (!["none", "snapshot", "rename", "dir-sync"].includes(hold)) {
  throw new TypeError(`unknown hold point ${hold}: snapshot, rename or dir-sync`);
}
const never = (step: string): Promise<never> => {
  out(`held ${step}`);
  return new Promise(() => {});
};

let renamed = false;
const fs: LogFs = {
  ...denoFs,
  async open(path, opts) {
    const f = await denoFs.open(path, opts);
    if (hold !== "snapshot" || !path.endsWith(".tmp")) return f;
    const snapshot: LogFile = {
      write: (b) => f.write(b),
      seek: (offset, whence) => f.seek(offset, whence),
      truncate: (size) => f.truncate(size),
      syncData: () => never("snapshot"),
      close: () => f.close(),
    };
    return snapshot;
  },
  rename(from, to) {
    if (hold === "rename") return never("rename");
    renamed = true;
    return denoFs.rename(from, to);
  },
  syncDir(dir) {
    return hold === "dir-sync" && renamed ? never("dir-sync") : denoFs.syncDir(dir);
  },
};

const store = await LogStore.open(Deno.args[0]!, {
  compactAtBytes: 64 * 1024,
  onEvent: (m) => out(`event ${m}`),
  fs,
});
const state = (n: number) => {
  const bal = { N: BigInt(n), ProposerId: 1n };
  return { LastBal: bal, Val: { Vi64: BigInt(n) }, VBal: bal };
};
// A live state of 8,192 keys, so that a snapshot takes a while.
await Promise.all(
  Array.from({ length: 8192 }, (_, i) => store.put({ Key: `k${i}`, Ver: 0n }, state(0))),
);
out("ready");
await Promise.all(Array.from({ length: 16 }, async (_, slot) => {
  for (let n = 1;; n++) {
    const key = `k${slot * 512 + (n % 512)}`;
    await store.put({ Key: key, Ver: 0n }, state(n));
    out(`ack ${key} ${n}`);
  }
}));
