/**
 * `--trace`: the messages of a command, printed after its result, one line
 * per event in time order, as text (`--trace`) or one JSON object per line
 * (`--trace=json`).
 *
 * @module
 */
import type { TimedTraceEvent, TraceEvent } from "../trace.ts";
import { type BallotNum, formatBallot, type Value } from "../types.ts";
import type { DataValue } from "../types.ts";
import { type Parsed, quote, stringOpt } from "./args.ts";
import { UsageError } from "./exit.ts";
import { formatValue, toJson } from "./format.ts";

/** How `--trace` prints: as text lines, or as JSON lines. */
export type TraceFormat = "text" | "json";

/** Reads `--trace` / `--trace=json` (also `--trace=text`); undefined when not given. */
export function traceOpt(p: Parsed): TraceFormat | undefined {
  if (!p.opts.has("trace")) return undefined;
  const v = stringOpt(p, "trace") ?? "text";
  if (v !== "text" && v !== "json") {
    throw new UsageError(`--trace takes no value, or =json (or =text), got ${quote(v)}`);
  }
  return v;
}

/**
 * The lines `--trace` prints for `events`: in text, a first line naming the
 * acceptors (a0, a1, ... in the order of `--acceptors`), then one line per
 * event; in JSON, one object per event. Times are in ms since the first
 * event.
 *
 * @example
 * ```ts
 * import { traceLines } from "./trace_output.ts";
 * const lines = traceLines([{ at: 3.5, event: { kind: "send", acceptor: "ws://h:1/paxos", op: "Latest", key: "k" } }], ["ws://h:1/paxos"], "text");
 * lines[1]; // '    0.00 ms  --> a0 Latest "k"'
 * ```
 */
export function traceLines(
  events: readonly TimedTraceEvent[],
  urls: readonly string[],
  format: TraceFormat,
): string[] {
  // Times from the first event: the command's first message.
  const t0 = events[0]?.at ?? 0;
  events = events.map(({ at, event }) => ({ at: at - t0, event }));
  if (format === "json") {
    return events.map(({ at, event }) =>
      toJson({ at: Math.round(at * 1000) / 1000, ...json(event) })
    );
  }
  const names = new Map(urls.map((u, i) => [u, `a${i}`]));
  const legend = `trace: ${urls.map((u, i) => `a${i} = ${u}`).join(", ")}`;
  return [
    legend,
    ...events.map(({ at, event }) =>
      `${at.toFixed(2).padStart(8)} ms  ${describe(event, (a) => names.get(a) ?? a)}`
    ),
  ];
}

function instance(key: string, ver: bigint | undefined): string {
  return ver === undefined ? quote(key) : `${quote(key)}@${ver}`;
}

function vote(val: Value | null | undefined, vBal: BallotNum | undefined): string {
  if (val === null || val === undefined) return "voted nothing";
  return `voted ${formatValue(val)} at ${formatBallot(vBal!)}`;
}

/**
 * One event as text, `name` naming the acceptors: `--> a0 Prepare "k"@0
 * (1,7)` for a request, `<-- a0 Prepare "k"@0 (1,7): promised, ...` for a
 * reply, and the proposer's own steps without arrows.
 */
export function describe(e: TraceEvent, name: (acceptor: string) => string): string {
  switch (e.kind) {
    case "send": {
      const bal = e.bal === undefined ? "" : ` ${formatBallot(e.bal)}`;
      const val = e.val === undefined || e.val === null ? "" : ` value ${formatValue(e.val)}`;
      return `--> ${name(e.acceptor)} ${e.op} ${instance(e.key, e.ver)}${bal}${val}`;
    }
    case "reply": {
      const bal = e.bal === undefined ? "" : ` ${formatBallot(e.bal)}`;
      const head = `<-- ${name(e.acceptor)} ${e.op} ${instance(e.key, e.ver)}${bal}: `;
      if (e.op === "Latest") {
        // A Latest with a ballot also promised it at the next version, or was
        // refused there; one with a first write's value may have voted it.
        const next = e.verdict === "voted"
          ? "; a first write, voted at round 0"
          : e.verdict === "promised"
          ? `; promised version ${e.latestVer! + 1n}`
          : e.verdict === "refused"
          ? `; version ${e.latestVer! + 1n} refused, it promised ${formatBallot(e.lastBal!)}`
          : "";
        return `${head}latest version ${e.latestVer}, ${vote(e.val, e.vBal)}${next}`;
      }
      if (e.verdict === "refused") return `${head}refused, it promised ${formatBallot(e.lastBal!)}`;
      const next = e.nextOk === true ? ", promised the next version" : "";
      if (e.op === "Accept") return `${head}voted${next}`;
      const verdict = e.verdict === "answered" ? "last ballot" : "promised, last ballot";
      return `${head}${verdict} ${formatBallot(e.lastBal!)}, ${vote(e.val, e.vBal)}`;
    }
    case "error":
      return `<-- ${name(e.acceptor)} ${e.op} ${instance(e.key, e.ver)}: failed: ${e.message}`;
    case "quorum": {
      const bal = e.bal === undefined ? "" : ` ${formatBallot(e.bal)}`;
      return `${e.phase} ${instance(e.key, e.ver)}${bal}: ` +
        (e.ok ? `quorum, ${e.count} of ${e.need}` : `no quorum, ${e.count} of ${e.need} counted`);
    }
    case "raise":
      return `raise ${instance(e.key, e.ver)}: ballot ${formatBallot(e.from)} -> ` +
        `${formatBallot(e.to)}, above ${formatBallot(e.seen)}`;
    case "backoff":
      return `backoff ${instance(e.key, e.ver)}: ${e.ms.toFixed(1)} ms before round ${e.round + 1}`;
  }
}

function json(e: TraceEvent): Record<string, DataValue> {
  const out: Record<string, DataValue> = {};
  for (const [k, v] of Object.entries(e)) {
    if (v === undefined) continue;
    out[k] = v as DataValue;
  }
  return out;
}
