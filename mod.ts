/**
 * paxoskv: a key-value store whose every write and read is decided by
 * classic two-phase Paxos, one Paxos instance per key and version, after
 * openacid/paxoskv.
 *
 * Acceptors serve WebSocket connections at `/paxos`; a proposer multiplexes
 * Prepare and Accept requests over one connection per acceptor, in the
 * MessagePack wire format of docs/protocol.md.
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
 * @example Watching a key: each version as it is chosen, deletions too
 * ```ts
 * import { Kv, MemoryStore, PaxosAcceptor } from "./mod.ts";
 *
 * const kv = new Kv([0, 1, 2].map((i) => new PaxosAcceptor(new MemoryStore(), `a${i}`)));
 * const stop = new AbortController();
 * const seen: string[] = [];
 * const watching = (async () => {
 *   for await (const e of kv.watch(["color"], { fromVersion: 0n, signal: stop.signal })) {
 *     seen.push(e.deleted ? `${e.version}: deleted` : `${e.version}: ${e.value}`);
 *     if (seen.length === 3) stop.abort();
 *   }
 * })();
 * await kv.set("color", "red");
 * await kv.set("color", "blue");
 * await kv.delete("color");
 * await watching; // seen: ["0: red", "1: blue", "2: deleted"]
 * ```
 *
 * @module
 */
// The key-value store: what most users need.
export {
  CompactedError,
  connect,
  type HistoryOptions,
  Kv,
  type KvEntry,
  type KvHistoryEntry,
  type KvListEntry,
  KvListIterator,
  type KvListOptions,
  type KvListSelector,
  type KvOptions,
  type KvValue,
  type KvWatchEvent,
  KvWatchIterator,
  type KvWatchOptions,
  type KvWatchSelector,
  NotFoundError,
  type SetOptions,
  UnknownOutcomeError,
  VersionConflictError,
  type VersionOptions,
} from "./kv.ts";
export { type WatchSource } from "./kv_watch.ts";
export { AcceptorError, type ErrorCode, NotEnoughQuorumError, TrustError } from "./errors.ts";

// Trust: who talks to whom (docs/protocol.md, extension trust).
export { connectAcceptors, type ConnectOptions } from "./connect.ts";
export {
  type HelloCluster,
  type HelloReply,
  MIN_SECRET_BYTES,
  readSecretFile,
  Secret,
} from "./handshake.ts";
export {
  type ClusterIdentity,
  IDENTITY_FILE,
  type IdentityRecord,
  makeIdentity,
  randomId,
  readIdentity,
  VouchedPeers,
  writeIdentity,
} from "./identity.ts";

// Running acceptors.
export {
  type AcceptorOptions,
  type Caller,
  DEFAULT_MAX_QUEUED_PER_KEY,
  DEFAULT_MAX_QUEUED_PER_PEER,
  PaxosAcceptor,
} from "./acceptor.ts";
export {
  type AcceptorServer,
  DEFAULT_SERVE_LIMITS,
  serveAcceptor,
  type ServeAcceptorOptions,
  type ServeLimits,
} from "./server.ts";
export { type Health, type ServerGauges, ServerMetrics } from "./server_metrics.ts";
export { Histogram } from "./metrics.ts";
export type { HttpResponse } from "./ws_server.ts";
export {
  type ClusterOptions,
  DEFAULT_BASE_PORT,
  type LocalCluster,
  startCluster,
} from "./cluster.ts";
export {
  MAX_KEYS_IN_MEMORY,
  MemoryStore,
  type MemoryStoreOptions,
  type Store,
  type Written,
} from "./store.ts";
export {
  DEFAULT_MAX_KEYS,
  denoFs,
  LogCorruptionError,
  type LogEventFields,
  type LogFile,
  type LogFs,
  type LogReader,
  LogStore,
  type LogStoreEvent,
  type LogStoreOptions,
  type LogStoreStats,
} from "./log_store.ts";
export {
  SQLITE_FILE,
  SqliteStore,
  type SqliteStoreOptions,
  StoreCorruptionError,
} from "./sqlite_store.ts";
export { type Engine, ENGINE_FILES, engineOf } from "./data_engine.ts";
export { type ConfigRequest, MAX_KEY_BYTES, MAX_VALUE_BYTES } from "./codec.ts";

// The Paxos underneath: the seed's proposer and the acceptors it talks to.
export {
  PaxosProposer,
  type Phase1Result,
  type Phase2Options,
  type Phase2Result,
  type PhaseOptions,
  type ProposerOptions,
  type RunPaxosOptions,
} from "./proposer.ts";
export { jointMajority, majority, membersMajority, quorumOf, type QuorumSystem } from "./quorum.ts";
export {
  type AcceptorClient,
  type AcceptorSocket,
  type KeysAcceptorClient,
  type KvAcceptorClient,
  type SocketOpener,
  WebSocketAcceptorClient,
  type WebSocketClientOptions,
} from "./transport.ts";
export {
  type Acceptor,
  ballotEquals,
  type BallotNum,
  chosenAtTop,
  type DataValue,
  EMPTY_ACCEPTOR,
  firstWriteBallot,
  formatBallot,
  GE,
  INT64_MAX,
  INT64_MIN,
  isFirstWriteBallot,
  isInt64,
  type KeysReply,
  type KeyVersions,
  type LatestReply,
  MAX_BALLOT_STEP,
  type Op,
  type PaxosInstanceId,
  type Proposer,
  type Value,
  ZERO_BALLOT,
} from "./types.ts";

// The seams a simulation or a test plugs into.
export { type Clock, mathRandom, type Random, seededRandom, systemClock } from "./clock.ts";

// Watching Paxos run: who is told of each message (`--trace`, the demos).
export {
  type TimedTraceEvent,
  traceAcceptors,
  type TraceEvent,
  type TraceOp,
  type TracePhase,
  type Tracer,
  TraceRecorder,
  type TraceVerdict,
} from "./trace.ts";
