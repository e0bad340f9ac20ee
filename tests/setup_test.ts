import assert from "node:assert/strict";
import { loadConfig, type Settings } from "../lib/config.ts";
import type { ProcessRunner, RunResult } from "../lib/process.ts";
import { checkConntrack, effectiveCapabilities, setUp, SetupError } from "../lib/setup.ts";
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
/** Settings whose table file is `path` as if it were the default (not named by the user). */
function defaultProcFile(args: string[], path: string): Settings {
  const s = settings(args);
  return { ...s, procFile: path, origin: { ...s.origin, "proc-file": "default" } };
}
const netlinkOk = () => Promise.resolve({ ok: true as const });
const netlinkNo = () =>
  Promise.resolve({ ok: false as const, reason: "EPERM (Operation not permitted)" });
const table = new URL("fixtures/procfs_plain.txt", import.meta.url).pathname;
const missing = "/nonexistent/nf_conntrack";

Deno.test("setUp auto prefers netlink for reading and deleting when a dump works", async () => {
  const p = await setUp(settings([]), { checkNetlink: netlinkOk, runner: conntrack(false) });
  assert.equal(p.source.name, "netlink");
  assert.equal(p.sourceReason, "auto: a ctnetlink dump works");
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

/** `setUp(loadConfig([]))` run inside `ns` (under `prefix`), as the agent would start. */
async function setUpInside(
  ns: Netns,
  prefix: string[],
  args: string[] = [],
): Promise<Record<string, string>> {
  const url = (p: string) => new URL(p, import.meta.url).href;
  const code = `
    import { loadConfig } from ${JSON.stringify(url("../lib/config.ts"))};
    import { setUp } from ${JSON.stringify(url("../lib/setup.ts"))};
    const r = loadConfig(${JSON.stringify(args)}, () => undefined);
    if (r.kind !== "run") throw new Error(r.kind);
    let p;
    try {
      p = await setUp(r.settings);
    } catch (e) {
      console.log(JSON.stringify({ error: String(e) }));
      Deno.exit(0);
    }
    console.log(JSON.stringify({ source: p.source.name, sourceReason: p.sourceReason,
      deleter: p.deleter.name, deleterReason: p.deleterReason }));
    p.source.close?.();
    p.deleter.close?.();`;
  const r = await ns.exec([...prefix, Deno.execPath(), "eval", code]);
  if (r.code !== 0) throw new Error(`setUp in ${ns.name} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

kernelTest(
  "setUp auto on the real kernel uses netlink as root; without CAP_NET_ADMIN it refuses, and a dry run falls back to procfs and the conntrack CLI with EPERM",
  () =>
    withNetns("setup-eperm", async (ns) => {
      const root = await setUpInside(ns, []);
      assert.equal(root.source, "netlink");
      assert.equal(root.deleter, "netlink");
      const drop = ["setpriv", "--bounding-set=-net_admin"];
      const refused = await setUpInside(ns, drop);
      assert.match(String(refused.error), /CAP_NET_ADMIN/, JSON.stringify(refused));
      const dropped = await setUpInside(ns, drop, ["--dry-run"]);
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

Deno.test("checkConntrack says a --version check timed out rather than a wrong exit code", async () => {
  const hung: ProcessRunner = {
    run: () => Promise.resolve({ code: 137, stdout: "", stderr: "", timedOut: true } as RunResult),
  };
  await assert.rejects(
    checkConntrack("/opt/conntrack", hung),
    /"\/opt\/conntrack" did not answer --version within 5 s and was killed/,
  );
});

const capsh = new Deno.Command("sh", { args: ["-c", "command -v capsh"] }).outputSync().success;
const requireTools = Deno.env.get("CI") === "true" ||
  Deno.env.get("CONNTRACK_CLEANER_REQUIRE_KERNEL_TESTS") === "1";

Deno.test({
  name:
    "main.ts under capsh --drop=cap_net_admin exits 1 saying CAP_NET_ADMIN is missing; --dry-run runs" +
    (capsh || requireTools ? "" : " [skipped: capsh (libcap2-bin) is not installed]"),
  ignore: (!capsh && !requireTools) || Deno.uid() !== 0,
  async fn() {
    assert.ok(capsh, "capsh is required in CI (.ci/run installs libcap2-bin)");
    const main = new URL("../main.ts", import.meta.url).pathname;
    const run = (extra: string[]) =>
      new Deno.Command("capsh", {
        args: [
          "--drop=cap_net_admin",
          "--",
          "-c",
          'exec "$0" "$@"',
          Deno.execPath(),
          "run",
          "-A",
          main,
          "--source=procfs",
          `--proc-file=${table}`,
          "--conntrack-bin=/bin/true",
          "--listen=off",
          ...extra,
        ],
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      });
    const refused = await run([]).output();
    const out = new TextDecoder().decode(refused.stdout);
    assert.equal(refused.code, 1, out);
    assert.match(
      out,
      /deleting conntrack entries needs CAP_NET_ADMIN, which this process does not have/,
    );
    assert.ok(!out.includes("conntrack-cleaner starting"), "it never started");
    // A dry run deletes nothing: it starts and polls.
    const dry = run(["--dry-run", "--interval=100ms"]).spawn();
    try {
      const reader = dry.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      while (!seen.includes("conntrack-cleaner starting")) {
        const { done, value } = await reader.read();
        assert.ok(!done, seen);
        seen += value;
      }
      await reader.cancel();
    } finally {
      dry.kill("SIGTERM");
      await dry.status;
      await dry.stderr.cancel();
    }
  },
});
