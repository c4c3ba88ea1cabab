/**
 * Waiting for a quorum: send one request to every acceptor at once, judge
 * each reply as it comes, and stop as soon as a quorum of them counted, or
 * as soon as that can no longer happen (too many refused or failed), or at
 * the deadline. Both phases of Paxos, the read-only peek and the kv
 * extension's `Latest` all wait this way; what differs is which replies
 * count, and each of them says so in its own few lines.
 *
 * Which sets of acceptors make a quorum is a {@link QuorumSystem}: a
 * majority of all of them ({@link majority}), or, while the membership
 * changes, a majority of the old members and a majority of the new ones at
 * once ({@link jointMajority}, docs/membership.md).
 *
 * @module
 */
import type { Clock } from "./clock.ts";

/**
 * The quorum for a set of acceptors: a majority, `floor(n/2)+1`.
 *
 * @example
 * ```ts
 * import { quorumOf } from "./quorum.ts";
 * quorumOf(3); // 2
 * ```
 */
export function quorumOf(n: number): number {
  return Math.floor(n / 2) + 1;
}

/**
 * Which sets of acceptors make a quorum. Acceptors are named by their index
 * in the list a proposer asks; any two quorums of one system share an
 * acceptor, and so does a quorum of a joint system with one of either of
 * its halves.
 */
export interface QuorumSystem {
  /** How many acceptors the system spans (indices 0 to size-1). */
  readonly size: number;
  /**
   * Whether the acceptors at these indices (each listed once) make a
   * quorum: the same answer for the same indices, always ({@link askQuorum}
   * remembers whether all of them do, per system).
   */
  isQuorum(from: readonly number[]): boolean;
  /** How many are needed, for error messages: `"2"` for a majority of 3, `"2 of [0,1,2] and 2 of [0,1,3]"` for a joint one. */
  readonly description: string;
  /** How many acceptors make a quorum when any that many do (a majority); undefined otherwise. */
  readonly need?: number;
}

/**
 * How many replies a quorum needs, for messages and traces: the count, or
 * the quorum system's description when counting is not enough (a joint
 * majority).
 *
 * @example
 * ```ts
 * import { majority, quorumNeed } from "./quorum.ts";
 * quorumNeed(majority(5)); // 3
 * ```
 */
export function quorumNeed(quorum: number | QuorumSystem): number | string {
  return typeof quorum === "number" ? quorum : quorum.need ?? quorum.description;
}

/**
 * A majority of `n` acceptors: any `floor(n/2)+1` of them.
 *
 * @example
 * ```ts
 * import { majority } from "./quorum.ts";
 * majority(3).isQuorum([0, 2]); // true
 * majority(3).isQuorum([1]); // false
 * ```
 */
export function majority(n: number): QuorumSystem {
  if (!(Number.isSafeInteger(n) && n > 0)) {
    throw new RangeError(`a majority needs a positive number of acceptors, got ${n}`);
  }
  const need = quorumOf(n);
  return { size: n, isQuorum: (from) => from.length >= need, description: `${need}`, need };
}

/**
 * A majority of the members at the indices `members` only: the others may
 * answer, but do not count. `of` is how many members there are in all
 * (default: those listed), for when some are not among the acceptors asked.
 *
 * @example
 * ```ts
 * import { membersMajority } from "./quorum.ts";
 * const q = membersMajority(4, [0, 1, 2]); // acceptor 3 does not count
 * q.isQuorum([0, 3]); // false
 * q.isQuorum([0, 1]); // true
 * ```
 */
export function membersMajority(
  size: number,
  members: readonly number[],
  of: number = members.length,
): QuorumSystem {
  const set = checkIndices(size, members);
  if (!(Number.isSafeInteger(of) && of >= set.size)) {
    throw new RangeError(`${set.size} members listed, but the membership has ${of}`);
  }
  const need = quorumOf(of);
  return {
    size,
    isQuorum: (from) => {
      let n = 0;
      for (const i of from) if (set.has(i)) n++;
      return n >= need;
    },
    description: `${need} of [${[...set].join(",")}]`,
  };
}

/**
 * Joint consensus: a majority of the old members and a majority of the new
 * ones, both at once (each given as indices into the acceptors asked; a
 * member of both counts in both; the counts say how many members each
 * membership has in all, when some are not among the acceptors). A joint quorum shares an acceptor with
 * every quorum of the old membership and with every quorum of the new one.
 *
 * @example
 * ```ts
 * import { jointMajority } from "./quorum.ts";
 * // old members 0,1,2; new members 0,1,3 (2 replaced by 3)
 * const q = jointMajority(4, [0, 1, 2], [0, 1, 3]);
 * q.isQuorum([0, 1]); // true: 2 of old, 2 of new
 * q.isQuorum([0, 3]); // false: 1 of old
 * ```
 */
export function jointMajority(
  size: number,
  old: readonly number[],
  next: readonly number[],
  oldCount: number = old.length,
  nextCount: number = next.length,
): QuorumSystem {
  const a = membersMajority(size, old, oldCount);
  const b = membersMajority(size, next, nextCount);
  return {
    size,
    isQuorum: (from) => a.isQuorum(from) && b.isQuorum(from),
    description: `${a.description} and ${b.description}`,
  };
}

// Whether all of a quorum system's acceptors make a quorum (once per system).
const everyoneIsQuorumOf = new WeakMap<QuorumSystem, boolean>();
function everyoneIsQuorum(q: QuorumSystem): boolean {
  let yes = everyoneIsQuorumOf.get(q);
  if (yes === undefined) {
    yes = q.isQuorum(Array.from({ length: q.size }, (_, i) => i));
    everyoneIsQuorumOf.set(q, yes);
  }
  return yes;
}

function checkIndices(size: number, members: readonly number[]): Set<number> {
  const set = new Set<number>();
  for (const i of members) {
    if (!(Number.isSafeInteger(i) && i >= 0 && i < size) || set.has(i)) {
      throw new RangeError(
        `member indices must be distinct integers from 0 to ${size - 1}, got ${members.join(",")}`,
      );
    }
    set.add(i);
  }
  return set;
}

/** How {@link askQuorum} judges replies and when it gives up. */
export interface QuorumOptions<R> {
  /**
   * Which replies make a quorum: how many counted replies, or a
   * {@link QuorumSystem} over the acceptors' indices.
   */
  readonly need: number | QuorumSystem;
  /**
   * Judges one reply: `true` when it counts toward the quorum, or else a
   * short note of why not, for the error message. Called only for replies
   * that arrive before the outcome is known.
   */
  readonly judge?: (reply: R, from: string) => true | string;
  /**
   * The group a counted reply falls in: a quorum is `need` counted replies
   * of one group (default: all counted replies are one group).
   */
  readonly groupOf?: (reply: R) => string;
  /** Called for every reply, also for those after the outcome, with the index of its acceptor. */
  readonly onReply?: (reply: R, index: number) => void;
  /** Called for every failed request, also for those after the outcome, with the index of its acceptor. */
  readonly onError?: (error: Error, index: number) => void;
  /**
   * Once a quorum counted, while replies are still out: how long to wait
   * on for them, in clock ms (0, the default when absent: not at all),
   * given the counted replies and the time since the requests went out.
   * The replies that come meanwhile count too; it resolves, with the
   * quorum, when none is left out or the time is up (the deadline at the
   * latest).
   */
  readonly lingerMs?: (replies: readonly R[], elapsedMs: number) => number;
  /**
   * Which failed requests explain a failure better than "too many failed"
   * (an acceptor saying the client's membership is stale). When given and
   * a quorum can no longer be had, the replies still out are waited for
   * (until the deadline) unless such an error is in hand already, so that
   * one is not lost because other acceptors failed first. Default: fail as
   * soon as the quorum is out of reach.
   */
  readonly explainsFailure?: (e: Error) => boolean;
  /** Clock time at which to give up (default: never). */
  readonly deadline?: number;
  /** The clock the deadline is on. */
  readonly clock: Clock;
}

/** How {@link askQuorum} ended. */
export interface QuorumOutcome<R> {
  /** Whether a quorum of replies counted (in one group). */
  readonly ok: boolean;
  /** The counted replies: those of the group that made the quorum, or of the largest. */
  readonly replies: readonly R[];
  /** The index of the acceptor each of `replies` came from, in the same order. */
  readonly from: readonly number[];
  /** Why it failed: `"deadline reached"`, or `""` when too many refused or failed. */
  readonly why: string;
  /** The notes of replies that did not count and the messages of failed requests, in order. */
  readonly failures: readonly string[];
  /** The failed requests' errors, in order. */
  readonly errors: readonly Error[];
  /** The index of the acceptor each of `errors` came from, in the same order. */
  readonly errorsFrom: readonly number[];
}

interface Group<R> {
  readonly replies: R[];
  readonly from: number[];
}

/**
 * Sends `ask(a)` to every acceptor at once and resolves as soon as a quorum
 * of replies counted, or a quorum can no longer count, or the deadline
 * passes; with `lingerMs`, it may wait on after the quorum for the replies
 * still out. A failed request is one that does not count: it rejects only
 * when a callback of `opts` throws, with that error.
 *
 * @example
 * ```ts
 * import { askQuorum } from "./quorum.ts";
 * import { systemClock } from "./clock.ts";
 * const acceptors = [{ name: "a" }, { name: "b" }, { name: "c" }];
 * const out = await askQuorum(acceptors, (a) => Promise.resolve(a.name), {
 *   need: 2,
 *   judge: (reply) => reply !== "b" || "b says no",
 *   clock: systemClock,
 * });
 * out.ok; // true
 * out.replies; // ["a", "c"]
 * out.from; // [0, 2]
 * ```
 */
export function askQuorum<A extends { readonly name: string }, R>(
  acceptors: readonly A[],
  ask: (acceptor: A) => Promise<R>,
  opts: QuorumOptions<R>,
): Promise<QuorumOutcome<R>> {
  const { need, clock } = opts;
  if (typeof need !== "number" && need.size !== acceptors.length) {
    throw new RangeError(
      `the quorum system spans ${need.size} acceptors, but ${acceptors.length} are asked`,
    );
  }
  // The counted replies by group; without groupOf, the one group is `best`
  // (no Map: this runs for every request a client makes).
  const groupOf = opts.groupOf;
  const groups = groupOf === undefined ? null : new Map<string, Group<R>>();
  let best: Group<R> = { replies: [], from: [] };
  // Which acceptors have answered (or failed), and how many.
  const settledFrom: boolean[] = acceptors.map(() => false);
  let settled = 0;
  const failures: string[] = [];
  const errors: Error[] = [];
  const errorsFrom: number[] = [];

  // Whether a group (its counted replies) is a quorum, and whether it could
  // still become one with every reply still to come.
  const isQuorum = (g: Group<R>) =>
    typeof need === "number" ? g.replies.length >= need : need.isQuorum(g.from);
  const hopeless = () => {
    if (typeof need === "number") return best.replies.length + (acceptors.length - settled) < need;
    // The usual case, with nothing refused or failed so far: the replies to
    // come and the counted ones are every acceptor.
    if (groups === null && best.replies.length === settled) return !everyoneIsQuorum(need);
    const rest: number[] = [];
    settledFrom.forEach((done, i) => done || rest.push(i));
    if (need.isQuorum(rest)) return false; // a new group may still make it
    for (const g of groups?.values() ?? [best]) {
      if (need.isQuorum([...g.from, ...rest])) return false;
    }
    return true;
  };

  return new Promise((resolve, reject) => {
    let done = false;
    let lingering = false;
    let timer: unknown = undefined;
    const start = opts.lingerMs === undefined ? 0 : clock.now();
    const finish = (ok: boolean, why: string) => {
      if (done) return;
      done = true;
      if (timer !== undefined) clock.clearTimer(timer);
      resolve({
        ok,
        replies: best.replies,
        from: best.from,
        why,
        failures,
        errors,
        errorsFrom,
      });
    };
    // A callback of the caller's threw (a bug, or a reply it cannot read):
    // the call rejects with it; once it has ended, it is thrown as uncaught.
    const bug = (e: unknown) => {
      if (done) {
        queueMicrotask(() => {
          throw e;
        });
        return;
      }
      done = true;
      if (timer !== undefined) clock.clearTimer(timer);
      reject(e);
    };
    const explains = opts.explainsFailure;
    const waitForExplanation = () =>
      explains !== undefined && settled < acceptors.length && !errors.some(explains);
    // Done when a group has a quorum; failed when even every reply still to
    // come could not give one (with explainsFailure: once one explains it,
    // or every reply came).
    const check = (g: Group<R> = best) => {
      if (lingering) {
        if (settled === acceptors.length) finish(true, "");
      } else if (isQuorum(g)) {
        best = g;
        if (settled === acceptors.length || !linger()) finish(true, "");
      } else if (hopeless() && !waitForExplanation()) finish(false, "");
    };
    // Whether to wait on for the replies still out (see lingerMs): then the
    // one timer is set for the end of that wait instead of the deadline.
    const linger = (): boolean => {
      if (opts.lingerMs === undefined) return false;
      const now = clock.now();
      const until = Math.min(
        now + opts.lingerMs(best.replies, now - start),
        opts.deadline ?? Infinity,
      );
      if (!(until > now)) return false;
      lingering = true;
      if (timer !== undefined) clock.clearTimer(timer);
      timer = clock.setTimer(() => finish(true, ""), until - now);
      return true;
    };

    if (opts.deadline !== undefined && opts.deadline !== Infinity) {
      timer = clock.setTimer(
        () => finish(false, "deadline reached"),
        Math.max(0, opts.deadline - clock.now()),
      );
    }
    check();
    acceptors.forEach((a, i) => {
      ask(a).then((reply) => {
        settled++;
        settledFrom[i] = true;
        try {
          opts.onReply?.(reply, i);
          if (done) return;
          const verdict = opts.judge === undefined ? true : opts.judge(reply, a.name);
          if (verdict === true) {
            let group = best;
            if (groups !== null) {
              const key = groupOf!(reply);
              const found = groups.get(key);
              if (found === undefined) groups.set(key, group = { replies: [], from: [] });
              else group = found;
            }
            group.replies.push(reply);
            group.from.push(i);
            if (!lingering && group.replies.length > best.replies.length) best = group;
            check(group);
          } else {
            failures.push(verdict);
            check();
          }
        } catch (e) {
          bug(e);
        }
      }, (e: Error) => {
        settled++;
        settledFrom[i] = true;
        try {
          opts.onError?.(e, i);
          if (done) return;
          failures.push(e.message);
          errors.push(e);
          errorsFrom.push(i);
          check();
        } catch (e) {
          bug(e);
        }
      });
    });
  });
}
