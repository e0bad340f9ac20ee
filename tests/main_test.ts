import assert from "node:assert/strict";
import { runMain } from "./support/run_main.ts";
import { livenessLimits } from "../lib/run/start.ts";
import { ConntrackCliDeleter } from "../lib/deleters/conntrack_cli.ts";
import { NetlinkDeleter } from "../lib/deleters/netlink.ts";

Deno.test("main exits 2 at once for a bad setting, naming it, its value and the accepted form", async () => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["--interval=10ms"], {}, /invalid --interval "10ms": expected a Go duration/],
    [
      [],
      { CONNTRACK_TABLE_DUMP_FREQUENCY: "often" },
      /invalid CONNTRACK_TABLE_DUMP_FREQUENCY "often"/,
    ],
    [
      [],
      { CONNECTION_RENEWAL_THRESHOLD: "three" },
      /invalid CONNECTION_RENEWAL_THRESHOLD "three": expected a whole number/,
    ],
    [["--listen=everywhere"], {}, /invalid --listen "everywhere"/],
    [["--no-such-flag"], {}, /unknown flag --no-such-flag/],
  ];
  for (const [args, env, want] of cases) {
    const r = await runMain(args, env);
    assert.equal(r.code, 2, `${args} ${JSON.stringify(env)}: ${r.stderr}`);
    assert.match(r.stderr, want);
    assert.match(r.stderr, /Try 'conntrack-cleaner --help'/);
    assert.equal(r.stdout, "", "nothing started");
  }
});

Deno.test("main --help lists every flag with its environment variable, and --version names the build", async () => {
  const help = await runMain(["--help"]);
  assert.equal(help.code, 0);
  for (
    const s of [
      "--interval",
      "CONNTRACK_TABLE_DUMP_FREQUENCY",
      "--threshold",
      "CONNECTION_RENEWAL_THRESHOLD",
      "--dry-run",
      "--listen",
      "--source",
      "--delete-via",
      "--proc-file",
      "--conntrack-bin",
      "--log-format",
      "--log-level",
    ]
  ) {
    assert.ok(help.stdout.includes(s), s);
  }
  const version = await runMain(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^conntrack-cleaner \d+\.\d+\.\d+ \(deno \d+\.\d+\.\d+\)\n$/);
});

Deno.test("main exits 1 with one clear line when the table file is missing", async () => {
  const r = await runMain([
    "--source=procfs",
    "--proc-file=/nonexistent/nf_conntrack",
    "--listen=off",
  ]);
  assert.equal(r.code, 1);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(lines.length, 1);
  assert.equal(lines[0].level, "error");
  assert.match(
    lines[0].msg,
    /\/nonexistent\/nf_conntrack does not exist: the kernel needs CONFIG_NF_CONNTRACK_PROCFS/,
  );
});

Deno.test("livenessLimits derives the /healthz poll limit from the deleter's worst case and the source's timeout", () => {
  const cli = new ConntrackCliDeleter();
  const netlink = new NetlinkDeleter();
  // CLI: one -R process per 100 tuples, 5 s + 1 s per tuple; two snapshots' timeouts; grace.
  assert.deepEqual(livenessLimits(1000, { deleter: cli, sourceTimeoutMs: 30_000 }), {
    idleMs: 31_000,
    pollMs: 60_000 + 105_000 + 30_000,
  });
  // netlink: 10,000 per poll in batches of 128, each waiting up to 2 × 5 s.
  assert.deepEqual(livenessLimits(1000, { deleter: netlink, sourceTimeoutMs: 30_000 }), {
    idleMs: 31_000,
    pollMs: 60_000 + 79 * 10_000 + 30_000,
  });
  netlink.close();
});
