/**
 * Tests of the command line, cli.ts, through real processes: acceptor and
 * cluster processes serve; set, get, delete and history processes (the KV
 * calls, and the seed's calls with --ver) propose, and the test reads their
 * output and exit statuses. Plus in-process tests of how VALUE arguments are
 * read and values printed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { formatKvValue, formatValue, parseValueArg } from "../cli/format.ts";
import {
  cli,
  cliOut,
  cliWith,
  memberFlags,
  type RunResult,
  Server,
  startAcceptors,
  stopAll,
  URL_LINE,
} from "./cli_process.ts";
import { PaxosProposer } from "../proposer.ts";
import { WebSocketAcceptorClient } from "../transport.ts";
import { LOG_FILE } from "../log_store.ts";
import { RawClient } from "./raw_client.ts";

function assertOneLineError(r: RunResult, what: string): void {
  assert.notEqual(r.code, 0, `${what}: exit status 0; stdout: ${r.stdout}`);
  assert.equal(r.stdout, "", `${what}: printed on stdout`);
  assert.match(r.stderr, /^paxoskv: [^\n]+\n$/, `${what}: stderr is not one line: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s*at /m, `${what}: stack trace: ${r.stderr}`);
}

/** Checks a failure: its exit status, and its one line on stderr, exactly or by pattern. */
function assertFails(r: RunResult, code: number, line: RegExp | string, what: string): void {
  assertOneLineError(r, what);
  assert.equal(r.code, code, `${what}: exit status ${r.code}; stderr: ${r.stderr}`);
  if (typeof line === "string") assert.equal(r.stderr, `${line}\n`, what);
  else assert.match(r.stderr, line, what);
}

/**
 * Waits for every chain, then fails with the first failure: a failed chain
 * must not leave the others' processes running into the next test.
 */
async function allChains(chains: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(chains);
  for (const r of results) if (r.status === "rejected") throw r.reason;
}

/** Checks a success and returns all of stdout. */
function okOut(r: RunResult, what: string): string {
  assert.equal(r.code, 0, `${what}: exit status ${r.code}; stderr: ${r.stderr}`);
  assert.equal(r.stderr, "", what);
  return r.stdout;
}

Deno.test("cli: set and get through three acceptor processes", async () => {
  const { servers, urls } = await startAcceptors([["--memory"], ["--memory"], ["--memory"]]);
  try {
    const acc = ["--acceptors", urls.join(",")];
    assert.equal(await cliOut("set", "foo", "5", "--ver", "0", ...acc), "5");
    assert.equal(await cliOut("get", "foo", "--ver", "0", ...acc), "5");
    // foo@0 is chosen: a later set gets the chosen value back, not its own.
    assert.equal(await cliOut("set", "foo", "7", "--ver", "0", ...acc), "5");
    assert.equal(await cliOut("set", "foo", "hello", "--ver", "1", ...acc), "hello");
    assert.equal(await cliOut("get", "foo", "--ver", "1", ...acc), "hello");
    assert.equal(await cliOut("get", "nope", "--ver", "0", ...acc), "nil");

    // int64 values beyond 2^53 round-trip exactly; --ver takes int64 too.
    for (const v of ["9007199254740993", "-9223372036854775808", "9223372036854775807"]) {
      const ver = ["--ver", "9223372036854775807"];
      assert.equal(await cliOut("set", `big${v}`, v, ...ver, ...acc), v);
      assert.equal(await cliOut("get", `big${v}`, ...ver, ...acc), v);
    }
    // Not canonical integers: stored and printed as strings, exactly.
    assert.equal(await cliOut("set", "str", "007", "--ver", "0", ...acc), "007");
    assert.equal(await cliOut("set", "str", "-0", "--ver", "1", ...acc), "-0");
    // A value that looks like an option, after "--".
    assert.equal(await cliOut("set", "str", "--ver", "2", ...acc, "--", "--x"), "--x");

    // Values other clients wrote as other Data are printed as JSON.
    const clients = urls.map((u) => new WebSocketAcceptorClient(u));
    try {
      const write = (key: string, val: Parameters<PaxosProposer["runPaxos"]>[1]) =>
        new PaxosProposer({ Id: { Key: key, Ver: 0n }, Bal: { N: 1n, ProposerId: 1n } })
          .runPaxos(clients, val, { deadlineMs: 5000 });
      await write("doc", {
        Data: { n: 2n ** 60n + 1n, f: 1.5, bin: new Uint8Array([0, 1, 255]), l: [true, "x"] },
      });
      await write("bytes", { Data: new Uint8Array([1, 2]) });
    } finally {
      await Promise.all(clients.map((c) => c.close()));
    }
    assert.equal(
      await cliOut("get", "doc", "--ver", "0", ...acc),
      '{"n":1152921504606846977,"f":1.5,"bin":"AAH/","l":[true,"x"]}',
    );
    assert.equal(await cliOut("get", "bytes", "--ver", "0", ...acc), '"AQI="');
  } finally {
    const stderrs = await stopAll(servers);
    // With --memory there is nothing to warn about.
    assert.deepEqual(stderrs, ["", "", ""]);
  }
});

Deno.test("cli: set, get, delete and history without --ver: versions, conditions, tombstones", async () => {
  const { servers, urls } = await startAcceptors([["--memory"], ["--memory"], ["--memory"]]);
  try {
    const acc = ["--acceptors", urls.join(",")];
    const run = (...args: string[]) => cli(...args, ...acc);
    const out = (...args: string[]) => cliOut(...args, ...acc);
    // Each chain works on a key of its own, one step after the other; the
    // chains run in parallel.
    await allChains([
      (async () => {
        // Every write takes the next version; get prints the latest value.
        assert.equal(await out("set", "k", "a"), "0");
        assert.equal(await out("set", "k", "b"), "1");
        assert.equal(await out("set", "k", "7"), "2");
        assert.equal(await out("get", "k"), "7");
        // The versions are the seed's instances: --ver reads them one by one.
        assert.equal(await out("get", "k", "--ver", "1"), "b");
        assert.equal(await out("get", "k", "--ver", "3"), "nil");
      })(),
      (async () => {
        // Compare-and-set: -1 is "no version yet".
        assert.equal(await out("set", "cas", "x", "--if-ver", "-1"), "0");
        assert.equal(await out("set", "cas", "y", "--if-ver=0"), "1");
        assertFails(
          await run("set", "cas", "z", "--if-ver", "0"),
          4,
          'paxoskv: version conflict on "cas": expected latest version 0, found 1',
          "stale --if-ver",
        );
        assertFails(
          await run("set", "cas", "z", "--if-ver", "-1"),
          4,
          'paxoskv: version conflict on "cas": expected latest version -1, found 1',
          "--if-ver -1 on a written key",
        );
        // A delete may be conditional too.
        assertFails(
          await run("delete", "cas", "--if-ver", "0"),
          4,
          'paxoskv: version conflict on "cas": expected latest version 0, found 1',
          "stale delete --if-ver",
        );
        assert.equal(await out("get", "cas"), "y"); // nothing was written by the conflicts
        assert.equal(await out("delete", "cas", "--if-ver", "1"), "2");
      })(),
      (async () => {
        // Create-only, then delete: the key is absent again.
        assert.equal(await out("set", "abs", "first", "--if-absent"), "0");
        assertFails(
          await run("set", "abs", "second", "--if-absent"),
          4,
          'paxoskv: version conflict on "abs": it exists, at version 0',
          "--if-absent on a written key",
        );
        assert.equal(await out("delete", "abs"), "1");
        assertFails(
          await run("get", "abs"),
          3,
          'paxoskv: "abs": not found (deleted at version 1)',
          "get after delete",
        );
        assert.equal(await out("set", "abs", "again", "--if-absent"), "2");
        assert.equal(await out("get", "abs"), "again");
      })(),
      (async () => {
        assertFails(await run("get", "never"), 3, 'paxoskv: "never": not found', "get of no key");
        // A key never written has an empty history.
        assert.equal(okOut(await run("history", "never"), "history of no key"), "");
      })(),
      (async () => {
        // History: oldest first, tombstones included, the latest --limit ones.
        for (const v of ["a", "b"]) await out("set", "h", v);
        assert.equal(await out("delete", "h"), "2");
        assert.equal(await out("set", "h", "c d"), "3");
        const [all, last2, last1] = await Promise.all([
          run("history", "h"),
          run("history", "h", "--limit", "2"),
          run("history", "h", "--limit=1"),
        ]);
        assert.equal(okOut(all, "history"), "0\ta\n1\tb\n2\t(deleted)\n3\tc d\n");
        // A list cut by --limit says on stderr that older versions exist.
        assert.equal(last2.code, 0, last2.stderr);
        assert.equal(last2.stdout, "2\t(deleted)\n3\tc d\n");
        assert.equal(
          last2.stderr,
          'paxoskv: "h" has versions before 2: history --before 2 shows them\n',
        );
        assert.equal(last1.stdout, "3\tc d\n");
        // The tombstone read by number.
        assert.equal(await out("get", "h", "--ver", "2"), "(deleted)");
      })(),
    ]);
  } finally {
    assert.deepEqual(await stopAll(servers), ["", "", ""]);
  }
});

Deno.test("cli: --json prints one line of JSON for set, get, delete and history, with exact integers", async () => {
  const { servers, urls } = await startAcceptors([["--memory"], ["--memory"], ["--memory"]]);
  try {
    const acc = ["--acceptors", urls.join(",")];
    const run = (...args: string[]) => cli(...args, "--json", ...acc);
    const json = async (...args: string[]): Promise<[string, unknown]> => {
      const line = await cliOut(...args, "--json", ...acc);
      return [line, JSON.parse(line)];
    };
    const big = "9007199254740993"; // 2^53 + 1: a JavaScript number cannot hold it
    await allChains([
      (async () => {
        assert.deepEqual((await json("set", "j", big))[1], { key: "j", version: 0 });
        // Beyond 2^53 the raw text is exact.
        assert.equal(
          (await json("get", "j"))[0],
          `{"key":"j","found":true,"version":0,"value":${big}}`,
        );
        assert.deepEqual((await json("set", "j", "5x"))[1], { key: "j", version: 1 });
        assert.deepEqual((await json("get", "j"))[1], {
          key: "j",
          found: true,
          version: 1,
          value: "5x",
        });
        assert.deepEqual((await json("delete", "j"))[1], { key: "j", version: 2, deleted: true });
        // Not found: the JSON line on stdout, nothing on stderr, exit status 3.
        const gone = await run("get", "j");
        assert.equal(gone.code, 3, gone.stderr);
        assert.equal(gone.stderr, "");
        assert.deepEqual(JSON.parse(gone.stdout), { key: "j", found: false, version: 2 });
        assert.match(gone.stdout, /^[^\n]+\n$/);
        const [raw, hist] = await json("history", "j");
        assert.equal(
          raw,
          `{"key":"j","versions":[{"version":0,"value":${big}},` +
            `{"version":1,"value":"5x"},{"version":2,"deleted":true}]}`,
        );
        assert.equal((hist as { versions: unknown[] }).versions.length, 3);
        assert.deepEqual((await json("history", "none"))[1], { key: "none", versions: [] });
      })(),
      (async () => {
        const nope = await run("get", "nope");
        assert.equal(nope.code, 3, nope.stderr);
        assert.deepEqual(JSON.parse(nope.stdout), { key: "nope", found: false, version: -1 });
        // Errors stay one line on stderr, with their exit status.
        assert.deepEqual((await json("set", "c", "v", "--if-absent"))[1], { key: "c", version: 0 });
        assertFails(
          await run("set", "c", "w", "--if-absent"),
          4,
          'paxoskv: version conflict on "c": it exists, at version 0',
          "--json conflict",
        );
      })(),
      (async () => {
        // The seed's calls: "ver" and the chosen value, null for nil.
        assert.deepEqual((await json("set", "v", "5", "--ver", "0"))[1], {
          key: "v",
          ver: 0,
          value: 5,
        });
        assert.deepEqual((await json("set", "v", "05", "--ver", "1"))[1], {
          key: "v",
          ver: 1,
          value: "05",
        });
        assert.equal(
          (await json("get", "v", "--ver", "9223372036854775807"))[0],
          `{"key":"v","ver":9223372036854775807,"value":null}`,
        );
        assert.equal(
          (await json("set", "v", "-9223372036854775808", "--ver", "2"))[0],
          `{"key":"v","ver":2,"value":-9223372036854775808}`,
        );
        assert.deepEqual((await json("get", "v", "--ver", "0"))[1], { key: "v", ver: 0, value: 5 });
      })(),
      (async () => {
        // Other clients' Data: JSON with binary as base64 and exact integers.
        const clients = urls.map((u) => new WebSocketAcceptorClient(u));
        try {
          await new PaxosProposer({ Id: { Key: "doc", Ver: 0n }, Bal: { N: 1n, ProposerId: 1n } })
            .runPaxos(clients, { Data: { n: 2n ** 60n + 1n, bin: new Uint8Array([0, 1, 255]) } }, {
              deadlineMs: 5000,
            });
        } finally {
          await Promise.all(clients.map((c) => c.close()));
        }
        const doc = '{"n":1152921504606846977,"bin":"AAH/"}';
        assert.equal(
          (await json("get", "doc"))[0],
          `{"key":"doc","found":true,"version":0,"value":${doc}}`,
        );
        assert.equal(
          (await json("get", "doc", "--ver", "0"))[0],
          `{"key":"doc","ver":0,"value":${doc}}`,
        );
        assert.equal(await cliOut("get", "doc", ...acc), doc);
      })(),
    ]);
  } finally {
    assert.deepEqual(await stopAll(servers), ["", "", ""]);
  }
});

Deno.test("cli: acceptor --keep-versions 2 forgets older versions: get --ver exits 5, history shows the last 2", async () => {
  const keep = ["--memory", "--keep-versions", "2"];
  const { servers, urls } = await startAcceptors([keep, keep, keep]);
  try {
    const acc = ["--acceptors", urls.join(",")];
    for (let i = 0; i < 5; i++) assert.equal(await cliOut("set", "k", `v${i}`, ...acc), `${i}`);
    const [old, oldJson, hist, histJson, latest, kept] = await Promise.all([
      cli("get", "k", "--ver", "0", ...acc),
      cli("get", "k", "--ver", "2", "--json", ...acc),
      cli("history", "k", ...acc),
      cli("history", "k", "--json", ...acc),
      cli("get", "k", ...acc),
      cli("get", "k", "--ver", "3", ...acc),
    ]);
    assertFails(
      old,
      5,
      'paxoskv: "k"@0 is compacted: the acceptors no longer keep this version',
      "get --ver 0",
    );
    assertFails(oldJson, 5, /^paxoskv: "k"@2 is compacted/, "get --ver 2 --json");
    assert.equal(okOut(hist, "history"), "3\tv3\n4\tv4\n");
    assert.deepEqual(JSON.parse(okOut(histJson, "history --json")), {
      key: "k",
      versions: [{ version: 3, value: "v3" }, { version: 4, value: "v4" }],
    });
    assert.equal(okOut(latest, "get"), "v4\n");
    assert.equal(okOut(kept, "get --ver 3"), "v3\n");
  } finally {
    assert.deepEqual(await stopAll(servers), ["", "", ""]);
  }
});

Deno.test("cli: set fails with one line within its deadline when two of three acceptors are down", async () => {
  // Acceptor 2 runs on a durable store.
  const data = await Deno.makeTempDir({ prefix: "paxoskv-cli-" });
  const { servers, urls } = await startAcceptors([["--memory"], ["--memory"], ["--data", data]]);
  try {
    await stopAll(servers.slice(0, 2));
    const limits = ["--deadline", "1000", "--timeout", "300", "--acceptors", urls.join(",")];
    const [r, kvSet, kvGet] = await Promise.all([
      cli("set", "foo", "5", "--ver", "0", ...limits),
      cli("set", "foo", "5", ...limits),
      cli("get", "foo", ...limits),
    ]);
    // Without --ver, connecting finds no majority.
    for (const [k, what] of [[kvSet, "set"], [kvGet, "get"]] as const) {
      assertFails(k, 1, /^paxoskv: cannot reach a majority of the acceptors: /, `${what} (kv)`);
      assert.ok(k.ms < 10_000, `${what} took ${k.ms} ms with a 1000 ms deadline`);
    }
    assertOneLineError(r, "set without a quorum");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^paxoskv: cannot reach a majority of the acceptors: /);
    // A generous bound: the deadline is 1 s, process start and exit included.
    assert.ok(r.ms < 10_000, `set took ${r.ms} ms with a 1000 ms deadline`);
  } finally {
    assert.deepEqual(await stopAll(servers.slice(2)), [""]);
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("cli: --help of the program and of every command", async () => {
  const cases = [
    ["--help"],
    ["-h"],
    ["help"],
    ["help", "set"],
    ["acceptor", "--help"],
    ["cluster", "-h"],
    ["set", "--help"],
    ["get", "--help"],
    ["delete", "--help"],
    ["history", "-h"],
    ["help", "history"],
    ["set", "foo", "--bogus", "--help"], // help wins over a bad command line
  ];
  const results = await Promise.all(cases.map((args) => cli(...args)));
  results.forEach((r, i) => {
    const what = `cli.ts ${cases[i]!.join(" ")}`;
    assert.equal(r.code, 0, `${what}: exit status ${r.code}; stderr: ${r.stderr}`);
    assert.equal(r.stderr, "", what);
    assert.match(r.stdout, /Usage/, what);
  });
  // Each command's help is about that command.
  const byCommand = [[4, "acceptor"], [5, "cluster"], [6, "set"], [7, "get"], [8, "delete"], [
    9,
    "history",
  ]] as const;
  for (const [i, cmd] of byCommand) {
    assert.match(results[i]!.stdout, new RegExp(`cli\\.ts ${cmd} `), `help of ${cmd}`);
  }
  assert.equal(results[10]!.stdout, results[9]!.stdout);
  // The program's help lists every command; the help of each key command
  // documents every exit status and --json.
  for (
    const cmd of ["acceptor", "cluster", "set", "get", "delete", "history", "list", "watch", "help"]
  ) {
    assert.match(results[0]!.stdout, new RegExp(`^  ${cmd} `, "m"), `top help lists ${cmd}`);
  }
  for (const i of [0, 6, 7, 8, 9]) {
    for (const code of [0, 1, 2, 3, 4, 5]) {
      assert.match(results[i]!.stdout, new RegExp(`^  ${code}  `, "m"), `exit ${code} in ${i}`);
    }
  }
  for (const i of [6, 7, 8, 9]) assert.match(results[i]!.stdout, /--json/);
  assert.match(results[6]!.stdout, /--if-ver N[^]*--if-absent/);
  assert.match(results[8]!.stdout, /--if-ver N/);
  assert.match(results[9]!.stdout, /--limit N/);
  assert.match(results[4]!.stdout, /--keep-versions K/);
});

Deno.test("cli: bad command lines exit 2 with one line on stderr", async () => {
  const acc = ["--acceptors", "ws://127.0.0.1:1/paxos"];
  const cases: [string[], RegExp][] = [
    [[], /missing command/],
    [["bogus"], /unknown command "bogus"/],
    [["--bogus"], /unknown option "--bogus"/],
    [["set", "foo", "5", "--ver", "0", "--bogus", "1", ...acc], /unknown option "--bogus"/],
    [["get", "foo", "-x", "--ver", "0", ...acc], /unknown option "-x"/],
    [["set", "foo", "5"], /missing --acceptors/],
    [["delete", "foo"], /missing --acceptors/],
    [["set", "foo", "5", "--ver", "0", "--if-ver", "0", ...acc], /--if-ver does not go with --ver/],
    [["set", "foo", "5", "--ver", "0", "--if-absent", ...acc], /--if-absent does not go/],
    [["set", "foo", "5", "--if-ver", "-2", ...acc], /--if-ver must be a version: -1/],
    [["set", "foo", "5", "--if-ver", "x", ...acc], /--if-ver must be/],
    [["delete", "foo", "--if-ver", "1.5", ...acc], /--if-ver must be/],
    [["get", "foo", "--proposer-id", "1", ...acc], /--proposer-id goes only with --ver/],
    [["get", "foo", "--if-ver", "1", ...acc], /unknown option "--if-ver"/],
    [["delete", "foo", "--ver", "0", ...acc], /unknown option "--ver"/],
    [["delete", ...acc], /missing KEY/],
    [["history", "foo", "bar", ...acc], /unexpected argument "bar"/],
    [["history", "foo", "--limit", "0", ...acc], /--limit must be a positive integer, got "0"/],
    [["history", "foo", "--limit", "-1", ...acc], /--limit must be a positive integer/],
    [["history", "foo", "--json=yes", ...acc], /--json takes no value/],
    [["acceptor", "--id", "0", "--keep-versions", "0"], /--keep-versions must be a positive/],
    [["acceptor", "--id", "0", "--keep-versions", "two"], /--keep-versions must be/],
    [["acceptor", "--id", "0", "--max-keys", "0"], /--max-keys must be a positive integer up to/],
    [["acceptor", "--id", "0", "--max-keys", "16000001"], /up to 16000000 .*got "16000001"/],
    [["acceptor", "--id", "0", "--max-keys", "1e6"], /--max-keys must be/],
    [
      ["acceptor", "--data", "/nonexistent/x", "--engine", "sqlite", "--max-keys", "5"],
      /--max-keys is for the log engine and --memory, which keep every key in memory/,
    ],
    [["get", "foo", "--ver", "x", ...acc], /--ver must be a non-negative int64, got "x"/],
    [["get", "foo", "--ver", "-1", ...acc], /--ver must be/],
    [["get", "foo", "--ver", "9223372036854775808", ...acc], /--ver must be/],
    [["get", "foo", "--ver"], /--ver needs a value/],
    [["get", "foo", "--ver", "0"], /missing --acceptors/],
    [["get", "foo", "--ver", "0", "--acceptors", "http://127.0.0.1:1/paxos"], /ws:\/\//],
    [["get", "foo", "--ver", "0", "--acceptors", "ws://[::1"], /not a URL/],
    [["get", "foo", "--ver", "0", "--acceptors", "ws://127.0.0.1:1/paxos,"], /empty entry/],
    [["get", "foo", "--ver", "0", "--acceptors", "ws://127.0.0.1:1"], /no path/],
    [["get", "foo", "--ver", "0", "--timeout", "0", ...acc], /--timeout must be/],
    [["get", "foo", "--ver", "0", "--proposer-id", "0", ...acc], /--proposer-id must be/],
    [["get", "--ver", "0", ...acc], /missing KEY/],
    [["get", "foo", "bar", "--ver", "0", ...acc], /unexpected argument "bar"/],
    [["set", "foo", "--ver", "0", ...acc], /missing VALUE/],
    [["acceptor"], /missing --data DIR \(or --memory/],
    [["acceptor", "--memory"], /missing --id/],
    [["acceptor", "--data", "/nonexistent/x", "--init"], /--init needs --cluster NAME/],
    [["acceptor", "--data", "/x", "--init", "--cluster", "c"], /--init needs --members/],
    [["acceptor", "--memory", "--id", "0", "--init"], /--init is for a data directory/],
    [["acceptor", "--memory", "--id", "3", "--members", "0,1,2"], /--id 3 is not in --members/],
    [["acceptor", "--memory", "--id", "0", "--members", "0,0"], /member 0 is listed twice/],
    [["acceptor", "--memory", "--id", "0", "--cluster", "a b"], /cluster name "a b"/],
    [["acceptor", "--memory", "--id", "0", "--cluster-id", "xyz"], /expected 32 lowercase hex/],
    [["acceptor", "--memory", "--id", "0", "--host", "0.0.0.0"], /without --secret-file/],
    [["acceptor", "--memory", "--id", "0", "--tls-cert", "c.pem"], /--tls-cert and --tls-key/],
    [["acceptor", "--memory", "--id", "0", "--secret-file", "/nonexistent"], /--secret-file/],
    [["acceptor", "--memory", "--id", "0", "--allow-origin", "a.b"], /not an origin/],
    [["get", "foo", "--secret-file", "/nonexistent", ...acc], /--secret-file "\/nonexistent"/],
    [["get", "foo", "--ca-file", "/nonexistent", ...acc], /--ca-file "\/nonexistent"/],
    [["acceptor", "--id", "0", "--port", "65536"], /--port must be/],
    [["acceptor", "--id", "0", "--memory=yes"], /--memory takes no value/],
    [["cluster", "--base-port", "x"], /--base-port must be/],
  ];
  const results = await Promise.all(cases.map(([args]) => cli(...args)));
  results.forEach((r, i) => {
    const [args, reason] = cases[i]!;
    const what = `cli.ts ${args.join(" ")}`;
    assertOneLineError(r, what);
    assert.equal(r.code, 2, `${what}: exit status ${r.code}`);
    assert.match(r.stderr, reason, what);
  });
});

Deno.test("cli: cluster --base-port 0 serves three acceptors; SIGINT stops it", async () => {
  const cluster = new Server(["cluster", "--base-port", "0"]);
  let stopped = false;
  try {
    const urlsOf = (lines: readonly string[]) =>
      lines.flatMap((l) => /^\s*acceptor [0-2]: (ws:\S+)$/.exec(l)?.[1] ?? []);
    const lines = await cluster.waitFor((ls) => ls.some((l) => /Ctrl-C/.test(l)));
    const urls = urlsOf(lines);
    assert.equal(urls.length, 3, `three URLs in ${JSON.stringify(lines)}`);
    for (const u of urls) assert.match(u, URL_LINE);
    assert.equal(new Set(urls).size, 3);
    // The example commands are ready to copy: they name these acceptors.
    const list = urls.join(",");
    for (
      const cmd of ["set foo 5", "get foo", "history foo", "set foo 5 --ver 0", "get foo --ver 0"]
    ) {
      assert.ok(lines.some((l) => l.endsWith(`cli.ts ${cmd} --acceptors ${list}`)), cmd);
    }

    assert.equal(await cliOut("set", "foo", "5", "--ver", "0", "--acceptors", list), "5");
    assert.equal(await cliOut("get", "foo", "--ver", "0", "--acceptors", list), "5");
    // The KV calls see foo@0 as the latest version, and write the next one.
    assert.equal(await cliOut("get", "foo", "--acceptors", list), "5");
    assert.equal(await cliOut("set", "foo", "6", "--acceptors", list), "1");

    const { status, stderr } = await cluster.stop("SIGINT");
    stopped = true;
    assert.equal(status.signal, null, `killed by ${status.signal}; stderr: ${stderr}`);
    assert.equal(status.code, 0, `exit status ${status.code}; stderr: ${stderr}`);
    assert.equal(stderr, "");
  } finally {
    if (!stopped) await cluster.stop("SIGKILL");
  }
});

Deno.test("cli: an acceptor or a cluster that cannot listen exits 1 with one line", async () => {
  // A port taken by this test.
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (taken.addr as Deno.NetAddr).port;
  try {
    assertFails(
      await cli("acceptor", "--id", "0", "--memory", "--port", `${port}`),
      1,
      new RegExp(`^paxoskv: acceptor 0 cannot listen on 127\\.0\\.0\\.1:${port}: .*in use`, "i"),
      "acceptor on a taken port",
    );
    assertFails(
      await cli("cluster", "--base-port", `${port}`),
      1,
      new RegExp(`^paxoskv: .*${port}.*in use`, "i"),
      "cluster on a taken port",
    );
  } finally {
    taken.close();
  }
});

Deno.test("cli: parseValueArg sends canonical int64 as Vi64 and anything else as Data", () => {
  assert.deepEqual(parseValueArg("5"), { Vi64: 5n });
  assert.deepEqual(parseValueArg("0"), { Vi64: 0n });
  assert.deepEqual(parseValueArg("-12"), { Vi64: -12n });
  assert.deepEqual(parseValueArg("9223372036854775807"), { Vi64: 2n ** 63n - 1n });
  assert.deepEqual(parseValueArg("-9223372036854775808"), { Vi64: -(2n ** 63n) });
  // Integers outside int64 too, as `set --help` says.
  for (
    const s of [
      "-0",
      "007",
      "+5",
      "5.0",
      "1e3",
      " 5",
      "",
      "hello",
      "0x10",
      "9223372036854775808",
      "-9223372036854775809",
    ]
  ) {
    assert.deepEqual(parseValueArg(s), { Data: s }, JSON.stringify(s));
  }
  assert.throws(() => parseValueArg("x".repeat(1024 * 1024 + 1)), RangeError);
});

Deno.test("cli: formatValue prints Vi64 in decimal, strings as-is, other Data as JSON", () => {
  assert.equal(formatValue({ Vi64: -(2n ** 63n) }), "-9223372036854775808");
  assert.equal(formatValue({ Data: 'a "b"' }), 'a "b"');
  assert.equal(formatValue({ Data: 5 }), "5");
  assert.equal(formatValue({ Data: 2n ** 64n }), "18446744073709551616");
  assert.equal(formatValue({ Data: false }), "false");
  assert.equal(formatValue({ Data: new Uint8Array([0xfb, 0xff]) }), '"+/8="');
  assert.equal(
    formatValue({ Data: [NaN, Infinity, -Infinity, -0, 0.25, null, { "k\n": ["s"] }, []] }),
    '["NaN","Infinity","-Infinity",-0,0.25,null,{"k\\n":["s"]},[]]',
  );
  const json = formatValue({ Data: { a: { b: [1, "2", { c: 3n }] } } });
  assert.deepEqual(JSON.parse(json), { a: { b: [1, "2", { c: 3 }] } });
});

Deno.test("cli: formatKvValue prints bigints in decimal, strings as-is, other values as JSON", () => {
  assert.equal(formatKvValue(2n ** 63n - 1n), "9223372036854775807");
  assert.equal(formatKvValue("a\tb"), "a\tb");
  assert.equal(formatKvValue(1.5), "1.5");
  assert.equal(formatKvValue(true), "true");
  assert.equal(formatKvValue(new Uint8Array([1, 2])), '"AQI="');
  assert.equal(formatKvValue({ a: [2n ** 60n, "x"] }), '{"a":[1152921504606846976,"x"]}');
});

Deno.test("cli: an acceptor keeps its state across restarts on the directory --init made; it refuses to start without it", async () => {
  const data = await Deno.makeTempDir({ prefix: "paxoskv-cli-data-" });
  const dir = join(data, "acceptor-4");
  try {
    // An empty directory without --init: refused, nothing written.
    const empty = await cli("acceptor", "--port", "0", "--data", dir);
    assertOneLineError(empty, "start on an empty directory");
    assert.equal(empty.code, 1);
    assert.match(
      empty.stderr,
      /holds no acceptor state: an empty acceptor that joins a running cluster can lose acknowledged writes\. For a member of a new cluster add --init/,
    );
    await assert.rejects(Deno.stat(dir), Deno.errors.NotFound);

    const init = ["--init", "--cluster", "solo", "--members", "4", "--id", "4"];
    const first = new Server(["acceptor", "--port", "0", "--data", dir, ...init]);
    const [url1] = await first.waitFor((l) => l.length >= 1);
    assert.equal(await cliOut("set", "foo", "5", "--ver", "0", "--acceptors", url1!), "5");
    assert.deepEqual(await stopAll([first]), [""]);
    assert.ok((await Deno.stat(join(dir, "acceptor.log"))).size > 8);

    // --init again, or another identity: refused before anything is written.
    for (
      const [args, why] of [
        [init, /already holds member 4 of cluster solo .*: --init is for a new member/],
        [["--id", "5"], /its id is 4, not 5 as given/],
        [["--cluster", "other"], /its cluster is solo, not other as given/],
        [["--keep-versions", "2"], /--keep-versions is set for the whole cluster at --init/],
      ] as const
    ) {
      const r = await cli("acceptor", "--port", "0", "--data", dir, ...args);
      assertOneLineError(r, `restart with ${args.join(" ")}`);
      assert.equal(r.code, 1);
      assert.match(r.stderr, why);
    }

    // Restarted on the same data: foo₀ is still chosen, another value cannot be.
    const second = new Server(["acceptor", "--port", "0", "--data", dir]);
    const [url2] = await second.waitFor((l) => l.length >= 1);
    try {
      assert.equal(await cliOut("get", "foo", "--ver", "0", "--acceptors", url2!), "5");
      assert.equal(await cliOut("set", "foo", "6", "--ver", "0", "--acceptors", url2!), "5");

      // A second acceptor on the same directory refuses to start.
      const r = await cli("acceptor", "--port", "0", "--data", dir);
      assertOneLineError(r, "second acceptor on one data dir");
      assert.equal(r.code, 1);
      assert.match(r.stderr, /in use by another acceptor/);
    } finally {
      assert.deepEqual(await stopAll([second]), [""]);
    }
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("cli: data of the previous release (a log, no identity) is refused until --init adopts it, then serves what it held", async () => {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-cli-legacy-" });
  try {
    // What the previous release left: a log with a chosen value, no identity.
    const a = new Server(["acceptor", "--port", "0", ...memberFlags(0, [0], { data: dir })]);
    const [url] = await a.waitFor((l) => l.length >= 1);
    assert.equal(await cliOut("set", "old", "7", "--ver", "0", "--acceptors", url!), "7");
    await stopAll([a]);
    await Deno.remove(join(dir, "identity.json"));

    const r = await cli("acceptor", "--port", "0", "--data", dir);
    assertOneLineError(r, "a log without an identity");
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /holds an acceptor log of an earlier release but no cluster identity: give it one, once, with --init/,
    );

    const adopted = new Server([
      "acceptor",
      "--port",
      "0",
      "--data",
      dir,
      "--init",
      "--cluster",
      "old",
      "--members",
      "0",
      "--id",
      "0",
    ]);
    try {
      const [url2] = await adopted.waitFor((l) => l.length >= 1);
      assert.equal(await cliOut("get", "old", "--ver", "0", "--acceptors", url2!), "7");
    } finally {
      const [stderr] = await stopAll([adopted]);
      assert.match(stderr!, /holds a log of an earlier release: it becomes member 0's/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: an acceptor refuses to start on a damaged log, naming the file and offset", async () => {
  const data = await Deno.makeTempDir({ prefix: "paxoskv-cli-damaged-" });
  try {
    const a = new Server(["acceptor", "--port", "0", ...memberFlags(0, [0], { data })]);
    const [url] = await a.waitFor((l) => l.length >= 1);
    for (const ver of ["0", "1"]) {
      assert.equal(await cliOut("set", "k", ver, "--ver", ver, "--acceptors", url!), ver);
    }
    await stopAll([a]);
    const log = join(data, "acceptor.log");
    const bytes = await Deno.readFile(log);
    bytes[8 + 12 + 3] = bytes[8 + 12 + 3]! ^ 0xff; // inside the first record's payload
    await Deno.writeFile(log, bytes);
    const r = await cli("acceptor", "--port", "0", "--data", data);
    assertOneLineError(r, "damaged log");
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`${log}: checksum mismatch`), r.stderr);
    assert.match(r.stderr, /at offset 8; refusing to start/);
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

// Acceptors that take the TCP connection and never answer.
function blackHoles(n: number): { urls: string[]; close(): Promise<void> } {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const held: Deno.Conn[] = [];
  const loops = listeners.map(async (l) => {
    try {
      for await (const c of l) held.push(c);
    } catch { /* closed */ }
  });
  return {
    urls: listeners.map((l) => `ws://127.0.0.1:${l.addr.port}/paxos`),
    async close() {
      for (const l of listeners) l.close();
      await Promise.all(loops);
      for (const c of held) {
        try {
          c.close();
        } catch { /* closed by the peer */ }
      }
    },
  };
}

Deno.test("cli: --deadline bounds the whole process when acceptors take the connection and never answer", async () => {
  const started = await startAcceptors([["--memory"], ["--memory"], ["--memory"]]);
  // Member 2 stops; where it was, an acceptor that never answers.
  await stopAll(started.servers.slice(2));
  const servers = started.servers.slice(0, 2);
  const urls = started.urls.slice(0, 2);
  const holes = blackHoles(2);
  try {
    await cliOut("set", "foo", "v", "--acceptors", [...urls, holes.urls[0]!].join(","));
    // A per-request timeout far beyond the deadline (and beyond the 20 s
    // after which the test's runner kills a process): the deadline decides.
    const limits = ["--timeout", "60000", "--deadline", "1000"];
    const [none, one] = await Promise.all([
      cli("get", "foo", ...limits, "--acceptors", [urls[0]!, ...holes.urls].join(",")),
      cli("get", "foo", ...limits, "--acceptors", [...urls, holes.urls[0]!].join(",")),
    ]);
    assertFails(
      none,
      1,
      /^paxoskv: cannot reach a majority of the acceptors: 1 of 3 answered, 2 needed; no majority answered within the deadline/,
      "two holes",
    );
    // A generous bound (the deadline is 1 s, process start included).
    assert.ok(none.ms < 10_000, `two holes: the process took ${none.ms} ms`);
    assert.equal(okOut(one, "one hole"), "v\n");
    assert.ok(one.ms < 10_000, `one hole: the process took ${one.ms} ms`);
  } finally {
    await holes.close();
    assert.deepEqual(await stopAll(servers), ["", ""]);
  }
});

Deno.test("cli: keys in messages are quoted; delete of a key with no value exits 3; values beyond int64 are strings; no request past the last version", async () => {
  const { servers, urls } = await startAcceptors([["--memory"], ["--memory"], ["--memory"]]);
  try {
    const acc = ["--acceptors", urls.join(",")];
    const run = (...args: string[]) => cli(...args, ...acc);
    await allChains([
      (async () => {
        assertFails(await run("get", ""), 3, 'paxoskv: "": not found', "empty key");
        assertFails(await run("get", "a\nb"), 3, 'paxoskv: "a\\nb": not found', "newline");
        // What Deno makes of bytes that are not UTF-8 in an argument.
        assertFails(
          await run("get", "k\uFFFD"),
          2,
          /^paxoskv: get: KEY "k\uFFFD" holds U\+FFFD/,
          "U+FFFD",
        );
      })(),
      (async () => {
        assertFails(await run("delete", "missing"), 3, 'paxoskv: "missing": not found', "delete");
        assert.equal(okOut(await run("history", "missing"), "history"), "");
        assert.equal(okOut(await run("set", "gone", "x"), "set"), "0\n");
        assert.equal(okOut(await run("delete", "gone"), "delete"), "1\n");
        assertFails(
          await run("delete", "gone"),
          3,
          'paxoskv: "gone": not found (deleted at version 1)',
          "delete twice",
        );
        assert.equal(okOut(await run("history", "gone"), "history"), "0\tx\n1\t(deleted)\n");
      })(),
      (async () => {
        // As set --help says: an integer outside int64 is stored as a string.
        assert.equal(okOut(await run("set", "huge", "9223372036854775808"), "set huge"), "0\n");
        assert.equal(
          okOut(await run("get", "huge", "--json"), "get huge"),
          '{"key":"huge","found":true,"version":0,"value":"9223372036854775808"}\n',
        );
      })(),
      (async () => {
        const max = "9223372036854775807";
        assert.equal(okOut(await run("set", "ovf", "x", "--ver", max), "set --ver max"), "x\n");
        for (const args of [["set", "ovf", "y"], ["delete", "ovf"]]) {
          assertFails(
            await run(...args),
            1,
            `paxoskv: "ovf" is at version ${max}, the largest int64: there is no next version to write`,
            args.join(" "),
          );
        }
      })(),
    ]);
  } finally {
    assert.deepEqual(await stopAll(servers), ["", "", ""]);
  }
});

Deno.test("cli: PAXOSKV_ACCEPTORS, a value from standard input or a file, --type, --version", async () => {
  const { servers, urls } = await startAcceptors([["--memory"], ["--memory"], ["--memory"]]);
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-cli-" });
  try {
    const acc = ["--acceptors", urls.join(",")];
    const run = (...args: string[]) => cli(...args, ...acc);
    const json = async (key: string) => okOut(await run("get", key, "--json"), `get ${key}`);
    await allChains([
      (async () => {
        // The acceptors from the environment, with --allow-env; the option wins.
        const env = { PAXOSKV_ACCEPTORS: urls.join(",") };
        const flags = ["--allow-env"];
        assert.equal(okOut(await cliWith({ env, flags }, "set", "e", "1"), "env set"), "0\n");
        assert.equal(okOut(await cliWith({ env, flags }, "get", "e"), "env get"), "1\n");
        const wrong = { PAXOSKV_ACCEPTORS: "ws://127.0.0.1:1/paxos" };
        assert.equal(
          okOut(await cliWith({ env: wrong, flags }, "get", "e", ...acc), "wins"),
          "1\n",
        );
        // Without --allow-env the variable is not read (and no prompt).
        assertFails(
          await cliWith({ env }, "get", "e"),
          2,
          /^paxoskv: get: missing --acceptors \(or PAXOSKV_ACCEPTORS, with --allow-env\)/,
          "no --allow-env",
        );
      })(),
      (async () => {
        // Beyond what a command line can carry (~128 KiB): from standard input.
        const big = "x".repeat(300 * 1024) + "\n";
        assert.equal(
          okOut(await cliWith({ stdin: big }, "set", "big", "-", ...acc), "stdin"),
          "0\n",
        );
        assert.equal(okOut(await run("get", "big"), "get big"), big + "\n");
        // The same rule as an argument: "5" is an int64, "5\n" a string.
        assert.equal(okOut(await cliWith({ stdin: "5" }, "set", "n", "-", ...acc), "5"), "0\n");
        assert.equal(await json("n"), '{"key":"n","found":true,"version":0,"value":5}\n');
        // Bytes that are not UTF-8: refused as text, stored with --type bytes.
        const bin = new Uint8Array([0xff, 0x00, 0x80]);
        assertFails(
          await cliWith({ stdin: bin }, "set", "b", "-", ...acc),
          2,
          /^paxoskv: set: standard input is not UTF-8 text: give --type bytes/,
          "binary as text",
        );
        const file = join(dir, "bin");
        await Deno.writeFile(file, bin);
        assert.equal(
          okOut(await run("set", "b", "--file", file, "--type", "bytes"), "file"),
          "0\n",
        );
        assert.equal(await json("b"), '{"key":"b","found":true,"version":0,"value":"/wCA"}\n');
        assertFails(
          await run("set", "b", "--file", join(dir, "none")),
          2,
          /^paxoskv: set: --file ".*none": /,
          "no such file",
        );
        assertFails(
          await run("set", "b", "v", "--file", file),
          2,
          /unexpected argument "v"/,
          "both",
        );
      })(),
      (async () => {
        assert.equal(okOut(await run("set", "s", "12345", "--type", "string"), "string"), "0\n");
        assert.equal(await json("s"), '{"key":"s","found":true,"version":0,"value":"12345"}\n');
        assert.equal(
          okOut(await cliWith({ stdin: " 42\n" }, "set", "i", "-", "--type", "int", ...acc), "int"),
          "0\n",
        );
        assert.equal(await json("i"), '{"key":"i","found":true,"version":0,"value":42}\n');
        assertFails(
          await run("set", "i", "4x", "--type", "int"),
          2,
          /--type int: VALUE must be a decimal integer/,
          "int",
        );
        const doc = '{"a":[1,9007199254740993,"t"],"b":{"c":true}}';
        assert.equal(okOut(await run("set", "j", doc, "--type", "json"), "json"), "0\n");
        assert.equal(await json("j"), `{"key":"j","found":true,"version":0,"value":${doc}}\n`);
        assertFails(
          await run("set", "j", "{", "--type", "json"),
          2,
          /--type json: VALUE is not JSON/,
          "bad json",
        );
        assertFails(await run("set", "j", "null", "--type", "json"), 2, /is null/, "null");
        assert.equal(okOut(await run("set", "y", "AQI=", "--type", "bytes"), "bytes"), "0\n");
        assert.equal(await json("y"), '{"key":"y","found":true,"version":0,"value":"AQI="}\n');
        assertFails(
          await run("set", "y", "x", "--type", "float"),
          2,
          /--type must be one of string, int, json, bytes, got "float"/,
          "type",
        );
      })(),
      (async () => {
        const r = await cli("--version");
        assert.match(okOut(r, "--version"), /^paxoskv [0-9]+\.[0-9]+\.[0-9]+ \(deno [0-9.]+\)\n$/);
      })(),
    ]);
  } finally {
    assert.deepEqual(await stopAll(servers), ["", "", ""]);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli: list prints the keys of a prefix and their values, pages with --limit and --cursor", async () => {
  const { servers, urls } = await startAcceptors([["--memory"], ["--memory"], ["--memory"]]);
  try {
    const acc = ["--acceptors", urls.join(",")];
    const run = (...args: string[]) => cli(...args, ...acc);
    for (const [k, v] of [["u/2", "bob"], ["u/1", "alice"], ["u/3", "carol"], ["v", "x"]]) {
      okOut(await run("set", k!, v!), `set ${k}`);
    }
    okOut(await run("set", "u/gone", "x"), "set");
    okOut(await run("delete", "u/gone"), "delete");
    okOut(await run("set", "u/1", "7"), "set again");
    assert.equal(okOut(await run("list", "u/"), "list"), "u/1\t7\nu/2\tbob\nu/3\tcarol\n");
    assert.equal(okOut(await run("list", "u/", "--keys-only"), "keys"), "u/1\nu/2\nu/3\n");
    assert.equal(okOut(await run("list"), "all").split("\n").length - 1, 4);
    assert.equal(
      okOut(await run("list", "u/", "--json"), "json"),
      '{"key":"u/1","version":1,"value":7}\n{"key":"u/2","version":0,"value":"bob"}\n' +
        '{"key":"u/3","version":0,"value":"carol"}\n',
    );
    // Cut by --limit: the cursor to go on from.
    const first = await run("list", "u/", "--limit", "2", "--json");
    const lines = first.stdout.trim().split("\n");
    assert.equal(first.code, 0, first.stderr);
    assert.equal(lines.length, 3);
    const { cursor } = JSON.parse(lines[2]!);
    assert.equal(typeof cursor, "string");
    assert.equal(okOut(await run("list", "u/", "--cursor", cursor), "rest"), "u/3\tcarol\n");
    const text = await run("list", "u/", "--limit", "1");
    assert.equal(text.stdout, "u/1\t7\n");
    assert.match(
      text.stderr,
      /^paxoskv: --limit 1 reached; more keys may follow: list "u\/" --cursor \S+\n$/,
    );
    assert.equal(
      okOut(await run("list", "u/", "--reverse", "--keys-only"), "reverse"),
      "u/3\nu/2\nu/1\n",
    );
    assertFails(
      await run("list", "u/", "--cursor", "!"),
      2,
      /^paxoskv: list: cursor "!" is not a cursor/,
      "cursor",
    );
  } finally {
    assert.deepEqual(await stopAll(servers), ["", "", ""]);
  }
});

Deno.test("cli: status shows a row per acceptor, a down one included; exits 1 only when none answers", async () => {
  const data = await Deno.makeTempDir({ prefix: "paxoskv-cli-" });
  const { servers, urls } = await startAcceptors([["--memory"], ["--data", data], ["--memory"]]);
  let running = servers;
  try {
    const acc = ["--acceptors", urls.join(",")];
    okOut(await cli("set", "a", "1", ...acc), "set a");
    okOut(await cli("set", "b", "2", ...acc), "set b");
    await stopAll(servers.slice(2));
    running = servers.slice(0, 2);
    const table = okOut(await cli("status", ...acc, "--timeout", "2000"), "status").trimEnd()
      .split("\n");
    assert.equal(table.length, 4, table.join("\n"));
    assert.match(table[0]!, /^MEMBER +URL +REACHABLE +RTT +LOG +KEYS +UPTIME +ERROR$/);
    const cells = table.slice(1).map((l) => l.split(/ {2,}/));
    assert.deepEqual(cells[0]!.slice(0, 3), ["0", urls[0], "yes"]);
    assert.match(cells[0]![3]!, /^[0-9.]+ ms$/);
    assert.equal(cells[0]![4], "memory");
    assert.equal(cells[0]![5], "2");
    assert.match(cells[0]![6]!, /^[0-9]+s$/);
    assert.deepEqual(cells[1]!.slice(0, 3), ["1", urls[1], "yes"]);
    assert.match(cells[1]![4]!, /^[0-9.]+ (B|KiB)$/);
    assert.equal(cells[1]![5], "2");
    assert.deepEqual(cells[2]!.slice(0, 3), ["-", urls[2], "no"]);
    assert.match(cells[2]!.at(-1)!, /refused/i);

    const json = okOut(await cli("status", ...acc, "--json"), "status --json").trimEnd()
      .split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(json.map((j) => [j.url, j.member, j.reachable, j.keys]), [
      [urls[0], 0, true, 2],
      [urls[1], 1, true, 2],
      [urls[2], null, false, null],
    ]);
    assert.ok(json[1].logBytes > 0 && json[0].logBytes === null);
    assert.match(json[2].error, /refused/i);

    await stopAll(running);
    running = [];
    // One more that takes the connection and never answers.
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const all = [...urls, `ws://127.0.0.1:${silent.addr.port}/paxos`].join(",");
      const none = await cli("status", "--acceptors", all, "--timeout", "500");
      assert.equal(none.code, 1, none.stderr);
      assert.equal(none.stderr, "paxoskv: status: none of the 4 acceptors answered\n");
      const lines = none.stdout.trimEnd().split("\n");
      assert.equal(lines.length, 5);
      assert.match(lines[4]!, / no +- .* no answer in 500 ms$/);
    } finally {
      silent.close();
    }
  } finally {
    await stopAll(running);
    await Deno.remove(data, { recursive: true });
  }
});

/** Reads what the server answers on `conn` until it closes it. */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const buf = new Uint8Array(4096);
  let text = "";
  for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  return text;
}

Deno.test("cli: acceptor --log-format json writes one JSON object per line for each event an operator needs", async () => {
  const data = await Deno.makeTempDir({ prefix: "paxoskv-cli-" });
  const json = ["--log-format", "json"];
  try {
    // The first start: --init, one member; a key is written, then the log
    // gets a torn last record (a crash in the middle of a write).
    const first = new Server([
      "acceptor",
      "--port",
      "0",
      ...memberFlags(0, [0], { data }),
      ...json,
    ]);
    const [url0] = await first.waitFor((l) => l.length >= 1);
    okOut(await cli("set", "k", "v", "--acceptors", url0!), "set");
    const [firstErr] = await stopAll([first]);
    for (const line of firstErr!.trimEnd().split("\n")) JSON.parse(line);
    const log = await Deno.open(join(data, LOG_FILE), { append: true });
    await log.write(new Uint8Array([0x00, 0x00, 0x01]));
    log.close();

    const server = new Server([
      "acceptor",
      "--port",
      "0",
      "--data",
      data,
      "--max-connections",
      "1",
      "--handshake-timeout",
      "1000",
      ...json,
    ]);
    let stderr = "";
    try {
      const [url] = await server.waitFor((l) => l.length >= 1);
      // A bad frame: the connection is closed.
      const c = await RawClient.open(url!);
      c.send(new Uint8Array([0xc1]));
      await c.closedWith;
      await c.close();
      // At the limit of one connection: the second is refused (503).
      const port = Number(new URL(url!).port);
      const held = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const refused = await Deno.connect({ hostname: "127.0.0.1", port });
        try {
          // 408 in the rare case where the first one was refused instead.
          assert.match(await readToEnd(refused), /^HTTP\/1\.1 (503|408) /);
        } finally {
          refused.close();
        }
      } finally {
        held.close();
      }
    } finally {
      stderr = (await stopAll([server]))[0]!;
    }
    const lines = stderr.trimEnd().split("\n");
    const events = lines.map((l) => {
      const o = JSON.parse(l);
      assert.equal(typeof o.time, "string", l);
      assert.ok(!Number.isNaN(Date.parse(o.time)), l);
      assert.match(o.level, /^(info|warn|error)$/, l);
      assert.equal(o.member, 0, l);
      return o;
    });
    const byName = new Map(events.map((e) => [e.event, e]));
    assert.equal(byName.get("torn_record_dropped")?.bytes, 3, stderr);
    assert.match(byName.get("listening")?.url, URL_LINE);
    assert.match(byName.get("bad_frame")?.message, /closing/);
    assert.match(byName.get("connection_refused")?.message, /1 are open/);
    assert.equal(byName.get("shutdown")?.signal, "SIGTERM");
    assert.equal(events.at(-1)!.event, "stopped");

    // A format other than text or json is bad usage.
    const bad = await cli("acceptor", "--data", data, "--port", "0", "--log-format", "xml");
    assertFails(bad, 2, /--log-format must be text or json, got "xml"/, "--log-format xml");
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("cli: cluster --log-format json: each acceptor's events, one JSON object per line", async () => {
  const cluster = new Server(["cluster", "--base-port", "0", "--log-format", "json"]);
  let stopped = false;
  try {
    await cluster.waitFor((ls) => ls.some((l) => /Ctrl-C/.test(l)));
    const { status, stderr } = await cluster.stop("SIGTERM");
    stopped = true;
    assert.equal(status.code, 0, stderr);
    const events = stderr.trimEnd().split("\n").map((l) => JSON.parse(l));
    const of = (name: string) => events.filter((e) => e.event === name).map((e) => e.member);
    assert.deepEqual(of("listening"), [0, 1, 2]);
    assert.deepEqual(of("shutdown"), [0, 1, 2]);
    assert.deepEqual(of("stopped"), [0, 1, 2]);
    for (const e of events.filter((e) => e.event === "listening")) assert.match(e.url, URL_LINE);
  } finally {
    if (!stopped) await cluster.stop("SIGKILL");
  }
});

Deno.test("cli: watch prints a line per version as it is chosen, until SIGINT", async () => {
  const { servers, urls } = await startAcceptors([["--memory"], ["--memory"], ["--memory"]]);
  const acc = ["--acceptors", urls.join(",")];
  // From version 0: no version can be missed while the watch starts.
  const watch = new Server(["watch", "w", "--from-version", "0", ...acc]);
  let stopped = false;
  try {
    okOut(await cli("set", "w", "one", ...acc), "set");
    okOut(await cli("set", "w", "2", ...acc), "set");
    assert.deepEqual(await watch.waitFor((l) => l.length >= 2, 10_000), ["w\t0\tone", "w\t1\t2"]);
    okOut(await cli("delete", "w", ...acc), "delete");
    assert.equal((await watch.waitFor((l) => l.length >= 3, 10_000))[2], "w\t2\t(deleted)");
    const { status, stderr } = await watch.stop("SIGINT");
    stopped = true;
    assert.equal(status.code, 0, `exit status ${status.code}; stderr: ${stderr}`);
    assert.equal(stderr, "");
    // A prefix, from a version on, in JSON.
    const json = new Server(["watch", "--prefix", "w", "--from-version", "1", "--json", ...acc]);
    try {
      assert.deepEqual(await json.waitFor((l) => l.length >= 2, 10_000), [
        '{"key":"w","version":1,"value":2}',
        '{"key":"w","version":2,"deleted":true}',
      ]);
    } finally {
      const { status } = await json.stop("SIGTERM");
      assert.equal(status.code, 0);
    }
    assertFails(
      await cli("watch", "w", "--prefix", "p", ...acc),
      2,
      /^paxoskv: watch: watch takes KEY\.\.\. or --prefix P, not both/,
      "both",
    );
  } finally {
    if (!stopped) await watch.stop("SIGKILL");
    assert.deepEqual(await stopAll(servers), ["", "", ""]);
  }
});

Deno.test("cli: acceptor --engine sqlite serves from its data after a restart, which needs no --engine; another engine is refused in one line", async () => {
  const root = await Deno.makeTempDir({ prefix: "paxoskv-cli-engine-" });
  try {
    const dir = join(root, "sqlite");
    const first = new Server([
      "acceptor",
      "--port",
      "0",
      ...memberFlags(0, [0], { data: dir }),
      "--engine",
      "sqlite",
    ]);
    const [url] = await first.waitFor((l) => l.length >= 1);
    assert.equal(await cliOut("set", "k", "7", "--ver", "0", "--acceptors", url!), "7");
    assert.deepEqual(await stopAll([first]), [""]);
    await Deno.stat(join(dir, "acceptor.sqlite"));

    const second = new Server(["acceptor", "--port", "0", "--data", dir]);
    const [url2] = await second.waitFor((l) => l.length >= 1);
    try {
      assert.equal(await cliOut("get", "k", "--ver", "0", "--acceptors", url2!), "7");
    } finally {
      assert.deepEqual(await stopAll([second]), [""]);
    }

    const wrong = await cli("acceptor", "--port", "0", "--data", dir, "--engine", "log");
    assertOneLineError(wrong, "a sqlite directory opened as a log");
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /holds data of the sqlite engine .*: open it with --engine sqlite/);

    // The sqlite engine keeps its keys on disk: no key limit, also when the
    // directory tells the engine.
    const noLimit = await cli("acceptor", "--port", "0", "--data", dir, "--max-keys", "5");
    assertOneLineError(noLimit, "--max-keys on a sqlite directory");
    assert.equal(noLimit.code, 2);
    assert.match(noLimit.stderr, /--max-keys is for the log engine and --memory/);

    // The log with --max-keys 1: a second key is refused, the first one
    // is still written.
    const logDir = join(root, "log");
    const log = new Server([
      "acceptor",
      "--port",
      "0",
      ...memberFlags(0, [0], { data: logDir }),
      "--max-keys",
      "1",
    ]);
    const [logUrl] = await log.waitFor((l) => l.length >= 1);
    assert.equal(await cliOut("set", "a", "1", "--acceptors", logUrl!), "0");
    const keyB = await cli("set", "b", "2", "--acceptors", logUrl!);
    assertOneLineError(keyB, "a second key past --max-keys 1");
    assert.match(keyB.stderr, /QuotaExceeded.*past the limit of 1 keys \(--max-keys\)/);
    assert.equal(await cliOut("set", "a", "3", "--acceptors", logUrl!), "1");
    assert.deepEqual(await stopAll([log]), [""]);
    const r = await cli("acceptor", "--port", "0", "--data", logDir, "--engine", "sqlite");
    assertOneLineError(r, "a log directory opened as sqlite");
    assert.match(r.stderr, /holds data of the log engine .*: open it with --engine log/);

    const bad = await cli("acceptor", "--port", "0", "--data", logDir, "--engine", "lmdb");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--engine must be log or sqlite, got "lmdb"/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
