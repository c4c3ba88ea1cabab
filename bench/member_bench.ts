/**
 * What a membership change costs (docs/membership.md): three durable
 * acceptor processes hold N keys; member 2 is killed and its directory
 * wiped; a fresh member (`--init --join`) replaces it with
 * `changeMembership`, while a writer goes on. Prints the time of each step,
 * the catch-up's keys per second (and so the time per million keys), and the
 * writer's acknowledged writes per second before and during the change.
 *
 * `deno task bench:member [KEYS] [CONCURRENCY]` (default 20000 keys, the
 * catch-up's default concurrency). The writer's rate is given for the whole
 * change (which includes its two reconnects, when it is refused as stale)
 * and for the catch-up alone.
 *
 * @module
 */
import { join } from "node:path";
import { currentMembers } from "../connect.ts";
import { isStaleMembership, TrustError } from "../errors.ts";
import { connect, type Kv } from "../kv.ts";
import { changeMembership } from "../reconfigure.ts";

const KEYS = Number(Deno.args[0] ?? 20_000);
const CONCURRENCY = Deno.args[1] === undefined ? undefined : Number(Deno.args[1]);
const CLI = join(import.meta.dirname!, "..", "cli.ts");
const CLUSTER_ID = "be4c4be4".repeat(4);
const OPTS = { timeoutMs: 2000, deadlineMs: 20_000 };

interface Proc {
  child: Deno.ChildProcess;
  url: string;
}

async function start(args: string[]): Promise<Proc> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net=127.0.0.1", "--allow-read", "--allow-write", CLI, ...args],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (!buf.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`acceptor ${args.join(" ")} ended before its URL`);
    buf += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  return { child, url: buf.split("\n")[0]! };
}

function writer(urls: string[]) {
  let stop = false;
  let acked = 0;
  let reconnects = 0;
  const follow = async (): Promise<Kv> => {
    for (;;) {
      try {
        return await connect(await currentMembers(urls, OPTS), OPTS);
      } catch (e) {
        if (
          !(e instanceof TrustError) &&
          !isStaleMembership(e)
        ) throw e;
      }
    }
  };
  const done = (async () => {
    let kv = await follow();
    for (let i = 0; !stop; i++) {
      try {
        await kv.set(`w${i % 1000}`, `x${i}`);
        acked++;
      } catch (e) {
        if (isStaleMembership(e)) {
          await kv.close();
          kv = await follow();
          reconnects++;
        }
      }
    }
    await kv.close();
  })();
  return {
    acked: () => acked,
    reconnects: () => reconnects,
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

const tmp = await Deno.makeTempDir({ prefix: "paxoskv-member-bench-" });
const procs: Proc[] = [];
try {
  const init = (id: number) => [
    "acceptor",
    "--port",
    "0",
    "--data",
    join(tmp, `a${id}`),
    "--init",
    "--cluster",
    "bench",
    "--cluster-id",
    CLUSTER_ID,
    "--members",
    "0,1,2",
    "--id",
    `${id}`,
  ];
  for (const id of [0, 1, 2]) procs.push(await start(init(id)));
  const urls = procs.map((p) => p.url);
  const kv = await connect(urls, OPTS);
  let t = performance.now();
  for (let i = 0; i < KEYS; i += 64) {
    await Promise.all(
      Array.from(
        { length: Math.min(64, KEYS - i) },
        (_, j) => kv.set(`key${String(i + j).padStart(8, "0")}`, `value-${i + j}`),
      ),
    );
  }
  await kv.close();
  const fillMs = performance.now() - t;

  // The writer alone, for a baseline.
  let w = writer(urls);
  t = performance.now();
  await new Promise((r) => setTimeout(r, 2000));
  const baseline = w.acked() / ((performance.now() - t) / 1000);
  await w.stop();

  procs[2]!.child.kill("SIGKILL");
  await procs[2]!.child.status;
  await Deno.remove(join(tmp, "a2"), { recursive: true });
  const fresh = await start([
    "acceptor",
    "--port",
    "0",
    "--data",
    join(tmp, "a3"),
    "--init",
    "--join",
    "--cluster",
    "bench",
    "--cluster-id",
    CLUSTER_ID,
    "--id",
    "3",
  ]);
  procs.push(fresh);

  w = writer(urls);
  const steps: string[] = [];
  t = performance.now();
  let last = t;
  // The writer's count when the catch-up started and ended.
  let ackedAtJoint = 0;
  let ackedAtCatchUp = 0;
  const report = await changeMembership(urls, { kind: "replace", old: 2, id: 3, url: fresh.url }, {
    ...OPTS,
    ...(CONCURRENCY === undefined ? {} : { concurrency: CONCURRENCY }),
    onProgress: (p) => {
      const now = performance.now();
      if (p.step === "joint") ackedAtJoint = w.acked();
      if (p.step !== "catch-up" || p.config.cursor === undefined) {
        if (p.step === "catch-up") ackedAtCatchUp = w.acked();
        steps.push(`${p.step} ${Math.round(now - last)} ms`);
        last = now;
      }
    },
  });
  const changeMs = performance.now() - t;
  const during = w.acked() / (changeMs / 1000);
  const reconnects = w.reconnects();
  await w.stop();
  const catchUpMs = Number(steps.find((s) => s.startsWith("catch-up"))!.split(" ")[1]);
  const duringCatchUp = (ackedAtCatchUp - ackedAtJoint) / (catchUpMs / 1000);
  const rate = report.keys / (catchUpMs / 1000);
  const lines = [
    `keys: ${KEYS} (filled in ${Math.round(fillMs)} ms, ${Math.round(KEYS / (fillMs / 1000))}/s)`,
    `replace 2 by 3: ${Math.round(changeMs)} ms; steps: ${steps.join(", ")}`,
    `catch-up: ${report.keys} keys, ${Math.round(rate)} keys/s, ` +
    `${(1e6 / rate / 60).toFixed(1)} min per million keys`,
    `writer (1 at a time): ${Math.round(baseline)} writes/s before, ${
      Math.round(during)
    } writes/s during the change (${reconnects} reconnects), ${
      Math.round(duringCatchUp)
    } writes/s during the catch-up (${(duringCatchUp / baseline).toFixed(2)}x before)`,
    `catch-up concurrency: ${CONCURRENCY ?? "default"}`,
  ];
  // deno-lint-ignore no-console
  console.log(lines.join("\n"));
} finally {
  for (const p of procs) {
    try {
      p.child.kill("SIGTERM");
    } catch { /* ended */ }
    await p.child.status;
  }
  await Deno.remove(tmp, { recursive: true });
}
