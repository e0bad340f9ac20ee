/**
 * Logging never stops the agent: a line that cannot be written is dropped
 * and counted (conntrack_cleaner_log_lines_dropped_total), and the loop,
 * deletions included, goes on (through main.ts: log_kernel_test.ts).
 */
import assert from "node:assert/strict";
import { createLogger } from "../../lib/log/logger.ts";
import { Metrics } from "../../lib/serve/metrics.ts";

Deno.test("createLogger drops and counts lines its writer throws on, and goes on writing", async () => {
  const out: string[] = [];
  let broken = false;
  const log = createLogger({
    write: (l) => {
      if (broken) throw new Deno.errors.BrokenPipe("Broken pipe (os error 32)");
      out.push(l);
    },
  });
  log.info("one");
  broken = true;
  log.info("two");
  log.error("three");
  broken = false;
  log.warn("four");
  assert.deepEqual(out.map((l) => JSON.parse(l).msg), ["one", "four"]);
  assert.equal(log.dropped?.(), 2);
  const m = new Metrics({
    version: "t",
    deno: "t",
    source: "procfs",
    deleter: "conntrack",
    processMetrics: false,
    logLinesDropped: () => log.dropped?.() ?? 0,
  });
  assert.match(await m.registry.metrics(), /^conntrack_cleaner_log_lines_dropped_total 2$/m);
  log.info("five", {});
  broken = true;
  log.info("six");
  assert.match(await m.registry.metrics(), /^conntrack_cleaner_log_lines_dropped_total 3$/m);
});

Deno.test("--log-format=text writes logfmt: time, level, msg, then the fields, quoted where logfmt needs it", () => {
  const lines: string[] = [];
  const log = createLogger({
    format: "text",
    write: (l) => lines.push(l),
    now: () => new Date(Date.UTC(2026, 0, 2, 3, 4, 5)),
  });
  log.warn("deleted stale entry", {
    rule: "unnated",
    src: "10.0.0.1:40000",
    dst: "[2001:db8::1]:443",
    reason: 'dst "NATed" now\tand=ok\\',
    zone: 0,
    big: 12n,
    err: new Error("EPERM: not allowed"),
    "bad key": "",
    rules: ["renewals", "unnated"],
  });
  assert.equal(
    lines[0],
    'time=2026-01-02T03:04:05.000Z level=warn msg="deleted stale entry" rule=unnated ' +
      'src=10.0.0.1:40000 dst=[2001:db8::1]:443 reason="dst \\"NATed\\" now\\tand=ok\\\\" zone=0 ' +
      'big=12 err="EPERM: not allowed" bad_key="" rules=renewals,unnated',
  );
  // Every pair parses back with a plain logfmt reader.
  const pairs = [...lines[0]!.matchAll(/([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)/g)].map((m) => m[1]);
  assert.deepEqual(pairs, [
    "time",
    "level",
    "msg",
    "rule",
    "src",
    "dst",
    "reason",
    "zone",
    "big",
    "err",
    "bad_key",
    "rules",
  ]);
});
