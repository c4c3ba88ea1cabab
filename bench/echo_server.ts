// The wire's own limit, for the cluster benchmark: a WebSocket server that
// speaks the acceptor's protocol with the same server, transport and codec,
// but answers every request at once with an empty promise (no state, no
// store). Prints its URL, then serves until SIGTERM.
//
//   deno run --allow-net=127.0.0.1 bench/echo_server.ts
import { decodeRequestFrame, encodeReplies, type ReplyEnvelope } from "../codec.ts";
import { ZERO_BALLOT } from "../types.ts";

const ac = new AbortController();
const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  signal: ac.signal,
  onListen({ port }) {
    // deno-lint-ignore no-console
    console.log(`ws://127.0.0.1:${port}/paxos`);
  },
}, (req) => {
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (e) => {
    const items = decodeRequestFrame(new Uint8Array(e.data as ArrayBuffer));
    const replies: ReplyEnvelope[] = items.map((item) =>
      "Err" in item
        ? item
        : item.Op === "Latest"
        ? { Rid: item.Rid, Rep: { Ver: -1n, Floor: 0n, Val: null, VBal: ZERO_BALLOT } }
        : { Rid: item.Rid, Rep: { LastBal: ZERO_BALLOT, Val: null, VBal: ZERO_BALLOT } }
    );
    socket.send(encodeReplies(replies));
  };
  return response;
});
Deno.addSignalListener("SIGTERM", () => ac.abort());
await server.finished;
