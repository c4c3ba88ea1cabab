// The command line's --ui: `cluster --ui` and `acceptor --ui` serve the web
// page, and their acceptors let in the page's own origin, no other.
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, cliOut, memberFlags, Server, URL_LINE } from "./cli_process.ts";

const PAGE_LINE =
  /^The web page \(the browser is a proposer there\): (http:\/\/127\.0\.0\.1:[0-9]+\/)$/;
const FOREIGN = "http://evil.example";

/** The first line of the answer to a WebSocket upgrade of `url` with `origin`. */
async function upgradeStatus(url: string, origin: string | null): Promise<string> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  try {
    const head = `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
      `Sec-WebSocket-Version: 13\r\n${origin === null ? "" : `Origin: ${origin}\r\n`}\r\n`;
    await conn.write(new TextEncoder().encode(head));
    const buf = new Uint8Array(1024);
    const n = await conn.read(buf);
    return new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\r\n")[0]!;
  } finally {
    conn.close();
  }
}

/** Another origin on the page's host: another port is another origin. */
function otherPort(origin: string): string {
  const u = new URL(origin);
  return `http://${u.hostname}:${Number(u.port) === 1 ? 2 : 1}`;
}

/** Stops a server with SIGINT and checks it exited with 0. */
async function stopped(server: Server): Promise<void> {
  const { status, stderr } = await server.stop("SIGINT");
  assert.equal(status.code, 0, `exit status ${status.code}; stderr: ${stderr}`);
}

Deno.test("cluster --ui: the acceptors let in the page's own origin, refuse a foreign one (403)", async () => {
  const server = new Server(["cluster", "--base-port", "0", "--ui"]);
  try {
    const lines = await server.waitFor((ls) => ls.some((l) => PAGE_LINE.test(l)), 15_000);
    const page = lines.find((l) => PAGE_LINE.test(l))!.match(PAGE_LINE)![1]!;
    const origin = new URL(page).origin;
    const acceptors = lines.flatMap((l) => l.match(/^ {2}acceptor [0-9]: (ws:\S+)$/)?.[1] ?? []);
    assert.equal(acceptors.length, 3);

    const index = await fetch(page);
    assert.equal(index.status, 200);
    await index.body?.cancel();
    const state = await (await fetch(`${origin}/api/state`)).json();
    assert.deepEqual(state.urls, acceptors);
    assert.equal(state.controls, true);

    for (const url of acceptors) {
      assert.equal(await upgradeStatus(url, origin), "HTTP/1.1 101 Switching Protocols");
      assert.equal(await upgradeStatus(url, FOREIGN), "HTTP/1.1 403 Forbidden");
      assert.equal(await upgradeStatus(url, otherPort(origin)), "HTTP/1.1 403 Forbidden");
    }
  } finally {
    await stopped(server);
  }
});

Deno.test("acceptor --ui: its page lists it as the one acceptor and shows its state; its origin is let in, a foreign one refused", async () => {
  const allowed = "https://app.example:8443";
  const server = new Server([
    "acceptor",
    "--memory",
    "--id",
    "0",
    "--port",
    "0",
    "--ui",
    "--allow-origin",
    allowed,
  ]);
  try {
    const [url, pageLine] = await server.waitFor((ls) => ls.length >= 2, 15_000);
    assert.match(url!, URL_LINE);
    const page = pageLine!.match(PAGE_LINE)?.[1];
    assert.ok(page !== undefined, `not the page's line: ${pageLine}`);
    const origin = new URL(page).origin;
    assert.notEqual(new URL(page).port, new URL(url!).port);

    const index = await fetch(page);
    assert.equal(index.status, 200);
    assert.match(await index.text(), /src="\/lib\/ui\/page\.ts"/);
    const module = await fetch(`${origin}/lib/ui/page.ts`);
    assert.equal(module.status, 200);
    await module.body?.cancel();

    // The Origin rule: the page's own origin and --allow-origin's, no other.
    assert.equal(await upgradeStatus(url!, origin), "HTTP/1.1 101 Switching Protocols");
    assert.equal(await upgradeStatus(url!, allowed), "HTTP/1.1 101 Switching Protocols");
    assert.equal(await upgradeStatus(url!, null), "HTTP/1.1 101 Switching Protocols");
    assert.equal(await upgradeStatus(url!, FOREIGN), "HTTP/1.1 403 Forbidden");
    assert.equal(await upgradeStatus(url!, otherPort(origin)), "HTTP/1.1 403 Forbidden");

    // The state the page shows is this acceptor's: a write through it appears.
    assert.equal(await cliOut("set", "k", "v1", "--acceptors", url!), "0");
    const state = await (await fetch(`${origin}/api/state`)).json();
    assert.deepEqual(state.urls, [url]);
    assert.equal(state.controls, false);
    assert.equal(state.acceptors.length, 1);
    assert.equal(state.acceptors[0].running, true);
    // (The KV also leaves a promise on the next version: listed, without a vote.)
    const votes = state.acceptors[0].instances.filter((i: { val: unknown }) => i.val !== null);
    assert.deepEqual(
      votes.map((i: { key: string; ver: number; val: unknown }) => [i.key, i.ver, i.val]),
      [["k", 0, "v1"]],
    );

    // The page cannot stop the acceptor that serves it.
    const stop = await fetch(`${origin}/api/acceptor/0/stop`, {
      method: "POST",
      headers: { origin },
    });
    assert.equal(stop.status, 405);
    assert.match(await stop.text(), /cannot stop this acceptor/);
  } finally {
    await stopped(server);
  }
});

Deno.test("acceptor --ui on a durable store lists what it held before it started; --ui-port states the page's port", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const first = new Server(["acceptor", "--port", "0", ...memberFlags(0, [0], { data: dir })]);
    let url: string;
    try {
      [url] = (await first.waitFor((ls) => ls.length >= 1, 15_000)) as [string];
      assert.equal(await cliOut("set", "old", "kept", "--acceptors", url), "0");
      assert.equal(await cliOut("set", "old", "newer", "--acceptors", url), "1");
    } finally {
      await stopped(first);
    }
    // A port free a moment ago, for the page.
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const uiPort = probe.addr.port;
    probe.close();
    const again = new Server([
      "acceptor",
      "--port",
      "0",
      "--data",
      dir,
      "--ui",
      "--ui-port",
      `${uiPort}`,
    ]);
    try {
      const [, pageLine] = await again.waitFor((ls) => ls.length >= 2, 15_000);
      assert.equal(pageLine!.match(PAGE_LINE)?.[1], `http://127.0.0.1:${uiPort}/`);
      const state = await (await fetch(`http://127.0.0.1:${uiPort}/api/state`)).json();
      const listed = state.acceptors[0].instances.map((
        i: { key: string; ver: number; val: unknown },
      ) => `${i.key}@${i.ver}=${i.val}`).sort();
      // The votes, and the promise the KV left on the next version.
      assert.deepEqual(listed, ["old@0=kept", "old@1=newer", "old@2=null"]);
    } finally {
      await stopped(again);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("acceptor --ui: --ui-port without --ui, and --ui with --secret-file, are usage errors", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const secret = join(dir, "secret");
    await Deno.writeTextFile(secret, "0123456789abcdef0123456789abcdef", { mode: 0o600 });
    for (
      const [args, want] of [
        [["--ui-port", "0"], /--ui-port goes with --ui/],
        [["--ui", "--secret-file", secret], /--ui with --secret-file: the page could not prove/],
        [["--ui", "--ui-port", "70000"], /--ui-port/],
      ] as const
    ) {
      const r = await cli("acceptor", "--memory", "--id", "0", "--port", "0", ...args);
      assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.split("\n").length, 2, `one line: ${r.stderr}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
