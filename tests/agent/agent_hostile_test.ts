import assert from "node:assert/strict";
import { Agent } from "../../lib/agent/agent.ts";
import { ConntrackCliDeleter } from "../../lib/deleters/conntrack_cli.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { ProcfsSource } from "../../lib/sources/procfs.ts";
import { RenewalRule } from "../../lib/rules/renewals.ts";
import { RenewalTracker } from "../../lib/rules/tracker.ts";

const line = (
  o: { src?: string; dst?: string; sport?: string; zone?: string; timeout: number; extra?: string },
) =>
  `ipv4     2 tcp      6 ${o.timeout} SYN_SENT src=${o.src ?? "10.0.0.1"} dst=${
    o.dst ?? "10.0.0.2"
  } sport=${o.sport ?? "40000"} dport=80 [UNREPLIED] ${
    o.extra ?? ""
  }src=10.0.0.2 dst=10.0.0.1 sport=80 dport=40000 mark=0 zone=${o.zone ?? "0"} use=2`;

/** Table lines that "renew" each poll and try to smuggle something into conntrack's argv. */
const HOSTILE: ((timeout: number) => string)[] = [
  (timeout) => line({ timeout, src: "-F" }),
  (timeout) => line({ timeout, src: "10.0.0.1 -F" }),
  (timeout) => line({ timeout, dst: "10.0.0.2\n-F" }),
  (timeout) => line({ timeout, sport: "80;reboot" }),
  (timeout) => line({ timeout, sport: "65536" }),
  (timeout) => line({ timeout, zone: "1 --flush" }),
  (timeout) => line({ timeout, zone: "-1" }),
  (timeout) => line({ timeout, src: "10.0.0.1\0" }),
  (timeout) => line({ timeout, src: "$(touch /tmp/pwned)" }),
  (timeout) => line({ timeout, extra: "src=10.9.9.9 dst=10.9.9.9 sport=1 dport=1 " }),
  (timeout) =>
    `ipv6     10 tcp      6 ${timeout} SYN_SENT src=fe80::1%eth0 dst=fe80::2 sport=1 dport=2 [UNREPLIED] src=fe80::2 dst=fe80::1%eth0 sport=2 dport=1 mark=0 zone=0 use=2`,
];

Deno.test("Agent never lets a hostile table line reach the conntrack command line, and still deletes the valid one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const table = `${dir}/nf_conntrack`;
    const record = `${dir}/calls.log`;
    const fake = `${dir}/conntrack`;
    // A stand-in conntrack that records every argument and its stdin.
    await Deno.writeTextFile(
      fake,
      `#!/bin/sh\nfor a in "$@"; do printf 'ARG %s\\n' "$a" >> '${record}'; done\ncat >> '${record}'\nexit 0\n`,
    );
    await Deno.chmod(fake, 0o755);
    const logs: Record<string, unknown>[] = [];
    const tracker = new RenewalTracker({ threshold: 1 });
    const agent = new Agent({
      source: new ProcfsSource({ path: table }),
      deleter: new ConntrackCliDeleter({ bin: fake }),
      tracker,
      rules: [new RenewalRule(tracker)],
      log: createLogger({ level: "debug", write: (l) => logs.push(JSON.parse(l)) }),
      intervalMs: 1000,
    });
    for (let poll = 0; poll < 5; poll++) {
      const timeout = 100 + 10 * poll; // every entry looks renewed at each poll
      const lines = [line({ timeout, sport: "45000" }), ...HOSTILE.map((h) => h(timeout))];
      await Deno.writeTextFile(table, lines.join("\n") + "\n");
      const r = await agent.pollOnce();
      assert.ok(r.ok);
    }
    const calls = await Deno.readTextFile(record);
    // The valid tuple was handed over, exactly, through `conntrack -R -`:
    assert.match(
      calls,
      /^-D -p tcp -f ipv4 -s 10\.0\.0\.1 -d 10\.0\.0\.2 --sport 45000 --dport 80 -w 0 --state SYN_SENT -u UNREPLIED -o extended$/m,
    );
    const argvAndStdin = calls.split("\n").filter(Boolean);
    for (const l of argvAndStdin) {
      assert.ok(
        l === "ARG -R" || l === "ARG -" ||
          l.startsWith("-D -p tcp -f ipv4 -s 10.0.0.1 -d 10.0.0.2 --sport 45000 "),
        `unexpected: ${JSON.stringify(l)}`,
      );
    }
    for (const bad of ["-F", "--flush", "reboot", "65536", "pwned", "10.9.9.9", "fe80", "\0"]) {
      assert.ok(!calls.includes(bad), `${JSON.stringify(bad)} reached conntrack`);
    }
    const warned = logs.find((l) => l.msg?.toString().startsWith("skipped malformed table lines"));
    assert.ok(warned, "malformed lines are reported");
    assert.equal(warned.malformed, HOSTILE.length + 1); // the embedded newline splits one line in two
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
