// A client's view of the cluster (cluster_view.ts): a would-be member that
// the newest membership lists is a member that does not answer yet; one
// that no membership lists, or of another cluster, is refused.
import assert from "node:assert/strict";
import { ClusterView } from "../cluster_view.ts";
import type { HelloCluster, HelloReply } from "../handshake.ts";

const ID = "a".repeat(32);

function hello(member: number, cluster: Partial<HelloCluster> = {}): HelloReply {
  return {
    instance: member.toString(16).padStart(32, "0"),
    peers: new Map(),
    cluster: { name: "c", id: ID, member, members: [0, 1, 2], keepVersions: null, ...cluster },
  };
}

// Member 3 replaces 2; 3 missed the joint configuration and still joins.
const JOINT = { epoch: 1, members: [0, 1, 3], joint: [0, 1, 2] };
const URLS = ["u0", "u1", "u2", "u3"];

Deno.test("ClusterView: a would-be member that the newest membership lists is admitted", () => {
  for (const order of [[3, 0, 1, 2], [0, 1, 2, 3]]) {
    const view = new ClusterView(URLS);
    for (const m of order) {
      const h = m === 3 ? hello(3, { members: [3], joining: true }) : hello(m, JOINT);
      assert.equal(view.admit(`u${m}`, h), null, `u${m}`);
    }
    assert.equal(view.seal(), null);
    assert.equal(view.config?.epoch, 1);
    assert.equal(view.memberAt("u3"), 3);
  }
});

Deno.test("ClusterView: a would-be member that no membership lists, or of another cluster, is refused", () => {
  const view = new ClusterView(["u0", "u1", "u2", "u3"]);
  for (const m of [0, 1, 2]) assert.equal(view.admit(`u${m}`, hello(m)), null);
  assert.equal(view.admit("u3", hello(3, { members: [3], joining: true })), null);
  assert.match(
    view.seal()!,
    /^u3 \(member 3\) is joining cluster c and not yet a member: add it first/,
  );

  const other = new ClusterView(URLS);
  assert.equal(
    other.admit("u3", hello(3, { members: [3], joining: true, id: "b".repeat(32) })),
    null,
  );
  for (const m of [0, 1, 2]) assert.equal(other.admit(`u${m}`, hello(m, JOINT)), null);
  assert.match(other.seal()!, /u3 to cluster c \(id b{32}\): list the members of one cluster/);

  const alone = new ClusterView(["u3"]);
  assert.equal(alone.admit("u3", hello(3, { members: [3], joining: true })), null);
  assert.match(alone.seal()!, /is joining cluster c and not yet a member/);
});
