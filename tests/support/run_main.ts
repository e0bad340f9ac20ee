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

/** `main.ts` running on a one-line procfs table of its own, its JSON lines collected as they come. */
export interface TableRun {
  child: Deno.ChildProcess;
  /** Every line so far, parsed. */
  lines: Record<string, unknown>[];
  /** Resolves when stdout ended (every line read). */
  reading: Promise<void>;
  stderr: Promise<string>;
  /** Waits (up to 10 s) until `done()`; the assertions after it say what was missing. */
  until(done: () => boolean): Promise<void>;
  /** Kills the child if it still runs and removes the table. */
  cleanup(): Promise<void>;
}

/**
 * Starts `main.ts --source=procfs --proc-file=TABLE …args` on a table of one
 * un-NATed `SYN_SENT` line, reading its JSON log lines while it runs.
 */
export async function runMainOnTable(args: string[]): Promise<TableRun> {
  const dir = await Deno.makeTempDir();
  const table = `${dir}/nf_conntrack`;
  await Deno.writeTextFile(
    table,
    "ipv4     2 tcp      6 100 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 mark=0 zone=0 use=2\n",
  );
  const child = spawnMain(["--source=procfs", `--proc-file=${table}`, ...args]);
  const lines: Record<string, unknown>[] = [];
  const reading = (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      for (const p of parts) lines.push(JSON.parse(p));
    }
  })();
  return {
    child,
    lines,
    reading,
    stderr: new Response(child.stderr).text(),
    until: async (done) => {
      for (let i = 0; i < 1000 && !done(); i++) await new Promise((r) => setTimeout(r, 10));
    },
    cleanup: async () => {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await Deno.remove(dir, { recursive: true });
    },
  };
}
