// Attack benchmark: a durable acceptor process (its stderr a pipe nobody
// reads), one attacker process doing one of issue 12's attacks, and a normal
// client on another connection writing and reading its own key all along.
// For each attack: the normal client's latency (p50, p99) and throughput,
// and how much the acceptor's resident memory grew above idle. The targets:
// p99 under 50 ms and RSS under 256 MiB above idle, in every row.
//
//   deno task bench:attack [--seconds S] [--attacks a,b,...] [--json]
//
// (The attacker runs this same file with --attacker NAME --port P.)
import { parseArgs } from "node:util";
import { join } from "node:path";
import { encodeFrame, encodeRequests } from "../codec.ts";
import { WebSocketAcceptorClient } from "../transport.ts";
import { concatBytes, OP } from "../ws_frames.ts";
// The attacks' client, and a process's RSS, from the tests' helpers.
import { RawWs, writeAll } from "../tests/raw_ws.ts";
import { memberFlags, rssOf } from "../tests/cli_process.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "5" },
    attacks: { type: "string" },
    json: { type: "boolean", default: false },
    attacker: { type: "string" },
    port: { type: "string" },
  },
});
const seconds = Number(flags.seconds);
const root = join(import.meta.dirname!, "..");
const MIB = 1024 * 1024;

// ---------------------------------------------------------------------------
// The attacks, each run until the process is killed.

const BIG_KEY = "big"; // holds a value of (nearly) 1 MiB
const NORMAL_KEY = "normal";

let rid = 1;
const prepare = (key: string, ver: number, n: number) =>
  encodeRequests([{
    Rid: rid++,
    Op: "Prepare",
    Req: { Id: { Key: key, Ver: BigInt(ver) }, Bal: { N: BigInt(n), ProposerId: 7n }, Val: null },
  }]);

// A masked frame with a zero mask, header and payload: what a client sends.
function clientFrame(payload: Uint8Array, opcode: number = OP.binary, fin = true): Uint8Array {
  const n = payload.length;
  const len = n < 126 ? [0x80 | n] : n < 65536 ? [0x80 | 126, n >> 8, n & 255] : [
    0x80 | 127,
    0,
    0,
    0,
    0,
    (n >>> 24) & 255,
    (n >>> 16) & 255,
    (n >>> 8) & 255,
    n & 255,
  ];
  const head = [(fin ? 0x80 : 0) | opcode, ...len, 0, 0, 0, 0];
  const out = new Uint8Array(head.length + n);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

// Connects, retrying while the acceptor refuses (503) or is slow.
async function open(port: number, read = true): Promise<RawWs> {
  for (;;) {
    try {
      return await RawWs.open(port, { read });
    } catch {
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

// Sends one frame after another on a connection, reconnecting when it is closed.
async function flood(
  port: number,
  frame: () => Uint8Array,
  wait: "reply" | "close",
): Promise<never> {
  let ws = await open(port);
  for (;;) {
    try {
      await ws.send(frame());
      const e = await ws.next(30_000);
      if (e.type === "message" && wait === "reply") continue;
    } catch { /* closed under us */ }
    await ws.close();
    ws = await open(port);
  }
}

const ATTACKS: Record<string, (port: number) => Promise<unknown>> = {
  // An 85-byte Accept whose Data is a 128-bit integer (msgpackr's ext 0x42).
  bigint: (port) => {
    const env = encodeFrame({
      Rid: 1,
      Op: "Accept",
      Req: { Id: { Key: NORMAL_KEY, Ver: 0 }, Bal: { N: 1, ProposerId: 1 }, Val: { Data: 0 } },
    });
    const bad = new Uint8Array([
      ...env.subarray(0, env.length - 1),
      0xc7,
      16,
      0x42,
      ...new Array(16).fill(0x7f),
    ]);
    return flood(port, () => bad, "reply");
  },
  // 600 KB frames of msgpackr's RegExp extension (0x78).
  regexp: (port) => {
    const pattern = encodeFrame(["(a|aa)*".repeat(4000) + "b", "g"]);
    const one = [0xd4, 0x78, 0x00, ...pattern];
    const n = Math.floor(600_000 / one.length);
    const env = encodeFrame({
      Rid: 1,
      Op: "Accept",
      Req: { Id: { Key: "r", Ver: 0 }, Bal: { N: 1, ProposerId: 1 }, Val: { Data: 0 } },
    });
    const frame = new Uint8Array([
      ...env.subarray(0, env.length - 1),
      0xdc,
      n >> 8,
      n & 255,
      ...Array.from({ length: n }, () => one).flat(),
    ]);
    return flood(port, () => frame, "close");
  },
  // As many idle TCP connections as it can hold (2,000 tried).
  connections: async (port) => {
    const held: Deno.TcpConn[] = [];
    for (let i = 0; i < 2000; i++) {
      try {
        held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      } catch {
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    for (;;) await new Promise((r) => setTimeout(r, 1000)); // held until killed
  },
  // Upgrades that never finish: 200 at a time, a header line every second.
  slowloris: async (port) => {
    const one = async () => {
      for (;;) {
        try {
          const c = await Deno.connect({ hostname: "127.0.0.1", port });
          await writeAll(c, new TextEncoder().encode("GET /paxos HTTP/1.1\r\n"));
          for (;;) {
            await new Promise((r) => setTimeout(r, 1000));
            await writeAll(c, new TextEncoder().encode("X-Slow: 1\r\n"));
          }
        } catch { /* timed out: again */ }
      }
    };
    await Promise.all(Array.from({ length: 200 }, one));
  },
  // A fragmented message that never ends, 1 MiB at a time.
  fragments: async (port) => {
    const mib = new Uint8Array(MIB);
    for (;;) {
      const ws = await open(port);
      try {
        await writeAll(ws.conn, clientFrame(mib, OP.binary, false));
        for (;;) await writeAll(ws.conn, clientFrame(mib, OP.continuation, false));
      } catch { /* closed with 1009: again */ }
      await ws.close();
    }
  },
  // Reads of the 1 MiB value, never reading the replies.
  noread: async (port) => {
    const ws = await open(port, false);
    const frame = clientFrame(encodeRequests([{ Rid: 1, Op: "Latest", Req: { Key: BIG_KEY } }]));
    const burst = new Uint8Array(Array.from({ length: 1000 }, () => Array.from(frame)).flat());
    for (;;) await writeAll(ws.conn, burst); // blocks once the acceptor stops reading
  },
  // 512 Prepares in one 31 KB frame on the 1 MiB value, replies read.
  amplify: (port) => {
    const frame = encodeRequests(Array.from({ length: 512 }, () => ({
      Rid: rid++,
      Op: "Prepare" as const,
      Req: { Id: { Key: BIG_KEY, Ver: 0n }, Bal: { N: 0n, ProposerId: 0n }, Val: null },
    })));
    return flood(port, () => frame, "reply");
  },
  // 40,000 Prepares at rising ballots on the normal client's key (another
  // version), sent at once, again and again.
  keyflood: async (port) => {
    const ws = await open(port);
    let n = 1;
    for (;;) {
      const frames = Array.from(
        { length: 40_000 },
        () => clientFrame(prepare(NORMAL_KEY, 1e9, n++)),
      );
      await writeAll(ws.conn, concatBytes(frames));
      let got = 0;
      while (got < 40_000) if ((await ws.next(60_000)).type === "message") got++;
    }
  },
  // Bad frames, each one closing its connection (and logging a line).
  badframes: (port) => flood(port, () => new TextEncoder().encode("not MessagePack"), "close"),
  // Empty batches, and frames of 64 MiB and more.
  oversize: async (port) => {
    const empty = flood(port, () => new Uint8Array([0x90]), "reply");
    const huge = (async () => {
      for (;;) {
        const ws = await open(port);
        const head = new Uint8Array(14);
        head.set([0x82, 0x80 | 127]);
        new DataView(head.buffer).setBigUint64(2, 64n * BigInt(MIB) + 1n);
        try {
          await writeAll(ws.conn, head);
          await ws.closeCode(30_000);
        } catch { /* again */ }
        await ws.close();
      }
    })();
    await Promise.all([empty, huge]);
  },
};

if (flags.attacker !== undefined) {
  const attack = ATTACKS[flags.attacker];
  if (attack === undefined) throw new RangeError(`no attack ${flags.attacker}`);
  await attack(Number(flags.port));
  Deno.exit(0);
}

// ---------------------------------------------------------------------------
// The measurement.

interface Row {
  attack: string;
  sets: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  rssGrowthMiB: number;
  met: boolean;
}

async function startAcceptor(dir: string): Promise<{ child: Deno.ChildProcess; port: number }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-write",
      join(root, "cli.ts"),
      "acceptor",
      "--port",
      "0",
      ...memberFlags(0, [0], { data: dir }),
    ],
    stdout: "piped",
    stderr: "piped", // never read: logging must not block it
  }).spawn();
  const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) line += (await out.read()).value ?? "";
  await out.cancel();
  return { child, port: Number(new URL(line.trim()).port) };
}

// The normal client: one set after another on its own key (a Prepare and an
// Accept, each stored durably), on a connection it keeps, as proposers do.
let nextVer = 0n;
async function normalClient(
  c: WebSocketAcceptorClient,
  until: number,
  lat: number[],
): Promise<number> {
  let errors = 0;
  for (; performance.now() < until; nextVer++) {
    const t0 = performance.now();
    try {
      const id = { Key: NORMAL_KEY, Ver: nextVer };
      const bal = { N: 1n, ProposerId: 1n };
      await c.request("Prepare", { Id: id, Bal: bal, Val: null });
      await c.request("Accept", { Id: id, Bal: bal, Val: { Vi64: nextVer } });
      lat.push(performance.now() - t0);
    } catch {
      errors++;
    }
  }
  return errors;
}

async function measure(attack: string): Promise<Row> {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-attack-" });
  const { child, port } = await startAcceptor(dir);
  const url = `ws://127.0.0.1:${port}/paxos`;
  let attacker: Deno.ChildProcess | null = null;
  let normal: WebSocketAcceptorClient | null = null;
  try {
    // The 1 MiB value, and a warm-up.
    const c = new WebSocketAcceptorClient(url, { timeoutMs: 10_000 });
    await c.request("Accept", {
      Id: { Key: BIG_KEY, Ver: 0n },
      Bal: { N: 1n, ProposerId: 1n },
      Val: { Data: new Uint8Array(MIB - 16) },
    });
    normal = c;
    await normalClient(c, performance.now() + 1000, []);
    const idle = await rssOf(child.pid);
    if (attack !== "none") {
      attacker = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-net=127.0.0.1",
          import.meta.filename!,
          "--attacker",
          attack,
          "--port",
          `${port}`,
        ],
        stdout: "null",
        stderr: "inherit",
      }).spawn();
      await new Promise((r) => setTimeout(r, 500)); // under way
    }
    let most = idle;
    const until = performance.now() + seconds * 1000;
    const sampler = (async () => {
      while (performance.now() < until) {
        most = Math.max(most, await rssOf(child.pid));
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const lat: number[] = [];
    const errors = await normalClient(c, until, lat);
    await sampler;
    lat.sort((a, b) => a - b);
    const q = (p: number) => Number((lat[Math.floor(lat.length * p)] ?? NaN).toFixed(1));
    const row = {
      attack,
      sets: lat.length,
      p50Ms: q(0.5),
      p99Ms: q(0.99),
      errors,
      rssGrowthMiB: Math.round((most - idle) / MIB),
    };
    return { ...row, met: row.p99Ms < 50 && row.rssGrowthMiB < 256 && errors === 0 };
  } finally {
    await normal?.close();
    if (attacker !== null) {
      attacker.kill("SIGKILL");
      await attacker.status;
    }
    child.kill("SIGKILL");
    await child.status;
    await child.stderr.cancel();
    await Deno.remove(dir, { recursive: true });
  }
}

const names = flags.attacks?.split(",") ?? ["none", ...Object.keys(ATTACKS)];
const rows: Row[] = [];
for (const name of names) {
  if (name !== "none" && !(name in ATTACKS)) throw new RangeError(`no attack ${name}`);
  rows.push(await measure(name));
}
const machine =
  `${Deno.build.os}/${Deno.build.arch}, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}`;
if (flags.json) {
  // deno-lint-ignore no-console
  console.log(JSON.stringify({ machine, seconds, rows }, null, 2));
} else {
  // deno-lint-ignore no-console
  console.log(
    `paxoskv attack benchmark (${machine}; ${seconds} s per attack): a normal client's sets ` +
      `while one attacker attacks; targets p99 < 50 ms, RSS < 256 MiB above idle`,
  );
  // deno-lint-ignore no-console
  console.table(rows);
}
