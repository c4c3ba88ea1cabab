// mod.ts must work when imported by URL, from a folder with no deno.json:
// every library file uses full specifiers (npm:, node:, relative paths).
import assert from "node:assert/strict";
import { extname, join } from "node:path";

const root = join(import.meta.dirname!, "..");

const contentTypes: Record<string, string> = {
  ".ts": "application/typescript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
};

Deno.test("mod.ts imported by URL from a folder without deno.json runs a set and a get", async () => {
  const ac = new AbortController();
  const served: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: ac.signal, onListen() {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      const type = contentTypes[extname(path)];
      if (path.includes("..") || type === undefined) return new Response("no", { status: 404 });
      try {
        const body = await Deno.readFile(join(root, path));
        served.push(path);
        return new Response(body, { headers: { "content-type": type } });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-url-import-" });
  try {
    const base = `http://127.0.0.1:${server.addr.port}`;
    await Deno.writeTextFile(
      join(dir, "main.ts"),
      `import { PaxosAcceptor, PaxosProposer, serveAcceptor, WebSocketAcceptorClient } from "${base}/mod.ts";
const servers = await Promise.all([0, 1, 2].map(() => serveAcceptor(new PaxosAcceptor())));
const acceptors = servers.map((s) => new WebSocketAcceptorClient(s.url));
const id = { Key: "url", Ver: 0n };
const w = await new PaxosProposer({ Id: id, Bal: { N: 0n, ProposerId: 1n } }).runPaxos(acceptors, { Data: "imported" });
const r = await new PaxosProposer({ Id: id, Bal: { N: 0n, ProposerId: 2n } }).runPaxos(acceptors, null);
console.log(JSON.stringify([w, r]));
await Promise.all(acceptors.map((a) => a.close()));
await Promise.all(servers.map((s) => s.close()));
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-config",
        "--no-lock",
        "--check=all",
        `--allow-import=127.0.0.1:${server.addr.port}`,
        "--allow-net=127.0.0.1",
        "main.ts",
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), [
      { Data: "imported" },
      { Data: "imported" },
    ]);
    assert.ok(served.includes("/mod.ts"));
    assert.ok(served.includes("/proposer.ts"));
  } finally {
    ac.abort();
    await server.finished;
    await Deno.remove(dir, { recursive: true });
  }
});
