/**
 * Waiting for a quorum: send one request to every acceptor at once, judge
 * each reply as it comes, and stop as soon as a quorum of them counted, or
 * as soon as that can no longer happen (too many refused or failed), or at
 * the deadline. Both phases of Paxos, the read-only peek and the kv
 * extension's `Latest` all wait this way; what differs is which replies
 * count, and each of them says so in its own few lines.
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

/** How {@link askQuorum} judges replies and when it gives up. */
export interface QuorumOptions<R> {
  /** How many counted replies make a quorum. */
  readonly need: number;
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
  /** Called for every reply, also for those after the outcome. */
  readonly onReply?: (reply: R) => void;
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
  /** Why it failed: `"deadline reached"`, or `""` when too many refused or failed. */
  readonly why: string;
  /** The notes of replies that did not count and the messages of failed requests, in order. */
  readonly failures: readonly string[];
  /** The failed requests' errors, in order. */
  readonly errors: readonly Error[];
}

/**
 * Sends `ask(a)` to every acceptor at once and resolves as soon as a quorum
 * of replies counted, or a quorum can no longer count, or the deadline
 * passes. It never rejects: a failed request is one that does not count.
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
 * ```
 */
export function askQuorum<A extends { readonly name: string }, R>(
  acceptors: readonly A[],
  ask: (acceptor: A) => Promise<R>,
  opts: QuorumOptions<R>,
): Promise<QuorumOutcome<R>> {
  const { need, clock } = opts;
  const groups = new Map<string, R[]>();
  let best: R[] = [];
  let settled = 0;
  const failures: string[] = [];
  const errors: Error[] = [];

  return new Promise((resolve) => {
    let done = false;
    let timer: unknown = undefined;
    const finish = (ok: boolean, why: string) => {
      if (done) return;
      done = true;
      if (timer !== undefined) clock.clearTimer(timer);
      resolve({ ok, replies: best, why, failures, errors });
    };
    // Done when a group has a quorum; failed when even every reply still to
    // come could not give one.
    const check = () => {
      if (best.length >= need) finish(true, "");
      else if (best.length + (acceptors.length - settled) < need) finish(false, "");
    };

    if (opts.deadline !== undefined && opts.deadline !== Infinity) {
      timer = clock.setTimer(
        () => finish(false, "deadline reached"),
        Math.max(0, opts.deadline - clock.now()),
      );
    }
    check();
    for (const a of acceptors) {
      ask(a).then((reply) => {
        settled++;
        opts.onReply?.(reply);
        if (done) return;
        const verdict = opts.judge === undefined ? true : opts.judge(reply, a.name);
        if (verdict === true) {
          const key = opts.groupOf?.(reply) ?? "";
          const group = groups.get(key) ?? [];
          if (group.length === 0) groups.set(key, group);
          group.push(reply);
          if (group.length > best.length) best = group;
        } else {
          failures.push(verdict);
        }
        check();
      }, (e: Error) => {
        settled++;
        if (done) return;
        failures.push(e.message);
        errors.push(e);
        check();
      });
    }
  });
}
