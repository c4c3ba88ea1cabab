/**
 * Reading a command line: options (`--name VALUE`, `--name=VALUE`, flags),
 * positional arguments, and the checks of the values the commands share
 * (integers in a range, a host, the acceptors' URLs, the network options).
 *
 * @module
 */
import { parseWsUrl } from "../ws_client.ts";
import { UsageError } from "./exit.ts";

/**
 * Whether an option takes a value (`"string"`), is a flag (`"boolean"`), or
 * is a flag that may take a value after `=` only (`"optional"`: `--trace`,
 * `--trace=json`).
 */
export type OptKind = "string" | "boolean" | "optional";

/** The options a command takes, by name (without the leading `--`). */
export type OptSpec = Readonly<Record<string, OptKind>>;

/** A parsed command line: the options given, and the positional arguments. */
export interface Parsed {
  /** Each option given, with its value (`true` for a flag). */
  readonly opts: ReadonlyMap<string, string | true>;
  /** The other arguments, in order. */
  readonly positionals: readonly string[];
}

/** The longest delay a timer takes, in ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

// An argument that looks like a negative number is a value, not an option.
const NEGATIVE_NUMBER = /^-[0-9]/;

/** Quotes a command-line argument for a message. */
export function quote(s: string): string {
  return JSON.stringify(s);
}

/** Whether `-h` or `--help` comes before any `--`. */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === "--") return false;
    if (a === "-h" || a === "--help") return true;
  }
  return false;
}

/**
 * Parses `args` by `spec`; throws a {@link UsageError} for an unknown
 * option, one given twice, a flag with a value or an option without one.
 */
export function parseArgs(args: readonly string[], spec: OptSpec): Parsed {
  const opts = new Map<string, string | true>();
  const positionals: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const kind = Object.hasOwn(spec, name) ? spec[name] : undefined;
      if (kind === undefined) throw new UsageError(`unknown option ${quote(`--${name}`)}`);
      if (opts.has(name)) throw new UsageError(`option --${name} is given more than once`);
      if (kind === "boolean") {
        if (eq >= 0) throw new UsageError(`option --${name} takes no value`);
        opts.set(name, true);
        continue;
      }
      if (eq >= 0) {
        opts.set(name, a.slice(eq + 1));
        continue;
      }
      if (kind === "optional") {
        opts.set(name, true);
        continue;
      }
      const next = args[i + 1];
      if (next === undefined || (next.startsWith("-") && !NEGATIVE_NUMBER.test(next))) {
        throw new UsageError(`option --${name} needs a value`);
      }
      opts.set(name, next);
      i++;
      continue;
    }
    if (a.startsWith("-") && a !== "-" && !NEGATIVE_NUMBER.test(a)) {
      throw new UsageError(`unknown option ${quote(a)}`);
    }
    positionals.push(a);
  }
  return { opts, positionals };
}

/** Checks the number of positional arguments against their names, and returns them. */
export function positionals(p: Parsed, names: readonly string[]): readonly string[] {
  if (p.positionals.length < names.length) {
    throw new UsageError(`missing ${names.slice(p.positionals.length).join(" and ")}`);
  }
  if (p.positionals.length > names.length) {
    throw new UsageError(`unexpected argument ${quote(p.positionals[names.length]!)}`);
  }
  return p.positionals;
}

/** The value of a string option, or undefined when it is not given. */
export function stringOpt(p: Parsed, name: string): string | undefined {
  const v = p.opts.get(name);
  return v === true ? undefined : v;
}

/**
 * The value of an integer option within `min..max`, or undefined when it is
 * not given; `what` describes the range for the message.
 */
export function intOpt(
  p: Parsed,
  name: string,
  min: bigint,
  max: bigint,
  what: string,
): bigint | undefined {
  const s = stringOpt(p, name);
  if (s === undefined) return undefined;
  if (!/^-?[0-9]+$/.test(s) || BigInt(s) < min || BigInt(s) > max) {
    throw new UsageError(`--${name} must be ${what}, got ${quote(s)}`);
  }
  return BigInt(s);
}

/** A value that must be given: throws a {@link UsageError} naming the option otherwise. */
export function required<T>(v: T | undefined, name: string): T {
  if (v === undefined) throw new UsageError(`missing --${name}`);
  return v;
}

/** The `--host` option: a host name or address (default 127.0.0.1). */
export function hostOpt(p: Parsed): string {
  const host = stringOpt(p, "host") ?? "127.0.0.1";
  if (host === "" || /[\s/]/.test(host)) {
    throw new UsageError(`--host must be a host name or IP address, got ${quote(host)}`);
  }
  return host;
}

/** Reads `--acceptors`: comma-separated `ws://HOST:PORT/PATH` URLs, none twice. */
export function parseAcceptorUrls(s: string): string[] {
  const urls = s.split(",").map((u) => u.trim());
  const seen = new Set<string>();
  for (const u of urls) {
    if (u === "") {
      throw new UsageError(`--acceptors has an empty entry in ${quote(s)}`);
    }
    let parsed: URL;
    try {
      parsed = parseWsUrl(u);
    } catch (e) {
      throw new UsageError(`bad acceptor URL: ${(e as Error).message}`);
    }
    if (parsed.pathname === "/") {
      throw new UsageError(`acceptor URL ${u} has no path: acceptors serve ws://HOST:PORT/paxos`);
    }
    if (seen.has(parsed.href)) {
      throw new UsageError(`acceptor URL ${u} is listed twice: each acceptor counts once`);
    }
    seen.add(parsed.href);
  }
  return urls;
}
