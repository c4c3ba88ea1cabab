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
  NotEnoughQuorumError,
  type Op,
  PaxosProposer,
  type Proposer,
  type Value,
  WebSocketAcceptorClient,
  ZERO_BALLOT,
} from "../mod.ts";
import { AcceptorProcess } from "./crash.ts";

interface Received {
  readonly op: Op;
  readonly req: Proposer;
  readonly rep: Acceptor;
}

// An acceptor process and a client to it that records every reply received.
class CrashableAcceptor implements AcceptorClient {
  readonly name: string;
  readonly received: Received[] = [];
  readonly #process: AcceptorProcess;
  #client: WebSocketAcceptorClient | null = null;
  #onReply: () => void = () => {};

  constructor(readonly id: number, readonly dir: string, engine: "log" | "sqlite") {
    this.name = `acceptor-${id}`;
    this.#process = new AcceptorProcess(id, dir, engine);
  }

  async start(): Promise<void> {
    const url = await this.#process.start();
    this.#client = new WebSocketAcceptorClient(url, { timeoutMs: 500, minBackoffMs: 5 });
  }

  /** SIGKILL: no chance to flush or close anything. */
  async kill(): Promise<void> {
    await this.#process.kill();
    await this.#client?.close();
    this.#client = null;
  }

  async stop(): Promise<void> {
    await this.#client?.close();
    this.#client = null;
    await this.#process.stop();
  }

  async request(op: Op, req: Proposer): Promise<Acceptor> {
    const client = this.#client;
    if (client === null) throw new Deno.errors.ConnectionRefused(`${this.name} is down`);
    const rep = await client.request(op, req);
    this.received.push({ op, req, rep });
    this.#onReply();
    return rep;
  }

  /**
   * Resolves once `n` more replies were received; fails after 20 s, or with
   * what `failure()` returns once it returns something.
   */
  async repliesMore(n: number, failure: () => unknown = () => undefined): Promise<void> {
    const target = this.received.length + n;
    const deadline = performance.now() + 20_000;
    while (this.received.length < target) {
      const failed = failure();
      if (failed !== undefined) throw failed;
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

function show(v: Value | null): string {
  return JSON.stringify(v, (_, x) => typeof x === "bigint" ? `${x}n` : x);
}

function sameValue(a: Value | null, b: Value | null): boolean {
  return show(a) === show(b);
}

for (const engine of ["log", "sqlite"] as const) {
  Deno.test(
    `acceptors killed with SIGKILL under load keep every reply they sent (${engine} engine)`,
    () => crashTest(engine),
  );
}

async function crashTest(engine: "log" | "sqlite"): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "paxoskv-crash-" });
  const acceptors = [0, 1, 2].map((i) =>
    new CrashableAcceptor(i, join(root, `acceptor-${i}`), engine)
  );
  // Every value a run returned, per instance: they must all be one value.
  const results = new Map<string, Value[]>();
  let stop = false;
  let runs = 0;
  let completed = 0;

  // Proposers: each run has a ballot nobody else ever uses (its own ProposerId).
  // The first error that is not a missing quorum stops the test.
  let failure: unknown = undefined;
  const failed = () => failure;
  const worker = async () => {
    try {
      await work();
    } catch (e) {
      failure ??= e;
      stop = true;
    }
  };
  const work = async () => {
    while (!stop) {
      const pid = BigInt(++runs);
      const Key = `k${Math.floor(Math.random() * KEYS)}`;
      const Ver = BigInt(Math.floor(Math.random() * VERS));
      const p = new PaxosProposer({ Id: { Key, Ver }, Bal: { N: 1n, ProposerId: pid } });
      const val = Math.random() < 0.2 ? null : { Vi64: pid };
      let got: Value | null;
      try {
        got = await p.runPaxos(acceptors, val, { deadlineMs: 3000, maxBackoffMs: 20 });
      } catch (e) {
        // No quorum before the deadline while two acceptors were down; any
        // other error is a failure of the test.
        if (e instanceof NotEnoughQuorumError) continue;
        throw e;
      }
      completed++;
      if (got === null) continue;
      const k = `${Key}@${Ver}`;
      const seen = results.get(k);
      if (seen === undefined) results.set(k, [got]);
      else seen.push(got);
    }
  };

  try {
    await Promise.all(acceptors.map((a) => a.start()));
    const workers = Array.from({ length: 8 }, worker);

    // One acceptor at a time, killed mid-load and restarted on its data.
    for (const victim of [0, 1, 2, 0]) {
      const a = acceptors[victim]!;
      await a.repliesMore(300, failed);
      await a.kill();
      await acceptors[(victim + 1) % 3]!.repliesMore(100, failed); // the others go on
      await a.start();
    }
    // Two at once: no quorum for a while, then recovery.
    await acceptors[2]!.repliesMore(200, failed);
    await Promise.all([acceptors[0]!.kill(), acceptors[1]!.kill()]);
    await Promise.all([acceptors[0]!.start(), acceptors[1]!.start()]);
    await acceptors[1]!.repliesMore(200, failed);
    // All three at once. (Not a power cut: the page cache survives SIGKILL.
    // log_store_test.ts cuts the power on a file system in memory.)
    await Promise.all(acceptors.map((a) => a.kill()));
    await Promise.all(acceptors.map((a) => a.start()));
    await acceptors[0]!.repliesMore(100, failed);

    stop = true;
    await Promise.all(workers);
    if (failure !== undefined) throw failure;
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

    // Safety through crashes: every run on an instance returned one same
    // value, and it is still chosen now.
    let values = 0;
    for (const [k, got] of results) {
      const [Key, Ver] = k.split("@") as [string, string];
      const r = new PaxosProposer({
        Id: { Key, Ver: BigInt(Ver) },
        Bal: { N: 1n, ProposerId: BigInt(++runs) },
      });
      const now = await r.runPaxos(acceptors, null);
      for (const v of got) {
        assert.ok(sameValue(v, now), `${k}: a run returned ${show(v)}, now ${show(now)} is chosen`);
        values++;
      }
    }
    assert.ok(values >= completed / 2, `only ${values} of ${completed} runs returned a value`);
  } finally {
    stop = true;
    for (const a of acceptors) await a.stop().catch(() => {});
    await Deno.remove(root, { recursive: true });
  }
}
