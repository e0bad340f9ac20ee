import assert from "node:assert/strict";
import { createLogger } from "../../lib/log/logger.ts";
import { QuietLog } from "../../lib/log/quiet_log.ts";

function setup() {
  let now = 0;
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  const quiet = new QuietLog(log, () => now);
  return { quiet, lines, tick: (ms: number) => (now += ms) };
}

Deno.test("QuietLog.warn says a message at warn once a minute, at debug in between", () => {
  const { quiet, lines, tick } = setup();
  quiet.warn("m", { a: 1 });
  tick(59_999);
  quiet.warn("m", { a: 2 });
  quiet.warn("other", {});
  tick(1);
  quiet.warn("m", { a: 3 });
  assert.deepEqual(lines.map((l) => [l.level, l.a ?? null]), [
    ["warn", 1],
    ["debug", 2],
    ["warn", null],
    ["warn", 3],
  ]);
});

Deno.test("QuietLog.errorPerCause says each cause once a minute with the lines held back", () => {
  const { quiet, lines, tick } = setup();
  quiet.errorPerCause("delete failed", "EPERM", { t: 1 });
  quiet.errorPerCause("delete failed", "EPERM", { t: 2 });
  quiet.errorPerCause("delete failed", "EPERM", { t: 3 });
  quiet.errorPerCause("delete failed", "timeout", { t: 4 });
  tick(60_000);
  quiet.errorPerCause("delete failed", "EPERM", { t: 5 });
  const errors = lines.filter((l) => l.level === "error");
  assert.deepEqual(errors.map((l) => [l.error, l.held_back, l.t]), [
    ["EPERM", 0, 1],
    ["timeout", 0, 4],
    ["EPERM", 2, 5],
  ]);
  assert.equal(lines.filter((l) => l.level === "debug").length, 2);
});
