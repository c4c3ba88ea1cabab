/**
 * The commands that serve: `acceptor` runs one acceptor, `cluster` runs
 * three in this process. Both run until SIGINT or SIGTERM.
 *
 * @module
 */
import { join } from "node:path";
import { PaxosAcceptor } from "../acceptor.ts";
import { DEFAULT_BASE_PORT, startCluster } from "../cluster.ts";
import { LogStore } from "../log_store.ts";
import { serveAcceptor } from "../server.ts";
import { MemoryStore, type Store } from "../store.ts";
import { hostOpt, intOpt, parseArgs, positionals, required, stringOpt } from "./args.ts";
import { EXIT_FAILURE, messageOf, UsageError } from "./exit.ts";
import type { CliIo } from "./io.ts";

/** `acceptor --id N ...`: one acceptor on a durable (or memory) store. */
export async function runAcceptor(args: readonly string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, {
    id: "string",
    host: "string",
    port: "string",
    data: "string",
    memory: "boolean",
    "keep-versions": "string",
    "max-connections": "string",
    "handshake-timeout": "string",
    "max-reply-bytes": "string",
    "max-queued-per-key": "string",
    "max-queued-per-peer": "string",
  });
  positionals(p, []);
  const id = required(
    intOpt(p, "id", 0n, BigInt(Number.MAX_SAFE_INTEGER), "a non-negative integer"),
    "id",
  );
  const hostname = hostOpt(p);
  let port = intOpt(p, "port", 0n, 65535n, "a port number in 0..65535");
  if (port === undefined) {
    port = BigInt(DEFAULT_BASE_PORT) + id;
    if (port > 65535n) {
      throw new UsageError(
        `the default port ${DEFAULT_BASE_PORT}+${id} is over 65535: give --port`,
      );
    }
  }
  const memory = p.opts.has("memory");
  const dataOpt = stringOpt(p, "data");
  if (memory && dataOpt !== undefined) throw new UsageError("give --data or --memory, not both");
  if (dataOpt === "") throw new UsageError("--data needs a directory");
  const dir = dataOpt ?? join("data", `acceptor-${id}`);
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
  // Never blocks, even when nobody reads stderr; the server's own lines are
  // also rate-limited per cause.
  const log = (m: string) => (io.log ?? io.err)(`paxoskv: acceptor ${id}: ${m}`);
  const stop = io.waitForStop();
  let store: Store;
  try {
    store = memory ? new MemoryStore() : await LogStore.open(dir, { onEvent: log });
  } catch (e) {
    io.err(`paxoskv: acceptor ${id} cannot open its data: ${messageOf(e)}`);
    return EXIT_FAILURE;
  }
  const acceptor = new PaxosAcceptor(store, `acceptor ${id}`, {
    ...(keep === undefined ? {} : { keepVersions: Number(keep) }),
    ...(maxQueuedPerKey === undefined ? {} : { maxQueuedPerKey }),
    ...(maxQueuedPerPeer === undefined ? {} : { maxQueuedPerPeer }),
    onError: log,
  });
  let server;
  try {
    server = await serveAcceptor(acceptor, {
      hostname,
      port: Number(port),
      onError: log,
      ...(maxConnections === undefined ? {} : { maxConnections }),
      ...(handshakeTimeoutMs === undefined ? {} : { handshakeTimeoutMs }),
      ...(maxPendingReplyBytes === undefined ? {} : { maxPendingReplyBytes }),
    });
  } catch (e) {
    io.err(`paxoskv: acceptor ${id} cannot listen on ${hostname}:${port}: ${messageOf(e)}`);
    await store.close();
    return EXIT_FAILURE;
  }
  io.out(server.url);
  await stop;
  await server.close();
  await store.close();
  await io.flushLog?.();
  return 0;
}

/** `cluster`: three acceptors in this process, with their state in memory. */
export async function runCluster(args: readonly string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, { "base-port": "string", host: "string" });
  positionals(p, []);
  const basePort = intOpt(p, "base-port", 0n, 65533n, "a port number in 0..65533") ??
    BigInt(DEFAULT_BASE_PORT);
  const hostname = hostOpt(p);
  const stop = io.waitForStop();
  let cluster;
  try {
    cluster = await startCluster({
      hostname,
      basePort: Number(basePort),
      onError: (i, m) => (io.log ?? io.err)(`paxoskv: acceptor ${i}: ${m}`),
    });
  } catch (e) {
    io.err(`paxoskv: ${messageOf(e)}`);
    return EXIT_FAILURE;
  }
  const urls = cluster.urls;
  const run = `deno run --allow-net=${new URL(urls[0]!).hostname} cli.ts`;
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
  io.out(`Press Ctrl-C to stop.`);
  await stop;
  await cluster.close();
  await io.flushLog?.();
  return 0;
}
