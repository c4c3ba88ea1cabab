/**
 * The log of the serving commands (`acceptor`, `cluster`), in one of two
 * formats (`--log-format`): `text`, the lines `paxoskv: acceptor N: ...` as
 * always, or `json`, one object per line, `{"time", "level", "event",
 * "member", "message", ...fields}`, for the events an operator needs
 * (listening, a connection refused at the limit, a bad frame, compaction, a
 * torn record dropped, shutdown...).
 *
 * @module
 */
import { stringOpt } from "./args.ts";
import type { Parsed } from "./args.ts";
import { UsageError } from "./exit.ts";

/** The formats of `--log-format`. */
export type LogFormat = "text" | "json";

/** How bad an event is. */
export type LogLevel = "info" | "warn" | "error";

/** Reads `--log-format text|json` (default text). */
export function logFormatOpt(p: Parsed): LogFormat {
  const f = stringOpt(p, "log-format") ?? "text";
  if (f !== "text" && f !== "json") {
    throw new UsageError(`--log-format must be text or json, got ${JSON.stringify(f)}`);
  }
  return f;
}

// What the server's causes (server.ts, ws_server.ts) are called in the log.
const SERVER_EVENTS: Readonly<Record<string, readonly [string, LogLevel]>> = {
  connections: ["connection_refused", "warn"],
  handshake: ["upgrade_refused", "warn"],
  protocol: ["protocol_error", "warn"],
  "bad frame": ["bad_frame", "warn"],
  unauthorized: ["unauthorized", "warn"],
  accept: ["accept_failed", "error"],
  reply: ["reply_failed", "warn"],
  config: ["config_refused", "warn"],
};

/**
 * One acceptor's log.
 *
 * @example
 * ```ts
 * import { AcceptorLog } from "./acceptor_log.ts";
 * const lines: string[] = [];
 * const log = new AcceptorLog((l) => lines.push(l), "json", 1);
 * log.event("info", "listening", null, { url: "ws://127.0.0.1:3334/paxos" });
 * JSON.parse(lines[0]!).event; // "listening"
 * ```
 */
export class AcceptorLog {
  readonly #write: (line: string) => void;
  readonly #format: LogFormat;
  readonly #member: number | null;

  /** A log of member `member` (null before it is known), written line by line to `write`. */
  constructor(write: (line: string) => void, format: LogFormat, member: number | null) {
    this.#write = write;
    this.#format = format;
    this.#member = member;
  }

  /** The format. */
  get format(): LogFormat {
    return this.#format;
  }

  /**
   * Logs an event. A `message` of null is an event the text log has no line
   * for (it says what it says elsewhere, e.g. the URL on stdout): only the
   * JSON log shows it.
   */
  event(
    level: LogLevel,
    event: string,
    message: string | null,
    fields: Readonly<Record<string, string | number | null>> = {},
  ): void {
    if (this.#format === "text") {
      if (message === null) return;
      this.#write(
        this.#member === null
          ? `paxoskv: acceptor: ${message}`
          : `paxoskv: acceptor ${this.#member}: ${message}`,
      );
      return;
    }
    this.#write(JSON.stringify({
      time: new Date().toISOString(),
      level,
      event,
      member: this.#member,
      ...(message === null ? {} : { message }),
      ...fields,
    }));
  }

  /** Logs what the server reported (its `onError`): a cause of server.ts, named as an event. */
  server(message: string, cause: string, held?: number): void {
    const [event, level] = SERVER_EVENTS[cause] ?? [cause.replace(/\W+/g, "_"), "warn"];
    this.event(level, event, message, held === undefined ? {} : { suppressed: held });
  }
}
