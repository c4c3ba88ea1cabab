/**
 * Where the command line writes, and how it learns that it should stop.
 *
 * @module
 */

/**
 * Where the CLI writes and how it learns it should stop. {@link processIo}
 * is the real process; tests may pass their own.
 */
export interface CliIo {
  /** Writes one line (a newline is added) to standard output. */
  out(line: string): void;
  /** Writes one line (a newline is added) to standard error. */
  err(line: string): void;
  /**
   * Writes one line of a server's log to standard error without ever
   * blocking: it waits in a bounded queue while nobody reads standard error,
   * and past it lines are dropped, and counted. Without it, `err` is used.
   */
  log?(line: string): void;
  /** Waits (a second at most) for the log lines still queued to be written. */
  flushLog?(): Promise<void>;
  /**
   * Starts listening for a stop request (SIGINT or SIGTERM for a process)
   * and resolves with its name when one arrives. Long-running commands call
   * it before they announce that they are ready, so no early signal is lost.
   */
  waitForStop(): Promise<string>;
}

import { LineWriter } from "../log.ts";

const encoder = new TextEncoder();
const stderrLog = new LineWriter((bytes) => Deno.stderr.write(bytes));

function writeLine(file: { writeSync(p: Uint8Array): number }, line: string): void {
  const bytes = encoder.encode(line + "\n");
  try {
    let off = 0;
    while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
  } catch (e) {
    // Nobody reads our output any more: nothing useful to do about it.
    if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
  }
}

/**
 * The real process: stdout, stderr, and SIGINT/SIGTERM. A second signal
 * while stopping exits at once with status 130.
 */
export const processIo: CliIo = {
  out: (line) => writeLine(Deno.stdout, line),
  err: (line) => writeLine(Deno.stderr, line),
  log: (line) => stderrLog.line(line),
  flushLog: () => stderrLog.flush(),
  waitForStop() {
    return new Promise((resolve) => {
      let stopping = false;
      const listen = (sig: Deno.Signal) => {
        try {
          Deno.addSignalListener(sig, () => {
            if (stopping) {
              writeLine(Deno.stderr, `paxoskv: ${sig} again: exiting without cleaning up`);
              Deno.exit(130);
            }
            stopping = true;
            resolve(sig);
          });
        } catch {
          // This platform has no such signal (SIGTERM on Windows).
        }
      };
      listen("SIGINT");
      listen("SIGTERM");
    });
  },
};

/** Makes a message one line: line breaks and the blanks around them become one space. */
export function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ");
}
