/**
 * Tests of the command line, cli.ts, through real processes: acceptor and
 * cluster processes serve, set and get processes propose, and the test reads
 * their output and exit statuses. Plus in-process tests of how VALUE
 * arguments are read and chosen values printed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { formatValue, parseValueArg } from "../cli.ts";
import {
  cli,
  cliOut,
  type RunResult,
  Server,
  startAcceptors,
  stopAll,
  URL_LINE,
} from "./cli_process.ts";
import { PaxosProposer } from "../proposer.ts";
import { WebSocketAcceptorClient } from "../transport.ts";

function assertOneLineError(r: RunResult, what: string): void {
  assert.notEqual(r.code, 0, `${what}: exit status 0; stdout: ${r.stdout}`);
  assert.equal(r.stdout, "", `${what}: printed on stdout`);
  assert.match(r.stderr, /^paxoskv: [^\n]+\n$/, `${what}: stderr is not one line: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /^\s*at /m, `${what}: stack trace: ${r.stderr}`);
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

Deno.test("cli: set fails with one line within its deadline when two of three acceptors are down", async () => {
  // Acceptor 2 runs on a durable store.
  const data = await Deno.makeTempDir({ prefix: "paxoskv-cli-" });
  const { servers, urls } = await startAcceptors([["--memory"], ["--memory"], ["--data", data]]);
  try {
    await stopAll(servers.slice(0, 2));
    const r = await cli(
      "set",
      "foo",
      "5",
      "--ver",
      "0",
      "--deadline",
      "1000",
      "--timeout",
      "300",
      "--acceptors",
      urls.join(","),
    );
    assertOneLineError(r, "set without a quorum");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^paxoskv: no value chosen for foo@0 within 1000 ms/);
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
  for (const [i, cmd] of [[4, "acceptor"], [5, "cluster"], [6, "set"], [7, "get"]] as const) {
    assert.match(results[i]!.stdout, new RegExp(`cli\\.ts ${cmd} `), `help of ${cmd}`);
  }
});

Deno.test("cli: bad command lines exit 2 with one line on stderr", async () => {
  const acc = ["--acceptors", "ws://127.0.0.1:1/paxos"];
  const cases: [string[], RegExp][] = [
    [[], /missing command/],
    [["bogus"], /unknown command "bogus"/],
    [["--bogus"], /unknown option "--bogus"/],
    [["set", "foo", "5", "--ver", "0", "--bogus", "1", ...acc], /unknown option "--bogus"/],
    [["get", "foo", "-x", "--ver", "0", ...acc], /unknown option "-x"/],
    [["set", "foo", "5", ...acc], /missing --ver/],
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
    [["set", "foo", "9223372036854775808", "--ver", "0", ...acc], /outside the int64 range/],
    [["set", "foo", "-9223372036854775809", "--ver", "0", ...acc], /outside the int64 range/],
    [["acceptor"], /missing --id/],
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
    assert.ok(lines.some((l) => l.endsWith(`cli.ts set foo 5 --ver 0 --acceptors ${list}`)));
    assert.ok(lines.some((l) => l.endsWith(`cli.ts get foo --ver 0 --acceptors ${list}`)));

    assert.equal(await cliOut("set", "foo", "5", "--ver", "0", "--acceptors", list), "5");
    assert.equal(await cliOut("get", "foo", "--ver", "0", "--acceptors", list), "5");

    const { status, stderr } = await cluster.stop("SIGINT");
    stopped = true;
    assert.equal(status.signal, null, `killed by ${status.signal}; stderr: ${stderr}`);
    assert.equal(status.code, 0, `exit status ${status.code}; stderr: ${stderr}`);
    assert.equal(stderr, "");
  } finally {
    if (!stopped) await cluster.stop("SIGKILL");
  }
});

Deno.test("cli: parseValueArg sends canonical int64 as Vi64 and anything else as Data", () => {
  assert.deepEqual(parseValueArg("5"), { Vi64: 5n });
  assert.deepEqual(parseValueArg("0"), { Vi64: 0n });
  assert.deepEqual(parseValueArg("-12"), { Vi64: -12n });
  assert.deepEqual(parseValueArg("9223372036854775807"), { Vi64: 2n ** 63n - 1n });
  assert.deepEqual(parseValueArg("-9223372036854775808"), { Vi64: -(2n ** 63n) });
  for (const s of ["-0", "007", "+5", "5.0", "1e3", " 5", "", "hello", "0x10"]) {
    assert.deepEqual(parseValueArg(s), { Data: s }, JSON.stringify(s));
  }
  assert.throws(() => parseValueArg("9223372036854775808"), RangeError);
  assert.throws(() => parseValueArg("-9223372036854775809"), RangeError);
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

Deno.test("cli: an acceptor keeps its state across restarts, in data/acceptor-N by default", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "paxoskv-cli-data-" });
  try {
    const first = new Server(["acceptor", "--id", "4", "--port", "0"], cwd);
    const [url1] = await first.waitFor((l) => l.length >= 1);
    assert.equal(await cliOut("set", "foo", "5", "--ver", "0", "--acceptors", url1!), "5");
    assert.deepEqual(await stopAll([first]), [""]);
    assert.ok((await Deno.stat(join(cwd, "data", "acceptor-4", "acceptor.log"))).size > 8);

    // Restarted on the same data: foo₀ is still chosen, another value cannot be.
    const second = new Server(["acceptor", "--id", "4", "--port", "0"], cwd);
    const [url2] = await second.waitFor((l) => l.length >= 1);
    try {
      assert.equal(await cliOut("get", "foo", "--ver", "0", "--acceptors", url2!), "5");
      assert.equal(await cliOut("set", "foo", "6", "--ver", "0", "--acceptors", url2!), "5");

      // A second acceptor on the same directory refuses to start.
      const r = await cli(
        "acceptor",
        "--id",
        "4",
        "--port",
        "0",
        "--data",
        join(cwd, "data", "acceptor-4"),
      );
      assertOneLineError(r, "second acceptor on one data dir");
      assert.equal(r.code, 1);
      assert.match(r.stderr, /in use by another acceptor/);
    } finally {
      assert.deepEqual(await stopAll([second]), [""]);
    }
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("cli: an acceptor refuses to start on a damaged log, naming the file and offset", async () => {
  const data = await Deno.makeTempDir({ prefix: "paxoskv-cli-damaged-" });
  try {
    const a = new Server(["acceptor", "--id", "0", "--port", "0", "--data", data]);
    const [url] = await a.waitFor((l) => l.length >= 1);
    for (const ver of ["0", "1"]) {
      assert.equal(await cliOut("set", "k", ver, "--ver", ver, "--acceptors", url!), ver);
    }
    await stopAll([a]);
    const log = join(data, "acceptor.log");
    const bytes = await Deno.readFile(log);
    bytes[8 + 12 + 3] = bytes[8 + 12 + 3]! ^ 0xff; // inside the first record's payload
    await Deno.writeFile(log, bytes);
    const r = await cli("acceptor", "--id", "0", "--port", "0", "--data", data);
    assertOneLineError(r, "damaged log");
    assert.equal(r.code, 1);
    assert.ok(r.stderr.includes(`${log}: checksum mismatch`), r.stderr);
    assert.match(r.stderr, /at offset 8; refusing to start/);
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});
