/**
 * The options of every command that talks to the acceptors: which ones
 * (`--acceptors`, or `PAXOSKV_ACCEPTORS`), how long to wait (`--timeout`, `--deadline`), how to
 * prove who we are (`--secret-file`, `--ca-file`) and how to print
 * (`--json`).
 *
 * @module
 */
import type { ConnectOptions } from "../connect.ts";
import type { Secret } from "../handshake.ts";
import { intOpt, MAX_TIMER_MS, type OptSpec, parseAcceptorUrls, type Parsed } from "./args.ts";
import { connect, type Kv } from "../kv.ts";
import { reportFailure, UsageError } from "./exit.ts";
import type { CliIo } from "./io.ts";
import { caOpt, CLIENT_TRUST_SPEC, optOrEnv, secretOpt } from "./trust.ts";

/** The options of every command that talks to the acceptors. */
export const NET_SPEC: OptSpec = {
  acceptors: "string",
  timeout: "string",
  deadline: "string",
  json: "boolean",
  ...CLIENT_TRUST_SPEC,
};

/** The values of {@link NET_SPEC}'s options. */
export interface NetOptions {
  /** The acceptors' URLs. */
  readonly urls: string[];
  /** How long each reply may take, in ms. */
  readonly timeoutMs: number;
  /** How long the command may take, in ms. */
  readonly deadlineMs: number;
  /** Whether to print JSON. */
  readonly json: boolean;
  /** The cluster's shared secret, when given. */
  readonly secret: Secret | undefined;
  /** Certificates to trust for `wss://`, when given. */
  readonly caCerts: readonly string[] | undefined;
}

/** Reads the options of {@link NET_SPEC} (and the files they name). */
export async function parseNetOptions(p: Parsed): Promise<NetOptions> {
  const list = optOrEnv(p, "acceptors", "PAXOSKV_ACCEPTORS");
  if (list === undefined) {
    throw new UsageError("missing --acceptors (or PAXOSKV_ACCEPTORS, with --allow-env)");
  }
  const urls = parseAcceptorUrls(list);
  const ms = `a number of milliseconds in 1..${MAX_TIMER_MS}`;
  const timeoutMs = Number(intOpt(p, "timeout", 1n, BigInt(MAX_TIMER_MS), ms) ?? 1000n);
  const deadlineMs = Number(intOpt(p, "deadline", 1n, BigInt(MAX_TIMER_MS), ms) ?? 10_000n);
  const secret = await secretOpt(p);
  const caCerts = await caOpt(p);
  return { urls, timeoutMs, deadlineMs, json: p.opts.has("json"), secret, caCerts };
}

/** What {@link NetOptions} tell a connection. */
export function connectOptions(net: NetOptions): ConnectOptions {
  return {
    timeoutMs: net.timeoutMs,
    deadlineMs: net.deadlineMs,
    ...(net.secret === undefined ? {} : { secret: net.secret }),
    ...(net.caCerts === undefined ? {} : { caCerts: net.caCerts }),
  };
}

/**
 * Connects a KV to the acceptors of `net`, runs `use` with it and closes it:
 * a failure to connect, or one while `use` runs, is reported as one line and
 * its exit status; a {@link UsageError} goes on up (exit status 2).
 */
export async function withKv(
  net: NetOptions,
  io: CliIo,
  use: (kv: Kv) => Promise<number>,
): Promise<number> {
  let kv: Kv;
  try {
    kv = await connect(net.urls, connectOptions(net));
  } catch (e) {
    return reportFailure(e, io);
  }
  try {
    return await use(kv);
  } catch (e) {
    if (e instanceof UsageError) throw e;
    return reportFailure(e, io);
  } finally {
    await kv.close();
  }
}
