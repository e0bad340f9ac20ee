import assert from "node:assert/strict";
import { loadConfig, type Settings } from "../lib/config.ts";
import type { ProcessRunner, RunResult } from "../lib/process.ts";
import { setUp, SetupError } from "../lib/setup.ts";
import { kernelTest } from "./support/kernel_test.ts";
import { type Netns, withNetns } from "./support/netns.ts";

function settings(args: string[]): Settings {
  const r = loadConfig(args, () => undefined);
  if (r.kind !== "run") throw new Error(r.kind);
  return r.settings;
}
const conntrack = (ok: boolean): ProcessRunner => ({
  run: (): Promise<RunResult> =>
    Promise.resolve(
      ok
        ? { code: 0, stdout: "conntrack v1.4.7 (conntrack-tools)\n", stderr: "", timedOut: false }
        : { code: -1, stdout: "", stderr: "", timedOut: false, spawnError: "conntrack: not found" },
    ),
});
const netlinkOk = () => Promise.resolve({ ok: true as const });
const netlinkNo = () =>
  Promise.resolve({ ok: false as const, reason: "EPERM (Operation not permitted)" });
const table = new URL("fixtures/procfs_plain.txt", import.meta.url).pathname;
const missing = "/nonexistent/nf_conntrack";

Deno.test("setUp auto prefers netlink for reading and deleting when a dump works", async () => {
  const p = await setUp(settings([]), { probe: netlinkOk, runner: conntrack(false) });
  assert.equal(p.source.name, "netlink");
  assert.equal(p.sourceReason, "auto: a ctnetlink dump works");
  assert.equal(p.deleter.name, "netlink");
  assert.equal(p.maxDeletesPerPoll, 10_000);
  p.source.close?.();
  p.deleter.close?.();
});

Deno.test("setUp auto falls back to procfs and the conntrack CLI, saying why", async () => {
  const p = await setUp(settings([`--proc-file=${table}`]), {
    probe: netlinkNo,
    runner: conntrack(true),
  });
  assert.equal(p.source.name, "procfs");
  assert.match(p.sourceReason, /^auto: netlink: EPERM .*; .* is readable$/);
  assert.equal(p.deleter.name, "conntrack");
  assert.match(p.deleterReason, /netlink: EPERM .*using the conntrack CLI/);
  assert.equal(p.maxDeletesPerPoll, 100);
});

Deno.test("setUp auto reads with conntrack -L when neither netlink nor procfs works", async () => {
  const p = await setUp(settings([`--proc-file=${missing}`]), {
    probe: netlinkNo,
    runner: conntrack(true),
  });
  assert.equal(p.source.name, "conntrack");
  assert.match(p.sourceReason, /CONFIG_NF_CONNTRACK_PROCFS.*using conntrack -L/);
});

Deno.test("setUp refuses to start, naming every reason, when nothing can read the table", async () => {
  const e = await setUp(settings([`--proc-file=${missing}`]), {
    probe: netlinkNo,
    runner: conntrack(false),
  })
    .then(() => undefined, (e) => e);
  assert.ok(e instanceof SetupError);
  assert.match(
    e.message,
    /no way to read the conntrack table: netlink: EPERM.*procfs: .*does not exist.*conntrack: .*not found/,
  );
});

Deno.test("setUp refuses an explicit netlink choice that does not work", async () => {
  await assert.rejects(
    setUp(settings(["--source=netlink"]), { probe: netlinkNo }),
    /--source=netlink: a ctnetlink dump does not work: EPERM/,
  );
  await assert.rejects(
    setUp(settings([`--proc-file=${table}`, "--delete-via=netlink"]), { probe: netlinkNo }),
    /--delete-via=netlink: ctnetlink does not work: EPERM/,
  );
});

Deno.test("setUp needs no conntrack binary for a dry run", async () => {
  const p = await setUp(settings([`--proc-file=${table}`, "--dry-run"]), {
    probe: netlinkNo,
    runner: conntrack(false),
  });
  assert.equal(p.deleter.name, "conntrack");
  await assert.rejects(
    setUp(settings([`--proc-file=${table}`]), { probe: netlinkNo, runner: conntrack(false) }),
    /conntrack binary "conntrack" cannot run \(conntrack: not found\); install conntrack-tools/,
  );
});

/** `setUp(loadConfig([]))` run inside `ns` (under `prefix`), as the agent would start. */
async function setUpInside(ns: Netns, prefix: string[]): Promise<Record<string, string>> {
  const url = (p: string) => new URL(p, import.meta.url).href;
  const code = `
    import { loadConfig } from ${JSON.stringify(url("../lib/config.ts"))};
    import { setUp } from ${JSON.stringify(url("../lib/setup.ts"))};
    const r = loadConfig([], () => undefined);
    if (r.kind !== "run") throw new Error(r.kind);
    const p = await setUp(r.settings);
    console.log(JSON.stringify({ source: p.source.name, sourceReason: p.sourceReason,
      deleter: p.deleter.name, deleterReason: p.deleterReason }));
    p.source.close?.();
    p.deleter.close?.();`;
  const r = await ns.exec([...prefix, Deno.execPath(), "eval", code]);
  if (r.code !== 0) throw new Error(`setUp in ${ns.name} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

kernelTest(
  "setUp auto on the real kernel uses netlink as root, and falls back to procfs and the conntrack CLI with EPERM when CAP_NET_ADMIN is dropped",
  () =>
    withNetns("setup-eperm", async (ns) => {
      const root = await setUpInside(ns, []);
      assert.equal(root.source, "netlink");
      assert.equal(root.deleter, "netlink");
      const dropped = await setUpInside(ns, ["setpriv", "--bounding-set=-net_admin"]);
      assert.equal(dropped.source, "procfs", JSON.stringify(dropped));
      assert.match(
        dropped.sourceReason,
        /^auto: netlink: .*EPERM.*; \/proc\/net\/nf_conntrack is readable$/,
      );
      assert.equal(dropped.deleter, "conntrack");
      assert.match(dropped.deleterReason, /^auto: netlink: .*EPERM.*; using the conntrack CLI$/);
    }),
  { needs: ["setpriv"] },
);
