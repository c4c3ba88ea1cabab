// The wire's own limit, for the cluster benchmark: a WebSocket server that
// speaks the acceptor's protocol with the same server, transport and codec,
// but answers every request at once with an empty promise (no state, no
// store). Prints its URL, then serves until SIGTERM.
//
//   deno run --allow-net=127.0.0.1 bench/echo_server.ts
import { decodeRequestFrame, encodeReplies, type ReplyEnvelope } from "../codec.ts";
import { ZERO_BALLOT } from "../types.ts";
import { serveWebSocket } from "../ws_server.ts";

const server = await serveWebSocket({
  path: "/paxos",
  onConnection(conn) {
    conn.onMessage = (bytes) => {
      const items = decodeRequestFrame(bytes);
      const replies: ReplyEnvelope[] = items.map((item) =>
        "Err" in item ? item : item.Op === "Hello" || item.Op === "Auth" || item.Op === "Attest"
          // Like a v1 acceptor: no handshake.
          ? { Rid: item.Rid, Err: { Code: "UnknownOp", Msg: "the echo server has no handshake" } }
          : item.Op === "Latest"
          ? { Rid: item.Rid, Rep: { Ver: -1n, Floor: 0n, Val: null, VBal: ZERO_BALLOT } }
          : { Rid: item.Rid, Rep: { LastBal: ZERO_BALLOT, Val: null, VBal: ZERO_BALLOT } }
      );
      conn.send(encodeReplies(replies));
    };
  },
});
// deno-lint-ignore no-console
console.log(`ws://127.0.0.1:${server.addr.port}/paxos`);
const stop = Promise.withResolvers<void>();
Deno.addSignalListener("SIGTERM", () => stop.resolve());
await stop.promise;
await server.close();
Deno.exit(0);
