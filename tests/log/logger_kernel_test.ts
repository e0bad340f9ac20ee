/**
 * Logging never stops the agent, through main.ts: after the reader of its
 * stdout goes away, it keeps polling and deleting. main.ts deletes only with
 * CAP_NET_ADMIN, so this needs root (kernel stage).
 */
import assert from "node:assert/strict";
import { spawnMain } from "../support/run_main.ts";
import { machineTest } from "../support/machine.ts";
import { freePort } from "../../testbed/free_port.ts";

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
    const port = freePort();
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

machineTest(
  "main.ts with a stalled stdout reader: 3,000 deletions to log, every entry deleted, /healthz answers throughout",
  async () => {
    const dir = await Deno.makeTempDir();
    const table = `${dir}/nf_conntrack`;
    const fake = `${dir}/conntrack`;
    // A stand-in that deletes for real: the lines it is asked for leave the table.
    await Deno.writeTextFile(
      fake,
      `#!/bin/sh
if [ "$1" = "--version" ]; then echo "conntrack v1.4.7 (conntrack-tools)"; exit 0; fi
sed -n 's/.* --sport \\([0-9]*\\) .*/sport=\\1 /p' > '${dir}/asked'
grep -F -f '${dir}/asked' '${table}'
grep -v -F -f '${dir}/asked' '${table}' > '${table}.new'
mv '${table}.new' '${table}'
exit 0
`,
    );
    await Deno.chmod(fake, 0o755);
    const lines = Array.from(
      { length: 3000 },
      (_, i) =>
        `ipv4     2 tcp      6 100 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=${
          20000 + i
        } dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=${
          20000 + i
        } mark=0 zone=0 use=2\n`,
    );
    await Deno.writeTextFile(table, lines.join(""));
    const port = freePort();
    // stdout is piped and never read: the pipe fills after ~200 lines.
    const child = spawnMain([
      "--source=procfs",
      `--proc-file=${table}`,
      "--delete-via=conntrack",
      `--conntrack-bin=${fake}`,
      "--interval=100ms",
      "--destinations=10.0.0.2/32:80",
      "--unnated-after=0s",
      `--listen=127.0.0.1:${port}`,
      // Every decision line written (past the first 10 of a poll they are at debug).
      "--log-level=debug",
    ]);
    const stderr = new Response(child.stderr).text();
    const probe = async () => {
      try {
        const r = await fetch(`http://127.0.0.1:${port}/healthz`, {
          signal: AbortSignal.timeout(2000),
        });
        await r.body?.cancel();
        return r.status;
      } catch (e) {
        return e instanceof Error ? e.name : String(e);
      }
    };
    try {
      const left = async () =>
        (await Deno.readTextFile(table)).split("\n").filter((l) => l !== "").length;
      const answers: (number | string)[] = [];
      const deadline = performance.now() + 30_000;
      // Until the agent listens; then every probe must answer 200.
      while (typeof (await probe()) !== "number") await new Promise((r) => setTimeout(r, 100));
      while (await left() > 0 && performance.now() < deadline) {
        answers.push(await probe());
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(await left(), 0, "every stale entry was deleted");
      assert.ok(answers.length >= 3, `probed ${answers.length} times`);
      assert.deepEqual(answers.filter((a) => a !== 200), [], "/healthz answered 200 throughout");
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const dropped = Number(
        /^conntrack_cleaner_log_lines_dropped_total (\d+)$/m.exec(metrics)?.[1],
      );
      assert.ok(dropped > 0, `lines that did not fit were dropped and counted: ${dropped}`);
      child.kill("SIGTERM");
      const s = await child.status;
      assert.equal(s.code, 0, await stderr);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
      await child.stdout.cancel().catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
  asRoot,
);
