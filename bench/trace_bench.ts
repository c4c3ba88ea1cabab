// What the tracer costs (issue 17): KV writes and reads on three in-process
// acceptors (memory stores, no network, so that the proposer's own work is
// all there is to measure), through a KV without a tracer, through one with
// a tracer that only counts the events, and, with --baseline REV, through
// the KV of git revision REV (checked out in a temporary worktree), which
// has no tracer seam at all. Figures are per second of CPU time. Each variant runs in a process of its own (so
// that what the JIT learns from one does not slow or speed another), after
// a warm-up; the variants take turns, round after round, in a rotating
// order; each figure is the median of the rounds, and each is given as a
// ratio to the untraced KV's.
//
//   deno task bench:trace [--ops N] [--rounds R] [--baseline REV] [--json]
import { join } from "node:path";
import { parseArgs } from "node:util";
import { cpuUsage } from "node:process";
import { addWorktree, removeWorktree, root } from "./worktree.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    ops: { type: "string", default: "3000" },
    rounds: { type: "string", default: "7" },
    baseline: { type: "string" },
    json: { type: "boolean", default: false },
    // Internal: run one variant, with the code in this folder, and print its figures.
    child: { type: "string" },
    code: { type: "string" },
  },
});
const ops = Number(flags.ops);
const rounds = Number(flags.rounds);
if (!(Number.isInteger(ops) && ops > 0 && Number.isInteger(rounds) && rounds > 0)) {
  throw new RangeError(`bad --ops ${flags.ops} or --rounds ${flags.rounds}`);
}

interface Figures {
  readonly writes: number;
  readonly reads: number;
  readonly events: number;
}

// Operations per second of this process's CPU time (user and system), over
// `ops` sequential calls: on a machine shared with other work, CPU time
// varies far less than wall time, and everything here is CPU work.
async function time(op: (i: number) => Promise<unknown>): Promise<number> {
  const t0 = cpuUsage();
  for (let i = 0; i < ops; i++) await op(i);
  const used = cpuUsage(t0);
  return ops / ((used.user + used.system) / 1e6);
}

// One variant, in this process: a warm-up, then `ops` writes, each the first
// of its key (Latest, Phase1, Phase2), and `ops` reads, each finding one
// settled version (Latest only).
async function child(variant: string, code: string): Promise<Figures> {
  const { Kv } = await import(join(code, "kv.ts"));
  const { PaxosAcceptor } = await import(join(code, "acceptor.ts"));
  let events = 0;
  const make = () =>
    new Kv(
      [0, 1, 2].map((i) => new PaxosAcceptor(undefined, `a${i}`)),
      variant === "traced" ? { tracer: { event: () => events++ } } : {},
    );
  const warm = make();
  await time((i) => warm.set(`warm${i % 64}`, "x"));
  await time((i) => warm.get(`warm${i % 64}`));
  events = 0;
  const kv = make();
  const writes = await time((i) => kv.set(`k${i}`, "v"));
  const reads = await time((i) => kv.get(`k${i}`));
  return { writes, reads, events };
}

async function spawn(variant: string, code: string): Promise<Figures> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      import.meta.filename!,
      "--child",
      variant,
      "--code",
      code,
      "--ops",
      `${ops}`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`the ${variant} run failed`);
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]) => (Math.max(...xs) - Math.min(...xs)) / median(xs);

if (flags.child !== undefined) {
  // deno-lint-ignore no-console
  console.log(JSON.stringify(await child(flags.child, flags.code ?? root)));
} else {
  interface Variant {
    readonly name: string;
    readonly child: string;
    readonly code: string;
    readonly runs: Figures[];
  }
  const variants: Variant[] = [
    { name: "no tracer", child: "plain", code: root, runs: [] },
    { name: "counting tracer", child: "traced", code: root, runs: [] },
  ];
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-trace-bench-", dir: root });
  try {
    if (flags.baseline !== undefined) {
      const base = join(dir, "baseline");
      await addWorktree(flags.baseline, base);
      variants.push({ name: `baseline ${flags.baseline}`, child: "plain", code: base, runs: [] });
    }
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < variants.length; k++) {
        const v = variants[(r + k) % variants.length]!;
        v.runs.push(await spawn(v.child, v.code));
      }
    }
  } finally {
    if (flags.baseline !== undefined) await removeWorktree(join(dir, "baseline"));
    await Deno.remove(dir, { recursive: true });
  }

  const plain = variants[0]!;
  const med = (v: Variant, f: "writes" | "reads") => median(v.runs.map((x) => x[f]));
  const rows = variants.map((v) => ({
    variant: v.name,
    writesPerSec: Math.round(med(v, "writes")),
    readsPerSec: Math.round(med(v, "reads")),
    writesVsNoTracer: Number((med(v, "writes") / med(plain, "writes")).toFixed(3)),
    readsVsNoTracer: Number((med(v, "reads") / med(plain, "reads")).toFixed(3)),
    // The spread of the runs, as a share of the median: how far to trust the ratios.
    writesSpread: Number((spread(v.runs.map((x) => x.writes))).toFixed(2)),
    readsSpread: Number((spread(v.runs.map((x) => x.reads))).toFixed(2)),
    eventsPerRun: median(v.runs.map((x) => x.events)),
  }));
  const machine =
    `${Deno.build.os}/${Deno.build.arch}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`;
  if (flags.json) {
    // deno-lint-ignore no-console
    console.log(JSON.stringify({ machine, ops, rounds, rows }, null, 2));
  } else {
    // deno-lint-ignore no-console
    console.log(
      `paxoskv trace benchmark (${machine}; ${ops} writes then ${ops} reads per run, ` +
        `per CPU second, one process per run, median of ${rounds} runs per variant)`,
    );
    // deno-lint-ignore no-console
    console.table(rows);
  }
}
