/**
 * At debug level the agent hands each rule a `keep` callback: every
 * candidate a rule considered and did not decide is reported with why.
 */
import assert from "node:assert/strict";
import { RenewalRule } from "../../lib/rules/renewals.ts";
import { UnnatedRule } from "../../lib/rules/unnated.ts";
import { StaleEndpointRule } from "../../lib/rules/stale_endpoint.ts";
import type { RuleInput } from "../../lib/rules/rule.ts";
import { DestinationsProvider } from "../../lib/rules/providers/destinations.ts";
import { parseDestinations } from "../../lib/model/destination_set.ts";
import type { Candidate, Snapshot } from "../../lib/model/snapshot.ts";
import { RenewalTracker } from "../../lib/rules/tracker.ts";

const cand = (sport: number, o: Partial<Candidate> = {}): Candidate => ({
  family: "ipv4",
  src: "192.0.2.7",
  dst: "198.51.100.80",
  sport,
  dport: 80,
  zone: 0,
  timeout: 119,
  seenFrom: 1000,
  seenTo: 1001,
  ...o,
});

function inputFor(candidates: Candidate[], sameSince = 1001) {
  const kept: [number, string][] = [];
  const snapshot: Snapshot = {
    candidates,
    scanned: candidates.length,
    malformed: 0,
    startedAt: 1000,
    finishedAt: 1002,
  };
  const input: RuleInput = {
    snapshot,
    track: { stale: [], renewals: 0, tracked: candidates.length, forgotten: 0 },
    sameSince: () => sameSince,
    keep: (c, why) => kept.push([c.sport, why]),
  };
  return { input, kept };
}

Deno.test("RenewalRule.decide reports each candidate it keeps with its renewals and the threshold", () => {
  const tracker = new RenewalTracker({ threshold: 1 });
  const rule = new RenewalRule(tracker);
  const at = (t: number, sports: number[]) =>
    sports.map((s) => cand(s, { timeout: 119, seenFrom: t, seenTo: t + 1 }));
  // 40001 renewed at every read (119 s left each 3 s later), 40002 only seen from the third.
  for (const t of [0, 3000]) tracker.observe(inputFor(at(t, [40001])).input.snapshot);
  const { input, kept } = inputFor(at(6000, [40001, 40002]));
  input.track = tracker.observe(input.snapshot);
  assert.deepEqual(input.track.stale.map((r) => r.tuple.sport), [40001]);
  const decided = rule.decide(input);
  assert.deepEqual(decided.map((d) => d.tuple.sport), [40001]);
  assert.deepEqual(kept, [[40002, "renewed 0 times, not more than the threshold 1"]]);

  const untracked = inputFor([cand(40003)]);
  new RenewalRule({ threshold: 3 }).decide(untracked.input);
  assert.deepEqual(untracked.kept, [[40003, "not tracked, not more than the threshold 3"]]);
});

Deno.test("UnnatedRule.decide reports a young candidate and one no provider vouches for; not a translated one", () => {
  const set = parseDestinations("198.51.100.80/32:443");
  assert.ok(typeof set !== "string");
  const rule = new UnnatedRule({
    afterMs: 2000,
    synSentTimeoutS: 120,
    providers: [new DestinationsProvider(set)],
  });
  const { input, kept } = inputFor([
    cand(1, { timeout: 119 }), // 0 s old by the kernel, 0 s seen
    cand(2, { timeout: 110 }), // 9 s old, port 80 is outside the list
    cand(3, { timeout: 110, dport: 443 }), // 9 s old, inside: decided
    cand(4, { timeout: 110, translated: { addr: "10.244.1.5", port: 8080 } }),
  ]);
  assert.deepEqual(rule.decide(input).map((d) => d.tuple.sport), [3]);
  assert.deepEqual(kept, [
    [1, "younger than --unnated-after (0s of 2s)"],
    [2, "no provider vouches that the destination is NATed now (asked: destinations)"],
  ]);
});

Deno.test("StaleEndpointRule.decide reports a young translated candidate and one whose endpoint still serves; not an un-NATed one", () => {
  const rule = new StaleEndpointRule({
    afterMs: 2000,
    synSentTimeoutS: 120,
    endpoints: {
      removedAt: (
        _a,
        _p,
        e,
      ) => (e === "10.244.1.5 8080" ? { at: 0, service: "web/shop" } : undefined),
    },
  });
  const to = (addr: string) => ({ translated: { addr, port: 8080 } });
  const { input, kept } = inputFor([
    cand(1, { timeout: 118, ...to("10.244.1.5") }), // 1 s old
    cand(2, { timeout: 110, ...to("10.244.1.6") }), // still serving
    cand(3, { timeout: 110, ...to("10.244.1.5") }), // removed: decided
    cand(4, { timeout: 110 }), // un-NATed: not this rule's
  ]);
  assert.deepEqual(rule.decide(input).map((d) => d.tuple.sport), [3]);
  assert.deepEqual(kept, [
    [1, "younger than --unnated-after (1s of 2s)"],
    [
      2,
      "translated to 10.244.1.6:8080, not an endpoint seen serving and since removed (or the Kubernetes view is not live)",
    ],
  ]);
});

Deno.test("rules build no keep reason when the agent asks for none (info level)", () => {
  const { input } = inputFor([cand(1), cand(2, { timeout: 110 })]);
  const { keep: _, ...noKeep } = input;
  const set = parseDestinations("203.0.113.0/24");
  assert.ok(typeof set !== "string");
  // Without keep the rules decide the same and call nothing.
  const rule = new UnnatedRule({
    afterMs: 2000,
    synSentTimeoutS: 120,
    providers: [new DestinationsProvider(set)],
  });
  assert.deepEqual(rule.decide(noKeep), []);
  assert.deepEqual(new RenewalRule({ threshold: 3 }).decide(noKeep), []);
});
