/**
 * Connecting to a cluster's acceptors: one {@link WebSocketAcceptorClient}
 * per URL, each connection's handshake checked against the others' (a
 * {@link ClusterView}), a majority reached, and the members' instances
 * vouched for to each acceptor, so that a member that comes back without
 * its state is refused by the next client too.
 *
 * @module
 */
import type { Clock, Random } from "./clock.ts";
import { systemClock } from "./clock.ts";
import { ClusterView } from "./cluster_view.ts";
import { NotEnoughQuorumError, TrustError } from "./errors.ts";
import type { Secret } from "./handshake.ts";
import { quorumOf } from "./quorum.ts";
import { WebSocketAcceptorClient } from "./transport.ts";

/** Options of {@link connectAcceptors}. */
export interface ConnectOptions {
  /** How long each request may wait for its reply, in ms (default 1000). */
  readonly timeoutMs?: number;
  /** How long reaching a majority may take, in ms (default 10000). */
  readonly deadlineMs?: number;
  /** Time source (default: the system clock). */
  readonly clock?: Clock;
  /** Randomness for backoff (default: Math.random). */
  readonly random?: Random;
  /**
   * The cluster's shared secret (e.g. from `readSecretFile`): every
   * connection proves it knows it, and that the acceptor does.
   */
  readonly secret?: Secret;
  /** For `wss://` URLs: certificates (PEM) to trust besides the system's roots. */
  readonly caCerts?: readonly string[];
}

/**
 * Connects to the acceptors at `urls` and resolves with a client for each,
 * once a majority of them completed their handshake. Rejects with a
 * {@link TrustError} naming the URLs when they do not belong together (a
 * secret that does not match, two URLs for one acceptor or member,
 * different clusters, a list that is not exactly the membership, a member
 * that came back without its state), and with a
 * {@link NotEnoughQuorumError} when no majority answers before the
 * deadline. Later reconnects are checked the same way.
 *
 * @example
 * ```ts ignore
 * import { connectAcceptors } from "./connect.ts";
 * const clients = await connectAcceptors(["ws://127.0.0.1:3333/paxos", "ws://127.0.0.1:3334/paxos", "ws://127.0.0.1:3335/paxos"]);
 * await Promise.all(clients.map((c) => c.close()));
 * ```
 */
export async function connectAcceptors(
  urls: readonly string[],
  opts: ConnectOptions = {},
): Promise<WebSocketAcceptorClient[]> {
  if (urls.length === 0) throw new RangeError("connect needs at least one acceptor URL");
  if (new Set(urls).size !== urls.length) {
    throw new RangeError(`an acceptor URL is listed twice: ${urls.join(",")}`);
  }
  // What each acceptor says of itself is checked against the others as it
  // connects, now and at every reconnect.
  const view = new ClusterView(urls);
  const clients = urls.map((u) =>
    new WebSocketAcceptorClient(u, {
      timeoutMs: opts.timeoutMs ?? 1000,
      verify: (hello) => view.admit(u, hello),
      ...(opts.clock === undefined ? {} : { clock: opts.clock }),
      ...(opts.random === undefined ? {} : { random: opts.random }),
      ...(opts.secret === undefined ? {} : { secret: opts.secret }),
      ...(opts.caCerts === undefined ? {} : { caCerts: opts.caCerts }),
    })
  );
  const clock = opts.clock ?? systemClock;
  const quorum = quorumOf(clients.length);
  try {
    // Every acceptor that answers is checked before any is used: one that
    // does not belong must be refused even when a majority of others do.
    // (One that does not answer costs up to its connect timeout.)
    const failures: string[] = [];
    let ready = 0;
    let timer: unknown;
    const timedOut = await Promise.race([
      Promise.all(
        clients.map((c) =>
          c.ready().then(() => void ready++, (e: Error) => void failures.push(e.message))
        ),
      ).then(() => false),
      new Promise<boolean>((resolve) => {
        timer = clock.setTimer(() => resolve(true), opts.deadlineMs ?? 10_000);
      }),
    ]);
    clock.clearTimer(timer);
    const refused = clients.find((c) => c.refusal !== null)?.refusal;
    if (refused !== undefined && refused !== null) throw refused;
    if (ready < quorum) {
      const why = timedOut ? "no majority answered within the deadline" : "too many failed";
      throw new NotEnoughQuorumError(
        `cannot reach a majority of the acceptors: ${ready} of ${clients.length} answered, ` +
          `${quorum} needed; ${why}` + (failures.length > 0 ? `; ${failures.join("; ")}` : ""),
      );
    }
    // Vouch for the members' instances, so that one that comes back without
    // its state is refused by the next client too.
    const instances = view.instances;
    if (instances.size > 0) {
      await Promise.all(
        clients.filter((c) => c.hello?.cluster !== undefined).map((c) =>
          c.attest(instances).catch((e) => {
            if (e instanceof TrustError) throw e;
          })
        ),
      );
    }
    return clients;
  } catch (e) {
    await Promise.all(clients.map((c) => c.close()));
    throw e;
  }
}
