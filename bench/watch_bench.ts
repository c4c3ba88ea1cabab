// Watch benchmark: three acceptor processes on loopback (memory store), W
// writers each writing its own key in a closed loop through one client, and
// one watch of all their keys through another client. For every version
// written, the time from the write's completion (its `set` resolving) to
// its delivery by the watch: p50 and p99, at 1 and 64 writers. A delivery
// may come before the writer hears its reply (the watch sees the version
// chosen first): that counts as 0.
//
//   deno task bench:watch [--seconds S] [--writers 1,64] [--max-poll-ms M] [--json]
import { parseArgs } from "node:util";
import { connect } from "../kv.ts";
import { startAcceptors, stopAll } from "../tests/cli_process.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "3" },
    writers: { type: "string", default: "1,64" },
    "max-poll-ms": { type: "string", default: "100" },
    json: { type: "boolean", default: false },
  },
});
const seconds = Number(flags.seconds);
const levels = flags.writers.split(",").map(Number);
const maxPollMs = Number(flags["max-poll-ms"]);
if (
  !(seconds > 0 && maxPollMs > 0) || levels.some((n) => !(Number.isInteger(n) && n > 0))
) {
  throw new RangeError(
    `bad --seconds ${flags.seconds}, --writers ${flags.writers} or --max-poll-ms ${
      flags["max-poll-ms"]
    }`,
  );
}

interface Row {
  writers: number;
  writesPerSec: number;
  delivered: number;
  written: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

async function level(urls: string[], writers: number, run: number): Promise<Row> {
  const writer = await connect(urls);
  const watcher = await connect(urls);
  const keys = Array.from({ length: writers }, (_, w) => `bench/${run}/${w}`);
  const done = new Map<string, number>(); // "key@version" -> when its set resolved
  const seen = new Map<string, number>(); // "key@version" -> when the watch delivered it
  const stop = new AbortController();
  try {
    const watching = (async () => {
      for await (
        const e of watcher.watch(keys, { fromVersion: 0n, signal: stop.signal, maxPollMs })
      ) {
        seen.set(`${e.key}@${e.version}`, performance.now());
      }
    })();
    const until = performance.now() + seconds * 1000;
    const t0 = performance.now();
    await Promise.all(keys.map(async (key) => {
      for (let i = 0; performance.now() < until; i++) {
        const v = await writer.set(key, i);
        done.set(`${key}@${v}`, performance.now());
      }
    }));
    const elapsed = (performance.now() - t0) / 1000;
    // Let the watch catch up with the last writes (bounded).
    const drainUntil = performance.now() + 5000;
    while (seen.size < done.size && performance.now() < drainUntil) {
      await new Promise((r) => setTimeout(r, 10));
    }
    stop.abort();
    await watching;
    const lat: number[] = [];
    for (const [k, t] of done) {
      const s = seen.get(k);
      if (s !== undefined) lat.push(Math.max(0, s - t));
    }
    lat.sort((a, b) => a - b);
    const q = (p: number) =>
      Number((lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] ?? NaN).toFixed(2));
    return {
      writers,
      writesPerSec: Math.round(done.size / elapsed),
      delivered: lat.length,
      written: done.size,
      p50Ms: q(0.5),
      p99Ms: q(0.99),
      maxMs: q(1),
    };
  } finally {
    stop.abort();
    await writer.close();
    await watcher.close();
  }
}

const { servers, urls } = await startAcceptors([["--memory"], ["--memory"], ["--memory"]]);
const rows: Row[] = [];
try {
  for (const [i, w] of levels.entries()) rows.push(await level(urls, w, i));
} finally {
  await stopAll(servers);
}
if (flags.json) {
  // deno-lint-ignore no-console
  console.log(JSON.stringify(rows));
} else {
  // deno-lint-ignore no-console
  console.log(
    `watch delivery latency (write completed -> delivered), max poll ${maxPollMs} ms, ` +
      `${seconds} s per row\n` +
      "writers  writes/s  delivered/written   p50 ms   p99 ms   max ms\n" +
      rows.map((r) =>
        `${String(r.writers).padStart(7)}  ${String(r.writesPerSec).padStart(8)}  ` +
        `${`${r.delivered}/${r.written}`.padStart(17)}  ${String(r.p50Ms).padStart(7)}  ` +
        `${String(r.p99Ms).padStart(7)}  ${String(r.maxMs).padStart(7)}`
      ).join("\n"),
  );
}
