/**
 * A local cluster: several acceptors served from one process, each on its
 * own port, each with its own in-memory store. For trying paxoskv out
 * (`deno task start`) and for tests; a real deployment runs one acceptor per
 * machine.
 *
 * @module
 */
import { PaxosAcceptor } from "./acceptor.ts";
import { type AcceptorServer, serveAcceptor } from "./server.ts";
import { MemoryStore, type Store } from "./store.ts";
import { makeIdentity, randomId, VouchedPeers } from "./identity.ts";

/** The first port of a local cluster by default, as the seed's `AcceptorBasePort`. */
export const DEFAULT_BASE_PORT = 3333;

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  /** Interface to listen on (default "127.0.0.1"). */
  readonly hostname?: string;
  /**
   * Port of acceptor 0; acceptor `i` listens on `basePort + i`. With 0,
   * every acceptor gets a free port of its own (default
   * {@link DEFAULT_BASE_PORT}).
   */
  readonly basePort?: number;
  /** How many acceptors (default 3). */
  readonly size?: number;
  /** Called for each connection error worth logging, with the acceptor's index. */
  readonly onError?: (index: number, message: string, cause: string, held?: number) => void;
  /** The store of acceptor `index` (default: a new {@link MemoryStore}). */
  readonly store?: (index: number) => Store;
  /** The web origins whose pages may connect (see `serveAcceptor`; default none). */
  readonly allowOrigins?: readonly string[];
}

/** A running local cluster. */
export interface LocalCluster {
  /** The acceptors' URLs, `ws://HOST:PORT/paxos`, in index order. */
  readonly urls: readonly string[];
  /** The acceptors, in index order. */
  readonly acceptors: readonly PaxosAcceptor[];
  /** Their servers, in index order (a stopped acceptor's is its last one). */
  readonly servers: readonly AcceptorServer[];
  /** Whether acceptor `index` is serving. */
  running(index: number): boolean;
  /**
   * Stops serving acceptor `index`, as a crash would: its connections drop;
   * its state stays, as on a disk.
   */
  stopAcceptor(index: number): Promise<void>;
  /** Serves a stopped acceptor again, on its port, with the state it had. */
  startAcceptor(index: number): Promise<void>;
  /** Stops every server and releases the stores. */
  close(): Promise<void>;
}

/**
 * Starts `size` acceptors in this process, each on its own port with a fresh
 * {@link MemoryStore}. When one of them cannot listen, the ones already
 * started are stopped and the error (naming the address) is thrown.
 *
 * @example
 * ```ts
 * import { startCluster } from "./cluster.ts";
 * const cluster = await startCluster({ basePort: 0 });
 * cluster.urls.length; // 3
 * await cluster.close();
 * ```
 */
export async function startCluster(opts: ClusterOptions = {}): Promise<LocalCluster> {
  const hostname = opts.hostname ?? "127.0.0.1";
  const basePort = opts.basePort ?? DEFAULT_BASE_PORT;
  const size = opts.size ?? 3;
  if (!Number.isSafeInteger(size) || size < 1) {
    throw new RangeError(`cluster size must be a positive integer, got ${size}`);
  }
  if (!Number.isSafeInteger(basePort) || basePort < 0 || basePort + size - 1 > 65535) {
    throw new RangeError(
      `base port must leave room for ${size} ports in 0..65535, got ${basePort}`,
    );
  }
  const onError = opts.onError ?? (() => {});
  const acceptors: PaxosAcceptor[] = [];
  const servers: AcceptorServer[] = [];
  const serving: boolean[] = [];
  const closeAll = async () => {
    await Promise.all(servers.filter((_, i) => serving[i]).map((s) => s.close()));
    await Promise.all(acceptors.map((a) => a.store.close()));
  };
  // One cluster: a new id, members 0..size-1, each a new instance.
  const clusterId = randomId();
  const members = Array.from({ length: size }, (_, i) => i);
  const identities = members.map((i) =>
    makeIdentity({
      cluster: "local",
      clusterId,
      member: i,
      members,
      keepVersions: null,
      instance: randomId(),
    })
  );
  const serve = (i: number, port: number) =>
    serveAcceptor(acceptors[i]!, {
      hostname,
      port,
      onError: (m, cause, held) => onError(i, m, cause, held),
      identity: identities[i]!,
      peers: new VouchedPeers(),
      ...(opts.allowOrigins === undefined ? {} : { allowOrigins: opts.allowOrigins }),
    });
  for (let i = 0; i < size; i++) {
    const port = basePort === 0 ? 0 : basePort + i;
    acceptors.push(new PaxosAcceptor(opts.store?.(i) ?? new MemoryStore(), `acceptor ${i}`));
    try {
      servers.push(await serve(i, port));
      serving.push(true);
    } catch (e) {
      await closeAll();
      const what = e instanceof Error ? e.message : String(e);
      throw new Error(`acceptor ${i} cannot listen on ${hostname}:${port}: ${what}`, {
        cause: e,
      });
    }
  }
  const check = (i: number) => {
    if (!(Number.isInteger(i) && i >= 0 && i < size)) {
      throw new RangeError(`no acceptor ${i} in a cluster of ${size}`);
    }
  };
  return {
    urls: servers.map((s) => s.url),
    acceptors,
    servers,
    running: (i) => serving[i] === true,
    async stopAcceptor(i) {
      check(i);
      if (!serving[i]) return;
      serving[i] = false;
      await servers[i]!.close();
    },
    async startAcceptor(i) {
      check(i);
      if (serving[i]) return;
      servers[i] = await serve(i, servers[i]!.port);
      serving[i] = true;
    },
    close: closeAll,
  };
}
