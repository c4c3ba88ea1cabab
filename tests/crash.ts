/**
 * An acceptor process for crash tests: `cli.ts acceptor` on its data
 * directory, started on a free port, killed with SIGKILL (no chance to flush
 * or close anything), and started again on the same data.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Server, startDurableAcceptor } from "./cli_process.ts";

/** A durable acceptor process that a test kills and restarts. */
export class AcceptorProcess {
  /** The running process, or null while it is down. */
  server: Server | null = null;
  /** Its URL since the last start (the port changes with each start). */
  url = "";

  /** An acceptor with id `id` keeping its state in `dir` (with `engine`, by default the log). */
  constructor(readonly id: number, readonly dir: string, readonly engine?: "log" | "sqlite") {}

  /** Starts it on its data and waits until it listens; returns its URL. */
  async start(): Promise<string> {
    const { server, url } = await startDurableAcceptor(
      this.id,
      this.dir,
      undefined,
      undefined,
      this.engine === undefined ? [] : ["--engine", this.engine],
    );
    this.server = server;
    this.url = url;
    return url;
  }

  /** SIGKILL; fails when the process had ended by itself. */
  async kill(): Promise<void> {
    const server = this.server!;
    this.server = null;
    const { status, stderr } = await server.stop("SIGKILL");
    assert.equal(status.signal, "SIGKILL", `acceptor ${this.id} had ended by itself: ${stderr}`);
  }

  /** SIGTERM; fails unless it exits with status 0. */
  async stop(): Promise<void> {
    const server = this.server!;
    this.server = null;
    const { status, stderr } = await server.stop("SIGTERM");
    assert.equal(status.code, 0, `acceptor ${this.id}: ${stderr}`);
  }
}
