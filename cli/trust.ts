/**
 * The command line's trust options: the cluster's shared secret
 * (`--secret-file`, or `PAXOSKV_SECRET_FILE`), the certificates a client
 * trusts (`--ca-file`, or `PAXOSKV_CA_FILE`), an acceptor's TLS certificate
 * and key (`--tls-cert`, `--tls-key`) and the web origins it lets in
 * (`--allow-origin`).
 *
 * @module
 */
import { readSecretFile, type Secret } from "../handshake.ts";
import { type OptSpec, type Parsed, quote, stringOpt } from "./args.ts";
import { messageOf, UsageError } from "./exit.ts";

/** The options every command that talks to acceptors takes. */
export const CLIENT_TRUST_SPEC: OptSpec = { "secret-file": "string", "ca-file": "string" };

/** The options an acceptor takes. */
export const SERVER_TRUST_SPEC: OptSpec = {
  "secret-file": "string",
  "tls-cert": "string",
  "tls-key": "string",
  "allow-origin": "string",
};

/**
 * An option, or else its environment variable when access to it is granted
 * (`--allow-env`); never a permission prompt. The option wins.
 */
export function optOrEnv(p: Parsed, name: string, env: string): string | undefined {
  const v = stringOpt(p, name);
  if (v !== undefined) return v;
  try {
    if (Deno.permissions.querySync({ name: "env", variable: env }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get(env) || undefined;
  } catch {
    return undefined; // no --allow-env: the option alone
  }
}

/** The shared secret of `--secret-file FILE` (or `PAXOSKV_SECRET_FILE`), if given. */
export async function secretOpt(p: Parsed): Promise<Secret | undefined> {
  const path = optOrEnv(p, "secret-file", "PAXOSKV_SECRET_FILE");
  if (path === undefined) return undefined;
  try {
    return await readSecretFile(path);
  } catch (e) {
    throw new UsageError(`--secret-file ${quote(path)}: ${messageOf(e)}`);
  }
}

/** The certificates of `--ca-file FILE` (or `PAXOSKV_CA_FILE`), if given. */
export async function caOpt(p: Parsed): Promise<string[] | undefined> {
  const path = optOrEnv(p, "ca-file", "PAXOSKV_CA_FILE");
  if (path === undefined) return undefined;
  const pem = await readPem(path, "ca-file");
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new UsageError(`--ca-file ${quote(path)} holds no PEM certificate`);
  }
  return [pem];
}

/** `--tls-cert FILE --tls-key FILE`, both or neither. */
export async function tlsOpt(
  p: Parsed,
): Promise<{ readonly cert: string; readonly key: string } | undefined> {
  const certPath = stringOpt(p, "tls-cert");
  const keyPath = stringOpt(p, "tls-key");
  if (certPath === undefined && keyPath === undefined) return undefined;
  if (certPath === undefined || keyPath === undefined) {
    throw new UsageError("give --tls-cert and --tls-key together");
  }
  return { cert: await readPem(certPath, "tls-cert"), key: await readPem(keyPath, "tls-key") };
}

/** `--allow-origin ORIGIN[,ORIGIN...]`: web origins such as `https://app.example:8443`. */
export function originsOpt(p: Parsed): string[] {
  const s = stringOpt(p, "allow-origin");
  if (s === undefined) return [];
  return s.split(",").map((o) => {
    const origin = o.trim();
    let u: URL;
    try {
      u = new URL(origin);
    } catch {
      throw new UsageError(
        `--allow-origin ${quote(origin)} is not an origin like https://host:port`,
      );
    }
    if (u.origin !== origin) {
      throw new UsageError(
        `--allow-origin ${quote(origin)} is not an origin: did you mean ${quote(u.origin)}?`,
      );
    }
    return origin;
  });
}

async function readPem(path: string, option: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new UsageError(`--${option} ${quote(path)}: ${messageOf(e)}`);
  }
}
