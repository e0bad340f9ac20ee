/**
 * Process figures read from /proc/self, and the standard process_* metrics.
 *
 * `deno task test:unit` runs this file one at a time beside tests/os/process_test.ts, in a
 * process of their own: it counts this process's open files, which other test files running
 * as threads of the same process (`--parallel`) open and close at any moment.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Registry } from "../../lib/serve/prom.ts";
import {
  parseProcess,
  readProcess,
  registerProcessMetrics,
} from "../../lib/serve/process_metrics.ts";

Deno.test("parseProcess reads CPU ticks after a command name with spaces and parentheses", () => {
  const stat = "7 (a (b) c) S 1 7 7 0 -1 0 0 0 0 0 120 30 0 0 20 0 1 0 5 0 0";
  assert.deepEqual(parseProcess({ stat }), { cpuSeconds: 1.5 });
  assert.deepEqual(parseProcess({ limits: "Max open files  unlimited  unlimited  files" }), {
    maxFds: Infinity,
  });
  assert.deepEqual(parseProcess({ stat: "garbage", status: "VmRSS: lots" }), {});
});

Deno.test("readProcess reads this process: RSS, address space, fds and CPU are plausible", () => {
  const s = readProcess();
  const status = Deno.readTextFileSync("/proc/self/status");
  const rss = Number(/^VmRSS:\s+(\d+)/m.exec(status)![1]) * 1024;
  assert.ok(Math.abs(s.residentBytes! - rss) < 64 << 20, `${s.residentBytes} vs ${rss}`);
  assert.ok(s.virtualBytes! >= s.residentBytes!);
  assert.ok(s.openFds! >= 3 && s.openFds! <= s.maxFds!, `${s.openFds} of ${s.maxFds}`);
  using _f = Deno.openSync("/proc/self/status");
  assert.equal(readProcess().openFds, s.openFds! + 1, "one more open file is seen");
  assert.ok(s.cpuSeconds! > 0);
  assert.deepEqual(readProcess("/nonexistent"), {});
});

Deno.test("registerProcessMetrics exports the standard names, one read per rendering, no heap figure", () => {
  const r = new Registry();
  let reads = 0;
  const samples = [
    { cpuSeconds: 2, residentBytes: 100, virtualBytes: 900, openFds: 9, maxFds: 1024 },
    { cpuSeconds: 1, residentBytes: 120 }, // CPU seconds never go down; missing fields keep theirs
  ];
  registerProcessMetrics(r, { read: () => samples[Math.min(reads++, 1)]!, startSeconds: 1700 });
  const first = r.metrics();
  assert.equal(reads, 1);
  const values = (text: string) =>
    Object.fromEntries(
      text.split("\n").filter((l) => l && !l.startsWith("#")).map((l) => l.split(" ")),
    );
  assert.deepEqual(values(first), {
    process_cpu_seconds_total: "2",
    process_resident_memory_bytes: "100",
    process_virtual_memory_bytes: "900",
    process_start_time_seconds: "1700",
    process_open_fds: "9",
    process_max_fds: "1024",
  });
  const second = values(r.metrics());
  assert.equal(second.process_cpu_seconds_total, "2");
  assert.equal(second.process_resident_memory_bytes, "120");
  assert.equal(second.process_open_fds, "9");
  assert.doesNotMatch(first, /heap/);
});
