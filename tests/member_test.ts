// `cli.ts member` on real acceptor processes (docs/membership.md): a member
// whose disk is gone is replaced by a new empty one started with
// `--init --join`, under a writer that goes on through the change; then
// another of the first members is killed, and every acknowledged write is
// still read back. The old list of acceptors is refused in one line naming
// the new membership; `member list` shows where things stand.
import assert from "node:assert/strict";
import { join } from "node:path";
import { currentMembers } from "../connect.ts";
import { AcceptorError } from "../errors.ts";
import { connect, type Kv } from "../kv.ts";
import { cli, Server, startDurableAcceptor, TEST_CLUSTER_ID, URL_LINE } from "./cli_process.ts";

const OPTS = { timeoutMs: 1000, deadlineMs: 8000 };

async function startJoining(id: number, dir: string): Promise<{ server: Server; url: string }> {
  const server = new Server([
    "acceptor",
    "--port",
    "0",
    "--data",
    dir,
    "--init",
    "--join",
    "--cluster",
    "test",
    "--cluster-id",
    TEST_CLUSTER_ID,
    "--id",
    `${id}`,
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

// Writes `load-N` keys one after another until told to stop, following the
// membership when it is refused as stale; keeps what was acknowledged.
function writer(urls: string[]) {
  const acked = new Map<string, string>();
  let stop = false;
  let refusedStale = 0;
  const done = (async () => {
    let kv: Kv = await connect(urls, OPTS);
    try {
      for (let i = 0; !stop; i++) {
        const key = `load-${i % 50}`;
        const value = `w${i}`;
        try {
          await kv.set(key, value);
          acked.set(key, value);
        } catch (e) {
          if (e instanceof AcceptorError && e.code === "StaleMembership") {
            refusedStale++;
            await kv.close();
            kv = await connect(await currentMembers(urls, OPTS), OPTS);
          } else {
            // Not acknowledged: its outcome is unknown, and that key's later
            // acknowledged write (if any) is what must be read.
            acked.delete(key);
          }
        }
      }
    } finally {
      await kv.close();
    }
  })();
  return {
    acked,
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
    await new Promise<void>((r) => {
      const wait = () => (load.acked.size >= 5 ? r() : setTimeout(wait, 10));
      wait();
    });
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
    const before = load.acked.size;
    await new Promise<void>((r) => {
      const t = performance.now();
      const wait = () => (load.acked.size > before || performance.now() - t > 3000
        ? r()
        : setTimeout(wait, 10));
      wait();
    });
    await load.stop();
    // deno-lint-ignore no-console
    console.log(
      `member replace: ${Math.round(changeMs)} ms (process included), writer refused stale ` +
        `${load.stats().refusedStale} time(s), ${load.acked.size} load keys acknowledged`,
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
    const check = await connect(newUrls, OPTS);
    try {
      for (const [k, v] of [...written, ...load.acked]) {
        const got = await check.get(k);
        assert.ok(got.found, `${k} lost`);
        assert.equal(got.value, v, k);
      }
    } finally {
      await check.close();
    }
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
});
