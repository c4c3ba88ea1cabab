// The KV under real faults, with real processes: three durable acceptor
// processes, each behind a fault-injecting TCP proxy (tests/fault_proxy.ts),
// and KV client processes (tests/kv_worker.ts) that run random operations
// through the proxies while a seeded fault schedule delays and drops
// connections, partitions an acceptor, and kills acceptors with SIGKILL
// (one, then two at once) and restarts them on their data. Afterwards the
// merged history of every client must be linearizable, every acknowledged
// write must still be there, no refused write may have taken effect, and
// only network failures may leave an outcome unknown.
//
// The schedule runs on the workers' progress, not on a clock: each fault
// lasts until some operations started under it (so it hits operations in
// flight, every time), each calm gap until some finished, and the workers
// run until the test tells them to stop.
//
// The seed is random per run, and every failure names it: PAXOSKV_SEED=S
// replays the fault schedule and the clients' choices (not the exact
// timing). PAXOSKV_VERBOSE=1 prints a summary line. When the history fails a
// check, it is kept in a file whose path the failure message gives.
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Random, seededRandom } from "../clock.ts";
import { connect, type KvHistoryEntry } from "../kv.ts";
import { LineProcess, stopAll } from "./cli_process.ts";
import { AcceptorProcess } from "./crash.ts";
import { type FaultProxy, type Faults, startProxy } from "./fault_proxy.ts";
import { decodeLine, encodeLine, wallClock } from "./kv_worker.ts";
import { checkKv, type KvOperation } from "../check/linearizability.ts";
import { type RawServer, startRawServer } from "./raw_net.ts";

const WORKERS = 4;
const MAX_OPS = 400; // per worker: far more than the schedule needs
const KEYS = 3;
const PAUSE_MS = 100; // a random pause of up to this before each operation
const WORKER_LIMIT_MS = 60_000; // a worker still running after this is stuck
const PROGRESS_LIMIT_MS = 30_000; // no progress for this long: the load is stuck
const workerPath = join(import.meta.dirname!, "kv_worker.ts");

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A kv_worker.ts process: stdout read line by line, stdin for ping/go/stop. */
function workerProcess(args: string[]): LineProcess {
  return new LineProcess(["run", "--allow-net=127.0.0.1", workerPath, ...args], { stdin: true });
}

/** An acceptor process on its data directory, and the proxy in front of it. */
class Node extends AcceptorProcess {
  proxy: FaultProxy | null = null;
  constructor(id: number, dir: string, readonly seed: number) {
    super(id, dir);
  }

  get proxyUrl(): string {
    return `ws://127.0.0.1:${this.proxy!.port}/paxos`;
  }

  /** Starts (or restarts) the acceptor on its data and points the proxy at it. */
  override async start(): Promise<string> {
    const url = await super.start();
    const port = Number(new URL(url.replace(/^ws:/, "http:")).port);
    if (this.proxy === null) this.proxy = startProxy(port, { seed: this.seed });
    else this.proxy.retarget(port);
    return url;
  }
}

function shuffle<T>(xs: T[], random: Random): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(random.next() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

type Phase = "delay" | "drops" | "partition" | "kill" | "killTwo" | "partitionKill";

/** One fault window: what, on which acceptors, and when (wall clock). */
interface FaultEvent {
  phase: Phase;
  nodes: number[];
  from: number;
  to: number;
}

/** How far the workers got: operations started and finished, over all of them. */
class Progress {
  constructor(readonly workers: readonly LineProcess[]) {}

  get started(): number {
    return this.#count('{"start":');
  }

  get finished(): number {
    return this.#count('{"client":');
  }

  #count(prefix: string): number {
    return this.workers.reduce((n, w) => n + w.lines.filter((l) => l.startsWith(prefix)).length, 0);
  }

  /** Waits until `done()`, failing when the workers make no progress for a while. */
  async until(done: () => boolean, what: string): Promise<void> {
    while (!done()) {
      const ended = this.workers.findIndex((w) => w.ended);
      if (ended >= 0) throw new Error(`worker ${ended + 1} ended while waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const stuck = await Promise.race([
        ...this.workers.map((w) => w.changed().then(() => false)),
        new Promise<boolean>((resolve) =>
          timer = setTimeout(() => resolve(true), PROGRESS_LIMIT_MS)
        ),
      ]);
      clearTimeout(timer);
      if (stuck) throw new Error(`no progress for ${PROGRESS_LIMIT_MS} ms waiting for ${what}`);
    }
  }
}

Deno.test("kv under real faults: linearizable, and no acknowledged write lost", async () => {
  const seed = Number(Deno.env.get("PAXOSKV_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  try {
    await realFaults(seed);
  } catch (e) {
    throw new Error(
      `failed with PAXOSKV_SEED=${seed}; replay its schedule with ` +
        `PAXOSKV_SEED=${seed} deno task test tests/real_faults_test.ts`,
      { cause: e },
    );
  }
});

async function realFaults(seed: number): Promise<void> {
  const tag = `PAXOSKV_SEED=${seed}`;
  const random = seededRandom(seed);
  const pick = (n: number) => Math.floor(random.next() * n);
  const t0 = performance.now();

  const root = await Deno.makeTempDir({ prefix: "paxoskv-real-faults-" });
  const nodes = [0, 1, 2].map((i) => new Node(i, join(root, `acceptor-${i}`), seed + 101 * i));
  const workers: LineProcess[] = [];
  const progress = new Progress(workers);
  const events: FaultEvent[] = [];
  let failed = true;
  try {
    await Promise.all(nodes.map((n) => n.start()));
    const proxyUrls = nodes.map((n) => n.proxyUrl).join(",");
    for (let c = 1; c <= WORKERS; c++) {
      workers.push(
        workerProcess([
          "--client",
          `${c}`,
          "--ops",
          `${MAX_OPS}`,
          "--keys",
          `${KEYS}`,
          "--seed",
          `${seed + c}`,
          "--pause-ms",
          `${PAUSE_MS}`,
          proxyUrls,
        ]),
      );
    }
    await Promise.all(workers.map((w) => w.waitFor((l) => l.length >= 1, 20_000)));
    for (const w of workers) assert.equal(w.lines[0], `{"ready":true}`);

    // The history's times come from each process's own clock: check that
    // each worker's clock reading lies between this process's readings
    // before the ping and after the reply (so the clocks agree, up to the
    // resolution of a double: ~0.0005 ms at today's epoch milliseconds).
    let worstSkew = 0;
    for (const w of workers) {
      for (let i = 0; i < 3; i++) {
        const before = wallClock();
        const n = w.lines.length;
        await w.send("ping");
        await w.waitFor((l) => l.length > n, 5000);
        const after = wallClock();
        const { clock } = decodeLine(w.lines[n]!) as { clock: number };
        worstSkew = Math.max(worstSkew, before - clock, clock - after);
        assert.ok(
          before - 0.001 <= clock && clock <= after + 0.001,
          `a worker's clock disagrees: ${clock} not in [${before}, ${after}]`,
        );
      }
    }
    for (const w of workers) await w.send("go");

    // The fault schedule: every kind of fault, in a seeded order, on seeded
    // targets; each lasts until 4-8 operations started under it, each calm
    // gap after it until 8-15 operations finished.
    const healAll = () => nodes.forEach((n) => n.proxy!.setFaults({}));
    const light = (): Faults => ({ delayMs: [0, 1 + pick(10)] });
    const underFault = async (what: string) => {
      const from = progress.started;
      const n = 4 + pick(5);
      await progress.until(() => progress.started >= from + n, `${n} operations under ${what}`);
    };
    const calm = async () => {
      const from = progress.finished;
      const n = 8 + pick(8);
      await progress.until(() => progress.finished >= from + n, `${n} operations after a fault`);
    };
    const plan = shuffle<Phase>(
      [
        "delay",
        "drops",
        "partition",
        "partition",
        "kill",
        "kill",
        "kill",
        "killTwo",
        "partitionKill",
      ],
      random,
    );
    await calm();
    for (const phase of plan) {
      const i = pick(3);
      const j = (i + 1 + pick(2)) % 3;
      const ev: FaultEvent = { phase, nodes: [], from: wallClock(), to: 0 };
      events.push(ev);
      switch (phase) {
        case "delay":
          ev.nodes = [0, 1, 2];
          for (const n of nodes) n.proxy!.setFaults({ delayMs: [0, 20 + pick(40)] });
          await underFault(phase);
          break;
        case "drops":
          ev.nodes = [0, 1, 2];
          for (const n of nodes) {
            n.proxy!.setFaults({
              delayMs: [0, 5],
              dropConnectionRate: 0.05 + 0.1 * random.next(),
            });
          }
          await underFault(phase);
          break;
        case "partition":
          ev.nodes = [i];
          nodes.forEach((n, k) => n.proxy!.setFaults(k === i ? { partitioned: true } : light()));
          await underFault(phase);
          break;
        case "kill":
          ev.nodes = [i];
          nodes.forEach((n, k) => k !== i && n.proxy!.setFaults(light()));
          await nodes[i]!.kill();
          await underFault(phase);
          await nodes[i]!.start();
          break;
        case "killTwo":
          ev.nodes = [i, j];
          await Promise.all([nodes[i]!.kill(), nodes[j]!.kill()]);
          await underFault(phase);
          await Promise.all([nodes[i]!.start(), nodes[j]!.start()]);
          break;
        case "partitionKill":
          ev.nodes = [i, j];
          nodes[i]!.proxy!.setFaults({ partitioned: true });
          await nodes[j]!.kill();
          await underFault(phase);
          await nodes[j]!.start();
          break;
      }
      healAll();
      ev.to = wallClock();
      await calm();
    }
    healAll();

    // Stop the workers, everything healed, and let them finish.
    for (const w of workers) await w.send("stop");
    const results = await Promise.all(workers.map((w) => w.finish(WORKER_LIMIT_MS)));
    results.forEach(({ status, stderr }, k) => {
      assert.equal(status.code, 0, `worker ${k + 1} exited ${status.code}: ${stderr}`);
      assert.equal(workers[k]!.lines.at(-1), `{"done":true}`, `worker ${k + 1} unfinished`);
    });

    const history: KvOperation[] = [];
    const errors = new Map<string, number>();
    for (const w of workers) {
      for (const line of w.lines) {
        const v = decodeLine(line) as Partial<KvOperation> & { error?: string };
        if (v.input === undefined) continue; // ready, clock, start, done
        const { error, ...op } = v;
        if (error !== undefined) {
          const kind = error.slice(0, error.indexOf(":"));
          errors.set(kind, (errors.get(kind) ?? 0) + 1);
        }
        history.push(op as KvOperation);
      }
    }
    const issued = progress.started;
    assert.equal(history.length, issued, "operations started but missing from the output");

    // The faults hit operations in flight: by construction, each lasted
    // until operations started under it.
    const inFlight = (e: FaultEvent) => history.filter((o) => o.call < e.to && o.ret > e.from);
    for (const e of events) {
      assert.ok(inFlight(e).length > 0, `no operation ran during ${e.phase}${e.nodes.join("")}`);
    }

    // Unknown outcomes: only from failing to reach a quorum (kv_ops.ts
    // throws anything else, and the worker would have failed), and a
    // minority: the faults are short and the cluster heals between them.
    const unknown = history.filter((o) => !o.output.ok && "unknown" in o.output).length;
    assert.deepEqual([...errors.keys()].filter((k) => k !== "NotEnoughQuorumError"), []);
    assert.equal([...errors.values()].reduce((a, b) => a + b, 0), unknown);
    assert.ok(unknown <= history.length / 3, `${unknown} of ${history.length} outcomes unknown`);

    // Afterwards, directly to the acceptors: a final read of every key (part
    // of the history: it comes after everything) and every key's versions.
    const kv = await connect(nodes.map((n) => n.url), { timeoutMs: 1000, deadlineMs: 10_000 });
    const versions = new Map<string, KvHistoryEntry[]>();
    try {
      for (let k = 0; k < KEYS; k++) {
        const key = `k${k}`;
        const call = wallClock();
        const e = await kv.get(key);
        const ret = wallClock();
        history.push({
          client: 0,
          key,
          input: { op: "get" },
          output: e.found
            ? { ok: true, version: e.version, value: e.value, found: true }
            : { ok: true, version: e.version, found: false },
          call,
          ret,
        });
        versions.set(key, await kv.history(key, { limit: 10_000 }));
      }
    } finally {
      await kv.close();
    }

    const keep = async (why: string) => {
      const path = await Deno.makeTempFile({ prefix: "paxoskv-real-faults-", suffix: ".jsonl" });
      await Deno.writeTextFile(path, history.map((o) => encodeLine(o) + "\n").join(""));
      const log = events.map((e) => `${e.phase}${JSON.stringify(e.nodes)}@[${e.from},${e.to}]`);
      return `${tag}: ${why}\nhistory (${history.length} operations) kept in ${path}; ` +
        `faults: ${log.join(" ")}`;
    };

    // (a) Linearizable.
    const verdict = checkKv(history, { timeoutMs: 20_000 });
    if (verdict.timedOut) assert.fail(await keep(`the checker timed out: ${verdict.reason}`));
    if (!verdict.ok) assert.fail(await keep(`not linearizable: ${verdict.reason}`));

    // (b) Versions are dense; every value in them was written by someone;
    // every acknowledged write is at its version; no refused write took
    // effect; no write took effect twice.
    const written = new Set(
      history.flatMap((o) => "value" in o.input ? [`${o.key}=${String(o.input.value)}`] : []),
    );
    const at = new Map<string, string>(); // "key@version" -> value or "<deleted>"
    const where = new Map<string, string>(); // value -> "key@version"
    for (const [key, entries] of versions) {
      const got = entries.map((e) => e.version).join(",");
      const dense = entries.map((_, v) => v).join(",");
      if (got !== dense) assert.fail(await keep(`${key} has versions ${got}: not dense`));
      for (const e of entries) {
        const what = e.deleted ? "<deleted>" : String(e.value);
        if (!e.deleted && !written.has(`${key}=${what}`)) {
          assert.fail(await keep(`${key}@${e.version} holds ${what}, which nobody wrote there`));
        }
        at.set(`${key}@${e.version}`, what);
        if (!e.deleted) {
          if (where.has(what)) {
            assert.fail(await keep(`${what} is at ${where.get(what)} and ${key}@${e.version}`));
          }
          where.set(what, `${key}@${e.version}`);
        }
      }
    }
    let acknowledged = 0;
    for (const o of history) {
      const { input, output } = o;
      if (input.op === "get") continue;
      const value = input.op === "delete" ? "<deleted>" : String(input.value);
      if (output.ok) {
        acknowledged++;
        const got = at.get(`${o.key}@${output.version}`);
        if (got !== value) {
          assert.fail(
            await keep(
              `acknowledged ${input.op} of ${value} at ${o.key}@${output.version} lost: found ${got}`,
            ),
          );
        }
      } else if ("conflict" in output && input.op !== "delete" && where.has(value)) {
        assert.fail(
          await keep(`refused ${input.op} of ${value} took effect at ${where.get(value)}`),
        );
      }
    }
    assert.ok(acknowledged > 0, "no write was acknowledged");

    // The checker is live on this very history: a read of a value nobody
    // wrote must be rejected.
    const g = history.findIndex((o) => o.output.ok && "found" in o.output && o.output.found);
    assert.ok(g >= 0, "no read found a value");
    const forged = history.map((o, k) =>
      k === g
        ? { ...o, output: { ...o.output, value: "never-written" } as KvOperation["output"] }
        : o
    );
    const rejected = checkKv(forged, { timeoutMs: 20_000 });
    assert.equal(rejected.ok, false, "the checker accepted a forged read");
    assert.notEqual(rejected.timedOut, true, "the checker timed out on the forged history");
    assert.equal(rejected.key, history[g]!.key);

    if (Deno.env.get("PAXOSKV_VERBOSE")) {
      const conflicts = history.filter((o) => !o.output.ok && "conflict" in o.output).length;
      const stats = nodes.map((n) => n.proxy!.stats);
      const sum = (f: (s: (typeof stats)[number]) => number) => stats.reduce((a, s) => a + f(s), 0);
      // deno-lint-ignore no-console
      console.log(
        `${tag} ${((performance.now() - t0) / 1000).toFixed(1)}s ops=${history.length} ` +
          `acknowledged-writes=${acknowledged} conflicts=${conflicts} unknown=${unknown} ` +
          `errors=${
            JSON.stringify(Object.fromEntries(errors))
          } checker-steps=${verdict.explored} ` +
          `faults=${events.map((e) => `${e.phase}${e.nodes.join("")}`).join(",")} ` +
          `proxy: connections=${sum((s) => s.connections)} dropped=${sum((s) => s.dropped)} ` +
          `refused=${sum((s) => s.refused)} held=${sum((s) => s.held)} ` +
          `clock-skew-seen=${worstSkew.toFixed(4)}ms versions=${
            [...versions.values()].map((v) => v.length).join("/")
          }`,
      );
    }
    failed = false;
  } finally {
    // Everything started is ended and awaited, even after a failure.
    await Promise.all(workers.map((w) => w.finish(failed ? 0 : WORKER_LIMIT_MS)));
    await Promise.all(nodes.map((n) => n.proxy?.close()));
    const running = nodes.flatMap((n) => n.server === null ? [] : [n.server]);
    try {
      if (failed) await Promise.all(running.map((s) => s.stop("SIGKILL")));
      else await stopAll(running); // (c) They stop cleanly: status 0 on SIGTERM.
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  }
}

/** A TCP server on 127.0.0.1 that answers each chunk with `reply(chunk)`. */
function replyServer(reply: (b: Uint8Array) => Uint8Array): RawServer {
  return startRawServer(async (conn) => {
    const buf = new Uint8Array(4096);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      await conn.write(reply(buf.slice(0, n)));
    }
  });
}

/** Reads exactly `n` bytes (fails on end of stream). */
async function readBytes(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  for (let off = 0; off < n;) {
    const got = await conn.read(out.subarray(off));
    if (got === null) throw new Error(`stream ended after ${off} of ${n} bytes`);
    off += got;
  }
  return out;
}

Deno.test("fault proxy: delays keep the order, a partition holds bytes, drops and retarget", async () => {
  const echo = replyServer((b) => b);
  const plusOne = replyServer((b) => b.map((x) => x + 1));
  const proxy = startProxy(echo.port, { seed: 5 });
  const clients: Deno.TcpConn[] = [];
  const dial = async () => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
    c.setNoDelay(true);
    clients.push(c);
    return c;
  };
  try {
    // Delays: 40 chunks, each held 0-20 ms, come back in order.
    proxy.setFaults({ delayMs: [0, 20] });
    const c1 = await dial();
    const sent = Uint8Array.from({ length: 200 }, (_, i) => i);
    for (let i = 0; i < sent.length; i += 5) {
      await c1.write(sent.subarray(i, i + 5));
      await sleep(1);
    }
    assert.deepEqual(await readBytes(c1, sent.length), sent);
    assert.ok(proxy.stats.chunks >= 4, `only ${proxy.stats.chunks} chunks: nothing to reorder`);

    // A partition: nothing comes through, on old or new connections, until it heals.
    proxy.setFaults({ partitioned: true });
    await c1.write(new Uint8Array([7]));
    const c2 = await dial();
    await c2.write(new Uint8Array([8]));
    const pending = readBytes(c1, 1);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const quiet = await Promise.race([
      pending.then(() => false),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), 150)),
    ]);
    clearTimeout(timer);
    assert.ok(quiet, "a byte went through the partition");
    assert.equal(proxy.stats.held, 2);
    proxy.setFaults({});
    assert.deepEqual(await pending, new Uint8Array([7]));
    assert.deepEqual(await readBytes(c2, 1), new Uint8Array([8]));

    // Retarget: new connections go to the new port, old ones stay.
    proxy.retarget(plusOne.port);
    const c3 = await dial();
    await c3.write(new Uint8Array([1]));
    assert.deepEqual(await readBytes(c3, 1), new Uint8Array([2]));
    await c1.write(new Uint8Array([1]));
    assert.deepEqual(await readBytes(c1, 1), new Uint8Array([1]));

    // A drop closes the connection instead of forwarding.
    proxy.setFaults({ dropConnectionRate: 1 });
    await c3.write(new Uint8Array([3]));
    await assert.rejects(readBytes(c3, 1), /stream ended|reset/i);
    assert.equal(proxy.stats.dropped, 1);
    proxy.setFaults({});

    // A target that is down: the accepted connection is closed at once.
    await plusOne.close();
    const c4 = await dial();
    await assert.rejects(readBytes(c4, 1), /stream ended|reset/i);
    assert.equal(proxy.stats.refused, 1);
  } finally {
    for (const c of clients) {
      try {
        c.close();
      } catch {
        // Closed already.
      }
    }
    await proxy.close();
    await echo.close();
    await plusOne.close();
  }
});
