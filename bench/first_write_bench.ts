// First writes against rewrites (issue 14): in one process, three acceptors
// (memory stores) served over WebSocket on loopback and a KV client
// connected to them, so that the figure holds the whole cost of a write:
// the client's, the codec's, the sockets' and the acceptors'. A round is
// `ops` rewrites (each worker writes its 16 keys in turn, so every write
// but the first of each key is this client's next write of a key it wrote
// last) and `ops` first writes (each a key never written before), at
// `in-flight` writes in flight. Figures are writes per second of the
// process's CPU time: on a machine shared with other work, CPU time varies
// far less than wall time, and with every core busy it is what bounds
// throughput. Every round starts after a full garbage collection. Each run
// is a process of its own; with --baseline REV the code of git revision REV
// (in a temporary worktree) takes turns with ours, round after round. Each
// figure is the median of the runs.
//
//   deno task bench:first [--ops N] [--in-flight K] [--runs R] [--baseline REV] [--json]
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cpuUsage } from "node:process";
import { addWorktree, removeWorktree, root } from "./worktree.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    ops: { type: "string", default: "4096" },
    "in-flight": { type: "string", default: "64" },
    runs: { type: "string", default: "5" },
    baseline: { type: "string" },
    json: { type: "boolean", default: false },
    // Internal: one run, with the code in this folder; prints its figures.
    child: { type: "boolean", default: false },
    code: { type: "string" },
  },
});
const ops = Number(flags.ops);
const inFlight = Number(flags["in-flight"]);
const runs = Number(flags.runs);
if (
  ![ops, inFlight, runs].every((n) => Number.isInteger(n) && n > 0) || ops % inFlight !== 0
) {
  throw new RangeError(
    `bad --ops ${flags.ops}, --in-flight ${flags["in-flight"]} or --runs ${flags.runs} ` +
      `(ops must be a multiple of in-flight)`,
  );
}

interface Figures {
  /** Rewrites and first writes per second of CPU time. */
  readonly rewrites: number;
  readonly firsts: number;
  /** The same per second of wall time (on a shared machine, for reference only). */
  readonly rewritesWall: number;
  readonly firstsWall: number;
}

// `ops` calls of `op`, `inFlight` at a time: per CPU second, and per second.
// Each starts after a full garbage collection (the child runs with
// --expose-gc), so that a round does not pay for the garbage the one before
// left: without it, the rewrites measured right after the warm-up's first
// writes paid for theirs (0.8x of the same rewrites a round later).
async function time(op: (w: number, i: number) => Promise<unknown>): Promise<[number, number]> {
  (globalThis as { gc?: () => void }).gc?.();
  const t0 = cpuUsage();
  const w0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, async (_, w) => {
    for (let i = 0; i < ops / inFlight; i++) await op(w, i);
  }));
  const used = cpuUsage(t0);
  return [ops / ((used.user + used.system) / 1e6), ops / ((performance.now() - w0) / 1000)];
}

async function child(code: string): Promise<Figures> {
  const { connect } = await import(join(code, "kv.ts"));
  const { PaxosAcceptor } = await import(join(code, "acceptor.ts"));
  const { serveAcceptor } = await import(join(code, "server.ts"));
  const servers = await Promise.all(
    [0, 1, 2].map((i) => serveAcceptor(new PaxosAcceptor(undefined, `a${i}`))),
  );
  const kv = await connect(servers.map((s: { url: string }) => s.url));
  try {
    // Warm-up, unrecorded: both kinds of write; the rewrites' keys are
    // written here first, so that every measured rewrite is one.
    await time((w, i) => kv.set(`r-${w}-${i % 16}`, i));
    await time((w, i) => kv.set(`warm-${w}-${i}`, i));
    const [rewrites, rewritesWall] = await time((w, i) => kv.set(`r-${w}-${i % 16}`, i));
    const [firsts, firstsWall] = await time((w, i) => kv.set(`f-${w}-${i}`, i));
    return { rewrites, firsts, rewritesWall, firstsWall };
  } finally {
    await kv.close();
    await Promise.all(servers.map((s: { close(): Promise<void> }) => s.close()));
  }
}

async function spawn(code: string): Promise<Figures> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--v8-flags=--expose-gc",
      import.meta.filename!,
      "--child",
      "--code",
      code,
      "--ops",
      `${ops}`,
      "--in-flight",
      `${inFlight}`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`the run of ${code} failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

if (flags.child) {
  // deno-lint-ignore no-console
  console.log(JSON.stringify(await child(flags.code ?? root)));
} else {
  const variants: { name: string; code: string; runs: Figures[] }[] = [
    { name: "this tree", code: root, runs: [] },
  ];
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-first-write-bench-", dir: root });
  try {
    if (flags.baseline !== undefined) {
      const base = join(dir, "baseline");
      await addWorktree(flags.baseline, base);
      variants.push({ name: `baseline ${flags.baseline}`, code: base, runs: [] });
    }
    for (let r = 0; r < runs; r++) {
      for (let k = 0; k < variants.length; k++) {
        const v = variants[(r + k) % variants.length]!;
        v.runs.push(await spawn(v.code));
      }
    }
  } finally {
    if (flags.baseline !== undefined) await removeWorktree(join(dir, "baseline"));
    await Deno.remove(dir, { recursive: true });
  }
  const rows = variants.map((v) => {
    const ratios = v.runs.map((x) => x.firsts / x.rewrites);
    return {
      variant: v.name,
      rewritesPerCpuSec: Math.round(median(v.runs.map((x) => x.rewrites))),
      firstWritesPerCpuSec: Math.round(median(v.runs.map((x) => x.firsts))),
      // Per run, then the median: the target is >= 1/1.5 = 0.667.
      firstVsRewrite: Number(median(ratios).toFixed(3)),
      firstVsRewriteRange: `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}`,
      firstVsRewriteWall: Number(
        median(v.runs.map((x) => x.firstsWall / x.rewritesWall)).toFixed(3),
      ),
    };
  });
  const machine =
    `${Deno.build.os}/${Deno.build.arch}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`;
  if (flags.json) {
    // deno-lint-ignore no-console
    console.log(JSON.stringify({ machine, ops, inFlight, runs, rows }, null, 2));
  } else {
    // deno-lint-ignore no-console
    console.log(
      `paxoskv first-write benchmark (${machine}; ${ops} rewrites then ${ops} first writes ` +
        `per run at ${inFlight} in flight, per CPU second, median of ${runs} runs per variant)`,
    );
    // deno-lint-ignore no-console
    console.table(rows);
  }
}
