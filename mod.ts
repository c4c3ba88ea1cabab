/**
 * paxoskv: a key-value store whose every write and read is decided by
 * classic two-phase Paxos, one Paxos instance per key and version, after
 * openacid/paxoskv.
 *
 * Acceptors serve WebSocket connections at `/paxos`; a proposer multiplexes
 * Prepare and Accept requests over one connection per acceptor, in the
 * MessagePack wire format of PROTOCOL.md.
 *
 * @example Three acceptors and a write and a read of foo₀
 * ```ts
 * import {
 *   PaxosAcceptor,
 *   PaxosProposer,
 *   serveAcceptor,
 *   WebSocketAcceptorClient,
 * } from "./mod.ts";
 *
 * const servers = await Promise.all([0, 1, 2].map(() => serveAcceptor(new PaxosAcceptor())));
 * const acceptors = servers.map((s) => new WebSocketAcceptorClient(s.url));
 *
 * const writer = new PaxosProposer({ Id: { Key: "foo", Ver: 0n }, Bal: { N: 0n, ProposerId: 2n } });
 * await writer.runPaxos(acceptors, { Vi64: 5n }); // { Vi64: 5n }
 *
 * const reader = new PaxosProposer({ Id: { Key: "foo", Ver: 0n }, Bal: { N: 0n, ProposerId: 3n } });
 * await reader.runPaxos(acceptors, null); // { Vi64: 5n }
 *
 * await Promise.all(acceptors.map((a) => a.close()));
 * await Promise.all(servers.map((s) => s.close()));
 * ```
 *
 * @module
 */
export * from "./types.ts";
export * from "./codec.ts";
export * from "./clock.ts";
export * from "./ws_client.ts";
export * from "./transport.ts";
export * from "./store.ts";
export * from "./log_store.ts";
export * from "./acceptor.ts";
export * from "./server.ts";
export * from "./cluster.ts";
export * from "./proposer.ts";
export * from "./kv.ts";
