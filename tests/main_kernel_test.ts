/**
 * main.ts checks CAP_NET_ADMIN before it checks the conntrack binary: the
 * binary's message needs root to be seen (kernel stage).
 */
import assert from "node:assert/strict";
import { runMain } from "./support/run_main.ts";
import { machineTest } from "./support/machine.ts";

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
