// Crash tests with real processes: acceptors run as `cli.ts acceptor --data`,
// proposers in this process run Paxos against them under concurrent load,
// and acceptors are killed with SIGKILL mid-load and restarted on the same
// data. Every Prepare/Accept reply a proposer received is recorded; after the
// last restart, a verifier checks each one against the acceptor's state:
// promises never go back, and acknowledged votes are still there.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Acceptor,
  type AcceptorClient,
  ballotEquals,
  formatBallot,
  GE,
  type Op,
  PaxosProposer,
  type Proposer,
  type Value,
  WebSocketAcceptorClient,
  ZERO_BALLOT,
} from "../mod.ts";
import { type Server, startDurableAcceptor } from "./cli_process.ts";

interface Received {
  readonly op: Op;
  readonly req: Proposer;
  readonly rep: Acceptor;
}

// An acceptor process and a client to it that records every reply received.
class CrashableAcceptor implements AcceptorClient {
  readonly name: string;
  readonly received: Received[] = [];
  #server: Server | null = null;
  #client: WebSocketAcceptorClient | null = null;
  #onReply: () => void = () => {};

  constructor(readonly id: number, readonly dir: string) {
    this.name = `acceptor-${id}`;
  }

  async start(): Promise<void> {
    const { server, url } = await startDurableAcceptor(this.id, this.dir);
    this.#server = server;
    this.#client = new WebSocketAcceptorClient(url, { timeoutMs: 500, minBackoffMs: 5 });
  }

  /** SIGKILL: no chance to flush or close anything. */
  async kill(): Promise<void> {
    const server = this.#server!;
    this.#server = null;
    const { status } = await server.stop("SIGKILL");
    assert.equal(status.signal, "SIGKILL");
    await this.#client?.close();
    this.#client = null;
  }

  async stop(): Promise<void> {
    await this.#client?.close();
    this.#client = null;
    const { status, stderr } = await this.#server!.stop("SIGTERM");
    this.#server = null;
    assert.equal(status.code, 0, stderr);
  }

  async request(op: Op, req: Proposer): Promise<Acceptor> {
    const client = this.#client;
    if (client === null) throw new Deno.errors.ConnectionRefused(`${this.name} is down`);
    const rep = await client.request(op, req);
    this.received.push({ op, req, rep });
    this.#onReply();
    return rep;
  }

  /** Resolves once `n` more replies were received (fails after 20 s). */
  async repliesMore(n: number): Promise<void> {
    const target = this.received.length + n;
    const deadline = performance.now() + 20_000;
    while (this.received.length < target) {
      assert.ok(performance.now() < deadline, `${this.name}: load stalled`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.#onReply = () => {
          if (this.received.length >= target) {
            clearTimeout(t);
            resolve();
          }
        };
      });
    }
    this.#onReply = () => {};
  }

  /** The state of an instance, read with a Prepare at the zero ballot (which changes nothing). */
  probe(Key: string, Ver: bigint): Promise<Acceptor> {
    return this.#client!.request("Prepare", { Id: { Key, Ver }, Bal: ZERO_BALLOT, Val: null });
  }
}

const KEYS = 6;
const VERS = 5;

function sameValue(a: Value | null, b: Value | null): boolean {
  return JSON.stringify(a, (_, v) => typeof v === "bigint" ? `${v}n` : v) ===
    JSON.stringify(b, (_, v) => typeof v === "bigint" ? `${v}n` : v);
}

Deno.test("acceptors killed with SIGKILL under load keep every reply they sent", async () => {
  const root = await Deno.makeTempDir({ prefix: "paxoskv-crash-" });
  const acceptors = [0, 1, 2].map((i) => new CrashableAcceptor(i, join(root, `acceptor-${i}`)));
  const chosen = new Map<string, Value | null>();
  let stop = false;
  let runs = 0;
  let completed = 0;

  // Proposers: each run has a ballot nobody else ever uses (its own ProposerId).
  const worker = async () => {
    while (!stop) {
      const pid = BigInt(++runs);
      const Key = `k${Math.floor(Math.random() * KEYS)}`;
      const Ver = BigInt(Math.floor(Math.random() * VERS));
      const p = new PaxosProposer({ Id: { Key, Ver }, Bal: { N: 1n, ProposerId: pid } });
      const val = Math.random() < 0.2 ? null : { Vi64: pid };
      try {
        const got = await p.runPaxos(acceptors, val, { deadlineMs: 3000, maxBackoffMs: 20 });
        completed++;
        const k = `${Key}@${Ver}`;
        if (got !== null) {
          // Safety through crashes: an instance never yields two values.
          if (chosen.has(k) && chosen.get(k) !== null) {
            assert.ok(sameValue(chosen.get(k)!, got), `${k}: ${chosen.get(k)} then ${got}`);
          }
          chosen.set(k, got);
        }
      } catch {
        // No quorum before the deadline while two acceptors were down.
      }
    }
  };

  try {
    await Promise.all(acceptors.map((a) => a.start()));
    const workers = Array.from({ length: 8 }, worker);

    // One acceptor at a time, killed mid-load and restarted on its data.
    for (const victim of [0, 1, 2, 0]) {
      const a = acceptors[victim]!;
      await a.repliesMore(300);
      await a.kill();
      await acceptors[(victim + 1) % 3]!.repliesMore(100); // the others go on
      await a.start();
    }
    // Two at once: no quorum for a while, then recovery.
    await acceptors[2]!.repliesMore(200);
    await Promise.all([acceptors[0]!.kill(), acceptors[1]!.kill()]);
    await Promise.all([acceptors[0]!.start(), acceptors[1]!.start()]);
    await acceptors[1]!.repliesMore(200);
    // All three at once, the power cut.
    await Promise.all(acceptors.map((a) => a.kill()));
    await Promise.all(acceptors.map((a) => a.start()));
    await acceptors[0]!.repliesMore(100);

    stop = true;
    await Promise.all(workers);
    assert.ok(completed > 100, `only ${completed} runs completed`);

    // The verifier: every reply received is reflected in the state now.
    let checked = 0;
    for (const a of acceptors) {
      const state = new Map<string, Acceptor>();
      for (let k = 0; k < KEYS; k++) {
        for (let v = 0n; v < BigInt(VERS); v++) state.set(`k${k}@${v}`, await a.probe(`k${k}`, v));
      }
      for (const { op, req, rep } of a.received) {
        const now = state.get(`${req.Id.Key}@${req.Id.Ver}`)!;
        const where = `${a.name} ${op} ${req.Id.Key}@${req.Id.Ver} at ${formatBallot(req.Bal)}`;
        // The reply showed a stored promise; promises never go back.
        assert.ok(GE(now.LastBal, rep.LastBal), `${where}: LastBal went back below the reply's`);
        if (op === "Prepare") assert.ok(GE(now.VBal, rep.VBal), `${where}: VBal went back`);
        if (GE(req.Bal, rep.LastBal)) {
          // Acknowledged: the promise (and for Accept, the vote) is durable.
          assert.ok(GE(now.LastBal, req.Bal), `${where}: acknowledged promise lost`);
          if (op === "Accept") {
            assert.ok(GE(now.VBal, req.Bal), `${where}: acknowledged vote lost`);
            if (ballotEquals(now.VBal, req.Bal)) {
              assert.ok(sameValue(now.Val, req.Val), `${where}: voted value changed`);
            }
          }
        }
        checked++;
      }
    }
    assert.ok(checked > 2000, `only ${checked} replies checked`);

    // Every chosen value is still chosen after the power cut.
    for (const [k, v] of chosen) {
      const [Key, Ver] = k.split("@") as [string, string];
      const r = new PaxosProposer({
        Id: { Key, Ver: BigInt(Ver) },
        Bal: { N: 1n, ProposerId: BigInt(++runs) },
      });
      assert.ok(sameValue(await r.runPaxos(acceptors, null), v), `${k} changed`);
    }
  } finally {
    stop = true;
    for (const a of acceptors) await a.stop().catch(() => {});
    await Deno.remove(root, { recursive: true });
  }
});
