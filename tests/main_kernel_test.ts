/**
 * main.ts checks CAP_NET_ADMIN before it checks the conntrack binary: the
 * binary's message needs root to be seen (kernel stage).
 */
import assert from "node:assert/strict";
import { machineTest } from "./support/machine.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Where Deno keeps its cache passes through the cleared environment; no setting does. */
const DENO_ENV: Record<string, string> = {};
for (const k of ["HOME", "DENO_DIR"]) {
  const v = Deno.env.get(k);
  if (v !== undefined) DENO_ENV[k] = v;
}

async function runMain(args: string[], env: Record<string, string> = {}) {
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

/** main.ts deletes only with CAP_NET_ADMIN: these tests need root (kernel stage). */
const asRoot = {
  skip: Deno.uid() === 0
    ? undefined
    : "needs root: main.ts refuses to delete without CAP_NET_ADMIN",
};

machineTest(
  "main exits 1 saying how to install conntrack when the binary is missing",
  async () => {
    const table = await Deno.makeTempFile();
    try {
      const r = await runMain([
        "--source=procfs",
        `--proc-file=${table}`,
        "--delete-via=conntrack",
        "--conntrack-bin=/nonexistent/conntrack",
        "--listen=off",
      ]);
      assert.equal(r.code, 1);
      assert.match(
        r.stdout,
        /conntrack binary \\"\/nonexistent\/conntrack\\" cannot run .*apt-get install conntrack/,
      );
    } finally {
      await Deno.remove(table);
    }
  },
  asRoot,
);
