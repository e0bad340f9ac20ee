/**
 * Running a helper program (`conntrack`) with an argv array, a deadline and
 * optional stdin. Behind an interface so tests can replace it.
 *
 * @module
 */
import { errorText } from "../basics.ts";
import { becomeSubreaper, exited, HELPER_MARK, killOrphans, startedChild } from "./reaper.ts";

/** What {@linkcode ProcessRunner.run} needs. */
export interface RunOptions {
  /** Written to the program's stdin, which is then closed. */
  stdin?: string;
  /** Kill the program and its process group (SIGKILL) after this many milliseconds. */
  timeoutMs: number;
  /** Kill the program when this aborts. */
  signal?: AbortSignal | undefined;
  /** Hand each stdout chunk here as it arrives (then `RunResult.stdout` is empty). */
  onStdout?: (chunk: Uint8Array) => void;
}

/** How a run ended. `code` is -1 when the program could not be started. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Killed because it outlasted `timeoutMs`. */
  timedOut: boolean;
  /** Could not be started (not found, not executable): the reason. */
  spawnError?: string;
}

/** Runs one program to completion. */
export interface ProcessRunner {
  run(cmd: string, args: readonly string[], options: RunOptions): Promise<RunResult>;
}

/**
 * After a kill (or after the program exited), how long its pipes may still
 * deliver what is buffered before they are cut: a process that escaped the
 * group must not hold the caller past the deadline.
 */
export const PIPE_GRACE_MS = 250;

/**
 * A {@linkcode ProcessRunner} over `Deno.Command`. Never rejects: a missing
 * binary comes back as `code: -1` with `spawnError`.
 *
 * The program runs in a process group of its own (`detached`: it is the
 * leader of a new session), and a timeout or an abort kills the whole group
 * with SIGKILL, so a script's `sleep` in the background dies with it. When the
 * program exits, whatever it left running in its group is killed too, and so
 * is whatever left the group (`setsid`): the agent is a child subreaper, so
 * those are reparented to it and killed as orphans (lib/os/reaper.ts). No pipe
 * is read more than {@linkcode PIPE_GRACE_MS} past that point.
 *
 * @example
 * ```ts
 * import { denoRunner } from "./process.ts";
 * const r = await denoRunner.run("conntrack", ["--version"], { timeoutMs: 5000 });
 * console.log(r.code, r.stdout);
 * ```
 */
export const denoRunner: ProcessRunner = {
  async run(cmd, args, options) {
    becomeSubreaper();
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(cmd, {
        args: [...args],
        stdin: options.stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
        detached: true,
        // Inherited by everything it starts: what the reaper may kill (lib/os/reaper.ts).
        env: { [HELPER_MARK.name]: HELPER_MARK.value },
      }).spawn();
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound
        ? `${cmd}: not found`
        : `${cmd}: ${errorText(e)}`;
      return { code: -1, stdout: "", stderr: "", timedOut: false, spawnError: why };
    }
    const pid = child.pid;
    startedChild(pid);
    let timedOut = false;
    let cutTimer: ReturnType<typeof setTimeout> | undefined;
    const cut = Promise.withResolvers<void>();
    const killGroup = () => {
      try {
        Deno.kill(-pid, "SIGKILL");
      } catch { /* the group is gone */ }
      cutTimer ??= setTimeout(cut.resolve, PIPE_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
    if (options.signal?.aborted) killGroup();
    options.signal?.addEventListener("abort", killGroup, { once: true });
    try {
      // Once the program itself exits, what it left in its group goes too.
      const status = child.status.then(async (s) => {
        exited(pid);
        killGroup();
        // What left the group (setsid) was reparented here when the program died.
        await killOrphans();
        return s;
      });
      const stdout = drain(child.stdout, cut.promise, options.onStdout);
      const stderr = drain(child.stderr, cut.promise);
      if (options.stdin !== undefined) {
        const w = child.stdin.getWriter();
        const write = (async () => {
          await w.write(new TextEncoder().encode(options.stdin));
          await w.close();
        })().catch(() => {/* the program exited early; its status says why */});
        await Promise.race([write, cut.promise]);
      }
      const [s, out, err] = await Promise.all([status, stdout, stderr]);
      const dec = new TextDecoder();
      return { code: s.code, stdout: dec.decode(out), stderr: dec.decode(err), timedOut };
    } finally {
      clearTimeout(timer);
      clearTimeout(cutTimer);
      options.signal?.removeEventListener("abort", killGroup);
    }
  },
};

/**
 * Reads a pipe to its end or until `cut` resolves, whichever is first. With
 * `onChunk`, chunks go there and nothing is kept.
 */
async function drain(
  stream: ReadableStream<Uint8Array>,
  cut: Promise<void>,
  onChunk?: (chunk: Uint8Array) => void,
): Promise<Uint8Array> {
  const reader = stream.getReader();
  let stop = false;
  void cut.then(() => {
    stop = true;
    reader.cancel().catch(() => {});
  });
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (!stop) {
      const { done, value } = await reader.read();
      if (done) break;
      if (onChunk) onChunk(value);
      else {
        chunks.push(value);
        size += value.length;
      }
    }
  } catch { /* cancelled or broken: what was read is what there is */ }
  if (stop) reader.cancel().catch(() => {});
  const all = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return all;
}
