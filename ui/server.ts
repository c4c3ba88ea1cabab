/**
 * The web page of `cli.ts cluster --ui`: a page in which the browser is a
 * proposer, running the library itself over the browser's WebSocket.
 *
 * There is no build step. The page's modules and the library's are this
 * repository's TypeScript files, served as JavaScript by stripping their
 * types as they are asked for (`stripTypeScriptTypes` of `node:module`,
 * which Deno implements); the one npm import, msgpackr, is served from
 * Deno's npm cache, where its browser build is (`index.js` and the files
 * it imports), and `node:path` as a one-function shim.
 *
 * Besides the files, a few endpoints for the page only (docs/protocol.md,
 * "The web page's endpoints"): the acceptors' URLs, each acceptor's state
 * per key and version, and stopping and restarting an acceptor. Requests
 * that change something must come from the page's own origin.
 *
 * @module
 */
import { stripTypeScriptTypes } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { PaxosInstanceId } from "../types.ts";
import type { Acceptor, KeyVersions } from "../types.ts";
import { MemoryStore, type Store, type Written } from "../store.ts";
import { toJson } from "../cli/format.ts";

/** The repository's root: the files the page may load are under it. */
const ROOT = join(import.meta.dirname!, "..");
/**
 * The folders whose `.ts` files are served: the library, the demo's
 * scenarios and chart, the CLI's formatting, the page.
 */
const SERVED = new Set(["", "demo", "cli", "ui"]);
/** The one npm import of the library, as codec.ts spells it. */
const NPM_IMPORT = /(["'])npm:msgpackr@[0-9.]+\/pack\1/g;
/** A library module's import of `node:path`, which no browser has. */
const NODE_PATH_IMPORT = /(["'])node:path\1/g;
/**
 * What the page gets for `node:path`: `join`, the one function of it the
 * modules the page loads import (identity.ts names its file with it; the
 * page never calls that). Any other `node:` import is left as it is, and
 * the browser refuses it (tests/ui_server_test.ts walks the page's imports).
 */
const NODE_PATH_SHIM = `export function join(...parts) {
  return parts.filter((p) => p !== "").join("/").replace(/\\/+/g, "/");
}
`;
/** Most instances listed per acceptor in a state answer. */
export const MAX_LISTED = 200;

/** Most instances a {@link ListedStore} remembers. */
const MAX_REMEMBERED = 100_000;
/** Of a key the store held before, how many of its latest versions are listed. */
const SEEDED_VERSIONS = 10n;

/**
 * A store (a {@link MemoryStore} unless given another) that also remembers
 * which instances it holds, for the page's state view (a store lists
 * nothing by itself). Of what `inner` held before, the last versions of
 * each key are listed too.
 */
export class ListedStore implements Store {
  readonly #inner: Store;
  readonly #ids = new Map<string, PaxosInstanceId>();

  /** Wraps `inner`, and lists what it holds already. */
  constructor(inner: Store = new MemoryStore()) {
    this.#inner = inner;
    for (let from = "";;) {
      const page = inner.keys(from, 1000);
      for (const key of page) {
        const { Ver, Floor } = inner.latest(key);
        const low = Ver - SEEDED_VERSIONS + 1n;
        // Ver + 1: a promise made above the last vote.
        for (let v = low < Floor ? Floor : low; v <= Ver + 1n; v++) {
          if (v >= 0n && inner.get({ Key: key, Ver: v }) !== undefined) {
            this.#remember({ Key: key, Ver: v });
          }
        }
      }
      if (page.length < 1000 || this.#ids.size >= MAX_REMEMBERED) break;
      from = page[page.length - 1]! + "\0";
    }
  }

  #remember(id: PaxosInstanceId): void {
    const k = `${id.Ver} ${id.Key}`;
    if (!this.#ids.has(k) && this.#ids.size < MAX_REMEMBERED) this.#ids.set(k, id);
  }

  /** The state of an instance. */
  get(id: PaxosInstanceId): Acceptor | undefined {
    return this.#inner.get(id);
  }

  /** Records a state, and the instance. */
  put(id: PaxosInstanceId, state: Acceptor): Written {
    this.#remember(id);
    return this.#inner.put(id, state);
  }

  /** A key's versions. */
  latest(key: string): KeyVersions {
    return this.#inner.latest(key);
  }

  /** Forgets a key's versions below `floor`. */
  compact(key: string, floor: bigint): Promise<void> {
    for (const [k, id] of this.#ids) if (id.Key === key && id.Ver < floor) this.#ids.delete(k);
    return this.#inner.compact(key, floor);
  }

  /** A page of the keys held, in order. */
  keys(from: string, limit: number, end?: string): string[] {
    return this.#inner.keys(from, limit, end);
  }

  /** The bytes of data held, for the quota. */
  get usedBytes(): number {
    return this.#inner.usedBytes;
  }

  /** How many keys the store holds, when it tells. */
  get keyCount(): number | undefined {
    return this.#inner.keyCount;
  }

  /** Most keys the store may hold, when it has a limit. */
  get maxKeys(): number | undefined {
    return this.#inner.maxKeys;
  }

  /** Releases the store. */
  close(): Promise<void> {
    return this.#inner.close();
  }

  /** The instances held, newest first (the last `max` written). */
  instances(max: number): { id: PaxosInstanceId; state: Acceptor }[] {
    const out: { id: PaxosInstanceId; state: Acceptor }[] = [];
    for (const id of [...this.#ids.values()].reverse()) {
      if (out.length >= max) break;
      const state = this.#inner.get(id);
      if (state !== undefined) out.push({ id, state });
    }
    return out;
  }
}

/**
 * What the page shows and controls: the cluster of `cli.ts cluster --ui`,
 * or the one acceptor of `cli.ts acceptor --ui`.
 */
export interface UiCluster {
  /** The acceptors' URLs. */
  readonly urls: readonly string[];
  /** Their stores. */
  readonly stores: readonly ListedStore[];
  /** Whether acceptor `i` is serving. */
  running(i: number): boolean;
  /**
   * Stops acceptor `i` (its state stays). Absent when the page cannot stop
   * the acceptors (`acceptor --ui`: its operator does).
   */
  readonly stopAcceptor?: (i: number) => Promise<void>;
  /** Serves acceptor `i` again; absent together with `stopAcceptor`. */
  readonly startAcceptor?: (i: number) => Promise<void>;
}

/** A running page server. */
export interface UiServer {
  /** The page's URL, `http://HOST:PORT/`. */
  readonly url: string;
  /** Its origin, `http://HOST:PORT`: the one origin the acceptors let in. */
  readonly origin: string;
  /** Stops serving. */
  close(): Promise<void>;
}

/** Options of {@link serveUi}. */
export interface UiOptions {
  /** Interface to listen on (default 127.0.0.1). */
  readonly hostname?: string;
  /** Port (default 0: a free one). */
  readonly port?: number;
}

const JS = "text/javascript; charset=utf-8";

/**
 * Serves the page. `cluster` is called for each request, so that the
 * acceptors can be started after the page (they need its origin).
 */
export async function serveUi(
  cluster: () => UiCluster | null,
  opts: UiOptions = {},
): Promise<UiServer> {
  const hostname = opts.hostname ?? "127.0.0.1";
  // msgpackr's folder in Deno's npm cache, at the version codec.ts imports.
  const codec = await Deno.readTextFile(join(ROOT, "codec.ts"));
  const spec = codec.match(NPM_IMPORT)?.[0]?.slice(1, -1);
  if (spec === undefined) throw new Error("codec.ts imports no msgpackr: the page cannot load it");
  const msgpackr = dirname(fileURLToPath(import.meta.resolve(spec)));
  const cache = new Map<string, string>();
  let origin = "";
  const server = Deno.serve(
    { hostname, port: opts.port ?? 0, onListen() {} },
    (req) => handle(req, cluster(), origin, msgpackr, cache),
  );
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  origin = `http://${host}:${server.addr.port}`;
  return {
    url: `${origin}/`,
    origin,
    close: () => server.shutdown(),
  };
}

async function handle(
  req: Request,
  cluster: UiCluster | null,
  origin: string,
  msgpackr: string,
  cache: Map<string, string>,
): Promise<Response> {
  const path = new URL(req.url).pathname;
  if (req.method === "POST") {
    // Only the page itself may stop or start an acceptor.
    if (req.headers.get("origin") !== origin) return text(403, "forbidden: not the page's origin");
    const m = path.match(/^\/api\/acceptor\/([0-9]+)\/(stop|start)$/);
    if (m === null || cluster === null) return text(404, "not found");
    const i = Number(m[1]);
    if (i >= cluster.urls.length) return text(404, `no acceptor ${i}`);
    const change = m[2] === "stop" ? cluster.stopAcceptor : cluster.startAcceptor;
    if (change === undefined) {
      return text(405, `the page cannot ${m[2]} this acceptor: its operator does`);
    }
    await change(i);
    return json(state(cluster));
  }
  if (req.method !== "GET") return text(405, "method not allowed");
  if (path === "/" || path === "/index.html") {
    return file(join(ROOT, "ui", "index.html"), "text/html; charset=utf-8");
  }
  if (path === "/api/state") {
    return cluster === null ? text(503, "starting") : json(state(cluster));
  }
  if (path === "/vendor/node/path.js") {
    return new Response(NODE_PATH_SHIM, { headers: { "content-type": JS } });
  }
  const vendor = path.match(/^\/vendor\/msgpackr\/([a-z_-]+\.js)$/);
  if (vendor !== null) return file(join(msgpackr, vendor[1]!), JS);
  const lib = path.match(/^\/lib\/(?:([a-z_]+)\/)?([a-z_]+\.ts)$/);
  if (lib !== null && SERVED.has(lib[1] ?? "")) {
    const source = join(ROOT, lib[1] ?? "", lib[2]!);
    let js = cache.get(source);
    if (js === undefined) {
      let ts: string;
      try {
        ts = await Deno.readTextFile(source);
      } catch {
        return text(404, "not found");
      }
      js = stripTypeScriptTypes(ts, { mode: "transform" })
        .replace(NPM_IMPORT, '"/vendor/msgpackr/index.js"')
        .replace(NODE_PATH_IMPORT, '"/vendor/node/path.js"');
      cache.set(source, js);
    }
    return new Response(js, { headers: { "content-type": JS, "cache-control": "no-cache" } });
  }
  return text(404, "not found");
}

// The page's view of the cluster: per acceptor, whether it serves, and its
// state per instance (the latest written first).
function state(c: UiCluster): string {
  return toJson({
    urls: [...c.urls],
    controls: c.stopAcceptor !== undefined,
    acceptors: c.stores.map((s, i) => ({
      running: c.running(i),
      instances: s.instances(MAX_LISTED).map(({ id, state }) => ({
        key: id.Key,
        ver: id.Ver,
        lastBal: [state.LastBal.N, state.LastBal.ProposerId],
        vBal: [state.VBal.N, state.VBal.ProposerId],
        val: state.Val === null
          ? null
          : "Vi64" in state.Val
          ? state.Val.Vi64
          : "Del" in state.Val
          ? { deleted: true }
          : state.Val.Data,
      })),
    })),
  });
}

async function file(path: string, type: string): Promise<Response> {
  try {
    return new Response(await Deno.readFile(path), {
      headers: { "content-type": type, "cache-control": "no-cache" },
    });
  } catch {
    return text(404, "not found");
  }
}

function json(body: string): Response {
  return new Response(body, { headers: { "content-type": "application/json" } });
}

function text(status: number, body: string): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain" } });
}
