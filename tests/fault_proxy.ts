/**
 * A TCP proxy for tests that puts network faults between clients and a
 * server process (an acceptor): delays, dropped connections and partitions.
 *
 * Every accepted connection gets its own connection to the target, and the
 * bytes of each direction are pumped through a queue: a chunk read from one
 * side is written to the other once its delay is over, never before a chunk
 * read earlier in the same direction (delays reorder nothing within a
 * connection, as with TCP; different connections are independent, so a
 * request sent on a new connection can overtake one held on an old one).
 *
 * Faults (see {@link Faults}) apply from the moment they are set:
 * - `delayMs: [min, max]`: each chunk is held for a uniform random time in
 *   that range (and, to keep the order, at least as long as the chunk
 *   before it in its direction).
 * - `dropConnectionRate: p`: for each chunk read, with probability `p`, the
 *   chunk is thrown away and both sides of its connection are closed at once
 *   (a connection that broke mid-request: the request may or may not have
 *   reached the acceptor, and the reply may be lost).
 * - `partitioned: true`: nothing is forwarded. Bytes (and end-of-stream)
 *   read from either side are held, in order, in their queues; new
 *   connections are accepted and connected to the target but held the same
 *   way. When the partition heals, everything held is delivered. This is the
 *   "black hole" kind of partition: clients see requests time out, not
 *   connections refused, and after healing the acceptor receives stale
 *   requests that the client gave up on long ago.
 *
 * Fault decisions use a seeded random source ({@link seededRandom}), so a
 * run is repeatable as far as the timing of the processes allows.
 *
 * When the target refuses the connection (the acceptor is down), the
 * accepted connection is closed at once; {@link FaultProxy.retarget} points
 * new connections at another port (the acceptor restarted there).
 *
 * @module
 */
import { type Random, seededRandom } from "../clock.ts";

/** The faults a {@link FaultProxy} injects; what is not given is off. */
export interface Faults {
  /** Hold each chunk for a random time in `[min, max]` ms (order kept per direction). */
  readonly delayMs?: readonly [number, number];
  /** Probability, per chunk read, of closing both sides of its connection instead of forwarding it. */
  readonly dropConnectionRate?: number;
  /** Forward nothing: hold every byte (and end-of-stream) until the partition heals. */
  readonly partitioned?: boolean;
}

/** Counters of what a {@link FaultProxy} did. */
export interface ProxyStats {
  /** Connections accepted. */
  connections: number;
  /** Accepted connections closed because the target refused to connect. */
  refused: number;
  /** Connections closed by `dropConnectionRate`. */
  dropped: number;
  /** Chunks forwarded. */
  chunks: number;
  /** Chunks read while partitioned (held until it healed, or lost with their connection). */
  held: number;
}

/** A running proxy: see the module documentation. */
export interface FaultProxy {
  /** The port the proxy listens on (127.0.0.1). */
  readonly port: number;
  /** What it did so far. */
  readonly stats: Readonly<ProxyStats>;
  /** Replaces the current faults (an empty object heals everything). */
  setFaults(faults: Faults): void;
  /** Connects new connections to `port` from now on; existing ones keep their target. */
  retarget(port: number): void;
  /** Closes the listener and every connection, and waits until all its tasks have ended. */
  close(): Promise<void>;
}

/** Options of {@link startProxy}. */
export interface ProxyOptions {
  /** Seed of the random source for fault decisions (default 1). */
  readonly seed?: number;
}

// One queued chunk: bytes, or null for end-of-stream; `at` is when it may go.
interface Chunk {
  readonly data: Uint8Array | null;
  readonly at: number;
}

// One direction of a connection: a queue and a way to wake its writer.
class Direction {
  readonly queue: Chunk[] = [];
  lastAt = 0;
  done = false;
  #wake: (() => void) | null = null;

  // Waits until poked, or `ms` elapsed (null: no time limit).
  nap(ms: number | null): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === null ? undefined : setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  poke(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }
}

// A proxied connection: the accepted side, the target side, two directions.
class Link {
  closed = false;
  target: Deno.TcpConn | null = null;
  readonly up = new Direction(); // client -> target
  readonly down = new Direction(); // target -> client
  constructor(readonly client: Deno.TcpConn) {}

  abort(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of [this.client, this.target]) {
      try {
        c?.close();
      } catch {
        // Closed already.
      }
    }
    this.up.poke();
    this.down.poke();
  }
}

function checkFaults(f: Faults): void {
  if (f.delayMs !== undefined) {
    const [min, max] = f.delayMs;
    if (!(min >= 0 && max >= min && Number.isFinite(max))) {
      throw new RangeError(`delayMs must be [min, max] with 0 <= min <= max, got [${min}, ${max}]`);
    }
  }
  const p = f.dropConnectionRate;
  if (p !== undefined && !(p >= 0 && p <= 1)) {
    throw new RangeError(`dropConnectionRate must be in [0, 1], got ${p}`);
  }
}

class TcpFaultProxy implements FaultProxy {
  readonly port: number;
  readonly stats: ProxyStats = { connections: 0, refused: 0, dropped: 0, chunks: 0, held: 0 };
  readonly #listener: Deno.TcpListener;
  readonly #random: Random;
  readonly #links = new Set<Link>();
  readonly #tasks = new Set<Promise<void>>();
  #target: number;
  #faults: Faults = {};
  #closed = false;

  constructor(target: number, seed: number) {
    this.#target = target;
    this.#random = seededRandom(seed);
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = this.#listener.addr.port;
    this.#track(this.#acceptLoop());
  }

  setFaults(faults: Faults): void {
    checkFaults(faults);
    const healed = this.#faults.partitioned === true && faults.partitioned !== true;
    this.#faults = { ...faults };
    if (healed) {
      for (const l of this.#links) {
        l.up.poke();
        l.down.poke();
      }
    }
  }

  retarget(port: number): void {
    if (!(Number.isInteger(port) && port > 0 && port <= 65535)) {
      throw new RangeError(`retarget needs a port in 1..65535, got ${port}`);
    }
    this.#target = port;
  }

  async close(): Promise<void> {
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Closed already.
    }
    for (const l of this.#links) l.abort();
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  #track(p: Promise<void>): void {
    this.#tasks.add(p);
    p.finally(() => this.#tasks.delete(p));
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return; // The listener was closed.
      }
      if (this.#closed) {
        conn.close();
        return;
      }
      this.stats.connections++;
      this.#track(this.#serve(new Link(conn)));
    }
  }

  async #serve(link: Link): Promise<void> {
    this.#links.add(link);
    try {
      let target: Deno.TcpConn;
      try {
        target = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
      } catch {
        this.stats.refused++;
        return;
      }
      if (link.closed) {
        target.close();
        return;
      }
      link.target = target;
      link.client.setNoDelay(true);
      target.setNoDelay(true);
      await Promise.all([
        this.#read(link, link.client, link.up),
        this.#write(link, target, link.up),
        this.#read(link, target, link.down),
        this.#write(link, link.client, link.down),
      ]);
    } finally {
      link.abort();
      this.#links.delete(link);
    }
  }

  // Reads chunks from `src` into `dir`'s queue, deciding drops and delays.
  async #read(link: Link, src: Deno.TcpConn, dir: Direction): Promise<void> {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await src.read(buf);
        if (link.closed) return;
        const rate = this.#faults.dropConnectionRate ?? 0;
        if (n !== null && rate > 0 && this.#random.next() < rate) {
          this.stats.dropped++;
          link.abort();
          return;
        }
        const [min, max] = this.#faults.delayMs ?? [0, 0];
        const delay = min + (max - min) * this.#random.next();
        const at = Math.max(performance.now() + delay, dir.lastAt);
        dir.lastAt = at;
        if (n !== null && this.#faults.partitioned === true) this.stats.held++;
        dir.queue.push({ data: n === null ? null : buf.slice(0, n), at });
        dir.poke();
        if (n === null) return;
      }
    } catch {
      link.abort(); // Reset by the peer, or closed by abort().
    }
  }

  // Writes `dir`'s queue to `dst` when each chunk's time has come and no
  // partition holds it.
  async #write(link: Link, dst: Deno.TcpConn, dir: Direction): Promise<void> {
    try {
      while (!link.closed) {
        const c = dir.queue[0];
        if (c === undefined) {
          await dir.nap(null);
          continue;
        }
        if (this.#faults.partitioned === true) {
          await dir.nap(null);
          continue;
        }
        const left = c.at - performance.now();
        if (left > 0) {
          await dir.nap(left);
          continue;
        }
        dir.queue.shift();
        if (c.data === null) {
          await dst.closeWrite();
          dir.done = true;
          if (link.up.done && link.down.done) link.abort();
          return;
        }
        for (let off = 0; off < c.data.length;) off += await dst.write(c.data.subarray(off));
        this.stats.chunks++;
      }
    } catch {
      link.abort();
    }
  }
}

/**
 * Starts a proxy on 127.0.0.1 (a free port) that forwards to
 * `127.0.0.1:targetPort`, with no faults until {@link FaultProxy.setFaults}.
 *
 * @example
 * ```ts ignore
 * import { startProxy } from "./fault_proxy.ts";
 * const proxy = startProxy(3333, { seed: 7 });
 * proxy.setFaults({ delayMs: [0, 20], dropConnectionRate: 0.01 });
 * // ... clients connect to proxy.port ...
 * await proxy.close();
 * ```
 */
export function startProxy(targetPort: number, opts: ProxyOptions = {}): FaultProxy {
  if (!(Number.isInteger(targetPort) && targetPort > 0 && targetPort <= 65535)) {
    throw new RangeError(`startProxy needs a port in 1..65535, got ${targetPort}`);
  }
  return new TcpFaultProxy(targetPort, opts.seed ?? 1);
}
