/**
 * `watch KEY... | --prefix P`: each chosen version of the keys, as it is
 * chosen, one line each, until SIGINT or SIGTERM, through the KV layer's
 * watch (`Kv.watch`).
 *
 * @module
 */
import type { KvWatchSelector } from "../kv.ts";
import { intOpt, parseArgs, quote, stringOpt } from "./args.ts";
import { UsageError } from "./exit.ts";
import { formatKvValue, toJson } from "./format.ts";
import type { CliIo } from "./io.ts";
import { NET_SPEC, parseNetOptions, withKv } from "./net.ts";

/** `watch KEY... | --prefix P [--from-version V] [--json]`. */
export async function runWatch(args: readonly string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, { ...NET_SPEC, prefix: "string", "from-version": "string" });
  const prefix = stringOpt(p, "prefix");
  if (p.opts.get("prefix") === true) throw new UsageError("--prefix needs a value");
  let selector: KvWatchSelector;
  if (prefix !== undefined) {
    if (p.positionals.length > 0) {
      throw new UsageError(
        `watch takes KEY... or --prefix P, not both: unexpected argument ${
          quote(p.positionals[0]!)
        }`,
      );
    }
    selector = { prefix };
  } else {
    if (p.positionals.length === 0) throw new UsageError("missing KEY (or --prefix P)");
    selector = p.positionals;
  }
  const from = intOpt(p, "from-version", 0n, 2n ** 63n - 1n, "a version (an integer from 0)");
  const net = await parseNetOptions(p);
  // Listen for the stop before the watch starts, so that no early signal is lost.
  const stop = new AbortController();
  void io.waitForStop().then(() => stop.abort());
  return await withKv(net, io, async (kv) => {
    let it;
    try {
      it = kv.watch(selector, {
        signal: stop.signal,
        ...(from === undefined ? {} : { fromVersion: from }),
      });
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    for await (const e of it) {
      if (net.json) {
        io.out(
          toJson(
            e.deleted
              ? { key: e.key, version: e.version, deleted: true }
              : { key: e.key, version: e.version, value: e.value },
          ),
        );
      } else {
        io.out(`${e.key}\t${e.version}\t${e.deleted ? "(deleted)" : formatKvValue(e.value)}`);
      }
    }
    return 0;
  });
}
