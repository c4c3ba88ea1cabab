/**
 * A raw client of a served acceptor, for tests: it sends hand-made frames
 * over our WebSocket client and collects the reply envelopes by Rid, with
 * the helpers that read replies and serve an acceptor for such clients.
 *
 * @module
 */
import assert from "node:assert/strict";
import { PaxosAcceptor } from "../acceptor.ts";
import {
  decodeReplyFrame,
  encodeRequests,
  type ReplyEnvelope,
  type RequestEnvelope,
  type Rid,
} from "../codec.ts";
import { type AcceptorServer, serveAcceptor } from "../server.ts";
import { MemoryStore, type Store } from "../store.ts";
import type { Acceptor } from "../types.ts";
import { WsConnection } from "../ws_client.ts";
import { bal, env, inst, req } from "./builders.ts";

/** A raw client: sends hand-made frames, collects the replies by Rid. */
export class RawClient {
  readonly replies = new Map<string, ReplyEnvelope>();
  readonly frames: ReplyEnvelope[][] = [];
  readonly closedWith: Promise<Error>;
  #closeReason: Error | undefined;
  // A reply frame that does not decode: waits fail with it (thrown in the
  // connection's callback, it would be lost).
  #broken: Error | undefined;
  #waiters: (() => void)[] = [];
  readonly #ws: WsConnection;

  private constructor(ws: WsConnection) {
    this.#ws = ws;
    ws.onMessage = (bytes) => {
      try {
        const items = decodeReplyFrame(bytes);
        this.frames.push(items);
        for (const item of items) this.replies.set(String(item.Rid), item);
      } catch (e) {
        this.#broken ??= e as Error;
      }
      this.#wake();
    };
    this.closedWith = new Promise((resolve) => {
      ws.onClose = (reason) => {
        this.#closeReason = reason;
        resolve(reason);
        this.#wake();
      };
    });
  }

  static async open(url: string): Promise<RawClient> {
    return new RawClient(await WsConnection.connect(url, { timeoutMs: 5000 }));
  }

  get isOpen(): boolean {
    return this.#closeReason === undefined && this.#ws.isOpen;
  }

  send(bytes: Uint8Array): void {
    this.#ws.send(bytes);
  }

  sendRequests(envs: RequestEnvelope[]): void {
    this.send(encodeRequests(envs));
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /**
   * Resolves with the replies to all `rids` once they are in; resolves with
   * null when the connection closes first; rejects after 5 s (a failure, not
   * a timing assumption: everything here is local and fast).
   */
  async waitFor(rids: readonly Rid[]): Promise<ReplyEnvelope[] | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no replies for Rids ${rids.join(",")} within 5 s`)),
        5000,
      );
    });
    try {
      while (true) {
        if (this.#broken !== undefined) throw this.#broken;
        if (rids.every((r) => this.replies.has(String(r)))) {
          return rids.map((r) => this.replies.get(String(r))!);
        }
        if (this.#closeReason !== undefined) return null;
        await Promise.race([new Promise<void>((r) => this.#waiters.push(r)), deadline]);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends requests and returns their replies (which must arrive). */
  async call(envs: RequestEnvelope[]): Promise<ReplyEnvelope[]> {
    this.sendRequests(envs);
    const got = await this.waitFor(envs.map((e) => e.Rid));
    if (got === null) assert.fail(`connection closed: ${this.#closeReason?.message}`);
    return got;
  }

  /** Waits for the server to close the connection; returns its close code. */
  async closeCode(): Promise<number> {
    const reason = await this.closedWith;
    const m = /closed by the peer: (\d+)/.exec(reason.message);
    if (m === null) assert.fail(`connection ended without a close frame: ${reason.message}`);
    return Number(m[1]);
  }

  async close(): Promise<void> {
    await this.#ws.close();
  }
}

/** The `Rep` of a reply, failing when it is an `Err`. */
export function rep(item: ReplyEnvelope | undefined): Acceptor {
  assert.ok(item !== undefined);
  if ("Err" in item) assert.fail(`expected a Rep, got Err ${item.Err.Code}: ${item.Err.Msg}`);
  return item.Rep as Acceptor;
}

/** The message of an `Err` reply of `code`, failing on anything else. */
export function err(item: ReplyEnvelope | undefined, code: string): string {
  assert.ok(item !== undefined);
  if (!("Err" in item)) assert.fail(`expected Err ${code}, got a Rep`);
  assert.equal(item.Err.Code, code, item.Err.Msg);
  return item.Err.Msg;
}

/** Runs `fn` with a served acceptor, and closes the server whatever happens. */
export async function withServer(
  fn: (server: AcceptorServer, acceptor: PaxosAcceptor) => Promise<void>,
  store: Store = new MemoryStore(),
): Promise<void> {
  const acceptor = new PaxosAcceptor(store, "test");
  const server = await serveAcceptor(acceptor, { port: 0 });
  try {
    await fn(server, acceptor);
  } finally {
    await server.close();
  }
}

/** Opens clients and closes them all after `fn`. */
export async function withClients(
  url: string,
  n: number,
  fn: (clients: RawClient[]) => Promise<void>,
): Promise<void> {
  const clients = await Promise.all(Array.from({ length: n }, () => RawClient.open(url)));
  try {
    await fn(clients);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

/** Checks that the acceptor at `url` serves a request on `existing` and on a new connection. */
export async function assertServing(url: string, existing: RawClient, key: string): Promise<void> {
  const [r1] = await existing.call([env("Prepare", req(inst(key), bal(0, 0)))]);
  rep(r1);
  await withClients(url, 1, async ([fresh]) => {
    const [r2] = await fresh!.call([env("Prepare", req(inst(key), bal(0, 0)))]);
    rep(r2);
  });
}
