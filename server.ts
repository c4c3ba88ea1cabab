/**
 * Serves a {@link PaxosAcceptor} over WebSocket at `/paxos`, as docs/protocol.md
 * describes: binary frames of one envelope or a batch, replies tagged with
 * the request's `Rid`, in any order.
 *
 * A frame that breaks the contract gets an `Err` reply when its `Rid` can be
 * read, and otherwise closes that one connection (1003 for text, 1007 for
 * bytes that are not MessagePack, 1008 for a value that is not an envelope,
 * 1009 for a frame over {@link MAX_FRAME_BYTES}). Nothing a peer sends can
 * stop the server or change state it did not ask for.
 *
 * @module
 */
import type { PaxosAcceptor } from "./acceptor.ts";
import { AcceptorError } from "./errors.ts";
import {
  decodeRequestFrame,
  encodeReplies,
  MAX_FRAME_BYTES,
  type ReplyEnvelope,
  type RequestItem,
  WireError,
} from "./codec.ts";

/** Options of {@link serveAcceptor}. */
export interface ServeAcceptorOptions {
  /** Interface to listen on (default "127.0.0.1"). */
  readonly hostname?: string;
  /** Port to listen on; 0 picks a free one (default 0). */
  readonly port?: number;
  /** Called for each connection error worth logging (default: ignore). */
  readonly onError?: (message: string) => void;
}

/** A running acceptor server. */
export interface AcceptorServer {
  /** The URL proposers connect to: `ws://HOST:PORT/paxos`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** Stops listening, closes every connection and resolves when all is down. */
  close(): Promise<void>;
}

/**
 * Starts serving an acceptor; resolves once it listens.
 *
 * @example
 * ```ts
 * import { PaxosAcceptor } from "./acceptor.ts";
 * import { serveAcceptor } from "./server.ts";
 * const server = await serveAcceptor(new PaxosAcceptor(), { port: 0 });
 * server.url; // e.g. "ws://127.0.0.1:40123/paxos"
 * await server.close();
 * ```
 */
export async function serveAcceptor(
  acceptor: PaxosAcceptor,
  opts: ServeAcceptorOptions = {},
): Promise<AcceptorServer> {
  const hostname = opts.hostname ?? "127.0.0.1";
  const onError = opts.onError ?? (() => {});
  const sockets = new Set<WebSocket>();
  const socketsClosed = new Set<Promise<void>>();
  let listening!: (addr: Deno.NetAddr) => void;
  const ready = new Promise<Deno.NetAddr>((resolve) => listening = resolve);

  const server = Deno.serve({
    hostname,
    port: opts.port ?? 0,
    onListen: (addr) => listening(addr as Deno.NetAddr),
  }, (req) => {
    if (new URL(req.url).pathname !== "/paxos") {
      return new Response("not found: paxoskv acceptors serve /paxos\n", { status: 404 });
    }
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("expected a WebSocket upgrade\n", { status: 426 });
    }
    let upgrade: { socket: WebSocket; response: Response };
    try {
      upgrade = Deno.upgradeWebSocket(req);
    } catch (e) {
      // A malformed handshake (e.g. no Sec-WebSocket-Key): the peer's fault.
      return new Response(`bad WebSocket upgrade: ${(e as Error).message}\n`, { status: 400 });
    }
    const { socket, response } = upgrade;
    socket.binaryType = "arraybuffer";
    sockets.add(socket);
    const closed = new Promise<void>((resolve) => {
      socket.onclose = () => {
        sockets.delete(socket);
        resolve();
      };
    });
    socketsClosed.add(closed);
    closed.then(() => socketsClosed.delete(closed));
    socket.onerror = () => {};
    socket.onmessage = (e) => {
      if (typeof e.data === "string") {
        socket.close(1003, "binary frames only");
        return;
      }
      serveFrame(acceptor, socket, new Uint8Array(e.data as ArrayBuffer), onError);
    };
    return response;
  });

  const addr = await ready;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return {
    url: `ws://${host}:${addr.port}/paxos`,
    port: addr.port,
    async close() {
      for (const s of sockets) s.close(1001, "acceptor shutting down");
      await Promise.all(socketsClosed);
      await server.shutdown();
    },
  };
}

function serveFrame(
  acceptor: PaxosAcceptor,
  socket: WebSocket,
  bytes: Uint8Array,
  onError: (message: string) => void,
): void {
  if (bytes.length > MAX_FRAME_BYTES) {
    socket.close(1009, `frame over ${MAX_FRAME_BYTES} bytes`);
    return;
  }
  let items: RequestItem[];
  try {
    items = decodeRequestFrame(bytes);
  } catch (e) {
    // No Rid could be read: close this connection, keep serving the others.
    const msg = (e as Error).message;
    onError(`closing a connection: ${msg}`);
    socket.close(e instanceof WireError ? e.closeCode : 1008, closeReason(msg));
    return;
  }
  if (items.length === 0) return;
  Promise.all(items.map((item) => serveItem(acceptor, item))).then((replies) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(encodeReplies(replies));
  }).catch((e) => onError(`cannot send replies: ${(e as Error).message}`));
}

// A close reason must fit in 123 bytes of UTF-8.
function closeReason(msg: string): string {
  const bytes = new TextEncoder().encode(msg);
  if (bytes.length <= 123) return msg;
  return new TextDecoder().decode(bytes.subarray(0, 120)).replace(/\uFFFD$/, "") + "...";
}

async function serveItem(acceptor: PaxosAcceptor, item: RequestItem): Promise<ReplyEnvelope> {
  if ("Err" in item) return item;
  try {
    const rep = item.Op === "Latest"
      ? await acceptor.latest(item.Req.Key)
      : await acceptor.request(item.Op, item.Req);
    return { Rid: item.Rid, Rep: rep };
  } catch (e) {
    // A refusal (a compacted version), or the store could not record the
    // change: either way the request is not acknowledged. Anything else is
    // a bug of ours.
    if (e instanceof AcceptorError) return { Rid: item.Rid, Err: { Code: e.code, Msg: e.detail } };
    return { Rid: item.Rid, Err: { Code: "Internal", Msg: (e as Error).message } };
  }
}
