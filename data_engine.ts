/**
 * Which storage engine a data directory was made with: it remembers it by
 * its data file (`acceptor.log` for the log, `acceptor.sqlite` for SQLite),
 * so that a directory is never opened with the other engine, which would
 * find it empty and forget every promise and vote it holds.
 *
 * @module
 */
import { join } from "node:path";

/** The durable storage engines: the append-only log, or SQLite. */
export type Engine = "log" | "sqlite";

/** The data file that marks a directory as made by each engine. */
export const ENGINE_FILES: Readonly<Record<Engine, string>> = {
  log: "acceptor.log",
  sqlite: "acceptor.sqlite",
};

/**
 * The engine whose data file is in `dir`, or null when it holds none (a new
 * or empty directory).
 *
 * @example
 * ```ts ignore
 * import { engineOf } from "./data_engine.ts";
 * await engineOf("./data/acceptor-0"); // "log", "sqlite" or null
 * ```
 */
export async function engineOf(dir: string): Promise<Engine | null> {
  for (const engine of ["log", "sqlite"] as const) {
    try {
      await Deno.stat(join(dir, ENGINE_FILES[engine]));
      return engine;
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return null;
}

/**
 * Throws when `dir` holds the data of another engine than `engine`, with a
 * message that names both.
 */
export async function refuseOtherEngine(dir: string, engine: Engine): Promise<void> {
  const found = await engineOf(dir);
  if (found === null || found === engine) return;
  throw new Deno.errors.AlreadyExists(
    `data directory ${dir} holds data of the ${found} engine (${ENGINE_FILES[found]}), ` +
      `not of the ${engine} engine: open it with --engine ${found}`,
  );
}
