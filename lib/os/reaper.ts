/**
 * Killing whatever a helper program left behind, even what escaped its
 * process group (`setsid`, a daemonising grandchild). The agent makes itself
 * a child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`, FFI): a descendant
 * whose parent dies is reparented to the agent instead of to init, so once a
 * helper has exited, every process it left is a child of the agent that the
 * agent did not start, found in `/proc/self/task/<tid>/children`, killed and
 * reaped (`waitpid` on that pid only: the children Deno started are Deno's
 * to reap).
 *
 * Only processes that carry the runner's mark are killed: every helper is
 * started with {@linkcode HELPER_MARK} in its environment, which its
 * descendants inherit. A child that some other code of this process started
 * with `Deno.Command` (reparented grandchildren of its own, or a process of a
 * test running beside the agent) has no mark and is left alone. A descendant
 * that clears its whole environment escapes; its process group is still
 * killed.
 *
 * @module
 */

import { libc } from "./libc.ts";

const PR_SET_CHILD_SUBREAPER = 36;
const WNOHANG = 1;

let subreaper: string | undefined | null = null;

/**
 * The environment variable every helper is started with, and its value (one
 * per agent process): the mark of what the reaper may kill.
 */
export const HELPER_MARK = {
  name: "CONNTRACK_CLEANER_HELPER_OF",
  value: `${Deno.pid}-${crypto.randomUUID()}`,
} as const;

const markBytes = new TextEncoder().encode(`${HELPER_MARK.name}=${HELPER_MARK.value}\0`);

/** Whether process `pid` carries this process's helper mark in its environment. */
function marked(pid: number): boolean {
  let env: Uint8Array;
  try {
    env = Deno.readFileSync(`/proc/${pid}/environ`);
  } catch {
    return false; // gone, or not ours to read
  }
  // Variables are NUL-terminated; the mark is one whole variable.
  outer: for (let i = 0; i + markBytes.length <= env.length; i++) {
    if (i > 0 && env[i - 1] !== 0) continue;
    for (let j = 0; j < markBytes.length; j++) if (env[i + j] !== markBytes[j]) continue outer;
    return true;
  }
  return false;
}

/** Children the runner started and has not yet seen exit: never an orphan. */
const started = new Set<number>();

/**
 * Makes this process a child subreaper, once; returns why it could not (no
 * FFI, not Linux), or `undefined` when it is one.
 *
 * @example
 * ```ts
 * import { becomeSubreaper } from "./reaper.ts";
 * becomeSubreaper(); // => undefined
 * ```
 */
export function becomeSubreaper(): string | undefined {
  if (subreaper !== null) return subreaper;
  try {
    const r = libc().prctl(PR_SET_CHILD_SUBREAPER, 1n, 0n, 0n, 0n);
    subreaper = r === 0 ? undefined : "prctl(PR_SET_CHILD_SUBREAPER) failed";
  } catch (e) {
    subreaper = e instanceof Error ? e.message : String(e);
  }
  return subreaper;
}

/** The runner started `pid`: not an orphan until {@linkcode exited}. */
export function startedChild(pid: number): void {
  started.add(pid);
}

/** The runner's child `pid` has exited (and was reaped by Deno). */
export function exited(pid: number): void {
  started.delete(pid);
}

/** Pids of this process's children, from every thread's `children` file. */
function children(): number[] {
  const pids: number[] = [];
  try {
    for (const t of Deno.readDirSync("/proc/self/task")) {
      try {
        const text = Deno.readTextFileSync(`/proc/self/task/${t.name}/children`);
        for (const p of text.split(" ")) if (p.trim() !== "") pids.push(Number(p));
      } catch { /* the thread ended */ }
    }
  } catch { /* no procfs: nothing to find */ }
  return pids;
}

/**
 * Kills (SIGKILL) and reaps every child of this process that the runner did
 * not start and that carries {@linkcode HELPER_MARK}: the orphans of helpers
 * that exited, reparented here. Repeats
 * while new ones appear (an orphan's own children are reparented when it
 * dies), for at most `budgetMs`. Returns how many it killed.
 *
 * @example
 * ```ts
 * import { becomeSubreaper, killOrphans } from "./reaper.ts";
 * becomeSubreaper();
 * await killOrphans(); // => 0
 * ```
 */
export async function killOrphans(budgetMs = 500): Promise<number> {
  if (subreaper !== undefined) return 0;
  const end = performance.now() + budgetMs;
  const status = new Uint8Array(4);
  const killed = new Set<number>();
  for (;;) {
    const orphans = children().filter((p) => !started.has(p) && (killed.has(p) || marked(p)));
    if (orphans.length === 0 || performance.now() > end) return killed.size;
    for (const pid of orphans) {
      if (!killed.has(pid)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* already a zombie */ }
        killed.add(pid);
      }
      // Only this pid: Deno reaps the children it started itself.
      libc().waitpid(pid, status, WNOHANG);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}
