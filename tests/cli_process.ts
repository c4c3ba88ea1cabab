/**
 * Test helpers for cli.ts processes: run a command to its end, or keep a
 * long-running one (acceptor, cluster) and read its stdout line by line.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

/** The path of cli.ts. */
export const cliPath = join(import.meta.dirname!, "..", "cli.ts");
/** `deno` arguments that run cli.ts with the permissions its commands need. */
export const RUN = ["run", "--allow-net=127.0.0.1", "--allow-read", "--allow-write", cliPath];
/** The URL line an acceptor prints once it listens. */
export const URL_LINE = /^ws:\/\/127\.0\.0\.1:[0-9]+\/paxos$/;
// A process that takes longer than this is stuck: it is killed and the test fails.
const RUN_LIMIT_MS = 20_000;

const decoder = new TextDecoder();

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Runs cli.ts with `args` to its end and collects what it printed. */
export async function cli(...args: string[]): Promise<RunResult> {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [...RUN, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const killer = setTimeout(() => child.kill("SIGKILL"), RUN_LIMIT_MS);
  try {
    const o = await child.output();
    return {
      code: o.code,
      stdout: decoder.decode(o.stdout),
      stderr: decoder.decode(o.stderr),
      ms: performance.now() - t0,
    };
  } finally {
    clearTimeout(killer);
  }
}

/**
 * Runs cli.ts with `args` to its end, with `stdin` as its standard input,
 * `env` added to its environment, and `deno` flags `flags` (such as
 * `--allow-env`) before the script.
 */
export async function cliWith(
  opts: { stdin?: Uint8Array | string; env?: Record<string, string>; flags?: string[] },
  ...args: string[]
): Promise<RunResult> {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [...RUN.slice(0, -1), ...(opts.flags ?? []), cliPath, ...args],
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(opts.env === undefined ? {} : { env: opts.env }),
  }).spawn();
  const killer = setTimeout(() => child.kill("SIGKILL"), RUN_LIMIT_MS);
  try {
    if (opts.stdin !== undefined) {
      const w = child.stdin.getWriter();
      const bytes = typeof opts.stdin === "string"
        ? new TextEncoder().encode(opts.stdin)
        : opts.stdin;
      await w.write(bytes).catch(() => {}); // (it may stop reading early)
      await w.close().catch(() => {});
    }
    const o = await child.output();
    return {
      code: o.code,
      stdout: decoder.decode(o.stdout),
      stderr: decoder.decode(o.stderr),
      ms: performance.now() - t0,
    };
  } finally {
    clearTimeout(killer);
  }
}

/** Runs cli.ts and returns its one line of output, failing when it did not succeed. */
export async function cliOut(...args: string[]): Promise<string> {
  const r = await cli(...args);
  assert.equal(r.code, 0, `cli.ts ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  assert.equal(r.stderr, "");
  assert.match(r.stdout, /^[^\n]*\n$/, `expected one line, got ${JSON.stringify(r.stdout)}`);
  return r.stdout.slice(0, -1);
}

/**
 * A child process whose stdout is read line by line as it comes, whose
 * stderr is collected, and (optionally) whose stdin takes lines.
 */
export class LineProcess {
  /** The stdout lines so far. */
  readonly lines: string[] = [];
  readonly #proc: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array> | null;
  #ended = false;
  #waiters: (() => void)[] = [];
  readonly #stdoutDone: Promise<void>;
  readonly #stderr: Promise<string>;

  /** Starts `deno` (or `opts.command`) with `args`. */
  constructor(args: string[], opts: { cwd?: string; stdin?: boolean; command?: string } = {}) {
    this.#proc = new Deno.Command(opts.command ?? Deno.execPath(), {
      args,
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
      stdin: opts.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = opts.stdin ? this.#proc.stdin.getWriter() : null;
    this.#stdoutDone = this.#pump();
    this.#stderr = new Response(this.#proc.stderr).text();
  }

  /** The process id. */
  get pid(): number {
    return this.#proc.pid;
  }

  /** Whether stdout has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  async #pump(): Promise<void> {
    let buf = "";
    for await (const chunk of this.#proc.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      this.#wakeAll();
    }
    if (buf !== "") this.lines.push(buf);
    this.#ended = true;
    this.#wakeAll();
  }

  #wakeAll(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Resolves when more stdout lines have come, or stdout has ended. */
  changed(): Promise<void> {
    if (this.#ended) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Waits until `done(lines)` holds for the stdout lines so far; fails after `timeoutMs`. */
  async waitFor(done: (lines: readonly string[]) => boolean, timeoutMs = 5000): Promise<string[]> {
    const deadline = performance.now() + timeoutMs;
    while (!done(this.lines)) {
      const left = deadline - performance.now();
      if (this.#ended || left <= 0) {
        const why = this.#ended ? "the process ended" : `nothing more within ${timeoutMs} ms`;
        throw new Error(`${why}; stdout so far: ${JSON.stringify(this.lines.slice(-5))}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.changed(),
        new Promise<void>((resolve) => timer = setTimeout(resolve, left)),
      ]);
      clearTimeout(timer);
    }
    return [...this.lines];
  }

  /** Writes one line to stdin. */
  async send(line: string): Promise<void> {
    await this.#stdin!.write(new TextEncoder().encode(line + "\n"));
  }

  /** Closes stdin (a process that died has a broken pipe: that is fine). */
  async closeStdin(): Promise<void> {
    await this.#stdin?.close().catch(() => {});
  }

  /** Sends `signal` and waits for the process to end; all its output is consumed. */
  async stop(signal: Deno.Signal): Promise<{ status: Deno.CommandStatus; stderr: string }> {
    try {
      this.#proc.kill(signal);
    } catch {
      // It has ended already: its status says how.
    }
    return await this.finish(Infinity);
  }

  /** Waits for the exit (SIGKILL after `timeoutMs`); all output is consumed. */
  async finish(timeoutMs: number): Promise<{ status: Deno.CommandStatus; stderr: string }> {
    await this.closeStdin();
    const killer = timeoutMs === Infinity ? undefined : setTimeout(() => {
      try {
        this.#proc.kill("SIGKILL");
      } catch {
        // It ended meanwhile.
      }
    }, timeoutMs);
    try {
      const status = await this.#proc.status;
      await this.#stdoutDone;
      return { status, stderr: await this.#stderr };
    } finally {
      clearTimeout(killer);
    }
  }
}

/** A long-running cli.ts process (acceptor, cluster). */
export class Server extends LineProcess {
  /** Runs `cli.ts` with `args` (in `cwd`). */
  constructor(args: string[], cwd?: string) {
    super([...RUN, ...args], cwd === undefined ? {} : { cwd });
  }
}

/** The cluster id of test clusters (each test's acceptors are a cluster of their own). */
export const TEST_CLUSTER_ID = "7e57c1a5".repeat(4);

/**
 * The flags that make an acceptor member `id` of a test cluster of
 * `members`: for a memory acceptor, its identity; for a durable one whose
 * `data` holds no identity yet, `--init` and the cluster's options.
 */
export function memberFlags(
  id: number,
  members: readonly number[],
  store: { readonly data: string } | "memory",
  clusterId = TEST_CLUSTER_ID,
): string[] {
  const cluster = ["--cluster", "test", "--cluster-id", clusterId, "--members", members.join(",")];
  if (store === "memory") return ["--id", `${id}`, "--memory", ...cluster];
  let fresh = true;
  try {
    Deno.statSync(join(store.data, "identity.json"));
    fresh = false;
  } catch { /* none yet */ }
  return ["--data", store.data, ...(fresh ? ["--init", "--id", `${id}`, ...cluster] : [])];
}

/**
 * Starts acceptor `id` of a test cluster of `members` on a free port with
 * its state in `dir` (`--init` on its first start), and waits (up to
 * `timeoutMs`) for its URL line.
 */
export async function startDurableAcceptor(
  id: number,
  dir: string,
  timeoutMs = 10_000,
  members: readonly number[] = [0, 1, 2],
  extra: readonly string[] = [],
): Promise<{ server: Server; url: string }> {
  const server = new Server([
    "acceptor",
    "--port",
    "0",
    ...memberFlags(id, members, { data: dir }),
    ...extra,
  ]);
  try {
    const [url] = await server.waitFor((lines) => lines.length >= 1, timeoutMs);
    assert.match(url!, URL_LINE);
    return { server, url: url! };
  } catch (e) {
    await server.stop("SIGKILL");
    throw e;
  }
}

/**
 * Starts the acceptors of a test cluster, one process each, on free ports,
 * and waits for each one's URL line. Each acceptor's flags say where its
 * state is (`--memory` or `--data DIR`) and anything else; its identity is
 * added (memberFlags).
 */
export async function startAcceptors(
  flags: string[][],
): Promise<{ servers: Server[]; urls: string[] }> {
  const members = flags.map((_, i) => i);
  const servers = flags.map((f, i) => {
    const d = f.indexOf("--data");
    const store = d >= 0 ? { data: f[d + 1]! } : "memory" as const;
    const rest = f.filter((x, j) => x !== "--memory" && (d < 0 || (j !== d && j !== d + 1)));
    return new Server(["acceptor", "--port", "0", ...memberFlags(i, members, store), ...rest]);
  });
  try {
    const urls = await Promise.all(
      servers.map(async (s) => (await s.waitFor((lines) => lines.length >= 1))[0]!),
    );
    for (const u of urls) assert.match(u, URL_LINE);
    return { servers, urls };
  } catch (e) {
    await Promise.all(servers.map((s) => s.stop("SIGKILL")));
    throw e;
  }
}

/** Stops servers with SIGTERM and checks that each one exited with status 0. */
export async function stopAll(servers: Server[]): Promise<string[]> {
  const results = await Promise.all(servers.map((s) => s.stop("SIGTERM")));
  for (const { status, stderr } of results) {
    assert.equal(status.signal, null, `killed by ${status.signal}; stderr: ${stderr}`);
    assert.equal(status.code, 0, `exit status ${status.code}; stderr: ${stderr}`);
  }
  return results.map((r) => r.stderr);
}

/**
 * The resident memory of a process, in bytes, as `ps` reports it (Deno
 * reads /proc/PID/status only with --allow-all).
 */
export async function rssOf(pid: number): Promise<number> {
  const o = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", `${pid}`], stdout: "piped" })
    .output();
  const kib = Number(new TextDecoder().decode(o.stdout).trim());
  if (!o.success || !(kib > 0)) throw new Error(`ps could not tell the RSS of process ${pid}`);
  return kib * 1024;
}
