/**
 * Running a helper program (`conntrack`) with an argv array, a deadline and
 * optional stdin. Behind an interface so tests can replace it.
 *
 * @module
 */

/** What {@linkcode ProcessRunner.run} needs. */
export interface RunOptions {
  /** Written to the program's stdin, which is then closed. */
  stdin?: string;
  /** Kill the program (SIGKILL) after this many milliseconds. */
  timeoutMs: number;
  /** Kill the program when this aborts. */
  signal?: AbortSignal;
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
 * A {@linkcode ProcessRunner} over `Deno.Command`. Never rejects: a missing
 * binary comes back as `code: -1` with `spawnError`.
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
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(cmd, {
        args: [...args],
        stdin: options.stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (e) {
      const why = e instanceof Deno.errors.NotFound
        ? `${cmd}: not found`
        : `${cmd}: ${e instanceof Error ? e.message : String(e)}`;
      return { code: -1, stdout: "", stderr: "", timedOut: false, spawnError: why };
    }
    let timedOut = false;
    const kill = () => {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, options.timeoutMs);
    options.signal?.addEventListener("abort", kill, { once: true });
    try {
      if (options.stdin !== undefined) {
        const w = child.stdin.getWriter();
        try {
          await w.write(new TextEncoder().encode(options.stdin));
          await w.close();
        } catch { /* the program exited early; its status says why */ }
      }
      const out = await child.output();
      const dec = new TextDecoder();
      return {
        code: out.code,
        stdout: dec.decode(out.stdout),
        stderr: dec.decode(out.stderr),
        timedOut,
      };
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", kill);
    }
  },
};
