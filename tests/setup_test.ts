import assert from "node:assert/strict";
import { loadConfig, type Settings } from "../lib/config.ts";
import type { ProcessRunner, RunResult } from "../lib/process.ts";
import { setUp, SetupError } from "../lib/setup.ts";

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
