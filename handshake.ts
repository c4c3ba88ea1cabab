/**
 * The trust extension's handshake: how a client and an acceptor learn whom
 * they talk to, and prove to each other that they know the cluster's shared
 * secret without sending it.
 *
 * 1. The client sends `Hello` with a fresh random nonce.
 * 2. The acceptor replies with its instance id, its cluster identity (when
 *    it has one), the instances of its peers as clients vouched for them,
 *    and, when it has a secret, a nonce of its own and its proof:
 *    HMAC-SHA256(secret, "paxoskv acceptor" | client nonce | acceptor nonce).
 * 3. A client with the secret checks that proof, then sends `Auth` with its
 *    own: HMAC-SHA256(secret, "paxoskv client" | acceptor nonce | client nonce).
 *    An acceptor with a secret serves nothing else before a good `Auth`.
 *
 * The two proofs differ in their label and nonce order, so neither side can
 * replay the other's; fresh nonces on both sides keep old proofs from being
 * replayed. A wrong or missing proof ends the connection.
 *
 * @module
 */

/** Bytes in a nonce. */
export const NONCE_BYTES = 16;
/** Bytes in a proof (HMAC-SHA256). */
export const PROOF_BYTES = 32;
/** Most members a cluster has. */
export const MAX_MEMBERS = 64;
/** The fewest bytes a secret may have. */
export const MIN_SECRET_BYTES = 16;
/** The most bytes a secret file may have. */
export const MAX_SECRET_BYTES = 4096;

/** The cluster identity an acceptor states in reply to `Hello`. */
export interface HelloCluster {
  /** The cluster's name. */
  readonly name: string;
  /** The cluster's id: 32 hex digits. */
  readonly id: string;
  /** The acceptor's member id. */
  readonly member: number;
  /** Every member's id, ascending. */
  readonly members: readonly number[];
  /** Cluster-wide retention, or null to keep every version. */
  readonly keepVersions: number | null;
  /** The membership's epoch (membership extension; absent: 0). */
  readonly epoch?: number;
  /** While a membership change is under way: the old members, ascending. */
  readonly joint?: readonly number[];
  /** The members' URLs as the operator gave them, by member id. */
  readonly urls?: ReadonlyMap<number, string>;
  /** While a change is under way: the last key its catch-up settled. */
  readonly cursor?: string;
  /** A member created to join, not yet in any configuration. */
  readonly joining?: boolean;
}

/** What an acceptor says of itself in reply to `Hello`. */
export interface HelloReply {
  /** This incarnation of the acceptor: 32 hex digits. */
  readonly instance: string;
  /** Its cluster identity; absent for an acceptor without one (a library user's). */
  readonly cluster?: HelloCluster;
  /** The instances of the other members, by member id, as clients vouched for them. */
  readonly peers: ReadonlyMap<number, string>;
  /** The acceptor's nonce, when it has a secret. */
  readonly nonce?: Uint8Array;
  /** The acceptor's proof, when it has a secret. */
  readonly proof?: Uint8Array;
}

const encoder = new TextEncoder();

/**
 * A shared secret, ready to prove knowledge of. Build it with
 * {@link Secret.import} or {@link readSecretFile}.
 */
export class Secret {
  readonly #key: CryptoKey;

  private constructor(key: CryptoKey) {
    this.#key = key;
  }

  /** Imports raw secret bytes (at least {@link MIN_SECRET_BYTES}). */
  static async import(bytes: Uint8Array): Promise<Secret> {
    if (bytes.length < MIN_SECRET_BYTES || bytes.length > MAX_SECRET_BYTES) {
      throw new RangeError(
        `a secret has ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} bytes, got ${bytes.length}`,
      );
    }
    const key = await crypto.subtle.importKey(
      "raw",
      bytes as Uint8Array<ArrayBuffer>,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    return new Secret(key);
  }

  /** The acceptor's proof for a pair of nonces. */
  acceptorProof(clientNonce: Uint8Array, acceptorNonce: Uint8Array): Promise<Uint8Array> {
    return this.#sign("paxoskv acceptor", clientNonce, acceptorNonce);
  }

  /** The client's proof for a pair of nonces. */
  clientProof(acceptorNonce: Uint8Array, clientNonce: Uint8Array): Promise<Uint8Array> {
    return this.#sign("paxoskv client", acceptorNonce, clientNonce);
  }

  /** Whether `proof` is the acceptor's proof for the nonces (compared in constant time). */
  async checkAcceptorProof(
    proof: Uint8Array,
    clientNonce: Uint8Array,
    acceptorNonce: Uint8Array,
  ): Promise<boolean> {
    return sameBytes(proof, await this.acceptorProof(clientNonce, acceptorNonce));
  }

  /** Whether `proof` is the client's proof for the nonces (compared in constant time). */
  async checkClientProof(
    proof: Uint8Array,
    acceptorNonce: Uint8Array,
    clientNonce: Uint8Array,
  ): Promise<boolean> {
    return sameBytes(proof, await this.clientProof(acceptorNonce, clientNonce));
  }

  async #sign(label: string, a: Uint8Array, b: Uint8Array): Promise<Uint8Array> {
    const l = encoder.encode(label);
    const msg = new Uint8Array(l.length + 1 + a.length + b.length);
    msg.set(l);
    msg.set(a, l.length + 1);
    msg.set(b, l.length + 1 + a.length);
    return new Uint8Array(await crypto.subtle.sign("HMAC", this.#key, msg));
  }
}

/**
 * Reads a secret file: its bytes, without a trailing newline. Refuses one
 * shorter than {@link MIN_SECRET_BYTES} or readable by others than its owner
 * (naming the file).
 *
 * @example
 * ```ts ignore
 * import { readSecretFile } from "./handshake.ts";
 * const secret = await readSecretFile("/etc/paxoskv/secret");
 * ```
 */
export async function readSecretFile(path: string): Promise<Secret> {
  const info = await Deno.stat(path);
  if (!info.isFile) throw new TypeError(`secret file ${path} is not a file`);
  if (info.size > MAX_SECRET_BYTES) {
    throw new RangeError(`secret file ${path} has ${info.size} bytes, over ${MAX_SECRET_BYTES}`);
  }
  if (info.mode !== null && (info.mode & 0o077) !== 0) {
    throw new Deno.errors.PermissionDenied(
      `secret file ${path} can be read by others (mode ${
        (info.mode & 0o777).toString(8)
      }): chmod 600 it`,
    );
  }
  let bytes = await Deno.readFile(path);
  while (bytes.length > 0 && (bytes.at(-1) === 0x0a || bytes.at(-1) === 0x0d)) {
    bytes = bytes.subarray(0, -1);
  }
  try {
    return await Secret.import(bytes);
  } catch (e) {
    throw new RangeError(`secret file ${path}: ${(e as Error).message}`);
  }
}

/** A fresh random nonce. */
export function newNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
