/**
 * The transport over the platform's own `WebSocket` (a browser's, or
 * Deno's): what lets a page in a browser be a proposer. Pass
 * {@link browserSocket} as `openSocket` to a `WebSocketAcceptorClient`.
 *
 * Messages are binary (`binaryType = "arraybuffer"`). A browser sends its
 * page's `Origin` with the upgrade: the acceptor must allow it
 * (`--allow-origin`, or `--ui`, which allows its own page).
 *
 * @module
 */
import { netError } from "./errors.ts";
import type { AcceptorSocket, SocketOpener } from "./transport.ts";

/** An {@link AcceptorSocket} over a `WebSocket`. */
class PlatformSocket implements AcceptorSocket {
  onMessage: (bytes: Uint8Array) => void = () => {};
  onClose: (reason: Error) => void = () => {};
  readonly #ws: WebSocket;
  #closed = false;
  readonly #done: Promise<void>;

  constructor(ws: WebSocket) {
    this.#ws = ws;
    let done!: () => void;
    this.#done = new Promise((resolve) => done = resolve);
    ws.onmessage = (ev) => {
      if (ev.data instanceof ArrayBuffer) this.onMessage(new Uint8Array(ev.data));
      else this.#fail(netError("ConnectionReset", "the acceptor sent a text message"));
    };
    ws.onclose = (ev) => {
      done();
      this.#fail(
        netError("ConnectionReset", `closed by the peer: ${ev.code} ${ev.reason}`.trim()),
      );
    };
  }

  #fail(reason: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ws.readyState === WebSocket.OPEN) this.#ws.close(1002, "protocol error");
    this.onClose(reason);
  }

  send(frame: Uint8Array): void {
    if (this.#ws.readyState !== WebSocket.OPEN) {
      throw netError("NotConnected", "the WebSocket is not open");
    }
    this.#ws.send(frame);
  }

  async close(code = 1000, reason = ""): Promise<void> {
    this.#closed = true;
    if (this.#ws.readyState === WebSocket.CLOSED) return;
    this.#ws.close(code, reason);
    await this.#done;
  }
}

/**
 * Opens a connection to an acceptor with the platform's `WebSocket`;
 * rejects when it does not open within `timeoutMs`, or when `signal` aborts
 * first. (`caCerts` cannot be honored here: a browser trusts what it
 * trusts.)
 *
 * @example
 * ```ts ignore
 * import { browserSocket } from "./browser_socket.ts";
 * import { WebSocketAcceptorClient } from "./transport.ts";
 * const c = new WebSocketAcceptorClient("ws://127.0.0.1:3333/paxos", { openSocket: browserSocket });
 * ```
 */
export function browserSocket(
  url: string,
  opts: Parameters<SocketOpener>[1],
): Promise<AcceptorSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const give = (e: Error) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      ws.onopen = ws.onerror = ws.onclose = null;
      ws.close();
      reject(e);
    };
    const onAbort = () =>
      give(
        opts.signal?.reason instanceof Error
          ? opts.signal.reason
          : netError("NotConnected", `connecting to ${url}: aborted`),
      );
    const timer = setTimeout(
      () =>
        give(netError("TimedOut", `connecting to ${url}: no answer within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    // The close that follows an error says no more: a browser hides why.
    ws.onerror = () => give(netError("ConnectionRefused", `cannot open a WebSocket to ${url}`));
    ws.onopen = () => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      ws.onerror = null;
      resolve(new PlatformSocket(ws));
    };
  });
}
