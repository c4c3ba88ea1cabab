/**
 * `deno task demo slide-32` / `deno task demo slide-33`: the tutorial's
 * scenarios on three real acceptor processes (`cli.ts acceptor --memory`),
 * drawn as a message sequence chart in the terminal, ending with the chosen
 * value. The acceptors are stopped at the end, on an error, and on Ctrl-C.
 *
 *   deno task demo slide-32|slide-33 [--keep]
 *
 * With `--keep` the acceptors keep running after the chart, for you to look
 * at them with the CLI (`get i --ver 0 --trace`), until Ctrl-C.
 *
 * @module
 */
import { join } from "node:path";
import { WebSocketAcceptorClient } from "../transport.ts";
import { type Acceptor, EMPTY_ACCEPTOR } from "../types.ts";
import { header, layout, stepLines } from "./chart.ts";
import { runSlide, type Slide, SLIDES } from "./slides.ts";
import { formatValue } from "../cli/format.ts";

const CLI = join(import.meta.dirname!, "..", "cli.ts");
const USAGE = "usage: deno task demo slide-32|slide-33 [--keep]";

function out(line: string): void {
  // deno-lint-ignore no-console
  console.log(line);
}

/** An acceptor process and its URL. */
interface AcceptorProcess {
  readonly url: string;
  readonly child: Deno.ChildProcess;
}

// Starts `cli.ts acceptor --memory --id i --port 0` and reads its URL line.
async function startAcceptor(id: number): Promise<AcceptorProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      CLI,
      "acceptor",
      "--memory",
      "--id",
      `${id}`,
      "--port",
      "0",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (!buf.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) {
      await child.status;
      throw new Error(`acceptor ${id} ended before it listened`);
    }
    buf += value;
  }
  // Its later output (none is expected) is read and dropped.
  (async () => {
    while (!(await reader.read()).done) { /* drop */ }
  })().catch(() => {});
  return { url: buf.split("\n")[0]!.trim(), child };
}

async function stopAll(procs: readonly AcceptorProcess[]): Promise<void> {
  await Promise.all(procs.map(async (p) => {
    try {
      p.child.kill("SIGTERM");
    } catch {
      // It ended already.
    }
    await p.child.status;
  }));
}

async function demo(slide: Slide, keep: boolean, stopped: Promise<string>): Promise<number> {
  const started = await Promise.allSettled([0, 1, 2].map(startAcceptor));
  const procs = started.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  const clients: WebSocketAcceptorClient[] = [];
  try {
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
    clients.push(...procs.map((p) => new WebSocketAcceptorClient(p.url)));
    const urls = procs.map((p) => p.url);
    out(slide.title);
    procs.forEach((p, i) => out(`  A${i}: acceptor process ${p.child.pid} at ${p.url}`));
    out(`  X and Y: proposers in this process (ballots (N,10) and (N,11)); instance i@0`);
    out("");
    const l = layout(slide.proposers);
    for (const line of header(l)) out(line);
    let before: readonly Acceptor[] = [EMPTY_ACCEPTOR, EMPTY_ACCEPTOR, EMPTY_ACCEPTOR];
    const run = runSlide(slide, clients, (step) => {
      for (const line of stepLines(l, step, urls, before)) out(line);
      before = step.states;
    });
    const chosen = await Promise.race([run, stopped.then((sig) => Promise.reject(new Error(sig)))]);
    out("");
    out(
      `chosen: i@0 = ${chosen === null ? "nothing" : formatValue(chosen)}` +
        (slide.name === "slide-33"
          ? " (Y's value: X, retrying, proposed it instead of its own 100)"
          : ""),
    );
    if (keep) {
      out("");
      out("The acceptors keep running. Look at them from another terminal, e.g.:");
      out(
        `  deno run --allow-net=127.0.0.1 cli.ts get i --ver 0 --trace --acceptors ${
          urls.join(",")
        }`,
      );
      out("Ctrl-C stops them.");
      await stopped;
    }
    return 0;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await stopAll(procs);
  }
}

if (import.meta.main) {
  const [name, ...rest] = Deno.args;
  const keep = rest.includes("--keep");
  if (name === undefined || !Object.hasOwn(SLIDES, name) || rest.some((a) => a !== "--keep")) {
    // deno-lint-ignore no-console
    console.error(USAGE);
    Deno.exit(2);
  }
  // Ctrl-C (or SIGTERM) stops the acceptors before the demo exits.
  const stopped = new Promise<string>((resolve) => {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      Deno.addSignalListener(sig, () => resolve(sig));
    }
  });
  let code: number;
  try {
    code = await demo(SLIDES[name as Slide["name"]], keep, stopped);
  } catch (e) {
    const msg = (e as Error).message;
    // deno-lint-ignore no-console
    console.error(
      msg === "SIGINT" || msg === "SIGTERM" ? `demo: ${msg}: acceptors stopped` : `demo: ${msg}`,
    );
    code = msg === "SIGINT" || msg === "SIGTERM" ? 130 : 1;
  }
  Deno.exit(code);
}
