/**
 * Test helper: a throw-away network namespace for the real-kernel tests, and
 * the driver run inside it. Nothing here touches the host's conntrack table.
 *
 * @module
 */
import type { DriverOp } from "./driver.ts";

/** Why the kernel tests cannot run here, or `undefined` when they can. */
export const KERNEL_SKIP_REASON: string | undefined = (() => {
  if (Deno.build.os !== "linux") return "not Linux";
  if (Deno.uid() !== 0) return "not root (they need `ip netns add` and CAP_NET_ADMIN)";
  for (const tool of ["ip", "conntrack"]) {
    const found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"].some((d) => {
      try {
        return Deno.statSync(`${d}/${tool}`).isFile;
      } catch {
        return false;
      }
    });
    if (!found) return `${tool} is not installed`;
  }
  return undefined;
})();

/** The output of a command. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string[], check = true): Promise<Ran> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), stdin: "null" }).output();
  const r = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (check && r.code !== 0) throw new Error(`${cmd.join(" ")} exited ${r.code}: ${r.stderr}`);
  return r;
}

/** A namespace made for one test. */
export interface Netns {
  name: string;
  /** Runs a command inside the namespace (fails on a non-zero exit). */
  exec(...cmd: string[]): Promise<Ran>;
  /** `conntrack -I <args>` inside the namespace. */
  insert(args: string): Promise<void>;
  /** `conntrack -L` lines inside the namespace. */
  list(): Promise<string[]>;
  /** Runs the driver inside the namespace (optionally under a prefix such as setpriv). */
  driver(ops: DriverOp[], prefix?: string[]): Promise<unknown[]>;
}

const DRIVER = new URL("./driver.ts", import.meta.url).pathname;

/** Runs `fn` with a fresh namespace `cc-nl-<random>`, always removed afterwards. */
export async function withNetns<T>(fn: (ns: Netns) => Promise<T>): Promise<T> {
  const name = `cc-nl-${crypto.randomUUID().slice(0, 8)}`;
  await run(["ip", "netns", "add", name]);
  const exec = (...cmd: string[]) => run(["ip", "netns", "exec", name, ...cmd]);
  const ns: Netns = {
    name,
    exec,
    insert: async (args) => {
      await exec("conntrack", "-I", ...args.split(" "));
    },
    list: async () => (await exec("conntrack", "-L")).stdout.split("\n").filter((l) => l.trim()),
    driver: async (ops, prefix = []) => {
      const r = await exec(...prefix, Deno.execPath(), "run", "-A", DRIVER, JSON.stringify(ops));
      return JSON.parse(r.stdout);
    },
  };
  try {
    return await fn(ns);
  } finally {
    await run(["ip", "netns", "del", name], false);
  }
}
