// `--trace` on the command line: the messages of set, get, delete and the
// --ver calls, printed after the result, in time order, as text or JSON.
import assert from "node:assert/strict";
import { cli, startAcceptors, stopAll } from "./cli_process.ts";
import { describe, traceLines } from "../cli/trace_output.ts";

Deno.test("trace output: set, get, delete and --ver print the rounds after the result", async () => {
  const { servers, urls } = await startAcceptors([["--memory"], ["--memory"], ["--memory"]]);
  try {
    const acc = ["--acceptors", urls.join(",")];
    const run = async (...args: string[]) => {
      const r = await cli(...args, ...acc);
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr, "");
      return r.stdout.trimEnd().split("\n");
    };

    const set = await run("set", "k", "v1", "--trace");
    assert.equal(set[0], "0", "the result first");
    assert.equal(set[1], `trace: a0 = ${urls[0]}, a1 = ${urls[1]}, a2 = ${urls[2]}`);
    const body = set.slice(2);
    for (
      const want of [
        /--> a0 Latest "k" \(1,[0-9]+\) value v1$/,
        /<-- a\d Latest "k" \(1,[0-9]+\): latest version 0, voted v1 at \(0,[0-9]+\); a first write, voted at round 0$/,
      ]
    ) {
      assert.ok(body.some((l) => want.test(l)), `${want} in ${body.join("\n")}`);
    }
    // A first write: every acceptor voted it in the Latest round, nothing more.
    assert.ok(!body.some((l) => /Phase1|Accept/.test(l)), body.join("\n"));
    const times = body.map((l) => Number(l.trim().split(" ")[0]));
    assert.equal(times[0], 0, "times from the first message");
    assert.deepEqual(times, [...times].sort((a, b) => a - b), "in time order");

    const get = await run("get", "k", "--trace=json");
    assert.equal(get[0], "v1");
    const events = get.slice(1).map((l) => JSON.parse(l));
    assert.deepEqual(events[0], { at: 0, kind: "send", acceptor: urls[0], op: "Latest", key: "k" });
    const reply = events.find((e) => e.kind === "reply");
    assert.equal(reply.latestVer, 0);
    assert.equal(reply.val.Data, "v1");
    assert.ok(events.some((e) => e.kind === "quorum" && e.phase === "Latest" && e.ok));

    const del = await run("delete", "k", "--trace");
    assert.equal(del[0], "1");
    assert.ok(del.some((l) => /--> a2 Accept "k"@1 \(\d+,\d+\) value \(deleted\)$/.test(l)));

    const ver = await run("set", "s", "5", "--ver", "0", "--proposer-id", "7", "--trace");
    assert.deepEqual(ver.slice(0, 2), ["5", set[1]]);
    assert.ok(ver.some((l) => /--> a0 Prepare "s"@0 \(1,7\)$/.test(l)));
    assert.ok(
      ver.some((l) =>
        /<-- a\d Prepare "s"@0 \(1,7\): promised, last ballot \(0,0\), voted nothing$/.test(l)
      ),
    );
    assert.ok(ver.some((l) => /<-- a\d Accept "s"@0 \(1,7\): voted$/.test(l)));
    // A read peeks first: a Prepare at the zero ballot, which promises nothing.
    const read = await run("get", "s", "--ver", "0", "--proposer-id", "3", "--trace");
    assert.equal(read[0], "5");
    assert.ok(
      read.some((l) => /Prepare "s"@0 \(0,0\): last ballot \(1,7\), voted 5 at \(1,7\)$/.test(l)),
      read.join("\n"),
    );
  } finally {
    await stopAll(servers);
  }
});

Deno.test("trace output: --trace takes no value but json or text", async () => {
  const r = await cli("get", "k", "--trace=xml", "--acceptors", "ws://127.0.0.1:1/paxos");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--trace takes no value, or =json \(or =text\), got "xml"/);
});

Deno.test("trace output: raises, backoffs and failures read as one line each", () => {
  const name = (a: string) => a.replace("ws://h:", "a");
  const bal = (N: bigint, ProposerId: bigint) => ({ N, ProposerId });
  assert.equal(
    describe({
      kind: "raise",
      key: "k",
      ver: 2n,
      from: bal(1n, 7n),
      to: bal(4n, 7n),
      seen: bal(3n, 9n),
    }, name),
    'raise "k"@2: ballot (1,7) -> (4,7), above (3,9)',
  );
  assert.equal(
    describe({ kind: "backoff", key: "k", ver: 2n, round: 2, ms: 1.25 }, name),
    'backoff "k"@2: 1.3 ms before round 3',
  );
  assert.equal(
    describe({
      kind: "error",
      acceptor: "ws://h:1",
      op: "Accept",
      key: "k",
      ver: 0n,
      message: "timed out",
    }, name),
    '<-- a1 Accept "k"@0: failed: timed out',
  );
  assert.equal(
    describe({
      kind: "reply",
      acceptor: "ws://h:2",
      op: "Accept",
      key: "k",
      ver: 0n,
      bal: bal(1n, 7n),
      verdict: "refused",
      lastBal: bal(2n, 9n),
    }, name),
    '<-- a2 Accept "k"@0 (1,7): refused, it promised (2,9)',
  );
  assert.deepEqual(traceLines([], ["ws://h:1"], "json"), []);
});
