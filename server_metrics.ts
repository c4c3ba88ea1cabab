/**
 * What an acceptor server counts, and the two pages it serves beside
 * `/paxos` on its port: `GET /healthz` (whether it can serve) and
 * `GET /metrics` (Prometheus text). Counting is done in place, in arrays
 * made once: a request adds to two numbers and one histogram bucket.
 *
 * Neither page needs the cluster's secret, and neither shows anything
 * secret: counts, sizes, and what a `Hello` tells anyone (cluster name and
 * member id). See docs/protocol.md and docs/security.md.
 *
 * @module
 */
import { ALL_ERROR_CODES } from "./errors.ts";
import type { PaxosAcceptor } from "./acceptor.ts";
import { LogStore } from "./log_store.ts";
import { SqliteStore } from "./sqlite_store.ts";
import { Histogram, type Labels, PromText } from "./metrics.ts";
import type { HttpResponse } from "./ws_server.ts";

/** The operations counted by name; any other request counts as "invalid". */
export const COUNTED_OPS = [
  "Prepare",
  "Accept",
  "Latest",
  "Keys",
  "Hello",
  "Auth",
  "Attest",
  "Config",
  "invalid",
] as const;

// Outcomes: "ok", or the error code replied.
const OUTCOMES: readonly string[] = ["ok", ...ALL_ERROR_CODES];
const OUTCOME_INDEX = new Map<string, number>(OUTCOMES.map((o, i) => [o, i]));
const OP_INDEX = new Map<string, number>(COUNTED_OPS.map((o, i) => [o, i]));

// Request latency buckets, in seconds.
const LATENCY_BOUNDS = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
];

/** What the health check and the metrics read of the server itself. */
export interface ServerGauges {
  /** Open connections, upgrades under way included. */
  readonly connections: () => number;
  /** Whether the server is shutting down. */
  readonly closing: () => boolean;
  /** The cluster name and member id, when the acceptor has an identity. */
  readonly member: () => { readonly cluster: string; readonly member: number } | undefined;
}

/** The body of `GET /healthz`, as JSON. */
export interface Health {
  /** "ok" when the acceptor can serve, else "unavailable". */
  readonly status: "ok" | "unavailable";
  /** Why not, when unavailable. */
  readonly reason?: string;
  /** The cluster's name (null without an identity). */
  readonly cluster: string | null;
  /** This acceptor's member id (null without an identity). */
  readonly member: number | null;
  /** Seconds since the server started. */
  readonly uptimeSeconds: number;
  /** Keys the store holds any state for (null when the store cannot tell). */
  readonly keys: number | null;
  /** Bytes of data held, as the quota counts them. */
  readonly dataBytes: number;
  /** The log's size in bytes (null for a store in memory). */
  readonly logBytes: number | null;
  /** Open connections, this request's included. */
  readonly connections: number;
}

/**
 * The counters of one acceptor server, and its `/healthz` and `/metrics`
 * pages.
 *
 * @example
 * ```ts
 * import { PaxosAcceptor } from "./acceptor.ts";
 * import { ServerMetrics } from "./server_metrics.ts";
 * const m = new ServerMetrics(new PaxosAcceptor(), {
 *   connections: () => 0,
 *   closing: () => false,
 *   member: () => undefined,
 * });
 * m.request("Accept", "ok", 0.0004);
 * m.http("/healthz")?.status; // 200
 * ```
 */
export class ServerMetrics {
  readonly #acceptor: PaxosAcceptor;
  readonly #gauges: ServerGauges;
  readonly #started = Date.now();
  // By op, then outcome.
  readonly #requests = new Float64Array(COUNTED_OPS.length * OUTCOMES.length);
  readonly #latency = COUNTED_OPS.map(() => new Histogram(LATENCY_BOUNDS));
  #frames = 0;
  // What the server reported, by cause (before rate limiting).
  readonly #events = new Map<string, number>();

  /** Counts for `acceptor`, reading the server through `gauges`. */
  constructor(acceptor: PaxosAcceptor, gauges: ServerGauges) {
    this.#acceptor = acceptor;
    this.#gauges = gauges;
  }

  /** Counts one request of `op` answered with `outcome` ("ok" or an error code) in `seconds`. */
  request(op: string, outcome: string, seconds: number): void {
    const i = OP_INDEX.get(op) ?? COUNTED_OPS.length - 1;
    const o = OUTCOME_INDEX.get(outcome) ?? OUTCOME_INDEX.get("Internal")!;
    this.#requests[i * OUTCOMES.length + o]!++;
    this.#latency[i]!.observe(seconds);
  }

  /** Counts one request frame read. */
  frame(): void {
    this.#frames++;
  }

  /** Counts one event the server reported (a refused connection, a bad frame...). */
  event(cause: string): void {
    this.#events.set(cause, (this.#events.get(cause) ?? 0) + 1);
  }

  /** How many requests of `op` were answered with `outcome`. */
  requests(op: string, outcome: string): number {
    const i = OP_INDEX.get(op);
    const o = OUTCOME_INDEX.get(outcome);
    return i === undefined || o === undefined ? 0 : this.#requests[i * OUTCOMES.length + o]!;
  }

  /** Why the acceptor cannot serve, or null when it can. */
  unavailable(): string | null {
    if (this.#gauges.closing()) return "shutting down";
    const store = this.#acceptor.store;
    return store instanceof LogStore || store instanceof SqliteStore ? store.failure : null;
  }

  /** The health check's answer. */
  health(): Health {
    const store = this.#acceptor.store;
    const why = this.unavailable();
    const id = this.#gauges.member();
    return {
      status: why === null ? "ok" : "unavailable",
      ...(why === null ? {} : { reason: why }),
      cluster: id?.cluster ?? null,
      member: id?.member ?? null,
      uptimeSeconds: Math.round((Date.now() - this.#started) / 1000),
      keys: store.keyCount ?? null,
      dataBytes: store.usedBytes,
      logBytes: store instanceof LogStore
        ? store.stats.logBytes
        : store instanceof SqliteStore
        ? store.diskBytes
        : null,
      connections: this.#gauges.connections(),
    };
  }

  /** The page for a `GET` of `target`, or null when there is none. */
  http(target: string): HttpResponse | null {
    if (target === "/healthz") {
      const h = this.health();
      return h.status === "ok"
        ? { status: 200, reason: "OK", contentType: JSON_TYPE, body: JSON.stringify(h) + "\n" }
        : {
          status: 503,
          reason: "Service Unavailable",
          contentType: JSON_TYPE,
          body: JSON.stringify(h) + "\n",
        };
    }
    if (target === "/metrics") {
      return { status: 200, reason: "OK", contentType: PROM_TYPE, body: this.text() };
    }
    return null;
  }

  /** The metrics, in the Prometheus text format. */
  text(): string {
    const t = new PromText();
    const store = this.#acceptor.store;
    const requests: [Labels, number][] = [];
    COUNTED_OPS.forEach((op, i) => {
      OUTCOMES.forEach((outcome, o) => {
        const n = this.#requests[i * OUTCOMES.length + o]!;
        if (n > 0 || outcome === "ok") requests.push([{ op, outcome }, n]);
      });
    });
    t.metric(
      "paxoskv_requests_total",
      "counter",
      "Requests answered, by operation and outcome (ok or the error code replied).",
      requests,
    );
    t.histogram(
      "paxoskv_request_duration_seconds",
      "Time from a request read to its reply made (stored first when it changes state), by operation.",
      COUNTED_OPS.map((op, i) => [{ op }, this.#latency[i]!] as const)
        .filter(([l, h]) => h.count > 0 || l.op === "Prepare" || l.op === "Accept"),
    );
    t.metric("paxoskv_frames_total", "counter", "Request frames read.", [[{}, this.#frames]]);
    t.metric(
      "paxoskv_server_events_total",
      "counter",
      "What the server refused or peers did wrong, by cause (connections: refused at the " +
        "connection limit; bad frame; protocol; handshake; unauthorized; ...).",
      [...this.#events].map(([cause, n]) => [{ cause }, n] as const),
    );
    t.metric("paxoskv_connections", "gauge", "Open connections, upgrades under way included.", [
      [{}, this.#gauges.connections()],
    ]);
    t.metric(
      "paxoskv_queue_depth",
      "gauge",
      "Requests waiting behind a write of their key.",
      [[{}, this.#acceptor.queued]],
    );
    if (store.keyCount !== undefined) {
      t.metric("paxoskv_keys", "gauge", "Keys the store holds any state for.", [
        [{}, store.keyCount],
      ]);
    }
    t.metric("paxoskv_data_bytes", "gauge", "Bytes of data held, as the quota counts them.", [
      [{}, store.usedBytes],
    ]);
    t.metric("paxoskv_quota_bytes", "gauge", "The quota (--quota-bytes).", [
      [{}, this.#acceptor.quotaBytes],
    ]);
    if (store.maxKeys !== undefined) {
      t.metric("paxoskv_max_keys", "gauge", "Most keys the store may hold (--max-keys).", [
        [{}, store.maxKeys],
      ]);
    }
    if (store instanceof LogStore) {
      const s = store.stats;
      t.metric("paxoskv_log_bytes", "gauge", "Size of the log file.", [[{}, s.logBytes]]);
      t.metric("paxoskv_syncs_total", "counter", "fdatasync calls on the log (group commits).", [
        [{}, s.syncs],
      ]);
      t.metric("paxoskv_changes_total", "counter", "Changes made durable.", [[{}, s.changes]]);
      t.metric("paxoskv_compactions_total", "counter", "Compactions of the log done.", [
        [{}, s.compactions],
      ]);
      t.histogram("paxoskv_group_commit_size", "Changes written and synced together.", [
        [{}, store.commitSizes],
      ]);
    } else if (store instanceof SqliteStore) {
      const s = store.stats;
      t.metric("paxoskv_log_bytes", "gauge", "Size of the database and its WAL.", [
        [{}, store.diskBytes],
      ]);
      t.metric("paxoskv_syncs_total", "counter", "SQLite commits (group commits).", [
        [{}, s.commits],
      ]);
      t.metric("paxoskv_changes_total", "counter", "Changes made durable.", [[{}, s.changes]]);
    }
    t.metric("paxoskv_up", "gauge", "1 when the acceptor can serve (see /healthz), else 0.", [
      [{}, this.unavailable() === null ? 1 : 0],
    ]);
    t.metric(
      "paxoskv_start_time_seconds",
      "gauge",
      "When the server started, in seconds since the Unix epoch.",
      [[{}, this.#started / 1000]],
    );
    return t.text();
  }
}

const JSON_TYPE = "application/json";
const PROM_TYPE = "text/plain; version=0.0.4; charset=utf-8";
