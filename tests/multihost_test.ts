// A real multi-host run: three acceptors on three hosts (Linux network
// namespaces with their own addresses, joined by a bridge), each listening
// on its own address with TLS and the cluster's shared secret, and KV clients
// on a fourth host. KV load runs while the hosts' links go down and come back
// (partitions); afterwards the clients' histories must be linearizable. A
// client without the secret, with a wrong one, or without the CA's
// certificate is refused with one line and exit status 6. Where namespaces
// cannot be made (not root, no `ip`), or openssl is missing, the test says so
// and is skipped.
import assert from "node:assert/strict";
import { join } from "node:path";
import { seededRandom } from "../clock.ts";
import { randomId } from "../identity.ts";
import { checkKv, type KvOperation } from "../check/linearizability.ts";
import { makeCerts, opensslUnavailable } from "./certs.ts";
import { LineProcess } from "./cli_process.ts";
import { decodeLine } from "./kv_worker.ts";
import { makeNetwork, netnsUnavailable, type TestNetwork } from "./netns.ts";

const PORT = 7443;
const WORKERS = 3;
const KEYS = 3;
const cliPath = join(import.meta.dirname!, "..", "cli.ts");
const workerPath = join(import.meta.dirname!, "kv_worker.ts");

/** Operations of the workers so far that finished (or, with `started`, began). */
function count(workers: readonly LineProcess[], started = false): number {
  const mark = started ? '{"start"' : '"call"';
  let n = 0;
  for (const w of workers) for (const l of w.lines) if (l.includes(mark)) n++;
  return n;
}

/** Waits (bounded) until the workers together finished (or began) `n` more operations. */
async function progress(workers: readonly LineProcess[], n: number, what: string, started = false) {
  const goal = count(workers, started) + n;
  const deadline = performance.now() + 60_000;
  while (count(workers, started) < goal) {
    if (performance.now() > deadline) throw new Error(`no ${n} operations ${what}`);
    await Promise.race(workers.map((w) => w.changed()));
  }
}

Deno.test("three hosts, TLS and a secret: KV load through partitions stays linearizable; strangers are refused", async (t) => {
  const why = (await netnsUnavailable()) ?? (await opensslUnavailable());
  if (why !== null) {
    await t.step({ name: `skipped: ${why}`, ignore: true, fn: () => {} });
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-multihost-" });
  let net: TestNetwork | null = null;
  const acceptors: LineProcess[] = [];
  const workers: LineProcess[] = [];
  const seed = Math.floor(Math.random() * 2 ** 31);
  try {
    net = await makeNetwork(4);
    const hosts = net.hosts;
    const addrs = hosts.slice(0, 3).map((h) => h.addr);
    const certs = await makeCerts(dir, addrs);
    const secretFile = join(dir, "secret");
    await Deno.writeTextFile(secretFile, randomId() + randomId() + "\n", { mode: 0o600 });
    await Deno.chmod(secretFile, 0o600);
    const clusterId = randomId();
    const deno = Deno.execPath();
    const trust = ["--secret-file", secretFile];
    // The acceptors, each on its host's address only.
    for (const [i, addr] of addrs.entries()) {
      acceptors.push(
        new LineProcess(
          net.on(i, [
            deno,
            "run",
            `--allow-net=${addr}`,
            "--allow-read",
            "--allow-write",
            cliPath,
            "acceptor",
            "--data",
            join(dir, `acceptor-${i}`),
            "--init",
            "--cluster",
            "multihost",
            "--members",
            "0,1,2",
            "--id",
            `${i}`,
            "--cluster-id",
            clusterId,
            "--host",
            addr,
            "--port",
            `${PORT}`,
            "--tls-cert",
            certs.certFile,
            "--tls-key",
            certs.keyFile,
            ...trust,
          ]).slice(1),
          { command: "ip" },
        ),
      );
    }
    const urls = await Promise.all(
      acceptors.map(async (a) => (await a.waitFor((l) => l.length >= 1, 20_000))[0]!),
    );
    assert.deepEqual(urls, addrs.map((a) => `wss://${a}:${PORT}/paxos`));
    const list = urls.join(",");
    const clientNet = `--allow-net=${addrs.join(",")}`;

    // Strangers on the client host: refused, one line each, exit status 6.
    const stranger = async (flags: string[]) => {
      const out = await new Deno.Command("ip", {
        args: net!.on(3, [
          deno,
          "run",
          clientNet,
          "--allow-read",
          cliPath,
          "get",
          "k0",
          "--acceptors",
          list,
          "--timeout",
          "3000",
          ...flags,
        ]).slice(1),
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
    };
    const wrongSecret = join(dir, "wrong");
    await Deno.writeTextFile(wrongSecret, randomId() + "\n", { mode: 0o600 });
    await Deno.chmod(wrongSecret, 0o600);
    for (
      const [flags, reason] of [
        [["--ca-file", certs.caFile], /asks for the cluster's shared secret/],
        [["--ca-file", certs.caFile, "--secret-file", wrongSecret], /the secrets differ/],
        [[...trust], /TLS certificate is not trusted/],
      ] as const
    ) {
      const r = await stranger([...flags]);
      assert.equal(r.code, 6, `${flags.join(" ")}: exit ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, /^paxoskv: [^\n]+\n$/, r.stderr);
      assert.match(r.stderr, reason);
    }
    // With both: a read of a key never written.
    const friend = await stranger(["--ca-file", certs.caFile, ...trust]);
    assert.equal(friend.code, 3, friend.stderr);

    // KV load from the client host, through partitions of each acceptor host.
    for (let c = 1; c <= WORKERS; c++) {
      workers.push(
        new LineProcess(
          net.on(3, [
            deno,
            "run",
            clientNet,
            "--allow-read",
            workerPath,
            "--client",
            `${c}`,
            "--ops",
            "100000",
            "--keys",
            `${KEYS}`,
            "--seed",
            `${seed + c}`,
            "--pause-ms",
            "20",
            "--timeout-ms",
            "500",
            "--deadline-ms",
            "3000",
            "--secret-file",
            secretFile,
            "--ca-file",
            certs.caFile,
            list,
          ]).slice(1),
          { command: "ip", stdin: true },
        ),
      );
    }
    await Promise.all(workers.map((w) => w.waitFor((l) => l.length >= 1, 30_000)));
    for (const w of workers) assert.equal(w.lines[0], `{"ready":true}`, w.lines.join("\n"));
    for (const w of workers) await w.send("go");
    const random = seededRandom(seed);
    await progress(workers, 20, "finished before the first partition");
    for (let round = 0; round < 6; round++) {
      // Mostly one acceptor host cut off (a majority still serves); once the
      // client host itself (nothing can be decided: operations fail, and
      // what they did is unknown until checked).
      const host = round === 3 ? 3 : Math.floor(random.next() * 3);
      await net.setLink(host, false);
      if (host === 3) await progress(workers, 6, "begun with the client host cut off", true);
      else await progress(workers, 20, `finished with acceptor host ${host} cut off`);
      await net.setLink(host, true);
      await progress(workers, 20, `finished after host ${host} came back`);
    }
    for (const w of workers) await w.send("stop");
    const ops: KvOperation[] = [];
    for (const w of workers) {
      await w.waitFor((l) => l.at(-1) === `{"done":true}`, 30_000);
      for (const l of w.lines) if (l.includes('"call"')) ops.push(decodeLine(l) as KvOperation);
    }
    const known = ops.filter((o) => !("unknown" in o.output)).length;
    assert.ok(known >= 100, `only ${known} operations with a known outcome (seed ${seed})`);
    const result = checkKv(ops);
    if (Deno.env.get("PAXOSKV_VERBOSE")) {
      // deno-lint-ignore no-console
      console.log(`multihost: seed ${seed}, ${ops.length} operations, ${known} known outcomes`);
    }
    assert.ok(
      result.ok,
      `not linearizable (seed ${seed}): ${JSON.stringify(result).slice(0, 500)}`,
    );
  } finally {
    await Promise.all([...workers, ...acceptors].map((p) => p.stop("SIGKILL")));
    await net?.close();
    await Deno.remove(dir, { recursive: true });
  }
});
