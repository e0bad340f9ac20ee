import assert from "node:assert/strict";
import { loadConfig, type Settings } from "../../lib/run/config.ts";
import type { ProcessRunner, RunResult } from "../../lib/os/process.ts";
import { setUp as realSetUp, type SetupOptions } from "../../lib/run/setup.ts";
import {
  CAP_NET_ADMIN,
  CHECK_TIMEOUT_MS,
  checkConntrack,
  effectiveCapabilities,
  SetupError,
} from "../../lib/run/checks.ts";

/**
 * setUp with CAP_NET_ADMIN present unless a test says otherwise, so that
 * these tests do not depend on who runs them (the unit stage needs no root).
 */
const setUp = (settings: Settings, options: SetupOptions = {}) =>
  realSetUp(settings, { capabilities: () => 1n << BigInt(CAP_NET_ADMIN), ...options });

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
/** Settings whose table file is `path` as if it were the default (not named by the user). */
function defaultProcFile(args: string[], path: string): Settings {
  const s = settings(args);
  return { ...s, procFile: path, origin: { ...s.origin, "proc-file": "default" } };
}
const netlinkOk = () => Promise.resolve({ ok: true as const });
const netlinkNo = () =>
  Promise.resolve({ ok: false as const, reason: "EPERM (Operation not permitted)" });
const table = new URL("../fixtures/procfs_plain.txt", import.meta.url).pathname;
const missing = "/nonexistent/nf_conntrack";

Deno.test("setUp auto prefers events, then netlink for reading, and netlink for deleting, when a dump works", async () => {
  const p = await setUp(settings([]), {
    checkNetlink: netlinkOk,
    checkEvents: netlinkOk,
    runner: conntrack(false),
  });
  assert.equal(p.source.name, "events");
  assert.equal(p.sourceReason, "auto: conntrack events and a ctnetlink dump work");
  assert.ok(p.sourceStats !== undefined, "its counters reach the metrics");
  p.source.close?.();
  const q = await setUp(settings([]), {
    checkNetlink: netlinkOk,
    checkEvents: netlinkNo,
    runner: conntrack(false),
  });
  assert.equal(q.source.name, "netlink");
  assert.equal(
    q.sourceReason,
    "auto: events: EPERM (Operation not permitted); a ctnetlink dump works",
  );
  assert.equal(q.sourceStats, undefined);
  q.source.close?.();
  q.deleter.close?.();
  await assert.rejects(
    setUp(settings(["--source=events"]), { checkNetlink: netlinkOk, checkEvents: netlinkNo }),
    /--source=events: conntrack events do not work: EPERM/,
  );
  await assert.rejects(
    setUp(settings(["--source=events"]), { checkNetlink: netlinkNo, checkEvents: netlinkOk }),
    /--source=events: a ctnetlink dump does not work: EPERM/,
  );
  assert.equal(p.deleter.name, "netlink");
  assert.equal(p.deleter.maxPerPoll, 10_000);
  p.source.close?.();
  p.deleter.close?.();
});

Deno.test("setUp auto falls back to procfs and the conntrack CLI, saying why", async () => {
  const p = await setUp(defaultProcFile([], table), {
    checkNetlink: netlinkNo,
    runner: conntrack(true),
  });
  assert.equal(p.source.name, "procfs");
  assert.match(p.sourceReason, /^auto: netlink: EPERM .*; .* is readable$/);
  assert.equal(p.deleter.name, "conntrack");
  assert.match(p.deleterReason, /netlink: EPERM .*using the conntrack CLI/);
  assert.equal(p.deleter.maxPerPoll, 100);
});

Deno.test("setUp auto reads with conntrack -L when neither netlink nor procfs works", async () => {
  const p = await setUp(defaultProcFile([], missing), {
    checkNetlink: netlinkNo,
    runner: conntrack(true),
  });
  assert.equal(p.source.name, "conntrack");
  assert.match(p.sourceReason, /CONFIG_NF_CONNTRACK_PROCFS.*using conntrack -L/);
});

Deno.test("setUp refuses to start, naming every reason, when nothing can read the table", async () => {
  const e = await setUp(defaultProcFile([], missing), {
    checkNetlink: netlinkNo,
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
    setUp(settings(["--source=netlink"]), { checkNetlink: netlinkNo }),
    /--source=netlink: a ctnetlink dump does not work: EPERM/,
  );
  await assert.rejects(
    setUp(settings([`--proc-file=${table}`, "--delete-via=netlink"]), { checkNetlink: netlinkNo }),
    /--delete-via=netlink: ctnetlink does not work: EPERM/,
  );
});

Deno.test("setUp needs no conntrack binary for a dry run", async () => {
  const p = await setUp(settings([`--proc-file=${table}`, "--dry-run"]), {
    checkNetlink: netlinkNo,
    runner: conntrack(false),
  });
  assert.equal(p.deleter.name, "conntrack");
  await assert.rejects(
    setUp(settings([`--proc-file=${table}`]), {
      checkNetlink: netlinkNo,
      runner: conntrack(false),
    }),
    /conntrack binary "conntrack" cannot run \(conntrack: not found\); install conntrack-tools/,
  );
});

Deno.test("setUp auto reads the file --proc-file names, even where netlink works, and says so", async () => {
  const p = await setUp(settings([`--proc-file=${table}`]), {
    checkNetlink: netlinkOk,
    runner: conntrack(true),
  });
  assert.equal(p.source.name, "procfs");
  assert.equal(p.sourceReason, "auto: --proc-file was given");
  await assert.rejects(
    setUp(settings([`--proc-file=${missing}`]), {
      checkNetlink: netlinkOk,
      runner: conntrack(true),
    }),
    /the conntrack table \/nonexistent\/nf_conntrack does not exist/,
  );
  p.deleter.close?.();
});

Deno.test("setUp refuses a FIFO, a device or a directory as --proc-file without opening it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fifo = `${dir}/fifo`;
    const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert.ok(mk.success, "mkfifo");
    for (
      const [path, kind] of [[fifo, "a FIFO"], ["/dev/zero", "a character device"], [
        dir,
        "a directory",
      ]]
    ) {
      for (const source of ["procfs", "auto"]) {
        // A blocking open of the FIFO would hang this test: it must be refused first.
        await assert.rejects(
          setUp(settings([`--proc-file=${path}`, `--source=${source}`]), {
            checkNetlink: netlinkNo,
            runner: conntrack(true),
          }),
          new RegExp(`--proc-file: ${path} is ${kind}: the table must be a regular or procfs file`),
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("setUp refuses to run without CAP_NET_ADMIN unless it is a dry run", async () => {
  const noNetAdmin = () => 0x00000000a80425fbn; // a container runtime's default set
  for (const via of ["auto", "conntrack", "netlink"]) {
    await assert.rejects(
      setUp(settings([`--proc-file=${table}`, `--delete-via=${via}`]), {
        checkNetlink: netlinkNo,
        runner: conntrack(true),
        capabilities: noNetAdmin,
      }),
      /deleting conntrack entries needs CAP_NET_ADMIN, which this process does not have \(CapEff 00000000a80425fb .*or pass --dry-run/,
    );
  }
  const dry = await setUp(settings([`--proc-file=${table}`, "--dry-run"]), {
    checkNetlink: netlinkNo,
    runner: conntrack(true),
    capabilities: noNetAdmin,
  });
  assert.equal(dry.source.name, "procfs");
  const full = await setUp(settings([`--proc-file=${table}`]), {
    checkNetlink: netlinkNo,
    runner: conntrack(true),
    capabilities: () => 0x00000000a80435fbn, // the same plus NET_ADMIN
  });
  assert.equal(full.deleter.name, "conntrack");
});

Deno.test("effectiveCapabilities reads CapEff from a status file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/status`, "Name:\tx\nCapInh:\t0\nCapEff:\t000001ffffffffff\n");
    assert.equal(effectiveCapabilities(`${dir}/status`), 0x1ffffffffffn);
    assert.equal(effectiveCapabilities(`${dir}/missing`), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("checkConntrack says a --version check timed out rather than a wrong exit code; its limit is 5 s unless given", async () => {
  const limits: number[] = [];
  const hung: ProcessRunner = {
    run: (_cmd, _args, options) => {
      limits.push(options.timeoutMs);
      return Promise.resolve({ code: 137, stdout: "", stderr: "", timedOut: true } as RunResult);
    },
  };
  await assert.rejects(
    checkConntrack("/opt/conntrack", hung),
    /"\/opt\/conntrack" did not answer --version within 5 s and was killed/,
  );
  await assert.rejects(
    checkConntrack("/opt/conntrack", hung, 250),
    /"\/opt\/conntrack" did not answer --version within 0\.25 s and was killed/,
  );
  assert.equal(CHECK_TIMEOUT_MS, 5000);
  assert.deepEqual(limits, [5000, 250], "the runner is given the default, then the limit asked");
});
