/// <reference lib="dom" />
/**
 * The page of `cli.ts cluster --ui`, in the browser: the library runs here
 * (served as JavaScript by ui/server.ts) as a proposer, over the browser's
 * WebSocket. It shows each acceptor's state per key and version, polled
 * from the server; runs set and get through a KV, the two slides and two
 * dueling proposers; and draws every message as a sequence chart, with the
 * messages also animated between the parties' lanes.
 *
 * @module
 */
import { browserSocket } from "../browser_socket.ts";
import { WebSocketAcceptorClient } from "../transport.ts";
import { Kv } from "../kv.ts";
import { PaxosProposer } from "../proposer.ts";
import { traceAcceptors, type TraceEvent, TraceRecorder } from "../trace.ts";
import { runSlide, type SlideEvent, SLIDES } from "../demo/slides.ts";
import { header, layout, messageLines, stepLines } from "../demo/chart.ts";
import { describe } from "../cli/trace_output.ts";
import { formatValue } from "../cli/format.ts";
import { type Acceptor, EMPTY_ACCEPTOR, type Value } from "../types.ts";

/** An acceptor's instance, as /api/state lists it. */
interface Instance {
  key: string;
  ver: number;
  lastBal: [number, number];
  vBal: [number, number];
  val: unknown;
}

/** What /api/state answers. */
interface ClusterState {
  urls: string[];
  /** Whether the page may stop and restart the acceptors (not with `acceptor --ui`). */
  controls: boolean;
  acceptors: { running: boolean; instances: Instance[] }[];
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const chart = $<HTMLPreElement>("chart");
const result = $<HTMLParagraphElement>("result");
const lanes = document.getElementById("lanes") as unknown as SVGSVGElement;

let state: ClusterState = await (await fetch("/api/state")).json();
const urls = state.urls;
const clients = urls.map((u) =>
  new WebSocketAcceptorClient(u, { openSocket: browserSocket, timeoutMs: 1000, maxBackoffMs: 500 })
);
let busy = false;

// ---- the acceptors' states, live

function ballot(b: [number, number]): string {
  return `(${b[0]},${b[1]})`;
}

function shown(v: unknown): string {
  if (v === null) return "-";
  if (typeof v === "object" && v !== null && "deleted" in v) return "(deleted)";
  return typeof v === "string" ? v : JSON.stringify(v);
}

let lastCells = new Map<string, string>();

function render(s: ClusterState): void {
  const rows = new Map<string, { key: string; ver: number }>();
  for (const a of s.acceptors) {
    for (const i of a.instances) rows.set(`${i.key}@${i.ver}`, { key: i.key, ver: i.ver });
  }
  const head = s.acceptors.map((a, i) =>
    `<th>A${i} <span class="${a.running ? "up" : "down"}" data-running="${a.running}">` +
    `${a.running ? "serving" : "stopped"}</span>` +
    (s.controls
      ? ` <button data-acceptor="${i}" data-op="${a.running ? "stop" : "start"}">` +
        `${a.running ? "stop" : "restart"}</button>`
      : "") +
    `</th>`
  ).join("");
  const cells = new Map<string, string>();
  const body = [...rows.entries()].map(([name, { key, ver }]) => {
    const tds = s.acceptors.map((a, i) => {
      const inst = a.instances.find((x) => x.key === key && x.ver === ver);
      const text = inst === undefined
        ? "-"
        : `last ${ballot(inst.lastBal)} vote ${
          inst.val === null ? "-" : `${shown(inst.val)}@${ballot(inst.vBal)}`
        }`;
      const id = `${i} ${name}`;
      cells.set(id, text);
      const changed = lastCells.size > 0 && lastCells.get(id) !== text ? " class=changed" : "";
      return `<td data-acceptor="${i}" data-instance="${escape(name)}"${changed}>${
        escape(text)
      }</td>`;
    }).join("");
    return `<tr><th>${escape(name)}</th>${tds}</tr>`;
  }).join("");
  lastCells = cells;
  $("acceptors").innerHTML = `<thead><tr><th>key@version</th>${head}</tr></thead>` +
    `<tbody>${body || `<tr><td colspan="${1 + s.acceptors.length}">nothing yet</td></tr>`}</tbody>`;
}

function escape(s: string): string {
  return s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function poll(): Promise<void> {
  try {
    state = await (await fetch("/api/state")).json();
    render(state);
  } catch {
    // The server is gone: the page keeps what it showed.
  }
}
render(state);
setInterval(poll, 400);

$("acceptors").addEventListener("click", async (ev) => {
  const b = (ev.target as HTMLElement).closest("button");
  if (b === null) return;
  const res = await fetch(`/api/acceptor/${b.dataset.acceptor}/${b.dataset.op}`, {
    method: "POST",
  });
  if (res.ok) render(state = await res.json());
});

// ---- messages, drawn and animated

const LANE_X = [60, 240, 420, 600, 780];
let laneRows = 0;
let animating = Promise.resolve();
const SVG = "http://www.w3.org/2000/svg";

function svg(name: string, attrs: Record<string, string | number>): SVGElement {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function resetLanes(withY: boolean): void {
  lanes.innerHTML = "";
  laneRows = 0;
  const names = ["X", "A0", "A1", "A2", ...(withY ? ["Y"] : [])];
  names.forEach((n, i) => {
    const t = svg("text", { x: LANE_X[i]!, y: 14, "text-anchor": "middle" });
    t.textContent = n;
    lanes.append(t);
  });
  lanes.setAttribute("height", "30");
}

// Queues the animation of one message: a dot that runs from sender to receiver.
function animate(proposer: "X" | "Y", e: TraceEvent): void {
  if (e.kind !== "send" && e.kind !== "reply" && e.kind !== "error") return;
  const a = 1 + urls.indexOf(e.acceptor);
  const p = proposer === "X" ? 0 : 4;
  const [from, to] = e.kind === "send" ? [p, a] : [a, p];
  const cls = e.kind === "send"
    ? "req"
    : e.kind === "reply" && e.verdict !== "refused"
    ? "rep"
    : "refused";
  animating = animating.then(() =>
    new Promise<void>((resolve) => {
      const y = 30 + laneRows++ * 16;
      lanes.setAttribute("height", String(y + 10));
      const x1 = LANE_X[from]!;
      const x2 = LANE_X[to]!;
      const line = svg("line", { x1, y1: y, x2: x1, y2: y, class: cls, "stroke-width": 2 });
      const dot = svg("circle", { cx: x1, cy: y, r: 4, fill: "currentColor" });
      lanes.append(line, dot);
      const t0 = performance.now();
      const step = (now: number) => {
        const f = Math.min(1, (now - t0) / 180);
        const x = x1 + (x2 - x1) * f;
        line.setAttribute("x2", String(x));
        dot.setAttribute("cx", String(x));
        if (f < 1) requestAnimationFrame(step);
        else resolve();
      };
      requestAnimationFrame(step);
    })
  );
}

function show(lines: readonly string[]): void {
  chart.textContent += lines.join("\n") + "\n";
}

const withAcceptorNames = (a: string) => `A${urls.indexOf(a)}`;

// A fresh key for a scenario: `base`, or `base2`, `base3`... when taken.
function freshKey(base: string): string {
  const taken = new Set(state.acceptors.flatMap((a) => a.instances.map((i) => i.key)));
  for (let n = 1;; n++) {
    const key = n === 1 ? base : `${base}${n}`;
    if (!taken.has(key)) return key;
  }
}

async function run(what: string, body: () => Promise<string>): Promise<void> {
  if (busy) return;
  busy = true;
  document.body.dataset.busy = "true";
  result.textContent = `${what}...`;
  try {
    result.textContent = await body();
  } catch (e) {
    result.textContent = `${what} failed: ${(e as Error).message}`;
  } finally {
    busy = false;
    await poll();
    document.body.dataset.busy = "false";
    document.body.dataset.done = what;
  }
}

// ---- set and get through the KV

async function traced(op: (kv: Kv) => Promise<string>): Promise<string> {
  const rec = new TraceRecorder();
  const tracedKv = new Kv(clients, { deadlineMs: 5000, tracer: rec });
  chart.textContent = "";
  resetLanes(false);
  const l = layout(["X"]);
  try {
    return await op(tracedKv);
  } finally {
    show(header(l));
    for (const { event } of rec.events) {
      const line = messageLines(l, [{ proposer: "X", event }], urls);
      show(line.length > 0 ? line : [`   ${describe(event, withAcceptorNames)}`]);
      animate("X", event);
    }
  }
}

$("kv").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const key = $<HTMLInputElement>("key").value;
  const value = $<HTMLInputElement>("value").value;
  run(
    `set ${key}`,
    () =>
      traced(
        async (k) => `set ${key} = ${value}: version ${await k.set(key, value)}`,
      ),
  );
});

$("get").addEventListener("click", () => {
  const key = $<HTMLInputElement>("key").value;
  run(`get ${key}`, () =>
    traced(async (k) => {
      const got = await k.get(key);
      return got.found
        ? `get ${key}: version ${got.version} = ${
          typeof got.value === "string" ? got.value : JSON.stringify(String(got.value))
        }`
        : `get ${key}: not found`;
    }));
});

// ---- the slides

for (const name of ["slide-32", "slide-33"] as const) {
  // The slides are drawn for three acceptors (an acceptor --ui page has one).
  if (urls.length !== 3) {
    Object.assign($<HTMLButtonElement>(name), {
      disabled: true,
      title: `the slides need three acceptors; this page has ${urls.length}`,
    });
  }
  $(name).addEventListener("click", () =>
    run(name, async () => {
      const slide = SLIDES[name];
      const key = freshKey("i");
      chart.textContent = `${slide.title} (instance ${key}@0)\n`;
      resetLanes(slide.proposers.includes("Y"));
      const l = layout(slide.proposers);
      show(header(l));
      let before: readonly Acceptor[] = [EMPTY_ACCEPTOR, EMPTY_ACCEPTOR, EMPTY_ACCEPTOR];
      const chosen = await runSlide(slide, clients, (step) => {
        show(stepLines(l, step, urls, before));
        before = step.states;
        for (const { proposer, event } of step.events) animate(proposer, event);
      }, { key });
      const text = `chosen: ${key}@0 = ${chosen === null ? "nothing" : formatValue(chosen)}`;
      show(["", text]);
      return `${name}: ${text}`;
    }));
}

// ---- two dueling proposers

$("duel").addEventListener("click", () =>
  run("duel", async () => {
    const key = freshKey("duel");
    const id = { Key: key, Ver: 0n };
    chart.textContent = `two proposers write ${key}@0 at once, X "A" and Y "B"\n`;
    resetLanes(true);
    const l = layout(["X", "Y"]);
    show(header(l));
    const log: Pick<SlideEvent, "proposer" | "event">[] = [];
    const tracer = (proposer: "X" | "Y") => ({
      event: (event: TraceEvent) => {
        log.push({ proposer, event });
        const line = messageLines(l, [{ proposer, event }], urls);
        show(line.length > 0 ? line : [`   ${proposer}: ${describe(event, withAcceptorNames)}`]);
        animate(proposer, event);
      },
    });
    const duel = (proposer: "X" | "Y", pid: bigint, val: Value) => {
      const t = tracer(proposer);
      const p = new PaxosProposer({ Id: id, Bal: { N: 1n, ProposerId: pid } }, { tracer: t });
      return p.runPaxos(traceAcceptors(clients, t), val, { deadlineMs: 5000, maxBackoffMs: 30 });
    };
    const [x, y] = await Promise.all([duel("X", 1n, { Data: "A" }), duel("Y", 2n, { Data: "B" })]);
    const raises = log.filter((e) => e.event.kind === "raise").length;
    const text = `X got ${formatValue(x!)}, Y got ${formatValue(y!)}: chosen ${key}@0 = ${
      formatValue(x!)
    } (${raises} ballots raised)`;
    show(["", text]);
    return text;
  }));

document.body.dataset.ready = "true";
