/**
 * The agent's debug lines for kept candidates (lib/decision_log.ts's PollKeptLog): one per
 * candidate the rules considered and kept, with why, only when asked.
 */
import assert from "node:assert/strict";
import { Agent } from "../../lib/agent/agent.ts";
import type { Snapshot } from "../../lib/model/snapshot.ts";
import type { DeleteOutcome, Deleter } from "../../lib/deleters/deleter.ts";
import { createLogger } from "../../lib/log/logger.ts";
import type { Source } from "../../lib/sources/source.ts";
import { RenewalTracker } from "../../lib/rules/tracker.ts";
import { RenewalRule } from "../../lib/rules/renewals.ts";
import type { Tuple } from "../../lib/model/tuple.ts";

/** Two candidates: sport 1 renewed to 120 s at every read, sport 2 never renewed. */
class TwoEntries implements Source {
  name = "fake";
  t = 0;
  snapshot(): Promise<Snapshot> {
    const start = (this.t += 3000);
    const c = (sport: number, timeout: number) => ({
      family: "ipv4" as const,
      src: "10.0.0.1",
      dst: "10.0.0.2",
      sport,
      dport: 80,
      zone: 0,
      timeout,
      seenFrom: start,
      seenTo: start + 1,
    });
    return Promise.resolve({
      candidates: [c(1, 119), c(2, 119 - this.t / 1000)],
      scanned: 2,
      malformed: 0,
      startedAt: start,
      finishedAt: start + 1,
    });
  }
}

const deleter: Deleter = {
  name: "fake",
  maxPerPoll: Infinity,
  worstCaseMs: () => 0,
  delete: (tuples: readonly Tuple[]): Promise<DeleteOutcome[]> =>
    Promise.resolve(tuples.map((tuple) => ({ tuple, result: "deleted" as const }))),
};

async function polls(logKept: boolean, n: number) {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  const source = new TwoEntries();
  const tracker = new RenewalTracker({ threshold: 1 });
  const agent = new Agent({
    source,
    deleter,
    tracker,
    rules: [new RenewalRule(tracker)],
    log,
    intervalMs: 1000,
    clock: () => source.t,
    logKept,
  });
  const byPoll: Record<string, unknown>[][] = [];
  for (let i = 0; i < n; i++) {
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
