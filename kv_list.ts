/**
 * Listing keys: which keys a range holds, from a majority of the acceptors'
 * `Keys` pages (kv extension), in order.
 *
 * A key chosen in some version is held by every acceptor of the majority
 * that chose it, and any majority shares an acceptor with it: so the union
 * of a majority's keys holds every chosen key. Pages are merged with care:
 * an acceptor that says `More` after key `k` has told nothing of the keys
 * after `k`, so a round of pages is complete only up to the smallest such
 * `k`, and the next round starts right after it.
 *
 * @module
 */
import type { Clock } from "./clock.ts";
import { NotEnoughQuorumError } from "./errors.ts";
import { askQuorum, quorumOf } from "./quorum.ts";
import type { KeysAcceptorClient, KvAcceptorClient } from "./transport.ts";
import type { KeysReply } from "./types.ts";

/** Keys asked of each acceptor per round. */
export const LIST_PAGE_KEYS = 256;

/** A range of keys: `[start, end)` in JavaScript's string order; no bound where undefined. */
export interface KeyRange {
  /** The first key (included). */
  readonly start: string;
  /** The key where the range ends (excluded), or undefined: no end. */
  readonly end: string | undefined;
}

/**
 * The range of the keys that begin with `prefix`: from `prefix` to the
 * first string after all of them (no end for the empty prefix, or one of
 * U+FFFF code units only).
 *
 * @example
 * ```ts
 * import { prefixRange } from "./kv_list.ts";
 * prefixRange("user/"); // { start: "user/", end: "user0" }
 * ```
 */
export function prefixRange(prefix: string): KeyRange {
  for (let i = prefix.length - 1; i >= 0; i--) {
    const c = prefix.charCodeAt(i);
    if (c < 0xffff) {
      return { start: prefix, end: prefix.slice(0, i) + String.fromCharCode(c + 1) };
    }
  }
  return { start: prefix, end: undefined };
}

function keysOf(a: KvAcceptorClient): KeysAcceptorClient {
  const k = a as Partial<KeysAcceptorClient>;
  if (typeof k.keys !== "function") {
    throw new TypeError(`acceptor ${a.name} cannot list keys: its client has no keys()`);
  }
  return a as KeysAcceptorClient;
}

/**
 * The keys of `range` that a majority of `acceptors` hold, ascending, a
 * round of pages at a time; each round has `deadlineMs`.
 */
export async function* majorityKeys(
  acceptors: readonly KvAcceptorClient[],
  range: KeyRange,
  clock: Clock,
  deadlineMs: number,
): AsyncGenerator<string> {
  const clients = acceptors.map(keysOf);
  const quorum = quorumOf(clients.length);
  let from = range.start;
  for (;;) {
    if (range.end !== undefined && from >= range.end) return;
    const out = await askQuorum(
      clients,
      (a): Promise<KeysReply> => a.keys(from, LIST_PAGE_KEYS, range.end),
      { need: quorum, deadline: clock.now() + deadlineMs, clock },
    );
    if (!out.ok) {
      throw new NotEnoughQuorumError(
        `cannot list keys from ${JSON.stringify(from)}: ${out.replies.length} of ` +
          `${clients.length} acceptors answered, ${quorum} needed; ` +
          (out.why === "" ? "too many failed" : "no majority answered within the deadline") +
          (out.failures.length ? `; ${out.failures.join("; ")}` : ""),
      );
    }
    // Complete up to the smallest last key of a page that has more.
    let bound: string | undefined;
    for (const r of out.replies) {
      const last = r.Keys[r.Keys.length - 1];
      if (r.More && last !== undefined && (bound === undefined || last < bound)) bound = last;
    }
    const keys = new Set<string>();
    for (const r of out.replies) {
      for (const k of r.Keys) if (bound === undefined || k <= bound) keys.add(k);
    }
    yield* [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (bound === undefined) return;
    from = bound + "\0";
  }
}
