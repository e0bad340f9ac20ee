import assert from "node:assert/strict";
import { DECISIONS_AT_INFO, PollDecisionLog } from "../../lib/log/decision_log.ts";
import { createLogger } from "../../lib/log/logger.ts";

function capture(level: "info" | "debug") {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level, write: (l) => lines.push(JSON.parse(l)) });
  return { log, lines };
}

Deno.test("PollDecisionLog: 10,000 deletions in a poll make the first few info lines and one summary", () => {
  const { log, lines } = capture("info");
  const poll = new PollDecisionLog(log);
  for (let i = 0; i < 10_000; i++) {
    const rule = i % 4 === 0 ? "renewals" : "unnated";
    const result = i % 100 === 0 ? "already_gone" : "deleted";
    poll.say(rule, result, "deleted stale entry", { n: i });
  }
  poll.end();
  assert.equal(lines.length, DECISIONS_AT_INFO + 1);
  assert.deepEqual(lines.slice(0, DECISIONS_AT_INFO).map((l) => l.n), [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
  ]);
  const summary = lines.at(-1)!;
  assert.match(
    String(summary.msg),
    /^10000 stale entries acted on this poll; 10 logged one by one/,
  );
  assert.equal(summary.total, 10_000);
  // Every hundredth is a multiple of 4 too: all already-gone ones are renewals.
  assert.equal(summary.already_gone_renewals, 100);
  assert.equal(summary.already_gone_unnated, undefined);
  assert.equal(summary.deleted_renewals, 2400);
  assert.equal(summary.deleted_unnated, 7500);
});

Deno.test("PollDecisionLog: at debug every decision is still written; a small poll has no summary; counts reset per poll", () => {
  const { log, lines } = capture("debug");
  const poll = new PollDecisionLog(log, 2);
  for (let i = 0; i < 5; i++) {
    poll.say("unnated", "dry_run", "dry run: would delete stale entry", {});
  }
  poll.end();
  assert.deepEqual(lines.map((l) => l.level), ["info", "info", "debug", "debug", "debug", "info"]);
  assert.equal(lines.at(-1)!.dry_run_unnated, 5);
  lines.length = 0;
  poll.say("renewals", "deleted", "deleted stale entry", {});
  poll.say("renewals", "deleted", "deleted stale entry", {});
  poll.end();
  assert.deepEqual(lines.map((l) => [l.level, l.msg]), [
    ["info", "deleted stale entry"],
    ["info", "deleted stale entry"],
  ]);
});
