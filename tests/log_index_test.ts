// The log store's index: what it counts of the states it points to.
import assert from "node:assert/strict";
import { LogIndex } from "../log_index.ts";
import { keyBytes } from "../store.ts";

// The parts of a saved index as one buffer, as the store reads it back.
function saved(index: LogIndex): Uint8Array {
  const parts = index.saveParts()!;
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

Deno.test("LogIndex: stateBytes counts the live states' bytes in the log, also after a load", () => {
  const index = new LogIndex();
  index.set("a", 0n, true, 8, 40);
  index.set("a", 1n, true, 48, 50);
  index.set("bé", 0n, false, 98, 30);
  assert.equal(index.stateBytes, 120);
  assert.equal(index.usedBytes, 120 + keyBytes("a") + keyBytes("bé"));
  // A state written again: its old bytes are no longer live.
  index.set("a", 1n, true, 128, 45);
  assert.equal(index.stateBytes, 115);
  // Compacted away: version 0 of "a" is no longer live either.
  index.compact("a", 1n);
  assert.equal(index.stateBytes, 75);
  const again = LogIndex.load(saved(index));
  assert.equal(again.stateBytes, 75);
  assert.equal(again.usedBytes, index.usedBytes);
  // A key added after the load is counted as before it.
  again.set("c", 0n, true, 173, 10);
  assert.equal(again.stateBytes, 85);
});
