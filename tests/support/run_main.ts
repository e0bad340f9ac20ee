/**
 * Runs `main.ts` in a child process with a cleared environment (only PATH,
 * NO_COLOR and where Deno keeps its cache pass through), for tests of exit
 * codes and messages.
 *
 * @module
 */

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Where Deno keeps its cache passes through the cleared environment; no setting does. */
const DENO_ENV: Record<string, string> = {};
for (const k of ["HOME", "DENO_DIR"]) {
  const v = Deno.env.get(k);
  if (v !== undefined) DENO_ENV[k] = v;
}

/** What `main.ts` exited with and printed. */
export interface MainRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `deno run -A main.ts ...args` with only `env` (and the above) in its environment. */
export async function runMain(args: string[], env: Record<string, string> = {}): Promise<MainRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin", NO_COLOR: "1", ...DENO_ENV, ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * Starts `deno run -A main.ts ...args` (stdout and stderr piped, no colour)
 * and returns the child, for tests that signal it or read it while it runs.
 */
export function spawnMain(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}
