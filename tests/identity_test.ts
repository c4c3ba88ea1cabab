// identity.ts: a member's identity file, and the instances vouched for.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type ClusterIdentity,
  IDENTITY_FILE,
  makeIdentity,
  randomId,
  readIdentity,
  VouchedPeers,
  writeIdentity,
} from "../identity.ts";

const base = (): ClusterIdentity => ({
  cluster: "prod",
  clusterId: randomId(),
  member: 1,
  members: [2, 0, 1],
  keepVersions: null,
  instance: randomId(),
});

Deno.test("makeIdentity checks every field and sorts the members", () => {
  assert.deepEqual(makeIdentity(base()).members, [0, 1, 2]);
  const bad: [Partial<ClusterIdentity>, RegExp][] = [
    [{ member: 3 }, /member 3 is not in the membership 0,1,2/],
    [{ members: [0, 1, 1] }, /member 1 is listed twice/],
    [{ members: [] }, /1 to 64 members/],
    [{ cluster: "-x" }, /cluster name "-x"/],
    [{ clusterId: "ABC" }, /cluster id "ABC": expected 32 lowercase hex/],
    [{ keepVersions: 0 }, /keepVersions must be a positive integer/],
  ];
  for (const [change, why] of bad) {
    assert.throws(() => makeIdentity({ ...base(), ...change }), why);
  }
});

Deno.test("an identity file round-trips, none reads as null, a damaged one is refused naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-identity-" });
  try {
    assert.equal(await readIdentity(dir), null);
    const identity = makeIdentity(base());
    const peers = new Map([[0, randomId()]]);
    await writeIdentity(dir, { identity, peers });
    assert.deepEqual(await readIdentity(dir), { identity, peers });
    await Deno.writeTextFile(join(dir, IDENTITY_FILE), '{"format":1,"cluster":"x"');
    await assert.rejects(readIdentity(dir), /identity\.json is damaged/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("VouchedPeers keeps the first instance of each member, refuses another, and saves what is new", async () => {
  const me = makeIdentity(base());
  const saved: ReadonlyMap<number, string>[] = [];
  const peers = new VouchedPeers(new Map(), (m) => {
    saved.push(new Map(m));
    return Promise.resolve();
  });
  const i0 = randomId();
  assert.equal(await peers.vouch(me, me.instance, new Map([[0, i0], [1, me.instance]])), null);
  assert.deepEqual(saved, [new Map([[0, i0]])]);
  // The same again: nothing new, nothing saved.
  assert.equal(await peers.vouch(me, me.instance, new Map([[0, i0]])), null);
  assert.equal(saved.length, 1);
  assert.match(
    (await peers.vouch(me, me.instance, new Map([[0, randomId()]])))!,
    /member 0 is known here as instance .*: it came back without its state/,
  );
  assert.match(
    (await peers.vouch(me, me.instance, new Map([[1, randomId()]])))!,
    /member 1 is known here/,
    "another instance for this very member",
  );
  assert.match((await peers.vouch(me, me.instance, new Map([[7, i0]])))!, /not in the membership/);
  assert.deepEqual(peers.map, new Map([[0, i0]]));
});
