import assert from "node:assert/strict";
import { kernelTest } from "../support/machine.ts";
import { withNetns } from "../../testbed/netns.ts";
import { assertStory, httpGet, runScenario } from "./scenario.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

kernelTest("main.ts serves /readyz 200 and /metrics counting the deletions it made", async () => {
  let metrics = "", ready = { status: 0, body: "" }, health = { status: 0, body: "" };
  const r = await runScenario({
    family: "ipv4",
    zone: 0,
    args: ["--listen=127.0.0.1:10395"],
    probe: async (ns) => {
      ready = await httpGet(ns, "http://127.0.0.1:10395/readyz");
      health = await httpGet(ns, "http://127.0.0.1:10395/healthz");
      metrics = (await httpGet(ns, "http://127.0.0.1:10395/metrics")).body;
    },
  });
  assertStory(r, "with --listen");
  assert.deepEqual(ready, { status: 200, body: "ok\n" });
  assert.deepEqual(health, { status: 200, body: "ok\n" });
  assert.match(
    metrics,
    /^conntrack_cleaner_deletions_total\{result="deleted",rule="renewals"\} 3$/m,
  );
  assert.match(
    metrics,
    /^conntrack_cleaner_deletions_total\{result="deleted",rule="unnated"\} 0$/m,
  );
  assert.match(
    metrics,
    /^conntrack_cleaner_deletions_total\{result="failed",rule="renewals"\} 0$/m,
  );
  assert.match(metrics, /^conntrack_cleaner_snapshots_total\{result="ok"\} \d+$/m);
  assert.match(metrics, /^conntrack_cleaner_renewals_total \d+$/m);
  assert.match(metrics, /^conntrack_cleaner_source_info\{source="[a-z]+",deleter="[a-z]+"\} 1$/m);
});

kernelTest("main.ts as PID 1 of its own PID namespace exits 0 within 2 s of SIGTERM", async () => {
  await withNetns("pid1", async (ns) => {
    const child = ns.spawn(
      [
        "unshare",
        "--pid",
        "--fork",
        "--kill-child",
        Deno.execPath(),
        "run",
        "-A",
        MAIN,
        "--listen=127.0.0.1:10395",
      ],
      { stdout: "piped", stderr: "piped", env: { NO_COLOR: "1" } },
    );
    const out = new Response(child.stdout).text();
    const err = new Response(child.stderr).text();
    // The agent is unshare's child: PID 1 inside, some other pid out here.
    let pid: number | undefined;
    for (let i = 0; i < 50 && pid === undefined; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const kids = await Deno.readTextFile(`/proc/${child.pid}/task/${child.pid}/children`).catch(
        () => "",
      );
      pid = kids.trim() ? Number(kids.trim().split(" ")[0]) : undefined;
    }
    assert.ok(pid, "the agent started under unshare");
    const nspid = (await Deno.readTextFile(`/proc/${pid}/status`)).match(/^NSpid:\s+(.*)$/m)![1]!
      .trim().split(/\s+/);
    assert.equal(nspid.at(-1), "1", "it is PID 1 in its namespace");
    // ready means the loop runs and its signal handlers are installed
    for (
      let i = 0;
      i < 50 &&
      (await httpGet(ns, "http://127.0.0.1:10395/readyz").catch(() => ({ status: 0 }))).status !==
        200;
      i++
    ) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const t0 = performance.now();
    Deno.kill(pid, "SIGTERM");
    const status = await child.status;
    const ms = performance.now() - t0;
    const logs = (await out).trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(status.code, 0, await err);
    assert.ok(ms < 2000, `exit took ${ms} ms`);
    assert.deepEqual(logs.slice(-2).map((l) => l.msg), ["shutting down", "stopped"]);
    assert.equal(logs.at(-2).signal, "SIGTERM");
  });
});
