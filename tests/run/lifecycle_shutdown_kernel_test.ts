/**
 * SIGTERM while a deletion is in flight, end to end through main.ts, with a
 * stand-in conntrack that takes its time and a table file that keeps looking
 * renewed: procfs source on a file, CLI deleter on a script. main.ts deletes
 * only with CAP_NET_ADMIN, so the deletion tests need root (kernel stage).
 */
import assert from "node:assert/strict";
import { spawnMain } from "../support/run_main.ts";
import { machineTest } from "../support/machine.ts";

/** main.ts deletes only with CAP_NET_ADMIN: these tests need root (kernel stage). */
const asRoot = {
  skip: Deno.uid() === 0
    ? undefined
    : "needs root: main.ts refuses to delete without CAP_NET_ADMIN",
};

async function sigtermDuringDelete(deleteSeconds: number) {
  const dir = await Deno.makeTempDir();
  const table = `${dir}/nf_conntrack`;
  const mark = `${dir}/delete-started`;
  const fake = `${dir}/conntrack`;
  await Deno.writeTextFile(
    fake,
    `#!/bin/sh
if [ "$1" = "--version" ]; then echo "conntrack v1.4.7 (conntrack-tools)"; exit 0; fi
cat > /dev/null
touch '${mark}'
exec sleep ${deleteSeconds}
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
  // Every rewrite pushes the deadline a second later than the clock moves: a renewal each poll.
  const renewer = setInterval(() => void write(), 50);
  const child = spawnMain([
    "--source=procfs",
    `--proc-file=${table}`,
    "--delete-via=conntrack",
    `--conntrack-bin=${fake}`,
    "--interval=100ms",
    "--threshold=0",
    "--listen=off",
  ]);
  const out = new Response(child.stdout).text();
  const err = new Response(child.stderr).text();
  try {
    for (let i = 0; i < 100; i++) {
      if (await Deno.stat(mark).then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(await Deno.stat(mark).then(() => true, () => false), "a deletion started");
    const t0 = performance.now();
    child.kill("SIGTERM");
    const status = await child.status;
    const ms = performance.now() - t0;
    const logs = (await out).trim().split("\n").map((l) => JSON.parse(l));
    return { code: status.code, ms, logs, stderr: await err };
  } finally {
    clearInterval(renewer);
    await Deno.remove(dir, { recursive: true });
  }
}

machineTest(
  "main.ts lets a deletion in flight finish after SIGTERM, then exits 0 within 2 s",
  async () => {
    const r = await sigtermDuringDelete(0.4);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.ms < 2000, `exit took ${r.ms} ms`);
    const msgs = r.logs.map((l) => l.msg);
    const after = msgs.slice(msgs.indexOf("shutting down"));
    assert.ok(
      after.includes("stale entry was already gone (it expired or got its reply)"),
      after.join(" | "),
    );
    assert.ok(!msgs.some((m) => String(m).includes("interrupted")), "it was not cut short");
    assert.equal(msgs.at(-1), "stopped");
  },
  asRoot,
);

machineTest(
  "main.ts kills a deletion still running 1 s after SIGTERM, says so, and exits 0 within 2 s",
  async () => {
    const r = await sigtermDuringDelete(30);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.ms >= 900 && r.ms < 2000, `exit took ${r.ms} ms`);
    const interrupted = r.logs.find((l) =>
      l.msg === "deletion interrupted by shutdown; outcome unknown"
    );
    assert.ok(interrupted, r.logs.map((l) => l.msg).join(" | "));
    assert.equal(interrupted.level, "info");
    assert.ok(!r.logs.some((l) => l.level === "error"), "no error lines at shutdown");
    assert.equal(r.logs.at(-1).msg, "stopped");
  },
  asRoot,
);

Deno.test("main.ts stopped by SIGTERM while its start-up check hangs in a grandchild exits 0 within 2 s and leaves no process", async () => {
  const dir = await Deno.makeTempDir();
  const mark = `${dir}/started`;
  const fake = `${dir}/conntrack`;
  const sleeper = `${800 + (Deno.pid % 100)}.${Date.now() % 100000}`;
  // --version starts a background sleep that keeps the pipes open, and waits for it.
  await Deno.writeTextFile(fake, `#!/bin/sh\ntouch '${mark}'\nsleep ${sleeper} &\nwait\n`);
  await Deno.chmod(fake, 0o755);
  const child = spawnMain([
    "--source=conntrack",
    `--conntrack-bin=${fake}`,
    "--listen=off",
  ]);
  const out = new Response(child.stdout).text();
  const err = new Response(child.stderr).text();
  try {
    for (let i = 0; i < 100 && !(await Deno.stat(mark).then(() => true, () => false)); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const t0 = performance.now();
    child.kill("SIGTERM");
    const status = await child.status;
    const ms = performance.now() - t0;
    assert.equal(status.code, 0, await err);
    assert.ok(ms < 2000, `exit took ${Math.round(ms)} ms`);
    const msgs = (await out).trim().split("\n").map((l) => JSON.parse(l).msg);
    assert.deepEqual(msgs, ["shutting down", "stopped during start-up"]);
    await new Promise((r) => setTimeout(r, 100));
    const left = await new Deno.Command("pgrep", { args: ["-f", `sleep ${sleeper}`] }).output();
    assert.equal(new TextDecoder().decode(left.stdout), "", "no orphan");
  } finally {
    const left = await new Deno.Command("pgrep", { args: ["-f", `sleep ${sleeper}`] }).output();
    for (const pid of new TextDecoder().decode(left.stdout).split("\n").filter(Boolean)) {
      Deno.kill(Number(pid), "SIGKILL");
    }
    await Deno.remove(dir, { recursive: true });
  }
});
