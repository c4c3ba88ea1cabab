// `deno task demo`: the slides on three acceptor processes, drawn as a chart;
// the processes are gone when the demo ends, also on Ctrl-C.
import assert from "node:assert/strict";
import { join } from "node:path";
import { LineProcess } from "./cli_process.ts";
import { arrow, layout } from "../demo/chart.ts";

const MAIN = join(import.meta.dirname!, "..", "demo", "main.ts");
const ARGS = ["run", "--allow-net=127.0.0.1", "--allow-run", "--allow-read", MAIN];

// The acceptors' ports, from the demo's "A0: acceptor process PID at URL" lines.
function ports(lines: readonly string[]): number[] {
  return lines.flatMap((l) => {
    const m = l.match(
      /^ {2}A[0-2]: acceptor process [0-9]+ at ws:\/\/127\.0\.0\.1:([0-9]+)\/paxos$/,
    );
    return m ? [Number(m[1])] : [];
  });
}

async function assertClosed(port: number): Promise<void> {
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port }),
    Deno.errors.ConnectionRefused,
    `port ${port} still open: an acceptor process outlived the demo`,
  );
}

async function runDemo(...args: string[]): Promise<{ code: number; lines: string[] }> {
  const p = new LineProcess([...ARGS, ...args]);
  const { status, stderr } = await p.finish(30_000);
  assert.equal(stderr, "", "nothing on stderr");
  return { code: status.code, lines: p.lines };
}

Deno.test("demo slide-33: X's Accept is refused by A1, X re-proposes Y's 200, and 200 is chosen", async () => {
  const { code, lines } = await runDemo("slide-33");
  assert.equal(code, 0, lines.join("\n"));
  const text = lines.join("\n");
  const l = layout(["X", "Y"]);
  const [x, a0, a1, a2] = [l.x, ...l.acceptors] as [number, number, number, number];
  // Step 3: X's Accept at (1,10) reaches A1, which promised Y's (2,11).
  assert.ok(lines.includes(arrow(l, x, a1, "Accept (1,10) 100")), text);
  assert.ok(lines.includes(arrow(l, a1, x, "refused (2,11)")), text);
  assert.ok(lines.includes(arrow(l, a0, x, "ok, voted")), text);
  // Step 4: Y's Accept to A2 comes from the right.
  assert.ok(lines.includes(arrow(l, l.y!, a2, "Accept (2,11) 200")), text);
  // Step 5: X's Prepare at (3,10) finds Y's vote on A1.
  assert.ok(lines.includes(arrow(l, a1, x, "voted 200@(2,11)")), text);
  const steps = lines.filter((s) => /^-- [0-9]\. /.test(s)).map((s) => s.replace(/ -+$/, ""));
  assert.deepEqual(steps, [
    "-- 1. X: Phase1 at ballot (1,10) on A0, A1",
    "-- 2. Y: Phase1 at ballot (2,11) on A1, A2",
    "-- 3. X: Phase2 of 100 at ballot (1,10) on A0, A1",
    "-- 4. Y: Phase2 of 200 at ballot (2,11) on A1, A2",
    "-- 5. X: Phase1 at ballot (3,10) on A0, A1",
    "-- 6. X: Phase2 of 200 at ballot (3,10) on A0, A1",
  ]);
  // The acceptors' states after the last step, under their columns.
  const [last, vote] = lines.slice(-4, -2);
  assert.match(last!, /last \(3,10\)\*? +last \(3,10\)\*? +last \(2,11\)/);
  assert.match(vote!, /vote 200@\(3,10\) +vote 200@\(3,10\) +vote 200@\(2,11\)/);
  assert.match(lines.at(-1)!, /^chosen: i@0 = 200 /);
  const open = ports(lines);
  assert.equal(open.length, 3);
  for (const port of open) await assertClosed(port);
});

Deno.test("demo slide-32: one proposer, A0 and A1 vote 10, A2 untouched", async () => {
  const { code, lines } = await runDemo("slide-32");
  assert.equal(code, 0, lines.join("\n"));
  const [, vote] = lines.slice(-4, -2);
  assert.match(vote!, /vote 10@\(0,10\) +vote 10@\(0,10\) +vote -$/);
  assert.equal(lines.at(-1), "chosen: i@0 = 10");
  for (const port of ports(lines)) await assertClosed(port);
});

Deno.test("demo --keep: the acceptors run until Ctrl-C, then are stopped", async () => {
  const p = new LineProcess([...ARGS, "slide-32", "--keep"]);
  let done = false;
  try {
    const lines = await p.waitFor((ls) => ls.includes("Ctrl-C stops them."), 20_000);
    const open = ports(lines);
    assert.equal(open.length, 3);
    // Still serving: a connection is accepted.
    (await Deno.connect({ hostname: "127.0.0.1", port: open[0]! })).close();
    const { status, stderr } = await p.stop("SIGINT");
    done = true;
    assert.equal(status.code, 0, stderr);
    for (const port of open) await assertClosed(port);
  } finally {
    if (!done) await p.stop("SIGKILL");
  }
});

Deno.test("demo: a wrong slide name is a usage error", async () => {
  const p = new LineProcess([...ARGS, "slide-99"]);
  const { status, stderr } = await p.finish(20_000);
  assert.equal(status.code, 2);
  assert.match(stderr, /usage: deno task demo slide-32\|slide-33/);
});
