/**
 * A message sequence chart in the terminal: one column per party (proposer
 * X on the left, the acceptors A0..A2, proposer Y on the right), one line
 * per message, an arrow from sender to receiver with the message on it, and
 * the state of each acceptor after each step under its column.
 *
 * @module
 */
import type { SlideEvent, StepResult } from "./slides.ts";
import { type Acceptor, type BallotNum, formatBallot, type Value } from "../types.ts";

/** Columns between two parties. */
const GAP = 24;

/** Where each party's line is drawn, for a chart with or without Y. */
export interface Layout {
  readonly width: number;
  /** Column of X, A0, A1, A2 and (when there) Y. */
  readonly x: number;
  readonly acceptors: readonly number[];
  readonly y: number | null;
}

/** The layout of a chart of `proposers` (["X"] or ["X", "Y"]). */
export function layout(proposers: readonly string[]): Layout {
  const x = 2;
  const acceptors = [0, 1, 2].map((i) => x + GAP * (i + 1));
  const y = proposers.includes("Y") ? x + GAP * 4 : null;
  // Room right of the last line for the state under A2.
  return { width: (y ?? acceptors[2]! + GAP / 2) + 3, x, acceptors, y };
}

function columns(l: Layout): number[] {
  return [l.x, ...l.acceptors, ...(l.y === null ? [] : [l.y])];
}

// A line with every party's lifeline.
function blank(l: Layout): string[] {
  const line = Array<string>(l.width).fill(" ");
  for (const c of columns(l)) line[c] = "|";
  return line;
}

function put(line: string[], at: number, text: string): void {
  for (let i = 0; i < text.length && at + i < line.length; i++) {
    if (at + i >= 0) line[at + i] = text[i]!;
  }
}

// Centers `text` on column `c`.
function centered(line: string[], c: number, text: string): void {
  put(line, c - Math.floor(text.length / 2), text);
}

/** An arrow from column `from` to column `to` with `label` on it. */
export function arrow(l: Layout, from: number, to: number, label: string): string {
  const line = blank(l);
  const [lo, hi] = from < to ? [from, to] : [to, from];
  for (let i = lo + 1; i < hi; i++) line[i] = "-";
  if (from < to) line[hi - 1] = ">";
  else line[lo + 1] = "<";
  const room = hi - lo - 7; // the arrow's ends and a blank each side stay
  const text = label.length > room ? label.slice(0, room - 1) + "~" : label;
  put(line, lo + 2 + Math.floor((hi - lo - 3 - text.length) / 2), ` ${text} `);
  return line.join("").trimEnd();
}

function value(v: Value | null | undefined): string {
  if (v === null || v === undefined) return "-";
  return "Vi64" in v ? `${v.Vi64}` : "Data" in v ? JSON.stringify(v.Data) : "(deleted)";
}

const bal = (b: BallotNum) => formatBallot(b);
const vote = (v: Value, at: BallotNum) => `${value(v)}@${bal(at)}`;

/** The text on an event's arrow: the request, or what the reply says. */
export function label(e: SlideEvent["event"]): string {
  switch (e.kind) {
    case "send":
      if (e.op === "Latest") return `Latest ${JSON.stringify(e.key)}`;
      return e.op === "Accept" ? `Accept ${bal(e.bal!)} ${value(e.val)}` : `${e.op} ${bal(e.bal!)}`;
    case "reply":
      if (e.op === "Latest") {
        return e.latestVer === -1n ? "no version" : `ver ${e.latestVer}: ${vote(e.val!, e.vBal!)}`;
      }
      // A refusal: the acceptor promised a higher ballot (its LastBal).
      if (e.verdict === "refused") return `refused ${bal(e.lastBal!)}`;
      if (e.op === "Accept") return "ok, voted";
      // A promise, with the acceptor's vote so far (VBal, Val).
      return e.val === null || e.val === undefined ? "no vote" : `voted ${vote(e.val, e.vBal!)}`;
    case "error":
      return `failed: ${e.message}`;
    default:
      return e.kind;
  }
}

/** The chart's header: the parties' names over their lines. */
export function header(l: Layout): string[] {
  const names = blank(l).map(() => " ");
  centered(names, l.x, "X");
  l.acceptors.forEach((c, i) => centered(names, c, `A${i}`));
  if (l.y !== null) centered(names, l.y, "Y");
  return [names.join("").trimEnd(), blank(l).join("").trimEnd()];
}

/**
 * The lines of one step: its title, its messages, its outcome, and the
 * acceptors' states (`*` where the step changed one). `names` are the
 * acceptors' names (their URLs) in column order; `before` their states
 * before the step.
 */
export function stepLines(
  l: Layout,
  step: StepResult,
  names: readonly string[],
  before: readonly Acceptor[],
): string[] {
  const out: string[] = [];
  const rule = `-- ${step.n}. ${step.title} `;
  out.push(rule + "-".repeat(Math.max(2, l.width - rule.length)));
  out.push(`   ${step.code}`);
  out.push(...messageLines(l, step.events, names));
  out.push(`   => ${step.outcome}`);
  const last = blank(l);
  const votes = blank(l);
  step.states.forEach((s, i) => {
    const changed = before[i] === undefined || !same(before[i]!, s) ? "*" : " ";
    centered(last, l.acceptors[i]!, ` last ${bal(s.LastBal)}${changed}`);
    centered(
      votes,
      l.acceptors[i]!,
      ` vote ${s.Val === null ? "-" : vote(s.Val, s.VBal)} `,
    );
  });
  out.push(last.join("").trimEnd(), votes.join("").trimEnd());
  return out;
}

/**
 * One arrow per request, reply and failure in `events` (the proposer's own
 * steps, such as a raised ballot, are left out). `names` are the
 * acceptors' names in column order.
 */
export function messageLines(
  l: Layout,
  events: readonly Pick<SlideEvent, "proposer" | "event">[],
  names: readonly string[],
): string[] {
  const out: string[] = [];
  for (const { proposer, event } of events) {
    if (event.kind !== "send" && event.kind !== "reply" && event.kind !== "error") continue;
    const p = proposer === "X" ? l.x : l.y ?? l.x;
    const a = l.acceptors[names.indexOf(event.acceptor)];
    if (a === undefined) continue;
    out.push(event.kind === "send" ? arrow(l, p, a, label(event)) : arrow(l, a, p, label(event)));
  }
  return out;
}

function same(a: Acceptor, b: Acceptor): boolean {
  return bal(a.LastBal) === bal(b.LastBal) && bal(a.VBal) === bal(b.VBal) &&
    value(a.Val) === value(b.Val);
}
