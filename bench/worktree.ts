// A git revision checked out beside the working tree, for benchmarks that
// measure our code against a baseline's in the same run.
import { join } from "node:path";

/** The repository's root. */
export const root: string = join(import.meta.dirname!, "..");

/** Checks out `rev` in a temporary git worktree `dir`; throws with git's message. */
export async function addWorktree(rev: string, dir: string): Promise<void> {
  const git = await new Deno.Command("git", {
    args: ["worktree", "add", "--detach", dir, rev],
    cwd: root,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!git.success) {
    throw new Error(`--baseline ${rev}: ${new TextDecoder().decode(git.stderr).trim()}`);
  }
}

/** Removes a worktree made by {@link addWorktree}. */
export async function removeWorktree(dir: string): Promise<void> {
  await new Deno.Command("git", {
    args: ["worktree", "remove", "--force", dir],
    cwd: root,
    stdout: "null",
    stderr: "null",
  }).output();
}
