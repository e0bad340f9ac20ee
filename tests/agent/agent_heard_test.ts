/**
 * Agent.pollOnce with candidates only heard of (`Candidate.heard`, the
 * events source's first observation of a new entry): the renewal tracker
 * takes them, no rule sees them.
 */
import assert from "node:assert/strict";
import { Agent } from "../../lib/agent/agent.ts";
import type { Candidate, Snapshot } from "../../lib/model/snapshot.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { RenewalTracker } from "../../lib/rules/tracker.ts";
import type { Rule, RuleInput } from "../../lib/rules/rule.ts";
import type { Source } from "../../lib/sources/source.ts";
import { sampleTuple } from "../support/sample_tuple.ts";

Deno.test("Agent.pollOnce acts on no heard candidate (the tracker and the rules see it, its decisions are dropped); the same entry read later is decided", async () => {
  const heard: Candidate = {
    ...sampleTuple(),
    timeout: 120,
    seenFrom: 0,
    seenTo: 900,
    heard: true,
  };
  const read: Candidate = { ...sampleTuple(), timeout: 119, seenFrom: 1000, seenTo: 1005 };
  const reads: Candidate[][] = [[heard], [read]];
  let now = 0;
  const source: Source = {
    name: "stub",
    snapshot: (): Promise<Snapshot> =>
      Promise.resolve({
        candidates: reads.shift()!,
        scanned: 1,
        malformed: 0,
        startedAt: now,
        finishedAt: now,
      }),
  };
  const seen: Candidate[][] = [];
  // Would delete every candidate it is given.
  const everything = {
    name: "renewals",
    decide: (i: RuleInput) => {
      seen.push([...i.snapshot.candidates]);
      return i.snapshot.candidates.map((c) => ({ rule: "renewals", tuple: c, reason: "test" }));
    },
    logFields: () => ({}),
  } as unknown as Rule;
  const tracker = new RenewalTracker({ threshold: 3 });
  const agent = new Agent({
    source,
    deleter: {
      name: "stub",
      maxPerPoll: 100,
      worstCaseMs: () => 0,
      delete: (t) => Promise.resolve(t.map((x) => ({ tuple: x, result: "deleted" as const }))),
    },
    tracker,
    rules: [everything],
    log: createLogger({ level: "error", write: () => {} }),
    intervalMs: 1000,
    dryRun: true,
    clock: () => now,
  });
  const first = await agent.pollOnce();
  assert.equal(first.track?.tracked, 1, "the tracker took the heard candidate");
  assert.deepEqual(first.results, []);
  assert.deepEqual(
    seen,
    [[heard]],
    "the rule (and its providers) saw it, and its decision was dropped",
  );
  assert.equal(tracker.sameSince(sampleTuple()), 900);
  now = 1000;
  const second = await agent.pollOnce();
  assert.deepEqual(seen[1], [read]);
  assert.equal(second.results.length, 1);
});
