/**
 * Logging never stops the agent, through main.ts: after the reader of its
 * stdout goes away, it keeps polling and deleting. main.ts deletes only with
 * CAP_NET_ADMIN, so this needs root (kernel stage).
 */
import assert from "node:assert/strict";
import { spawnMain } from "./support/run_main.ts";
import { machineTest } from "./support/machine.ts";

/** main.ts deletes only with CAP_NET_ADMIN: these tests need root (kernel stage). */
const asRoot = {
  skip: Deno.uid() === 0
    ? undefined
    : "needs root: main.ts refuses to delete without CAP_NET_ADMIN",
};

machineTest(
  "main.ts keeps polling and deleting after the reader of its stdout goes away",
  async () => {
    const dir = await Deno.makeTempDir();
    const table = `${dir}/nf_conntrack`;
    const calls = `${dir}/calls`;
    const fake = `${dir}/conntrack`;
    await Deno.writeTextFile(
      fake,
      `#!/bin/sh
if [ "$1" = "--version" ]; then echo "conntrack v1.4.7 (conntrack-tools)"; exit 0; fi
cat > /dev/null
echo call >> '${calls}'
`,
    );
    await Deno.chmod(fake, 0o755);
    let timeout = 100;
    const write = () =>
      Deno.writeTextFile(
        table,
        `ipv4     2 tcp      6 ${timeout++} SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=40000 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 mark=0 zone=0 use=2\n`,
      );
    await write();
    const renewer = setInterval(() => void write(), 50); // looks renewed at every poll
    const port = (() => {
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const p = (l.addr as Deno.NetAddr).port;
      l.close();
      return p;
    })();
    const child = spawnMain([
      "--source=procfs",
      `--proc-file=${table}`,
      "--delete-via=conntrack",
      `--conntrack-bin=${fake}`,
      "--interval=100ms",
      "--threshold=0",
      `--listen=127.0.0.1:${port}`,
    ]);
    const stderr = new Response(child.stderr).text();
    const count = async () =>
      (await Deno.readTextFile(calls).catch(() => "")).split("\n").length - 1;
    try {
      // Read until a deletion was logged, then close our end of the pipe, like `| head -n 3`.
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      while (!seen.includes("stale entry was already gone")) {
        const { done, value } = await reader.read();
        assert.ok(!done, `stdout ended early: ${seen}`);
        seen += value;
      }
      await reader.cancel();
      const before = await count();
      await new Promise((r) => setTimeout(r, 1500));
      const after = await count();
      assert.ok(after >= before + 3, `deletions went on: ${before} then ${after}`);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const dropped = Number(
        /^conntrack_cleaner_log_lines_dropped_total (\d+)$/m.exec(metrics)?.[1],
      );
      assert.ok(dropped >= 3, `dropped lines counted: ${dropped}`);
      child.kill("SIGTERM");
      const s = await child.status;
      assert.equal(s.code, 0, await stderr);
    } finally {
      clearInterval(renewer);
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await Deno.remove(dir, { recursive: true });
    }
  },
  asRoot,
);
