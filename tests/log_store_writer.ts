/**
 * A child process for the log store's crash tests: it writes to a
 * {@link LogStore} in `Deno.args[0]` without end, and prints `ack KEY N` once
 * the write of N to KEY is durable, and `event ...` for the store's events.
 * Each key is written by one loop, with growing N.
 *
 *   deno run --allow-read --allow-write tests/log_store_writer.ts DIR
 *
 * @module
 */
import { LogStore } from "../log_store.ts";

const out = (line: string) => Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
const store = await LogStore.open(Deno.args[0]!, {
  compactAtBytes: 64 * 1024,
  onEvent: (m) => out(`event ${m}`),
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
