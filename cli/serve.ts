/**
 * The commands that serve: `acceptor` runs one acceptor, `cluster` runs
 * three in this process. Both run until SIGINT or SIGTERM.
 *
 * @module
 */
import { DEFAULT_MEMORY_QUOTA_BYTES, DEFAULT_QUOTA_BYTES, PaxosAcceptor } from "../acceptor.ts";
import { DEFAULT_BASE_PORT, type LocalCluster, startCluster } from "../cluster.ts";
import { ListedStore, serveUi, type UiServer } from "../ui/server.ts";
import { LogStore } from "../log_store.ts";
import { SqliteStore } from "../sqlite_store.ts";
import { engineOf } from "../data_engine.ts";
import { type AcceptorServer, isLoopback, serveAcceptor } from "../server.ts";
import { MAX_KEYS_IN_MEMORY, MemoryStore, type Store } from "../store.ts";
import { hostOpt, intOpt, parseArgs, positionals, required, stringOpt } from "./args.ts";
import { EXIT_FAILURE, messageOf, UsageError } from "./exit.ts";
import { configOf, describeConfig, VouchedPeers, writeIdentity } from "../identity.ts";
import {
  type AcceptorIdentity,
  durableIdentity,
  IDENTITY_SPEC,
  memoryIdentity,
  StartRefused,
} from "./acceptor_init.ts";
import { originsOpt, secretOpt, SERVER_TRUST_SPEC, tlsOpt } from "./trust.ts";
import type { CliIo } from "./io.ts";
import { denoCommand } from "./help.ts";
import { AcceptorLog, logFormatOpt } from "./acceptor_log.ts";
import type { LogStoreEvent } from "../log_store.ts";

// How bad each event of a log store is.
const STORE_LEVELS: Readonly<Record<LogStoreEvent, "info" | "warn" | "error">> = {
  torn_record_dropped: "warn",
  compaction_started: "info",
  compaction_done: "info",
  compaction_failed: "error",
  index_not_saved: "warn",
};

// --max-keys bounds the keys an engine keeps in memory; sqlite has none there.
const SQLITE_MAX_KEYS = "--max-keys is for the log engine and --memory, which keep every key in " +
  "memory; the sqlite engine keeps its keys on disk and needs no key limit";

/** `acceptor --data DIR ...`: one acceptor on a durable (or memory) store. */
export async function runAcceptor(args: readonly string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, {
    id: "string",
    host: "string",
    port: "string",
    data: "string",
    memory: "boolean",
    engine: "string",
    "keep-versions": "string",
    "max-connections": "string",
    "handshake-timeout": "string",
    "max-reply-bytes": "string",
    "max-queued-per-key": "string",
    "max-queued-per-peer": "string",
    "quota-bytes": "string",
    "max-keys": "string",
    ui: "boolean",
    "ui-port": "string",
    "log-format": "string",
    ...IDENTITY_SPEC,
    ...SERVER_TRUST_SPEC,
  });
  positionals(p, []);
  // First every option's value, then what they mean together.
  const idOpt = intOpt(p, "id", 0n, BigInt(Number.MAX_SAFE_INTEGER), "a non-negative integer");
  const hostname = hostOpt(p);
  const portOpt = intOpt(p, "port", 0n, 65535n, "a port number in 0..65535");
  const keep = intOpt(
    p,
    "keep-versions",
    1n,
    BigInt(Number.MAX_SAFE_INTEGER),
    "a positive integer",
  );
  const limit = (name: string) => {
    const n = intOpt(p, name, 1n, BigInt(Number.MAX_SAFE_INTEGER), "a positive integer");
    return n === undefined ? undefined : Number(n);
  };
  const maxConnections = limit("max-connections");
  const handshakeTimeoutMs = limit("handshake-timeout");
  const maxPendingReplyBytes = limit("max-reply-bytes");
  const maxQueuedPerKey = limit("max-queued-per-key");
  const maxQueuedPerPeer = limit("max-queued-per-peer");
  const quotaBytes = limit("quota-bytes");
  const maxKeysOpt = intOpt(
    p,
    "max-keys",
    1n,
    BigInt(MAX_KEYS_IN_MEMORY),
    `a positive integer up to ${MAX_KEYS_IN_MEMORY} (a JavaScript Map holds at most 2^24 keys)`,
  );
  const maxKeys = maxKeysOpt === undefined ? undefined : Number(maxKeysOpt);
  const memory = p.opts.has("memory");
  const dir = stringOpt(p, "data");
  if (memory && dir !== undefined) throw new UsageError("give --data or --memory, not both");
  if (dir === "") throw new UsageError("--data needs a directory");
  if (!memory && dir === undefined) {
    throw new UsageError(
      "missing --data DIR (or --memory, for a test acceptor whose state is lost when it stops)",
    );
  }
  const engineOpt = stringOpt(p, "engine");
  if (engineOpt !== undefined && engineOpt !== "log" && engineOpt !== "sqlite") {
    throw new UsageError(`--engine must be log or sqlite, got ${JSON.stringify(engineOpt)}`);
  }
  if (engineOpt !== undefined && memory) throw new UsageError("--engine goes with --data");
  if (engineOpt === "sqlite" && maxKeys !== undefined) throw new UsageError(SQLITE_MAX_KEYS);
  const secret = await secretOpt(p);
  const tls = await tlsOpt(p);
  const allowOrigins = originsOpt(p);
  const withUi = p.opts.has("ui");
  const uiPort = intOpt(p, "ui-port", 0n, 65535n, "a port number in 0..65535");
  if (uiPort !== undefined && !withUi) throw new UsageError("--ui-port goes with --ui");
  if (withUi && secret !== undefined) {
    throw new UsageError(
      "--ui with --secret-file: the page could not prove the secret, so this acceptor would " +
        "refuse it; run the page against acceptors without a secret, on loopback",
    );
  }
  const format = logFormatOpt(p);

  // Which member of which cluster this is, decided before anything is written.
  let who: AcceptorIdentity;
  try {
    who = dir === undefined
      ? memoryIdentity(p, Number(required(idOpt, "id")), keep === undefined ? null : Number(keep))
      : await durableIdentity(
        p,
        dir,
        idOpt === undefined ? undefined : Number(idOpt),
        keep === undefined ? undefined : Number(keep),
      );
  } catch (e) {
    if (!(e instanceof StartRefused)) throw e;
    new AcceptorLog(io.err, format, null).event("error", "start_refused", e.message);
    return EXIT_FAILURE;
  }
  const identity = who.record.identity;
  const id = identity.member;
  let port = portOpt;
  if (port === undefined) {
    port = BigInt(DEFAULT_BASE_PORT + id);
    if (port > 65535n) {
      throw new UsageError(
        `the default port ${DEFAULT_BASE_PORT}+${id} is over 65535: give --port`,
      );
    }
  }
  if (secret === undefined && !isLoopback(hostname)) {
    throw new UsageError(
      `--host ${hostname} without --secret-file: every host that can reach it could read and ` +
        `write every key; give the cluster's secret, or listen on 127.0.0.1`,
    );
  }
  // Never blocks, even when nobody reads stderr; the server's own lines are
  // also rate-limited per cause.
  const alog = new AcceptorLog((l) => (io.log ?? io.err)(l), format, id);
  // A failure to start: one line on stderr, written at once.
  const fatal = (event: string, text: string, message: string) => {
    if (format === "text") io.err(text);
    else new AcceptorLog(io.err, format, id).event("error", event, message);
  };
  if (who.note !== undefined) alog.event("info", "identity", who.note);
  const stop = io.waitForStop();
  let store: Store;
  try {
    // A directory keeps the engine it was made with; a new one gets the
    // one asked for, by default the log.
    const engine = dir === undefined ? null : engineOpt ?? await engineOf(dir) ?? "log";
    // (A directory of the sqlite engine, without --engine, is found here.)
    if (engine === "sqlite" && maxKeys !== undefined) throw new UsageError(SQLITE_MAX_KEYS);
    const keys = maxKeys === undefined ? {} : { maxKeys };
    store = dir === undefined
      ? new MemoryStore(keys)
      : engine === "sqlite"
      ? await SqliteStore.open(dir)
      : await LogStore.open(dir, {
        onEvent: (m, event, fields) => alog.event(STORE_LEVELS[event], event, m, fields),
        ...keys,
      });
    if (dir !== undefined && who.create) await writeIdentity(dir, who.record);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const m = `cannot open its data: ${messageOf(e)}`;
    fatal("open_failed", `paxoskv: acceptor ${id} ${m}`, m);
    return EXIT_FAILURE;
  }
  // With --ui the page lists the store's instances: a ListedStore wraps it,
  // with the quota the store's kind has by default.
  const listed = withUi ? new ListedStore(store) : null;
  const quota = quotaBytes ??
    (listed === null
      ? undefined
      : store instanceof MemoryStore
      ? DEFAULT_MEMORY_QUOTA_BYTES
      : DEFAULT_QUOTA_BYTES);
  const acceptor = new PaxosAcceptor(listed ?? store, `acceptor ${id}`, {
    ...(identity.keepVersions === null ? {} : { keepVersions: identity.keepVersions }),
    ...(maxQueuedPerKey === undefined ? {} : { maxQueuedPerKey }),
    ...(maxQueuedPerPeer === undefined ? {} : { maxQueuedPerPeer }),
    ...(quota === undefined ? {} : { quotaBytes: quota }),
    onError: (m) => alog.event("error", "retention_failed", m),
  });
  // A durable member keeps on disk the instances clients vouched for, and
  // its membership as `member` changes it: one file, written whole.
  let current = identity;
  const peers = new VouchedPeers(
    who.record.peers,
    dir === undefined ? undefined : (m) => writeIdentity(dir, { identity: current, peers: m }),
  );
  const saveIdentity = async (next: typeof identity) => {
    if (dir !== undefined) await writeIdentity(dir, { identity: next, peers: peers.map });
    current = next;
    alog.event("info", "membership_changed", `membership: ${describeConfig(configOf(next))}`, {
      epoch: next.epoch ?? 0,
    });
  };
  // With --ui: the page first, for its origin, which the acceptor lets in.
  let server: AcceptorServer | undefined;
  let ui: UiServer | null = null;
  if (listed !== null) {
    try {
      ui = await serveUi(
        () =>
          server === undefined
            ? null
            : { urls: [server.url], stores: [listed], running: () => true },
        { hostname, port: Number(uiPort ?? 0n) },
      );
    } catch (e) {
      const m = `cannot serve its page on ${hostname}:${uiPort ?? 0n}: ${messageOf(e)}`;
      fatal("listen_failed", `paxoskv: acceptor ${id} ${m}`, m);
      await store.close();
      return EXIT_FAILURE;
    }
  }
  try {
    server = await serveAcceptor(acceptor, {
      hostname,
      port: Number(port),
      onError: (m, cause, held) => alog.server(m, cause, held),
      identity,
      saveIdentity,
      peers,
      allowOrigins: ui === null ? allowOrigins : [...allowOrigins, ui.origin],
      ...(secret === undefined ? {} : { secret }),
      ...(tls === undefined ? {} : { tls }),
      ...(maxConnections === undefined ? {} : { maxConnections }),
      ...(handshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs }),
      ...(maxPendingReplyBytes === undefined ? {} : { maxPendingReplyBytes }),
    });
  } catch (e) {
    const m = `cannot listen on ${hostname}:${port}: ${messageOf(e)}`;
    fatal("listen_failed", `paxoskv: acceptor ${id} ${m}`, m);
    await ui?.close();
    await store.close();
    return EXIT_FAILURE;
  }
  io.out(server.url);
  if (ui !== null) io.out(`The web page (the browser is a proposer there): ${ui.url}`);
  alog.event("info", "listening", null, {
    url: server.url,
    store: dir ?? "memory",
    cluster: identity.cluster,
    ...(ui === null ? {} : { ui: ui.url }),
  });
  const signal = await stop;
  alog.event("info", "shutdown", null, { signal });
  await ui?.close();
  await server.close();
  await store.close();
  alog.event("info", "stopped", null);
  await io.flushLog?.();
  return 0;
}

/** `cluster`: three acceptors in this process, with their state in memory. */
export async function runCluster(args: readonly string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, {
    "base-port": "string",
    host: "string",
    ui: "boolean",
    "ui-port": "string",
    "log-format": "string",
  });
  positionals(p, []);
  const format = logFormatOpt(p);
  const logs = [0, 1, 2].map((i) => new AcceptorLog((l) => (io.log ?? io.err)(l), format, i));
  const basePort = intOpt(p, "base-port", 0n, 65533n, "a port number in 0..65533") ??
    BigInt(DEFAULT_BASE_PORT);
  const hostname = hostOpt(p);
  const uiPort = intOpt(p, "ui-port", 0n, 65535n, "a port number in 0..65535");
  if (uiPort !== undefined && !p.opts.has("ui")) throw new UsageError("--ui-port goes with --ui");
  const stop = io.waitForStop();
  // With --ui: the page first, for its origin, the one the acceptors let in.
  let ui: UiServer | null = null;
  let cluster: LocalCluster | null = null;
  const stores = [0, 1, 2].map(() => new ListedStore());
  try {
    if (p.opts.has("ui")) {
      ui = await serveUi(
        () =>
          cluster === null ? null : {
            urls: cluster.urls,
            stores,
            running: (i) => cluster!.running(i),
            stopAcceptor: (i) => cluster!.stopAcceptor(i),
            startAcceptor: (i) => cluster!.startAcceptor(i),
          },
        { hostname, port: Number(uiPort ?? 0n) },
      );
    }
    cluster = await startCluster({
      hostname,
      basePort: Number(basePort),
      onError: (i, m, cause, held) => logs[i]?.server(m, cause, held),
      ...(ui === null ? {} : { store: (i: number) => stores[i]!, allowOrigins: [ui.origin] }),
    });
  } catch (e) {
    await ui?.close();
    if (format === "text") io.err(`paxoskv: ${messageOf(e)}`);
    else new AcceptorLog(io.err, format, null).event("error", "start_failed", messageOf(e));
    return EXIT_FAILURE;
  }
  const urls = cluster.urls;
  const run = `${denoCommand()} run --allow-net=${new URL(urls[0]!).hostname} cli.ts`;
  const list = urls.join(",");
  io.out(`paxoskv: ${urls.length} acceptors in this process (state in memory only):`);
  urls.forEach((u, i) => io.out(`  acceptor ${i}: ${u}`));
  io.out(`Try, from another terminal:`);
  io.out(`  ${run} set foo 5 --acceptors ${list}`);
  io.out(`  ${run} get foo --acceptors ${list}`);
  io.out(`  ${run} history foo --acceptors ${list}`);
  io.out(`Or the seed's calls, on one version by number:`);
  io.out(`  ${run} set foo 5 --ver 0 --acceptors ${list}`);
  io.out(`  ${run} get foo --ver 0 --acceptors ${list}`);
  if (ui !== null) io.out(`The web page (the browser is a proposer there): ${ui.url}`);
  io.out(`Press Ctrl-C to stop.`);
  urls.forEach((url, i) => logs[i]!.event("info", "listening", null, { url, store: "memory" }));
  const signal = await stop;
  for (const l of logs) l.event("info", "shutdown", null, { signal });
  await ui?.close();
  await cluster.close();
  for (const l of logs) l.event("info", "stopped", null);
  await io.flushLog?.();
  return 0;
}
