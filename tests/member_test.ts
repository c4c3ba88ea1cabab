// `cli.ts member` on real acceptor processes (docs/membership.md): a member
// whose disk is gone is replaced by a new empty one started with
// `--init --join`, under a writer that goes on through the change; then
// another of the first members is killed, and every acknowledged write is
// still read back. The old list of acceptors is refused in one line naming
// the new membership; `member list` shows where things stand.
import assert from "node:assert/strict";
import { join } from "node:path";
import { currentMembers } from "../connect.ts";
import { AcceptorError, TrustError } from "../errors.ts";
import { connect, type Kv } from "../kv.ts";
import { main } from "../cli.ts";
import { changeMembership } from "../reconfigure.ts";
import {
  cli,
  LineProcess,
  RUN,
  Server,
  startAcceptors,
  startDurableAcceptor,
  stopAll,
  TEST_CLUSTER_ID,
  URL_LINE,
} from "./cli_process.ts";

const OPTS = { timeoutMs: 1000, deadlineMs: 8000 };

async function startJoining(
  id: number,
  dir: string | "memory",
  more: string[] = [],
): Promise<{ server: Server; url: string }> {
  const server = new Server([
    "acceptor",
    "--port",
    "0",
    ...(dir === "memory" ? ["--memory"] : ["--data", dir, "--init"]),
    "--join",
    "--cluster",
    "test",
    "--cluster-id",
    TEST_CLUSTER_ID,
    "--id",
    `${id}`,
    ...more,
  ]);
  try {
    const [url] = await server.waitFor((lines) => lines.length >= 1, 10_000);
    assert.match(url!, URL_LINE);
    return { server, url: url! };
  } catch (e) {
    await server.stop("SIGKILL");
    throw e;
  }
}

// Reads each key through the acceptors at `urls` and asserts that it holds
// its value: nothing acknowledged was lost.
async function assertAllReadable(
  urls: string[],
  entries: Iterable<readonly [string, string]>,
): Promise<void> {
  const check = await connect(urls, OPTS);
  try {
    const all = [...entries];
    for (let i = 0; i < all.length; i += 64) {
      await Promise.all(
        all.slice(i, i + 64).map(async ([k, v]) => {
          const got = await check.get(k);
          assert.ok(got.found, `${k} lost`);
          assert.equal(got.value, v, k);
        }),
      );
    }
  } finally {
    await check.close();
  }
}

// Writes `load-N` keys one after another until told to stop, following the
// membership when it is refused as stale; keeps what was acknowledged.
function writer(urls: string[]) {
  const acked = new Map<string, string>();
  let stop = false;
  let refusedStale = 0;
  let ackCount = 0;
  // The current members, connected to; the membership may move on between
  // the look and the connect (refused then): look again.
  const follow = async (): Promise<Kv> => {
    for (let tries = 0;; tries++) {
      try {
        return await connect(await currentMembers(urls, OPTS), OPTS);
      } catch (e) {
        const moved = e instanceof TrustError ||
          (e instanceof AcceptorError && e.code === "StaleMembership");
        if (!moved || tries >= 20) throw e;
      }
    }
  };
  const done = (async () => {
    let kv: Kv = await follow();
    try {
      for (let i = 0; !stop; i++) {
        const key = `load-${i % 50}`;
        const value = `w${i}`;
        try {
          await kv.set(key, value);
          acked.set(key, value);
          ackCount++;
        } catch (e) {
          // Not acknowledged: its outcome is unknown, and that key's later
          // acknowledged write (if any) is what must be read.
          acked.delete(key);
          if (e instanceof AcceptorError && e.code === "StaleMembership") {
            refusedStale++;
            await kv.close();
            kv = await follow();
          }
        }
      }
    } finally {
      await kv.close();
    }
  })();
  // Its failure is the test's, when it stops.
  done.catch(() => {});
  let failure: unknown = null;
  done.catch((e) => failure = e);
  // Resolves once `n` keys are acknowledged; rejects if the writer failed or
  // it takes more than 10 s.
  const waitAcked = async (n: number) => {
    const t0 = performance.now();
    while (ackCount < n) {
      if (failure !== null) throw failure;
      if (performance.now() - t0 > 10_000) {
        throw new Error(`the writer acknowledged ${ackCount} of ${n} keys in 10 s`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return {
    acked,
    waitAcked,
    count: () => ackCount,
    stats: () => ({ refusedStale }),
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

Deno.test("member replace on processes: a dead, wiped member is replaced under load, another dies, every acknowledged write is read back", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "paxoskv-member-" });
  const servers: Server[] = [];
  try {
    const dirs = [0, 1, 2, 3].map((i) => join(tmp, `a${i}`));
    const started = [];
    for (const i of [0, 1, 2]) started.push(await startDurableAcceptor(i, dirs[i]!));
    servers.push(...started.map((s) => s.server));
    const oldUrls = started.map((s) => s.url);
    const acceptors = oldUrls.join(",");

    // Keys written before the failure.
    const written = new Map<string, string>();
    const kv = await connect(oldUrls, OPTS);
    try {
      for (let i = 0; i < 60; i++) {
        await kv.set(`k${i}`, `v${i}`);
        written.set(`k${i}`, `v${i}`);
      }
    } finally {
      await kv.close();
    }

    // Member 2's disk dies: killed, its data gone.
    await started[2]!.server.stop("SIGKILL");
    await Deno.remove(dirs[2]!, { recursive: true });
    // It cannot come back on the empty directory without --init.
    const refused = await cli("acceptor", "--port", "0", "--data", dirs[2]!);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /holds no acceptor state.*--init --join.*member replace/);

    const fresh = await startJoining(3, dirs[3]!);
    servers.push(fresh.server);
    const listed = await cli("member", "list", "--acceptors", acceptors);
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.trimEnd().split("\n");
    assert.equal(lines[0], `cluster test (id ${TEST_CLUSTER_ID}), epoch 0: members 0,1,2`);
    assert.match(lines[1]!, /^0\tws:\S+\tmember\tup, epoch 0$/);
    assert.match(lines[3]!, /^2\tws:\S+\tmember\tno answer$/);

    // The replacement, while a writer goes on.
    const load = writer(oldUrls);
    await load.waitAcked(5);
    const t0 = performance.now();
    const r = await cli("member", "replace", "2", "3", fresh.url, "--acceptors", acceptors);
    const changeMs = performance.now() - t0;
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /1\/3 joint configuration installed: epoch 1: members 0=.*,1=.*,3=.* \(changing from 0,1,2\)/,
    );
    assert.match(r.stderr, /2\/3 catch-up: \d+ keys settled, done/);
    assert.match(r.stderr, /3\/3 final configuration installed: epoch 2/);
    assert.match(
      r.stdout,
      /^replace member 2 by member 3 at ws:\S+: done, \d+ keys caught up; epoch 2: members 0=ws:\S+,1=ws:\S+,3=ws:\S+\n$/,
    );
    // Some more writes after the change, then the writer stops.
    await load.waitAcked(load.count() + 5);
    await load.stop();
    // deno-lint-ignore no-console
    console.log(
      `member replace: ${Math.round(changeMs)} ms (process included), writer refused stale ` +
        `${load.stats().refusedStale} time(s), ${load.count()} writes acknowledged`,
    );
    assert.ok(load.stats().refusedStale >= 1, "the writer of the old membership was never refused");

    // Run again: nothing to do.
    const again = await cli(
      "member",
      "replace",
      "2",
      "3",
      fresh.url,
      "--acceptors",
      acceptors,
      "--json",
    );
    assert.equal(again.code, 0, again.stderr);
    const j = JSON.parse(again.stdout);
    assert.equal(j.nothingToDo, true);
    assert.deepEqual(j.to.members, [0, 1, 3]);

    // The old list still names members 0 and 1, which say the new
    // membership: the client follows it, and a majority of the members of
    // 0,1,3 answers (2, gone, never can: it has no identity any more).
    const old = await cli("get", "k0", "--acceptors", acceptors);
    assert.equal(old.code, 0, old.stderr);
    assert.equal(old.stdout, "v0\n");

    // member list through the old list finds the new membership.
    const after = await cli("member", "list", "--acceptors", acceptors, "--json");
    assert.equal(after.code, 0, after.stderr);
    const l = JSON.parse(after.stdout);
    assert.deepEqual(l.members, [0, 1, 3]);
    assert.equal(l.epoch, 2);
    assert.deepEqual(l.state.map((s: { up: boolean }) => s.up), [true, true, true]);

    // Member 0 dies too: 1 and 3 are a majority of 0,1,3, and hold everything.
    await started[0]!.server.stop("SIGKILL");
    const newUrls = [oldUrls[0]!, oldUrls[1]!, fresh.url];
    await assertAllReadable(newUrls, [...written, ...load.acked]);
    const viaCli = await cli("get", "k59", "--acceptors", newUrls.join(","));
    assert.equal(viaCli.code, 0, viaCli.stderr);
    assert.equal(viaCli.stdout, "v59\n");
  } finally {
    await Promise.all(servers.map((s) => s.ended ? null : s.stop("SIGKILL")));
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("member: usage errors name what is wrong", async () => {
  const r = await cli(
    "member",
    "replace",
    "2",
    "2",
    "ws://127.0.0.1:1/paxos",
    "--acceptors",
    "ws://127.0.0.1:1/paxos",
  );
  assert.equal(r.code, 2);
  assert.match(r.stderr, /NEW must differ from OLD \(2\)/);
  const s = await cli("member", "grow", "--acceptors", "ws://127.0.0.1:1/paxos");
  assert.equal(s.code, 2);
  assert.match(s.stderr, /unknown subcommand "grow"/);
  const t = await cli(
    "member",
    "add",
    "x",
    "ws://127.0.0.1:1/paxos",
    "--acceptors",
    "ws://127.0.0.1:1/paxos",
  );
  assert.equal(t.code, 2);
  assert.match(t.stderr, /ID must be a member id, a non-negative integer, got "x"/);
  const u = await cli(
    "member",
    "remove",
    "1",
    "--catch-up-concurrency",
    "0",
    "--acceptors",
    "ws://127.0.0.1:1/paxos",
  );
  assert.equal(u.code, 2);
  assert.match(u.stderr, /--catch-up-concurrency must be a number of keys in 1\.\.1024, got "0"/);
});

// cli.ts main in this process, its lines kept.
async function run(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    waitForStop: () => new Promise<string>(() => {}),
  });
  return { code, out, err };
}

Deno.test("member: an interrupted change is shown by member list and finished by running the command again; grow 3 to 5 and shrink to 3 under a writer, the old list refused", async () => {
  const { servers, urls } = await startAcceptors([["--memory"], ["--memory"], ["--memory"]]);
  const joiners: Server[] = [];
  try {
    const kv = await connect(urls, OPTS);
    const written = new Map<string, string>();
    try {
      for (let i = 0; i < 30; i++) {
        await kv.set(`k${i}`, `v${i}`);
        written.set(`k${i}`, `v${i}`);
      }
    } finally {
      await kv.close();
    }
    const j3 = await startJoining(3, "memory");
    const j4 = await startJoining(4, "memory");
    joiners.push(j3.server, j4.server);
    const acceptors = ["--acceptors", urls.join(",")];

    // A would-be member serves nothing yet.
    const early = await run("get", "k0", "--acceptors", j3.url);
    assert.notEqual(early.code, 0);
    assert.match(early.err.join("\n"), /joining/);

    // A new member that does not fit is refused before anything changes.
    const j5 = await startJoining(5, "memory", ["--keep-versions", "2"]);
    joiners.push(j5.server);
    const keeps = await run("member", "add", "5", j5.url, ...acceptors);
    assert.equal(keeps.code, 1);
    assert.match(
      keeps.err.at(-1)!,
      /^paxoskv: add member 5 at ws:\S+: ws:\S+ keeps 2 versions, the cluster every version: start it on an empty directory with --init --join without --keep-versions; nothing was changed$/,
    );
    const wrongId = await run("member", "add", "6", j4.url, ...acceptors);
    assert.equal(wrongId.code, 1);
    assert.match(wrongId.err.at(-1)!, /ws:\S+ is member 4, not member 6; nothing was changed$/);

    // A change that stopped after its first step (as a killed run would).
    await changeMembership(urls, { kind: "add", id: 3, url: j3.url }, {
      ...OPTS,
      stopAfter: "joint",
    });
    // (A would-be member shows when it is listed.)
    const mid = await run("member", "list", "--acceptors", [...urls, j4.url].join(","));
    assert.equal(mid.code, 0, mid.err.join("\n"));
    assert.match(mid.out[0]!, /epoch 1: members 0=.*,3=ws:\S+ \(changing from 0,1,2\)$/);
    assert.match(mid.out[4]!, /^3\tws:\S+\tjoining member \(new\)\tup, epoch 1$/);
    assert.match(mid.out[5]!, /^4\tws:\S+\twould-be member/);
    assert.match(
      mid.err[0]!,
      /a change from members 0,1,2 to 0,1,2,3 is under way: run the member command/,
    );
    const other = await run("member", "remove", "0", ...acceptors);
    assert.equal(other.code, 1);
    assert.match(other.err.at(-1)!, /another change is under way: epoch 1.*finish it first/);

    const load = writer(urls);
    try {
      // The same command again rolls it forward.
      const again = await run("member", "add", "3", j3.url, ...acceptors);
      assert.equal(again.code, 0, again.err.join("\n"));
      assert.match(
        again.err.join("\n"),
        /1\/3 joint.*\n.*2\/3 catch-up: \d+ keys settled, done\n.*3\/3 final configuration installed: epoch 2/,
      );
      assert.match(
        again.out[0]!,
        /^add member 3 at ws:\S+: done, \d+ keys caught up; epoch 2: members 0=.*,3=ws:\S+$/,
      );
      // Grow to 5 through the old list, then shrink to 2,3,4.
      for (const args of [["add", "4", j4.url], ["remove", "0"], ["remove", "1"]]) {
        const r = await run("member", ...args, ...acceptors, "--json");
        assert.equal(r.code, 0, `member ${args.join(" ")}: ${r.err.join("\n")}`);
        assert.equal(JSON.parse(r.out[0]!).nothingToDo, false);
      }
    } finally {
      await load.stop();
    }
    assert.ok(load.stats().refusedStale >= 4, `refused stale ${load.stats().refusedStale} times`);

    // The old list, whose members 0 and 1 are up but no longer members: refused, naming the members.
    const stale = await run("get", "k0", ...acceptors);
    assert.equal(stale.code, 6, stale.err.join("\n"));
    assert.equal(stale.err.length, 1);
    assert.match(
      stale.err[0]!,
      /is member [01], which is not in epoch 8: members 2=ws:\S+,3=ws:\S+,4=ws:\S+ /,
    );

    // 0 and 1 stop; the new members hold every acknowledged write.
    await servers[0]!.stop("SIGTERM");
    await servers[1]!.stop("SIGTERM");
    const list = await run("member", "list", "--acceptors", urls[2]!, "--json");
    assert.equal(list.code, 0, list.err.join("\n"));
    const l = JSON.parse(list.out[0]!);
    assert.deepEqual(l.members, [2, 3, 4]);
    assert.equal(l.epoch, 8);
    const now = [urls[2]!, j3.url, j4.url];
    await assertAllReadable(now, [...written, ...load.acked]);
  } finally {
    await Promise.all([...servers, ...joiners].map((s) => s.ended ? null : s.stop("SIGKILL")));
  }
});

Deno.test("member remove on processes: refused while too few members are up, after leaving the joint configuration on some; the same command finishes it once they are back", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "paxoskv-member-" });
  const servers: Server[] = [];
  try {
    const dirs = [0, 1, 2, 3].map((i) => join(tmp, `a${i}`));
    const started = [];
    for (const i of [0, 1, 2]) started.push(await startDurableAcceptor(i, dirs[i]!));
    servers.push(...started.map((s) => s.server));
    const fresh = await startJoining(3, dirs[3]!);
    servers.push(fresh.server);
    const urls = [...started.map((s) => s.url), fresh.url];
    const acceptors = ["--acceptors", urls.join(",")];
    const quick = ["--timeout", "300", "--deadline", "1500"];
    const grown = await cli(
      "member",
      "add",
      "3",
      fresh.url,
      ...acceptors.slice(0, 1),
      urls.slice(0, 3).join(","),
    );
    assert.equal(grown.code, 0, grown.stderr);
    const kv = await connect(urls, OPTS);
    try {
      for (let i = 0; i < 20; i++) await kv.set(`k${i}`, `v${i}`);
    } finally {
      await kv.close();
    }
    // 2's disk is gone, and 1 is down for now: two of the four members are up.
    await started[2]!.server.stop("SIGKILL");
    await Deno.remove(dirs[2]!, { recursive: true });
    await started[1]!.server.stop("SIGKILL");
    const failed = await cli("member", "remove", "2", ...acceptors, ...quick);
    assert.equal(failed.code, 1, failed.stderr);
    assert.match(
      failed.stderr,
      /\npaxoskv: remove member 2 stopped before the joint configuration was installed: cannot install the joint configuration epoch 3: .*; once enough members are up, run the same command again: it resumes\n$/,
    );
    // Members 0 and 3 took the joint configuration: the change is under way.
    const mid = await cli("member", "list", ...acceptors, ...quick);
    assert.equal(mid.code, 0, mid.stderr);
    assert.match(mid.stdout, /epoch 3: members 0=\S+,1=\S+,3=\S+ \(changing from 0,1,2,3\)\n/);
    assert.match(mid.stderr, /a change from members 0,1,2,3 to 0,1,3 is under way/);
    // Another change meanwhile is refused.
    const other = await cli("member", "remove", "3", ...acceptors, ...quick);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /another change is under way/);

    // 1 comes back with its data, where it was: the same command finishes the change.
    const port = new URL(urls[1]!).port;
    const back = new Server(["acceptor", "--port", port, "--data", dirs[1]!]);
    servers.push(back);
    assert.deepEqual(await back.waitFor((l) => l.length >= 1, 10_000), [urls[1]]);
    const done = await cli("member", "remove", "2", ...acceptors);
    assert.equal(done.code, 0, done.stderr);
    assert.match(
      done.stdout,
      /^remove member 2: done, \d+ keys caught up; epoch 4: members 0=\S+,1=\S+,3=\S+\n$/,
    );
    // Member 0 goes: 1 and 3 hold every key.
    await started[0]!.server.stop("SIGKILL");
    await assertAllReadable(
      [urls[0]!, urls[1]!, fresh.url],
      Array.from({ length: 20 }, (_, i) => [`k${i}`, `v${i}`] as const),
    );
  } finally {
    await Promise.all(servers.map((s) => s.ended ? null : s.stop("SIGKILL")));
    await Deno.remove(tmp, { recursive: true });
  }
});

// `count` keys `f00000`, `f00001`, ... written 64 at a time; returns them.
async function fill(urls: string[], count: number): Promise<Map<string, string>> {
  const written = new Map<string, string>();
  const kv = await connect(urls, OPTS);
  try {
    for (let i = 0; i < count; i += 64) {
      await Promise.all(
        Array.from({ length: Math.min(64, count - i) }, async (_, j) => {
          const k = `f${String(i + j).padStart(5, "0")}`;
          await kv.set(k, `v${i + j}`);
          written.set(k, `v${i + j}`);
        }),
      );
    }
  } finally {
    await kv.close();
  }
  return written;
}

Deno.test("member add and remove on durable processes: grow 3 to 5 and shrink back to 3 under a writer; the removed members stop and one of the three left dies, and every acknowledged write is read back", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "paxoskv-member-" });
  const servers: Server[] = [];
  try {
    const dirs = [0, 1, 2, 3, 4].map((i) => join(tmp, `a${i}`));
    const started = [];
    for (const i of [0, 1, 2]) started.push(await startDurableAcceptor(i, dirs[i]!));
    servers.push(...started.map((s) => s.server));
    const j3 = await startJoining(3, dirs[3]!);
    const j4 = await startJoining(4, dirs[4]!);
    servers.push(j3.server, j4.server);
    const oldUrls = started.map((s) => s.url);
    const acceptors = ["--acceptors", oldUrls.join(",")];
    const written = await fill(oldUrls, 300);

    const load = writer(oldUrls);
    const steps: [string[], number[]][] = [
      [["add", "3", j3.url], [0, 1, 2, 3]],
      [["add", "4", j4.url], [0, 1, 2, 3, 4]],
      [["remove", "0"], [1, 2, 3, 4]],
      [["remove", "1"], [2, 3, 4]],
    ];
    try {
      await load.waitAcked(5);
      for (const [args, members] of steps) {
        const r = await cli("member", ...args, ...acceptors, "--json");
        assert.equal(r.code, 0, `member ${args.join(" ")}: ${r.stderr}`);
        const j = JSON.parse(r.stdout);
        assert.equal(j.nothingToDo, false);
        assert.deepEqual(j.to.members, members);
        assert.match(r.stderr, /2\/3 catch-up: \d+ keys settled, done/);
        // The writer goes on after each change (following the membership).
        await load.waitAcked(load.count() + 5);
      }
    } finally {
      await load.stop();
    }
    assert.ok(load.stats().refusedStale >= 4, `refused stale ${load.stats().refusedStale} times`);

    // The removed members stop; then member 2, the last of the first three,
    // dies: 3 and 4, a majority of 2,3,4, serve every acknowledged write.
    await stopAll([started[0]!.server, started[1]!.server]);
    await started[2]!.server.stop("SIGKILL");
    const left = [oldUrls[2]!, j3.url, j4.url];
    await assertAllReadable(left, [...written, ...load.acked]);
    const set = await cli("set", "after", "x", "--acceptors", left.join(","));
    assert.equal(set.code, 0, set.stderr);
    const get = await cli("get", "after", "--acceptors", left.join(","));
    assert.equal(get.stdout, "x\n", get.stderr);
  } finally {
    await Promise.all(servers.map((s) => s.ended ? null : s.stop("SIGKILL")));
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("member replace killed (SIGKILL) during its catch-up: the writer goes on, the same command resumes from the saved cursor and finishes, and every acknowledged write is read back", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "paxoskv-member-" });
  const servers: Server[] = [];
  try {
    const dirs = [0, 1, 2, 3].map((i) => join(tmp, `a${i}`));
    const started = [];
    for (const i of [0, 1, 2]) started.push(await startDurableAcceptor(i, dirs[i]!));
    servers.push(...started.map((s) => s.server));
    const oldUrls = started.map((s) => s.url);
    const acceptors = ["--acceptors", oldUrls.join(",")];
    // Enough keys that the catch-up, one key at a time, takes a few seconds.
    const KEYS = 6000;
    const written = await fill(oldUrls, KEYS);
    // Member 2's disk dies; member 3, empty, is to replace it.
    await started[2]!.server.stop("SIGKILL");
    await Deno.remove(dirs[2]!, { recursive: true });
    const fresh = await startJoining(3, dirs[3]!);
    servers.push(fresh.server);

    const load = writer(oldUrls);
    try {
      await load.waitAcked(5);
      // The command, its stderr read line by line (through sh, which execs
      // deno: the pid killed is the command's).
      const change = [
        "member",
        "replace",
        "2",
        "3",
        fresh.url,
        ...acceptors,
        "--catch-up-concurrency",
        "1",
      ];
      const proc = new LineProcess(
        ["-c", 'exec "$@" 2>&1', "sh", Deno.execPath(), ...RUN, ...change],
        { command: "sh" },
      );
      // Killed at its second progress line: at least a second into the
      // catch-up, when the cursor has been saved with the members. (A page
      // of 1000 keys, one at a time, takes 5 to 7 s here alone; a full run
      // once took more than 20 s for two pages: the wait allows a minute.)
      const progress = /2\/3 catch-up: (\d+) keys settled \(up to "f\d+"\)$/;
      let lines: string[];
      try {
        lines = await proc.waitFor((l) => l.filter((x) => progress.test(x)).length >= 2, 60_000);
      } finally {
        const { status } = await proc.stop("SIGKILL");
        assert.equal(status.signal, "SIGKILL", "the command ended before it was killed");
      }
      const settled = Number(lines.findLast((x) => progress.test(x))!.match(progress)![1]);
      assert.ok(settled < KEYS, `${settled} keys settled before the kill`);

      // Stopped mid-change: member list says so, with the saved cursor.
      const mid = await cli("member", "list", ...acceptors, "--json");
      assert.equal(mid.code, 0, mid.stderr);
      const m = JSON.parse(mid.stdout);
      assert.deepEqual([m.members, m.changingFrom], [[0, 1, 3], [0, 1, 2]]);
      assert.match(m.caughtUpTo, /^f\d{5}$/);
      // 0 and 1 (a majority of the old and, with 3, of the new members) are
      // up: the cluster goes on while the change is stopped.
      await load.waitAcked(load.count() + 20);

      // Run again (at the default pace): it resumes at the cursor and finishes.
      const again = await cli(...change.slice(0, -2));
      assert.equal(again.code, 0, again.stderr);
      const done = again.stdout.match(
        /^replace member 2 by member 3 at ws:\S+: done, (\d+) keys caught up; epoch 2: members 0=\S+,1=\S+,3=\S+\n$/,
      );
      assert.ok(done !== null, again.stdout);
      const rest = Number(done[1]);
      assert.ok(rest < KEYS, `the rerun caught up ${rest} keys: it did not resume`);
      await load.waitAcked(load.count() + 5);
    } finally {
      await load.stop();
    }
    // Member 0 dies too: 1 and 3 hold every acknowledged write.
    await started[0]!.server.stop("SIGKILL");
    await assertAllReadable([oldUrls[0]!, oldUrls[1]!, fresh.url], [...written, ...load.acked]);
  } finally {
    await Promise.all(servers.map((s) => s.ended ? null : s.stop("SIGKILL")));
    await Deno.remove(tmp, { recursive: true });
  }
});
