/**
 * The agent's debug lines for kept candidates (lib/decision_log.ts's PollKeptLog): one per
 * candidate the rules considered and kept, with why, only when asked.
 */
import assert from "node:assert/strict";
import { Agent } from "../../lib/agent/agent.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { RenewalTracker } from "../../lib/rules/tracker.ts";
import { RenewalRule } from "../../lib/rules/renewals.ts";
import { FakeTable } from "../support/fake_table.ts";
import { sampleTuple } from "../support/sample_tuple.ts";

/**
 * Two candidates: sport 1's client sends its SYN again every second (renewed at every read),
 * sport 2's entry, a second old when the clock starts, is never renewed. Reads every 3 s.
 */
function twoEntries(): FakeTable {
  const table = new FakeTable([
    { ...sampleTuple({ sport: 1 }), unreplied: true, createdAt: 0, retransmits: true },
    { ...sampleTuple({ sport: 2 }), unreplied: true, createdAt: -1000 },
  ]);
  table.readMs = 1;
  return table;
}

async function polls(logKept: boolean, n: number) {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  const table = twoEntries();
  const tracker = new RenewalTracker({ threshold: 1 });
  const agent = new Agent({
    source: table,
    deleter: table,
    tracker,
    rules: [new RenewalRule(tracker)],
    log,
    intervalMs: 1000,
    clock: () => table.now,
    logKept,
  });
  const byPoll: Record<string, unknown>[][] = [];
  for (let i = 0; i < n; i++) {
    table.now = 3000 * (i + 1);
    lines.length = 0;
    await agent.pollOnce();
    byPoll.push(lines.filter((l) => l.msg === "kept candidate"));
  }
  return byPoll;
}

Deno.test("Agent with logKept says each kept candidate and its reason at debug, never one it deletes", async () => {
  const byPoll = await polls(true, 3);
  const said = byPoll.map((p) => p.map((l) => [l.level, l.sport, l.reason]));
  assert.deepEqual(said, [
    [
      ["debug", 1, "renewals: renewed 0 times, not more than the threshold 1"],
      ["debug", 2, "renewals: renewed 0 times, not more than the threshold 1"],
    ],
    [
      ["debug", 1, "renewals: renewed 1 time, not more than the threshold 1"],
      ["debug", 2, "renewals: renewed 0 times, not more than the threshold 1"],
    ],
    // Third read: sport 1 is renewed a second time and deleted, so not kept.
    [["debug", 2, "renewals: renewed 0 times, not more than the threshold 1"]],
  ]);
});

Deno.test("Agent without logKept writes no kept-candidate line, even with a debug logger", async () => {
  const byPoll = await polls(false, 3);
  assert.deepEqual(byPoll, [[], [], []]);
});
