// Changing the membership online (reconfigure.ts, and the membership
// extension's Config and StaleMembership in server.ts): a replacement keeps
// every acknowledged write, also those that only the replaced member and one
// other held; a client of the old membership is refused, naming the new
// one; an interrupted change resumes; grow 3 to 5 and shrink back.
import assert from "node:assert/strict";
import { PaxosAcceptor } from "../acceptor.ts";
import { currentMembers, discoverCluster } from "../connect.ts";
import { AcceptorError } from "../errors.ts";
import { type ClusterIdentity, makeIdentity, randomId, VouchedPeers } from "../identity.ts";
import { connect, type Kv } from "../kv.ts";
import { changeMembership, targetMembers } from "../reconfigure.ts";
import { type AcceptorServer, serveAcceptor } from "../server.ts";
import { MemoryStore } from "../store.ts";
import { WebSocketAcceptorClient } from "../transport.ts";
import { errorOf } from "./waits.ts";

interface Member {
  identity: ClusterIdentity;
  store: MemoryStore;
  server: AcceptorServer | null;
  port: number;
}

class TestCluster {
  readonly members = new Map<number, Member>();
  readonly clusterId = randomId();
  constructor(readonly initial: number[]) {}

  async start(): Promise<this> {
    for (const m of this.initial) await this.add(m, false);
    return this;
  }

  // Serves member `m` (a new, empty one that is `joining` when asked).
  async add(m: number, joining: boolean, keepVersions: number | null = null): Promise<string> {
    const identity = makeIdentity({
      cluster: "t",
      clusterId: this.clusterId,
      member: m,
      members: joining ? [m] : this.initial,
      keepVersions,
      instance: randomId(),
      ...(joining ? { joining: true } : {}),
    });
    const member: Member = { identity, store: new MemoryStore(), server: null, port: 0 };
    this.members.set(m, member);
    await this.up(m);
    return this.url(m);
  }

  async up(m: number): Promise<void> {
    const member = this.members.get(m)!;
    member.server = await serveAcceptor(new PaxosAcceptor(member.store, `a${m}`), {
      identity: member.identity,
      saveIdentity: (id) => {
        member.identity = id;
        return Promise.resolve();
      },
      peers: new VouchedPeers(),
      port: member.port,
    });
    member.port = member.server.port;
  }

  async down(m: number): Promise<void> {
    const member = this.members.get(m)!;
    await member.server?.close();
    member.server = null;
  }

  url(m: number): string {
    return `ws://127.0.0.1:${this.members.get(m)!.port}/paxos`;
  }

  urls(ms: readonly number[]): string[] {
    return ms.map((m) => this.url(m));
  }

  async close(): Promise<void> {
    for (const m of this.members.keys()) await this.down(m);
  }
}

const OPTS = { timeoutMs: 500, deadlineMs: 5000 };

async function writeKeys(kv: Kv, n: number, tag: string): Promise<Map<string, string>> {
  const written = new Map<string, string>();
  for (let i = 0; i < n; i++) {
    const key = `k${String(i).padStart(3, "0")}`;
    await kv.set(key, `${tag}-${i}-a`);
    await kv.set(key, `${tag}-${i}`);
    written.set(key, `${tag}-${i}`);
  }
  return written;
}

async function assertAll(kv: Kv, written: ReadonlyMap<string, string>): Promise<void> {
  for (const [key, value] of written) {
    const got = await kv.get(key);
    assert.ok(got.found, `${key} not found`);
    assert.equal(got.value, value, key);
  }
}

Deno.test("targetMembers: add, remove, replace, and what makes no sense", () => {
  assert.deepEqual(targetMembers([0, 1, 2], { kind: "add", id: 4, url: "u" }), [0, 1, 2, 4]);
  assert.deepEqual(targetMembers([0, 1, 2], { kind: "remove", id: 1 }), [0, 2]);
  assert.deepEqual(targetMembers([0, 1, 2], { kind: "replace", old: 0, id: 5, url: "u" }), [
    1,
    2,
    5,
  ]);
  assert.throws(
    () => targetMembers([0, 1, 2], { kind: "add", id: 1, url: "u" }),
    /a member already/,
  );
  assert.throws(() => targetMembers([0], { kind: "remove", id: 0 }), /the last member/);
  assert.throws(
    () => targetMembers([0, 1], { kind: "replace", old: 3, id: 4, url: "u" }),
    /not a member/,
  );
});

Deno.test("replace: writes that only the dead member and one other held survive; old clients are refused naming the new members", async () => {
  const c = await new TestCluster([0, 1, 2]).start();
  try {
    // Member 1 is down while the keys are written: they are on 0 and 2 only.
    await c.down(1);
    const kv = await connect(c.urls([0, 1, 2]), OPTS).catch(() => null);
    // (connect needs every URL's acceptor to agree; with one down it still reaches 2 of 3.)
    assert.ok(kv !== null);
    const written = await writeKeys(kv, 40, "v");
    await c.up(1);
    // Member 2's disk dies: the writes are on member 0 alone now.
    await c.down(2);
    const url3 = await c.add(3, true);
    const steps: string[] = [];
    const report = await changeMembership(c.urls([0, 1, 2]), {
      kind: "replace",
      old: 2,
      id: 3,
      url: url3,
    }, { ...OPTS, pageSize: 7, onProgress: (p) => steps.push(p.step) });
    assert.deepEqual(report.to.members, [0, 1, 3]);
    assert.equal(report.to.epoch, 2);
    assert.equal(report.keys, 40);
    assert.equal(steps[0], "joint");
    assert.equal(steps.at(-1), "final");
    // The client of the old membership is refused, in one line naming the new one.
    // It may not have reconnected to member 1 yet (down and back above), and
    // member 2 is down: the quorum is out of reach before member 0 answers,
    // and the client waits for that answer, which names the new membership.
    // And so is each later call, also once the members closed its
    // connections after saying so (not "unreachable").
    for (const call of [() => kv.get("k000"), () => kv.set("k001", "x"), () => kv.get("k002")]) {
      await assert.rejects(call(), (e: Error) => {
        assert.ok(e instanceof AcceptorError && e.code === "StaleMembership", e.message);
        assert.match(e.message, /the membership changed: epoch 2: members 0=.*,1=.*,3=ws:/);
        assert.doesNotMatch(e.message, /\n/);
        return true;
      });
    }
    await kv.close();
    // A client given the old list follows to the new members.
    const urls = await currentMembers(c.urls([0, 1, 2]), OPTS);
    assert.deepEqual(urls, c.urls([0, 1, 3]));
    // Member 0, the only one that held the writes before, is killed.
    await c.down(0);
    const after = await connect(urls, OPTS);
    try {
      await assertAll(after, written);
      assert.equal(await after.set("k000", "new"), 2n);
    } finally {
      await after.close();
    }
  } finally {
    await c.close();
  }
});

Deno.test("an interrupted change resumes where it stopped, and a rerun once done has nothing to do", async () => {
  const c = await new TestCluster([0, 1, 2]).start();
  try {
    const kv = await connect(c.urls([0, 1, 2]), OPTS);
    const written = await writeKeys(kv, 10, "w");
    await kv.close();
    const url3 = await c.add(3, true);
    const change = { kind: "add", id: 3, url: url3 } as const;
    const opts = { ...OPTS, pageSize: 3 };
    const first = await changeMembership(c.urls([0, 1, 2]), change, {
      ...opts,
      stopAfter: "joint",
    });
    assert.deepEqual(first.to.joint, [0, 1, 2]);
    // Mid-change: a client connects to old and new members, with a joint quorum.
    const mid = await connect(await currentMembers(c.urls([0]), OPTS), OPTS);
    await assertAll(mid, written);
    assert.equal(await mid.set("during", "x"), 0n);
    await mid.close();
    // Another change is refused while this one is under way.
    await assert.rejects(
      changeMembership(c.urls([0, 1, 2, 3]), { kind: "remove", id: 0 }, opts),
      /another change is under way: epoch 1: members 0=.*,1=.*,2=.*,3=.* \(changing from 0,1,2\)/,
    );
    // Member 1 moves to another port while the change is stopped: the rerun,
    // given its new URL, reaches it there.
    await c.down(1);
    c.members.get(1)!.port = 0;
    await c.up(1);
    const second = await changeMembership(c.urls([0, 1, 2]), change, opts);
    assert.equal(second.nothingToDo, false);
    assert.deepEqual(second.to.members, [0, 1, 2, 3]);
    assert.equal(second.to.joint, undefined);
    assert.equal(second.to.urls?.get(1), c.url(1));
    const third = await changeMembership(c.urls([0, 1, 2, 3]), change, opts);
    assert.equal(third.nothingToDo, true);
    const kv4 = await connect(c.urls([0, 1, 2, 3]), OPTS);
    await assertAll(kv4, new Map([...written, ["during", "x"]]));
    await kv4.close();
  } finally {
    await c.close();
  }
});

Deno.test("grow 3 to 5 and shrink back to 3: every write stays readable, with two of the first members gone", async () => {
  const c = await new TestCluster([0, 1, 2]).start();
  try {
    const opts = OPTS;
    let kv = await connect(c.urls([0, 1, 2]), OPTS);
    const written = await writeKeys(kv, 15, "g");
    await kv.close();
    for (const m of [3, 4]) {
      const url = await c.add(m, true);
      await changeMembership(c.urls([0, 1, 2]), { kind: "add", id: m, url }, opts);
    }
    kv = await connect(c.urls([0, 1, 2, 3, 4]), OPTS);
    await assertAll(kv, written);
    written.set("k000", "five");
    await kv.set("k000", "five");
    await kv.close();
    for (const m of [0, 1]) {
      await changeMembership(c.urls([0, 1, 2, 3, 4]), { kind: "remove", id: m }, opts);
    }
    await c.down(0);
    await c.down(1);
    await c.down(2); // one of the three left: 3 and 4 are a majority
    kv = await connect(c.urls([2, 3, 4]), OPTS);
    await assertAll(kv, written);
    await kv.close();
  } finally {
    await c.close();
  }
});

Deno.test("changeMembership as a library refuses a new member whose retention differs from the cluster's, changing nothing", async () => {
  const c = await new TestCluster([0, 1, 2]).start();
  try {
    const url3 = await c.add(3, true, 2);
    const e = await errorOf(
      changeMembership(c.urls([0, 1, 2]), { kind: "add", id: 3, url: url3 }, OPTS),
    );
    assert.ok(e instanceof RangeError, e.message);
    assert.equal(
      e.message,
      `add member 3 at ${url3}: ${url3} keeps 2 versions, the cluster every version; ` +
        `nothing was changed`,
    );
    const url4 = await c.add(4, true);
    await assert.rejects(
      changeMembership(c.urls([0, 1, 2]), { kind: "replace", old: 2, id: 5, url: url4 }, OPTS),
      new RangeError(
        `replace member 2 by member 5 at ${url4}: ${url4} is member 4, not member 5; ` +
          `nothing was changed`,
      ),
    );
    // Nothing changed: every member still has epoch 0, and the change with
    // a fitting member goes through.
    const found = await discoverCluster(c.urls([0, 1, 2]), OPTS);
    assert.deepEqual([...found.epochs.values()], [0, 0, 0]);
    const r = await changeMembership(c.urls([0, 1, 2]), { kind: "add", id: 4, url: url4 }, OPTS);
    assert.deepEqual(r.to.members, [0, 1, 2, 4]);
  } finally {
    await c.close();
  }
});

Deno.test("Config: only forward; a joining member serves nothing until a configuration lists it", async () => {
  const c = await new TestCluster([0]).start();
  try {
    const url1 = await c.add(1, true);
    const client = new WebSocketAcceptorClient(url1, { timeoutMs: 500 });
    await assert.rejects(client.latest("k"), /StaleMembership: member 1 is joining/);
    await client.close();
    const c0 = new WebSocketAcceptorClient(c.url(0), { timeoutMs: 500 });
    await c0.config({ Epoch: 2, Members: [0, 1], Joint: [0] });
    await assert.rejects(
      c0.config({ Epoch: 1, Members: [0] }),
      /StaleMembership: configuration epoch 1: members 0 is older/,
    );
    await assert.rejects(
      c0.config({ Epoch: 2, Members: [0] }),
      /has the epoch of this member's but other members/,
    );
    await assert.rejects(
      c0.config({ Epoch: 3, Members: [0], Joint: [0, 1], Urls: new Map([[7, "x"]]) }),
      /BadRequest: Req: a URL is given for member 7/,
    );
    await c0.close();
    assert.equal(c.members.get(0)!.identity.epoch, 2);
  } finally {
    await c.close();
  }
});

// Found by the simulation: a rerun of `member replace` while every member
// it lists is down but the new one is up used to fail with "have no cluster
// identity: their membership is fixed", a final-sounding TypeError, where
// the members were only down; it must say so, as a quorum failure that a
// rerun once they are up gets past.
Deno.test("a change while only the would-be member answers fails as 'run it again', then goes through", async () => {
  const c = await new TestCluster([0, 1, 2]).start();
  try {
    const url3 = await c.add(3, true);
    const listed = [...c.urls([0, 1, 2]), url3];
    for (const m of [0, 1, 2]) await c.down(m);
    const change = { kind: "replace", old: 2, id: 3, url: url3 } as const;
    await assert.rejects(
      changeMembership(listed, change, { timeoutMs: 200, deadlineMs: 1000 }),
      (e: Error) => {
        assert.equal(e.name, "NotEnoughQuorumError");
        assert.match(
          e.message,
          /no member answered at .*only the would-be member\(s\) 3: run it again/,
        );
        return true;
      },
    );
    for (const m of [0, 1]) await c.up(m);
    const r = await changeMembership(listed, change, OPTS);
    assert.deepEqual(r.to.members, [0, 1, 3]);
  } finally {
    await c.close();
  }
});

// Found by the simulation: once a change is done, its final configuration
// is on a majority of the new members only; the others may still hold the
// joint one. A next change that heard only those used to take the joint
// configuration for the newest and refuse ("another change is under way").
// It must not act on what too few members say: the members that answered
// must meet every majority of the configuration's members.
Deno.test("a change does not act on a configuration that too few of its members state", async () => {
  const c = await new TestCluster([0, 1, 2]).start();
  try {
    const url3 = await c.add(3, true);
    const r = await changeMembership(c.urls([0, 1, 2]), {
      kind: "replace",
      old: 2,
      id: 3,
      url: url3,
    }, { ...OPTS, stopAfter: "catch-up" });
    // The final configuration reaches members 0 and 1 only (a majority of 0,1,3).
    for (const m of [0, 1]) {
      const client = new WebSocketAcceptorClient(c.url(m), { timeoutMs: 500 });
      const urls = new Map([...r.to.urls!].filter(([m]) => m !== 2));
      await client.config({ Epoch: r.to.epoch + 1, Members: [0, 1, 3], Urls: urls });
      await client.close();
    }
    for (const m of [0, 1]) await c.down(m);
    const url4 = await c.add(4, true);
    const add4 = { kind: "add", id: 4, url: url4 } as const;
    await assert.rejects(
      changeMembership([...c.urls([0, 1, 2, 3]), url4], add4, { timeoutMs: 200, deadlineMs: 1000 }),
      (e: Error) => {
        assert.equal(e.name, "NotEnoughQuorumError");
        assert.match(
          e.message,
          /^only member\(s\) 3 of epoch 1: .* answered, 2 needed to know that no newer configuration is in force: run it again/,
        );
        return true;
      },
    );
    for (const m of [0, 1]) await c.up(m);
    const done = await changeMembership([...c.urls([0, 1, 3]), url4], add4, OPTS);
    assert.equal(done.from.epoch, 2);
    assert.deepEqual(done.to.members, [0, 1, 3, 4]);
  } finally {
    await c.close();
  }
});

// Found by the simulation: a new member that missed the joint configuration
// (down while it was installed) came back still joining, and every new
// client connecting with the members listed was refused ("is joining ...
// add it first") until the change was run again, as was the change's own
// catch-up. A would-be member that the newest configuration lists is a
// member that does not answer yet; one that no configuration lists is
// still refused.
Deno.test("a new member that missed the joint configuration does not keep clients out; the change then finishes", async () => {
  const c = await new TestCluster([0, 1, 2]).start();
  try {
    const url3 = await c.add(3, true);
    await c.down(3);
    const change = { kind: "replace", old: 2, id: 3, url: url3 } as const;
    await changeMembership(c.urls([0, 1, 2]), change, {
      timeoutMs: 200,
      deadlineMs: 1000,
      stopAfter: "joint",
    });
    await c.up(3); // still joining: it missed the joint configuration
    const kv = await connect(c.urls([0, 1, 2, 3]), OPTS);
    try {
      await kv.set("k", "v");
      await assertAll(kv, new Map([["k", "v"]]));
    } finally {
      await kv.close();
    }
    // Alone, a would-be member is still refused.
    await assert.rejects(
      connect([url3], OPTS),
      /member 3\) is joining cluster t and not yet a member: add it first/,
    );
    const r = await changeMembership(c.urls([0, 1, 2, 3]), change, OPTS);
    assert.deepEqual(r.to.members, [0, 1, 3]);
    const kv2 = await connect(c.urls([0, 1, 3]), OPTS);
    try {
      await assertAll(kv2, new Map([["k", "v"]]));
    } finally {
      await kv2.close();
    }
  } finally {
    await c.close();
  }
});

// Found by the simulation: a change goes through on a majority of the new
// members, so a new member that was down all along is left joining, serving
// nothing, for good; once another member fails the cluster is stuck. Any
// run of a member command now gives such a member the configuration.
Deno.test("a new member that missed the whole change gets the configuration from the next run, and counts", async () => {
  const c = await new TestCluster([0, 1, 2]).start();
  try {
    const url3 = await c.add(3, true);
    await c.down(3);
    const change = { kind: "replace", old: 2, id: 3, url: url3 } as const;
    const quick = { timeoutMs: 200, deadlineMs: 1000 };
    const r = await changeMembership(c.urls([0, 1, 2]), change, quick);
    assert.deepEqual(r.to.members, [0, 1, 3]);
    await c.down(2);
    await c.up(3); // still joining: it missed every step
    const again = await changeMembership(c.urls([0, 1, 3]), change, quick);
    assert.ok(again.nothingToDo);
    assert.equal(c.members.get(3)!.identity.joining, undefined);
    assert.equal(c.members.get(3)!.identity.epoch, r.to.epoch);
    await c.down(1); // members 0 and 3 are a majority of 0,1,3
    const kv = await connect(c.urls([0, 1, 3]), { ...OPTS, deadlineMs: 3000 });
    try {
      await kv.set("k", "v");
      await assertAll(kv, new Map([["k", "v"]]));
    } finally {
      await kv.close();
    }
  } finally {
    await c.close();
  }
});
