/**
 * A child process for the SQLite store's crash test: it writes to a
 * {@link SqliteStore} in `Deno.args[0]` without end, and prints `ack KEY N`
 * once the write of ballot N to KEY is durable (N from `Deno.args[1]` up).
 * Each key is written by one loop, with growing N.
 *
 *   deno run --allow-read --allow-write tests/sqlite_store_writer.ts DIR BASE
 *
 * @module
 */
import { SqliteStore } from "../sqlite_store.ts";

const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
const base = Number(Deno.args[1] ?? "0");
const store = await SqliteStore.open(Deno.args[0]!);
const state = (n: number) => {
  const bal = { N: BigInt(n), ProposerId: 1n };
  return { LastBal: bal, Val: { Vi64: BigInt(n) }, VBal: bal };
};
out("ready");
await Promise.all(Array.from({ length: 64 }, async (_, slot) => {
  for (let n = base + 1;; n++) {
    const key = `k${slot * 64 + (n % 64)}`;
    await store.put({ Key: key, Ver: 0n }, state(n));
    out(`ack ${key} ${n}`);
  }
}));
