/**
 * `list [PREFIX]`: the keys that begin with PREFIX and their latest values,
 * in key order, through the KV layer's listing (`Kv.list`).
 *
 * @module
 */
import { intOpt, parseArgs, positionals, stringOpt } from "./args.ts";
import { UsageError } from "./exit.ts";
import { formatKvValue, toJson } from "./format.ts";
import type { CliIo } from "./io.ts";
import { NET_SPEC, parseNetOptions, withKv } from "./net.ts";

/** `list [PREFIX] [--limit N] [--cursor C] [--reverse] [--keys-only] [--json]`. */
export async function runList(args: readonly string[], io: CliIo): Promise<number> {
  const p = parseArgs(args, {
    ...NET_SPEC,
    limit: "string",
    cursor: "string",
    reverse: "boolean",
    "keys-only": "boolean",
  });
  if (p.positionals.length > 1) positionals(p, ["PREFIX"]);
  const prefix = p.positionals[0] ?? "";
  const limit = intOpt(p, "limit", 1n, BigInt(Number.MAX_SAFE_INTEGER), "a positive integer");
  const cursor = stringOpt(p, "cursor");
  const net = await parseNetOptions(p);
  const keysOnly = p.opts.has("keys-only");
  const opts = {
    ...(limit === undefined ? {} : { limit: Number(limit) }),
    ...(cursor === undefined ? {} : { cursor }),
    ...(p.opts.has("reverse") ? { reverse: true } : {}),
  };
  return await withKv(net, io, async (kv) => {
    let it;
    try {
      it = kv.list({ prefix }, opts);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    let n = 0;
    for await (const e of it) {
      n++;
      if (net.json) {
        io.out(
          toJson(keysOnly ? { key: e.key } : { key: e.key, version: e.version, value: e.value }),
        );
      } else io.out(keysOnly ? e.key : `${e.key}\t${formatKvValue(e.value)}`);
    }
    if (limit !== undefined && n === Number(limit)) {
      // Cut by --limit: where to go on from.
      if (net.json) io.out(toJson({ cursor: it.cursor }));
      else {
        io.err(
          `paxoskv: --limit ${limit} reached; more keys may follow: list ${
            JSON.stringify(prefix)
          } --cursor ${it.cursor}`,
        );
      }
    }
    return 0;
  });
}
