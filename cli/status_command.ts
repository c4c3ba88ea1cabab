/**
 * `status`: every acceptor listed, one row each, from its `GET /healthz`
 * (server_metrics.ts): member id, URL, whether it answered (and why not),
 * the round trip, log size, keys and uptime. A down acceptor is a row, not
 * a failure; the command fails only when none answers.
 *
 * @module
 */
import type { Health } from "../server_metrics.ts";
import { parseArgs, positionals } from "./args.ts";
import { EXIT_FAILURE } from "./exit.ts";
import { toJson } from "./format.ts";
import type { CliIo } from "./io.ts";
import { NET_SPEC, parseNetOptions } from "./net.ts";

/** What `status` found of one acceptor. */
export interface AcceptorStatus {
  /** The acceptor's URL, as listed. */
  readonly url: string;
  /** Whether it answered `/healthz` at all (a 503 is an answer). */
  readonly reachable: boolean;
  /** Why not, or why it cannot serve (its 503's reason). */
  readonly error?: string;
  /** The round trip of `GET /healthz` (a new connection), in ms. */
  readonly rttMs?: number;
  /** What it said, when it answered. */
  readonly health?: Health;
}

/** The health check's URL of an acceptor's `ws://` or `wss://` URL. */
export function healthUrl(url: string): string {
  const u = new URL(url);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  u.pathname = "/healthz";
  u.search = "";
  return u.href;
}

/** Asks one acceptor's `/healthz`, within `timeoutMs`. */
export async function acceptorStatus(
  url: string,
  timeoutMs: number,
  caCerts: readonly string[] | undefined,
): Promise<AcceptorStatus> {
  const target = healthUrl(url);
  const start = performance.now();
  let r: { status: number; body: string };
  try {
    r = await httpGet(target, timeoutMs, caCerts);
  } catch (e) {
    return { url, reachable: false, error: shortError(innermost(e)) };
  }
  const rttMs = performance.now() - start;
  let health: Health | undefined;
  try {
    const h = JSON.parse(r.body);
    if (typeof h === "object" && h !== null && typeof h.status === "string") health = h;
  } catch { /* not ours: told below */ }
  if (health === undefined) {
    return {
      url,
      reachable: true,
      rttMs,
      error: `HTTP ${r.status} without a health report at ${target} (not a paxoskv acceptor, ` +
        `or an older one)`,
    };
  }
  return {
    url,
    reachable: true,
    rttMs,
    health,
    ...(health.status === "ok" ? {} : { error: `unavailable: ${health.reason ?? r.status}` }),
  };
}

// Most bytes of an answer read.
const MAX_ANSWER_BYTES = 64 * 1024;

// One HTTP/1.1 GET on a new connection, read until the server closes it (an
// acceptor answers with Connection: close). Not fetch: its first request in
// a process takes tens of ms to set up, which would be counted as the round
// trip.
async function httpGet(
  target: string,
  timeoutMs: number,
  caCerts: readonly string[] | undefined,
): Promise<{ status: number; body: string }> {
  const u = new URL(target);
  const hostname = u.hostname.replace(/^\[|\]$/g, "");
  const port = Number(u.port || (u.protocol === "https:" ? 443 : 80));
  let conn: Deno.Conn | undefined;
  let timedOut = false;
  let expire: (e: Error) => void = () => {};
  const expired = new Promise<never>((_, reject) => expire = reject);
  expired.catch(() => {}); // raced only while connecting
  const timer = setTimeout(() => {
    timedOut = true;
    expire(new Error(`no answer in ${timeoutMs} ms`));
    try {
      conn?.close(); // a read under way fails
    } catch { /* closed already */ }
  }, timeoutMs);
  try {
    const connecting = u.protocol === "https:"
      ? Deno.connectTls({
        hostname,
        port,
        ...(caCerts === undefined ? {} : { caCerts: [...caCerts] }),
      })
      : Deno.connect({ hostname, port });
    // A connection made after the time is up is closed at once.
    connecting.then((c) => timedOut && c.close(), () => {});
    conn = await Promise.race([connecting, expired]);
    const request = `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nConnection: close\r\n\r\n`;
    const bytes = new TextEncoder().encode(request);
    for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    const buf = new Uint8Array(MAX_ANSWER_BYTES);
    let len = 0;
    for (;;) {
      const n = await conn.read(buf.subarray(len));
      if (n === null) break;
      len += n;
      if (len === buf.length) break;
    }
    const text = new TextDecoder().decode(buf.subarray(0, len));
    const status = /^HTTP\/1\.[01] (\d{3}) /.exec(text);
    if (status === null) throw new Error(`not an HTTP answer from ${u.host}`);
    const at = text.indexOf("\r\n\r\n");
    return { status: Number(status[1]), body: at < 0 ? "" : text.slice(at + 4) };
  } catch (e) {
    if (timedOut) throw new Error(`no answer in ${timeoutMs} ms`);
    throw e;
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed already */ }
  }
}

// The innermost cause of an error.
function innermost(e: unknown): string {
  let m = e instanceof Error ? e.message : String(e);
  for (let c = e instanceof Error ? e.cause : undefined; c !== undefined;) {
    if (!(c instanceof Error)) break;
    m = c.message;
    c = c.cause;
  }
  return m;
}

// Messages that nest layers ("...: tcp connect error: Connection refused (os
// error 111)"): the last one says what happened.
function shortError(message: string): string {
  const parts = message.split(": ");
  return parts[parts.length - 1] ?? message;
}

/** `status [--json]`: one row per acceptor. */
export async function runStatus(args: readonly string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, NET_SPEC);
  positionals(p, []);
  const net = await parseNetOptions(p);
  const wait = Math.min(net.timeoutMs, net.deadlineMs);
  const rows = await Promise.all(net.urls.map((u) => acceptorStatus(u, wait, net.caCerts)));
  if (net.json) {
    for (const s of rows) {
      const h = s.health;
      io.out(toJson({
        url: s.url,
        member: h?.member ?? null,
        reachable: s.reachable,
        healthy: h?.status === "ok",
        error: s.error ?? null,
        rttMs: s.rttMs === undefined ? null : Math.round(s.rttMs * 1000) / 1000,
        logBytes: h?.logBytes ?? null,
        dataBytes: h?.dataBytes ?? null,
        keys: h?.keys ?? null,
        uptimeSeconds: h?.uptimeSeconds ?? null,
        connections: h?.connections ?? null,
      }));
    }
  } else {
    const table = [["MEMBER", "URL", "REACHABLE", "RTT", "LOG", "KEYS", "UPTIME", "ERROR"]];
    for (const s of rows) {
      const h = s.health;
      table.push([
        h?.member === undefined || h.member === null ? "-" : String(h.member),
        s.url,
        s.reachable ? "yes" : "no",
        s.rttMs === undefined ? "-" : `${s.rttMs.toFixed(1)} ms`,
        h === undefined ? "-" : h.logBytes === null ? "memory" : formatBytes(h.logBytes),
        h?.keys === undefined || h.keys === null ? "-" : String(h.keys),
        h === undefined ? "-" : formatDuration(h.uptimeSeconds),
        s.error ?? "",
      ]);
    }
    const widths = table[0]!.map((_, c) => Math.max(...table.map((r) => r[c]!.length)));
    for (const r of table) {
      io.out(
        r.map((cell, c) => c === r.length - 1 ? cell : cell.padEnd(widths[c]!)).join("  ")
          .trimEnd(),
      );
    }
  }
  if (rows.some((s) => s.reachable)) return 0;
  io.err(`paxoskv: status: none of the ${rows.length} acceptors answered`);
  return EXIT_FAILURE;
}

/**
 * Bytes for people: `512 B`, `4.0 KiB`, `1.5 MiB`.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./status_command.ts";
 * formatBytes(1536); // "1.5 KiB"
 * ```
 */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) (v /= 1024, i++);
  return `${v.toFixed(1)} ${units[i]}`;
}

/**
 * Seconds for people: `42s`, `3m05s`, `2h00m`, `3d04h`.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./status_command.ts";
 * formatDuration(185); // "3m05s"
 * ```
 */
export function formatDuration(s: number): string {
  const two = (n: number) => String(n).padStart(2, "0");
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
  return `${Math.floor(s / 86400)}d${two(Math.floor(s / 3600) % 24)}h`;
}
