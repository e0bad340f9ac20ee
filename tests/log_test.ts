/**
 * Logging never stops the agent: a line that cannot be written is dropped
 * and counted (conntrack_cleaner_log_lines_dropped_total), and the loop,
 * deletions included, goes on (through main.ts: log_kernel_test.ts).
 */
import assert from "node:assert/strict";
import { createLogger } from "../lib/log.ts";
import { Metrics } from "../lib/metrics.ts";

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
