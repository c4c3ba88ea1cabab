/**
 * A Deno.serve WebSocket server for tests, on 127.0.0.1 and a free port:
 * `onSocket` wires each accepted socket (binary frames as ArrayBuffer), and
 * `close()` closes every socket and waits for the server to end.
 */

/** A running test server. */
export interface WsServer {
  /** `ws://127.0.0.1:PORT/ws` (the path is not looked at). */
  url: string;
  /** Its port. */
  port: number;
  /** Closes every socket (1001) and shuts the server down. */
  close(): Promise<void>;
}

/** Starts a test WebSocket server. */
export async function startWsServer(onSocket: (s: WebSocket) => void): Promise<WsServer> {
  const socketsClosed = new Set<Promise<void>>();
  const sockets = new Set<WebSocket>();
  let listening!: (addr: Deno.NetAddr) => void;
  const ready = new Promise<Deno.NetAddr>((resolve) => listening = resolve);
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: (addr) => listening(addr as Deno.NetAddr),
  }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    socket.binaryType = "arraybuffer";
    sockets.add(socket);
    socketsClosed.add(
      new Promise<void>((resolve) => {
        socket.addEventListener("close", () => {
          sockets.delete(socket);
          resolve();
        });
      }),
    );
    socket.onerror = () => {};
    onSocket(socket);
    return response;
  });
  const addr = await ready;
  return {
    url: `ws://127.0.0.1:${addr.port}/ws`,
    port: addr.port,
    async close() {
      for (const s of sockets) s.close(1001, "test over");
      await Promise.all(socketsClosed);
      await server.shutdown();
    },
  };
}
