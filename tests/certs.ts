/**
 * Test certificates made with openssl: a CA, and a certificate it signs for
 * given IP addresses. {@link opensslUnavailable} says why not when openssl
 * is missing.
 *
 * @module
 */
import { join } from "node:path";

/** A CA and a server certificate (PEM), with the files they are in. */
export interface TestCerts {
  /** The CA's certificate, to trust. */
  readonly ca: string;
  /** The server's certificate chain. */
  readonly cert: string;
  /** The server's private key. */
  readonly key: string;
  /** The files: `ca.pem`, `server.pem`, `server.key` in `dir`. */
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** Why openssl cannot make certificates here, or null when it can. */
export async function opensslUnavailable(): Promise<string | null> {
  try {
    const out = await new Deno.Command("openssl", { args: ["version"], stdout: "null" }).output();
    return out.success ? null : "openssl version failed";
  } catch {
    return "no openssl (Debian: apt-get install openssl)";
  }
}

/** Makes a CA and a certificate it signs for `ips`, in `dir`. */
export async function makeCerts(dir: string, ips: readonly string[]): Promise<TestCerts> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await openssl(
    dir,
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "2",
    "-subj",
    "/CN=paxoskv test CA",
  );
  await openssl(
    dir,
    "req",
    ...ec,
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    "/CN=paxoskv test",
  );
  const san = ips.map((ip) => `IP:${ip}`).join(",");
  await Deno.writeTextFile(join(dir, "ext.cnf"), `subjectAltName=${san}\n`);
  await openssl(
    dir,
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "ext.cnf",
  );
  const read = (f: string) => Deno.readTextFile(join(dir, f));
  return {
    ca: await read("ca.pem"),
    cert: await read("server.pem"),
    key: await read("server.key"),
    caFile: join(dir, "ca.pem"),
    certFile: join(dir, "server.pem"),
    keyFile: join(dir, "server.key"),
  };
}
