/**
 * A linearizability checker for recorded histories of the versioned KV layer.
 *
 * The search is Wing & Gong's, with Lowe's memoization: the history of each
 * key becomes a list of call and return entries in time order; the search
 * linearizes, one at a time, an operation whose call comes before the first
 * remaining return and whose recorded output is what the sequential model
 * says, and backtracks when a return is reached whose operation could not be
 * placed. Visited (linearized set, model state) pairs are cached, so no
 * configuration is searched twice. Keys are independent (every operation
 * touches one key, and the model of a key only depends on its own
 * operations), so each key's sub-history is checked on its own.
 *
 * Operations with unknown outputs return at +Infinity, so they never force
 * a backtrack; the search succeeds once every operation with a known output
 * is placed, and the unknown ones still unplaced are taken as never having
 * happened. Two prunings keep them from multiplying the states: one that
 * would not change the state (a refused cas or create) is never placed,
 * since leaving it out is as good; and a write is not placed when it would
 * take the version past what an unplaced known operation needs (every known
 * output pins the version it must be placed at, and versions only grow).
 *
 * @module
 */

/** What a client asked for, on one key. */
export type KvInput =
  /** Unconditional write. */
  | { op: "set"; value: unknown }
  /** Write only if the latest version is `ifVersion` (-1n: the key has no version). */
  | { op: "cas"; ifVersion: bigint; value: unknown }
  /** Write only if the key is absent (no version, or the latest is a tombstone). */
  | { op: "create"; value: unknown }
  /** Write a tombstone version. */
  | { op: "delete" }
  /** Read the latest version. */
  | { op: "get" };

/** What the client saw as the outcome of a {@linkcode KvInput}. */
export type KvOutput =
  /** set, cas, create, delete: the version it created. */
  | { ok: true; version: bigint }
  /** get: the latest version and its value. */
  | { ok: true; version: bigint; value: unknown; found: true }
  /** get: not found; `version` is the tombstone's version, or -1n when the key has none. */
  | { ok: true; version: bigint; found: false }
  /** cas, create: refused; `actual` is the latest version seen. */
  | { ok: false; conflict: true; actual: bigint }
  /** The client does not know whether the operation took effect (timeout, error). */
  | { ok: false; unknown: true };

/** One recorded operation of a history. */
export interface KvOperation {
  /** Which client issued it (for reports only). */
  client: number;
  /** The key it acted on; operations on different keys are checked separately. */
  key: string;
  /** What was asked. */
  input: KvInput;
  /** What was seen. */
  output: KvOutput;
  /** Invocation time (ms, e.g. `performance.now()`). */
  call: number;
  /**
   * Completion time (ms), `>= call`. May be `Infinity`; it is taken as
   * `Infinity` anyway when the output is unknown.
   */
  ret: number;
}

/** Options of {@linkcode checkKv}. */
export interface CheckOptions {
  /** Give up after this many milliseconds and report `timedOut` (default 10000). */
  timeoutMs?: number;
}

/** The verdict of {@linkcode checkKv}. */
export interface CheckResult {
  /**
   * True when every key's sub-history is linearizable. False when one is not,
   * and also when the search timed out (then `timedOut` is true and the
   * verdict is unknown, not a violation).
   */
  ok: boolean;
  /** The key whose sub-history failed or timed out. */
  key?: string;
  /** For a failure or a time-out: a short human-readable explanation. */
  reason?: string;
  /** Search steps taken over all keys (one per attempt to place an operation). */
  explored: number;
  /** True when the search was stopped by the time limit. */
  timedOut?: boolean;
  /**
   * For a failure: indices into the history of the longest linearizable
   * prefix the search found for `key`, in linearization order.
   */
  linearized?: number[];
  /**
   * For a failure: indices into the history of the operations (with known
   * outputs) that were pending after that prefix; each one either
   * contradicts the model there or leads only to dead ends.
   */
  unplaced?: number[];
}

/** The model state of one key. */
interface State {
  /** The latest version, -1n when none. */
  version: bigint;
  /** Whether the latest version is a tombstone. */
  deleted: boolean;
  /** The latest value (undefined when absent). */
  value: unknown;
  /** Canonical encoding of `value` ("" when absent). */
  valueKey: string;
}

/** An operation, validated and flattened for the search. */
interface Op {
  /** Index in the caller's history. */
  index: number;
  /** Position within its key's sub-history (its bit in the linearized set). */
  bit: number;
  client: number;
  kind: KvInput["op"];
  call: number;
  ret: number;
  /** The output is unknown: any outcome, or no effect at all. */
  unknown: boolean;
  /** cas: the expected version. */
  ifVersion: bigint;
  /** set, cas, create: the value written. */
  value: unknown;
  valueKey: string;
  /** Recorded outcome, when known. */
  out: "written" | "found" | "notFound" | "conflict" | "unknown";
  /** Version created (written), read (found/notFound) or seen (conflict). */
  outVersion: bigint;
  /** get found: canonical encoding of the value read. */
  outValueKey: string;
  outValue: unknown;
  /**
   * Known outputs: the model version the operation must be placed at (a
   * write's created version minus one; the version a get or conflict saw).
   */
  need: bigint;
}

/** A call or return entry of the doubly linked list the search walks. */
interface Entry {
  op: Op;
  isCall: boolean;
  time: number;
  /** For a call entry: its return entry. */
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

const INITIAL: State = { version: -1n, deleted: false, value: undefined, valueKey: "" };

/**
 * Checks that a history of KV operations is linearizable with respect to the
 * sequential versioned-KV model, key by key.
 *
 * Model of one key: state `{version (-1n at first), value, deleted}`. Every
 * write (set; cas whose `ifVersion` equals the latest version; create when
 * the key has no version or its latest is a tombstone; delete) creates version
 * `latest + 1` and reports it; a refused cas/create reports a conflict with
 * the latest version; get reports the latest version with its value, or
 * `found: false` with the tombstone's version (-1n when none). Values are
 * compared structurally (bigint, Uint8Array, arrays, plain objects).
 *
 * An operation with an unknown output may take effect at any time after its
 * call, with whatever outcome the model gives, or not at all.
 *
 * Operations that touch at the same instant (one's `call` equals another's
 * `ret`) count as concurrent.
 *
 * @throws {TypeError} when an operation is malformed (an output that does
 *   not fit its input, a value that cannot be compared).
 * @throws {RangeError} when times are not numbers with `call <= ret`, or
 *   `timeoutMs` is negative.
 *
 * @example
 * ```ts
 * import { checkKv } from "./linearizability.ts";
 * const r = checkKv([
 *   { client: 1, key: "k", input: { op: "set", value: "a" }, output: { ok: true, version: 0n }, call: 0, ret: 1 },
 *   { client: 2, key: "k", input: { op: "get" }, output: { ok: true, version: 0n, value: "a", found: true }, call: 2, ret: 3 },
 * ]);
 * r.ok; // true
 * ```
 */
export function checkKv(history: KvOperation[], opts: CheckOptions = {}): CheckResult {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  if (typeof timeoutMs !== "number" || Number.isNaN(timeoutMs) || timeoutMs < 0) {
    throw new RangeError(`timeoutMs must be a number >= 0, got ${String(timeoutMs)}`);
  }
  const deadline = performance.now() + timeoutMs;

  const byKey = new Map<string, Op[]>();
  history.forEach((raw, index) => {
    const op = compile(raw, index);
    // A read with an unknown outcome constrains nothing: leave it out.
    if (op.kind === "get" && op.unknown) return;
    let ops = byKey.get(raw.key);
    if (ops === undefined) byKey.set(raw.key, ops = []);
    op.bit = ops.length;
    ops.push(op);
  });

  let explored = 0;
  for (const key of [...byKey.keys()].sort()) {
    const r = checkKey(key, byKey.get(key) ?? [], deadline, timeoutMs);
    explored += r.explored;
    if (!r.ok) return { ...r, explored };
  }
  return { ok: true, explored };
}

/** One placed operation on the search stack, with what to restore when it is undone. */
interface Frame {
  entry: Entry;
  /** The model state before the operation. */
  state: State;
  /** `lowest` before the operation. */
  lowest: number;
}

/** Searches for a linearization of one key's operations. */
function checkKey(key: string, ops: Op[], deadline: number, timeoutMs: number): CheckResult {
  const head = buildList(ops);
  const bits = new Uint32Array(Math.ceil(ops.length / 32));
  const cache = new Set<string>();
  const stack: Frame[] = [];
  // Known operations by the version they must be placed at; `lowest` indexes
  // the first one not yet placed (see the pruning of unknown writes below).
  const byNeed = ops.filter((op) => !op.unknown).sort((a, b) =>
    a.need < b.need ? -1 : a.need > b.need ? 1 : a.index - b.index
  );
  let lowest = 0;
  let remainingKnown = byNeed.length;
  let state = INITIAL;
  let entry = head.next;
  let explored = 0;
  let steps = 0;
  let best: Failure | null = null;

  while (remainingKnown > 0) {
    if ((steps++ & 255) === 0 && performance.now() >= deadline) {
      return {
        ok: false,
        timedOut: true,
        key,
        explored,
        reason: `key ${JSON.stringify(key)}: gave up after ${timeoutMs} ms ` +
          `(${explored} steps, ${cache.size} cached states); the verdict is unknown`,
      };
    }
    if (entry === null) {
      // Unreachable: a known operation's return entry is still in the list.
      throw new Error("linearizability search ran past the end of the history");
    }
    if (entry.isCall) {
      explored++;
      const op = entry.op;
      let next = step(state, op);
      if (op.unknown && next !== null) {
        // Prunings of operations with unknown outputs, which may be left out:
        // - one that would change nothing (a refused cas or create) is as good
        //   left out, and placing it would only multiply the states;
        // - a write makes the version pass what some known operation still
        //   needs (versions only grow), so that one could never be placed.
        if (next === state || (byNeed[lowest] as Op).need < next.version) next = null;
      }
      if (next !== null) {
        setBit(bits, op.bit);
        const memo = bitsKey(bits) + "|" + stateKey(next);
        if (!cache.has(memo)) {
          cache.add(memo);
          stack.push({ entry, state, lowest });
          state = next;
          lift(entry);
          if (!op.unknown) {
            remainingKnown--;
            while (lowest < byNeed.length && isSet(bits, (byNeed[lowest] as Op).bit)) lowest++;
          }
          entry = head.next;
          continue;
        }
        clearBit(bits, op.bit);
      }
      entry = entry.next;
    } else {
      // The first remaining return belongs to an operation not yet placed:
      // nothing placed after this point can help, so undo the last choice.
      if (best === null || stack.length > best.linearized.length) {
        best = describeDeadEnd(head, stack, state);
      }
      const top = stack.pop();
      if (top === undefined) return failure(key, ops.length, best, explored);
      state = top.state;
      lowest = top.lowest;
      clearBit(bits, top.entry.op.bit);
      if (!top.entry.op.unknown) remainingKnown++;
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  // Every operation with a known output is placed; the rest (unknown outputs)
  // are taken as never having taken effect.
  return { ok: true, explored };
}

/** Makes the time-ordered list of call and return entries; returns its head sentinel. */
function buildList(ops: Op[]): Entry {
  const entries: Entry[] = [];
  for (const op of ops) {
    const ret: Entry = { op, isCall: false, time: op.ret, match: null, prev: null, next: null };
    const call: Entry = { op, isCall: true, time: op.call, match: ret, prev: null, next: null };
    entries.push(call, ret);
  }
  // By time; at equal times calls first (touching operations are concurrent);
  // then known before unknown outputs; then by history order, for a
  // repeatable search.
  entries.sort((a, b) => {
    if (a.time !== b.time) return a.time < b.time ? -1 : 1;
    if (a.isCall !== b.isCall) return a.isCall ? -1 : 1;
    // Unknown outputs return at Infinity: after any known return there.
    if (a.op.unknown !== b.op.unknown) return a.op.unknown ? 1 : -1;
    return a.op.index - b.op.index;
  });
  const head: Entry = {
    op: ops[0] as Op, // unused
    isCall: false,
    time: -Infinity,
    match: null,
    prev: null,
    next: null,
  };
  let last = head;
  for (const e of entries) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  return head;
}

/** Removes a call entry and its return entry from the list. */
function lift(call: Entry): void {
  const ret = call.match as Entry;
  (call.prev as Entry).next = call.next;
  (call.next as Entry).prev = call.prev;
  (ret.prev as Entry).next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

/** Puts back what {@linkcode lift} removed (in reverse order). */
function unlift(call: Entry): void {
  const ret = call.match as Entry;
  (ret.prev as Entry).next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  (call.prev as Entry).next = call;
  (call.next as Entry).prev = call;
}

function setBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5] = (bits[i >>> 5] as number) | (1 << (i & 31));
}

function isSet(bits: Uint32Array, i: number): boolean {
  return (((bits[i >>> 5] as number) >>> (i & 31)) & 1) === 1;
}

function clearBit(bits: Uint32Array, i: number): void {
  bits[i >>> 5] = (bits[i >>> 5] as number) & ~(1 << (i & 31));
}

function bitsKey(bits: Uint32Array): string {
  let s = "";
  for (const w of bits) s += w.toString(36) + ",";
  return s;
}

/** A hashable encoding of a model state. */
function stateKey(s: State): string {
  if (s.version === -1n) return "-1";
  return s.deleted ? `${s.version}d` : `${s.version}=${s.valueKey}`;
}

/**
 * The model's step: the state after `op`, or null when the model cannot
 * produce `op`'s recorded output from `s`. An unknown output accepts the
 * model's outcome, whatever it is.
 */
function step(s: State, op: Op): State | null {
  switch (op.kind) {
    case "set":
      return write(s, op);
    case "delete":
      if (!op.unknown && (op.out !== "written" || op.outVersion !== s.version + 1n)) return null;
      return { version: s.version + 1n, deleted: true, value: undefined, valueKey: "" };
    case "cas":
      return s.version === op.ifVersion ? write(s, op) : conflict(s, op);
    case "create":
      return s.version === -1n || s.deleted ? write(s, op) : conflict(s, op);
    case "get":
      if (op.unknown) return s;
      if (op.outVersion !== s.version) return null;
      if (s.version === -1n || s.deleted) return op.out === "notFound" ? s : null;
      return op.out === "found" && op.outValueKey === s.valueKey ? s : null;
  }
}

function write(s: State, op: Op): State | null {
  if (!op.unknown && (op.out !== "written" || op.outVersion !== s.version + 1n)) return null;
  return { version: s.version + 1n, deleted: false, value: op.value, valueKey: op.valueKey };
}

function conflict(s: State, op: Op): State | null {
  if (op.unknown) return s;
  return op.out === "conflict" && op.outVersion === s.version ? s : null;
}

/** What the model would answer to `op` in state `s` (for reports). */
function modelAnswer(s: State, op: Op): string {
  const absent = s.version === -1n || s.deleted;
  switch (op.kind) {
    case "set":
    case "delete":
      return `ok v${s.version + 1n}`;
    case "cas":
      return s.version === op.ifVersion ? `ok v${s.version + 1n}` : `conflict v${s.version}`;
    case "create":
      return absent ? `ok v${s.version + 1n}` : `conflict v${s.version}`;
    case "get":
      return absent ? `not found v${s.version}` : `found v${s.version} ${short(s.value)}`;
  }
}

/** The search's deepest dead end, for the failure report. */
interface Failure {
  linearized: Op[];
  state: State;
  /** Operations with known outputs that could have been placed next. */
  candidates: Op[];
  /** The operation whose return was reached without placing it. */
  blocking: Op;
}

function describeDeadEnd(
  head: Entry,
  stack: Frame[],
  state: State,
): Failure {
  const candidates: Op[] = [];
  let e = head.next;
  while (e !== null && e.isCall) {
    if (!e.op.unknown) candidates.push(e.op);
    e = e.next;
  }
  return {
    linearized: stack.map((f) => f.entry.op),
    state,
    candidates,
    blocking: (e as Entry).op,
  };
}

function failure(key: string, total: number, best: Failure | null, explored: number): CheckResult {
  if (best === null) throw new Error("linearizability search failed without a dead end");
  const shown = best.linearized.slice(-8);
  const prefix = best.linearized.length === 0
    ? "none"
    : (best.linearized.length > shown.length ? "..., " : "") + shown.map(describeOp).join("; ");
  const tried = best.candidates
    .map((op) => `${describeOp(op)} (model: ${modelAnswer(best.state, op)})`)
    .join("; ");
  const reason = `key ${JSON.stringify(key)} is not linearizable: ` +
    `longest linearizable prefix has ${best.linearized.length} of ${total} operations ` +
    `[${prefix}], leaving ${describeState(best.state)}; ` +
    `${describeOp(best.blocking)} must be placed before it returns, but no pending operation ` +
    `leads anywhere: ${tried}`;
  return {
    ok: false,
    key,
    reason,
    explored,
    linearized: best.linearized.map((op) => op.index),
    unplaced: best.candidates.map((op) => op.index),
  };
}

function describeState(s: State): string {
  if (s.version === -1n) return "no version";
  return s.deleted ? `v${s.version} (tombstone)` : `v${s.version} = ${short(s.value)}`;
}

function describeOp(op: Op): string {
  let what: string;
  switch (op.kind) {
    case "set":
    case "create":
      what = `${op.kind} ${short(op.value)}`;
      break;
    case "cas":
      what = `cas if v${op.ifVersion} ${short(op.value)}`;
      break;
    default:
      what = op.kind;
  }
  let seen: string;
  switch (op.out) {
    case "written":
      seen = `ok v${op.outVersion}`;
      break;
    case "found":
      seen = `found v${op.outVersion} ${short(op.outValue)}`;
      break;
    case "notFound":
      seen = `not found v${op.outVersion}`;
      break;
    case "conflict":
      seen = `conflict v${op.outVersion}`;
      break;
    case "unknown":
      seen = "unknown";
  }
  return `#${op.index} client ${op.client} ${what} -> ${seen} [${op.call}, ${op.ret}]`;
}

function short(v: unknown): string {
  const s = canonical(v);
  return s.length > 40 ? s.slice(0, 37) + "..." : s;
}

/** Validates one recorded operation and flattens it. */
function compile(raw: KvOperation, index: number): Op {
  const where = `history[${index}]`;
  if (typeof raw !== "object" || raw === null) {
    throw new TypeError(`${where} is not an operation: ${String(raw)}`);
  }
  if (typeof raw.key !== "string") {
    throw new TypeError(`${where}.key must be a string, got ${typeof raw.key}`);
  }
  const { call, input, output } = raw;
  if (typeof call !== "number" || !Number.isFinite(call)) {
    throw new RangeError(`${where}.call must be a finite number, got ${String(call)}`);
  }
  if (typeof raw.ret !== "number" || Number.isNaN(raw.ret) || raw.ret < call) {
    throw new RangeError(`${where}.ret must be a number >= call (${call}), got ${String(raw.ret)}`);
  }
  if (typeof output !== "object" || output === null || typeof output.ok !== "boolean") {
    throw new TypeError(`${where}.output must be an object with a boolean ok`);
  }
  const kind = input?.op;
  if (!["set", "cas", "create", "delete", "get"].includes(kind)) {
    throw new TypeError(`${where}.input.op must be set, cas, create, delete or get, got ${kind}`);
  }
  const unknown = !output.ok && "unknown" in output && output.unknown === true;
  const op: Op = {
    index,
    bit: -1,
    client: raw.client,
    kind,
    call,
    ret: unknown ? Infinity : raw.ret,
    unknown,
    ifVersion: -1n,
    value: undefined,
    valueKey: "",
    out: "unknown",
    outVersion: 0n,
    outValueKey: "",
    outValue: undefined,
    need: 0n,
  };
  if (input.op === "cas") {
    if (typeof input.ifVersion !== "bigint") {
      throw new TypeError(
        `${where}.input.ifVersion must be a bigint, got ${typeof input.ifVersion}`,
      );
    }
    op.ifVersion = input.ifVersion;
  }
  if (input.op === "set" || input.op === "cas" || input.op === "create") {
    op.value = input.value;
    op.valueKey = canonical(input.value, `${where}.input.value`);
  }
  if (unknown) return op;

  const bad = (what: string) =>
    new TypeError(`${where}: a ${kind} cannot have output ${what}: ${short(output)}`);
  if (output.ok) {
    if (typeof output.version !== "bigint") {
      throw new TypeError(`${where}.output.version must be a bigint, got ${typeof output.version}`);
    }
    op.outVersion = output.version;
    if ("found" in output) {
      if (kind !== "get") throw bad("with found");
      if (output.found === true) {
        op.out = "found";
        op.outValue = output.value;
        op.outValueKey = canonical(output.value, `${where}.output.value`);
      } else if (output.found === false) {
        op.out = "notFound";
      } else {
        throw new TypeError(`${where}.output.found must be a boolean`);
      }
    } else {
      if (kind === "get") throw bad("without found");
      op.out = "written";
    }
  } else {
    if (!("conflict" in output) || output.conflict !== true) {
      throw bad("ok: false without conflict: true or unknown: true");
    }
    if (kind !== "cas" && kind !== "create") throw bad("conflict");
    if (typeof output.actual !== "bigint") {
      throw new TypeError(`${where}.output.actual must be a bigint, got ${typeof output.actual}`);
    }
    op.out = "conflict";
    op.outVersion = output.actual;
  }
  op.need = op.out === "written" ? op.outVersion - 1n : op.outVersion;
  return op;
}

/**
 * An injective string encoding of a value, so that two values are
 * structurally equal exactly when their encodings are: bigint and number
 * differ, byte arrays compare by content, plain objects regardless of key
 * order.
 */
function canonical(v: unknown, where = "value"): string {
  switch (typeof v) {
    case "undefined":
      return "undefined";
    case "boolean":
      return String(v);
    case "number":
      return Object.is(v, -0) ? "0" : String(v);
    case "bigint":
      return `${v}n`;
    case "string":
      return JSON.stringify(v);
    case "object": {
      if (v === null) return "null";
      if (v instanceof Uint8Array) {
        let hex = "";
        for (const b of v) hex += b.toString(16).padStart(2, "0");
        return `bytes(${hex})`;
      }
      if (Array.isArray(v)) {
        return "[" + v.map((x, i) => canonical(x, `${where}[${i}]`)).join(",") + "]";
      }
      const proto = Object.getPrototypeOf(v);
      if (proto === Object.prototype || proto === null) {
        const rec = v as Record<string, unknown>;
        return "{" +
          Object.keys(rec).sort().map((k) =>
            JSON.stringify(k) + ":" + canonical(rec[k], `${where}.${k}`)
          ).join(",") +
          "}";
      }
      throw new TypeError(`${where}: cannot compare a ${proto?.constructor?.name ?? "object"}`);
    }
    default:
      throw new TypeError(`${where}: cannot compare a ${typeof v}`);
  }
}
