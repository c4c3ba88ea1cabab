// handshake.ts: proofs of a shared secret, and reading a secret file.
import assert from "node:assert/strict";
import { join } from "node:path";
import { MIN_SECRET_BYTES, newNonce, readSecretFile, Secret } from "../handshake.ts";

const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("proofs: each side's proof checks with the same secret and nonces only", async () => {
  const a = await Secret.import(bytes("correct horse battery staple"));
  const b = await Secret.import(bytes("correct horse battery stapled"));
  const [cn, an] = [newNonce(), newNonce()];
  const ap = await a.acceptorProof(cn, an);
  const cp = await a.clientProof(an, cn);
  assert.equal(ap.length, 32);
  assert.ok(await a.checkAcceptorProof(ap, cn, an));
  assert.ok(await a.checkClientProof(cp, an, cn));
  // Another secret, other nonces, or the other side's proof: refused.
  assert.equal(await b.checkAcceptorProof(ap, cn, an), false);
  assert.equal(await a.checkAcceptorProof(ap, newNonce(), an), false);
  assert.equal(await a.checkAcceptorProof(cp, cn, an), false, "a client proof replayed");
  assert.equal(await a.checkClientProof(ap, an, cn), false, "an acceptor proof replayed");
  assert.equal(await a.checkClientProof(cp.subarray(1), an, cn), false);
});

Deno.test("a secret has at least MIN_SECRET_BYTES", async () => {
  await assert.rejects(Secret.import(new Uint8Array(MIN_SECRET_BYTES - 1)), RangeError);
  await Secret.import(new Uint8Array(MIN_SECRET_BYTES));
});

Deno.test("readSecretFile: a file of mode 600, its trailing newline dropped; others refused naming the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "paxoskv-secret-" });
  try {
    const path = join(dir, "secret");
    await Deno.writeTextFile(path, "0123456789abcdef0123\n", { mode: 0o600 });
    await Deno.chmod(path, 0o600);
    const s = await readSecretFile(path);
    const same = await Secret.import(bytes("0123456789abcdef0123"));
    const [cn, an] = [newNonce(), newNonce()];
    assert.ok(await same.checkAcceptorProof(await s.acceptorProof(cn, an), cn, an));
    await Deno.chmod(path, 0o644);
    await assert.rejects(readSecretFile(path), /can be read by others \(mode 644\): chmod 600 it/);
    await Deno.writeTextFile(join(dir, "short"), "short\n", { mode: 0o600 });
    await Deno.chmod(join(dir, "short"), 0o600);
    await assert.rejects(
      readSecretFile(join(dir, "short")),
      /short: a secret has 16 to 4096 bytes, got 5/,
    );
    await assert.rejects(readSecretFile(join(dir, "none")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
