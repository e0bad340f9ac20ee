import assert from "node:assert/strict";
import { askNatRules, decideAll } from "../../lib/agent/decide.ts";
import type { Candidate } from "../../lib/model/snapshot.ts";
import type { Tuple } from "../../lib/model/tuple.ts";
import type { NatVerdict } from "../../lib/nat/verdicts.ts";
import type { Decision, Rule, RuleInput } from "../../lib/rules/rule.ts";

const cand = (sport: number): Candidate => ({
  family: "ipv4",
  src: "192.0.2.7",
  dst: "198.51.100.80",
  sport,
  dport: 80,
  zone: 0,
  timeout: 100,
  seenFrom: 0,
  seenTo: 1,
});
const cs = [cand(1), cand(2), cand(3)];
const input: RuleInput = {
  snapshot: { candidates: cs, scanned: 3, malformed: 0, startedAt: 0, finishedAt: 1 },
  track: { stale: [], renewals: 0, tracked: 3, forgotten: 0 },
  sameSince: () => undefined,
};

function asking(name: string, sports: number[], decides: number[] = []): Rule {
  return {
    name,
    natAsk: (i) => i.snapshot.candidates.filter((c) => sports.includes(c.sport)),
    decide: (i) =>
      i.snapshot.candidates.filter((c) => decides.includes(c.sport)).map((c): Decision => ({
        rule: name,
        tuple: c,
        reason: `${name}: ${i.nat?.(c)?.kind ?? "none"}`,
      })),
    logFields: () => ({}),
  };
}

Deno.test("askNatRules asks the judge once, each tuple once, for what the rules name", async () => {
  const batches: Tuple[][] = [];
  const judge = {
    judge: (ts: readonly Tuple[]) => {
      batches.push([...ts]);
      return Promise.resolve(
        ts.map((t): NatVerdict =>
          t.sport === 1 ? { kind: "translated", targets: [], hooks: ["prerouting"] } : {
            kind: "not_proven",
            reason: "no rule",
          }
        ),
      );
    },
  };
  const nat = await askNatRules([asking("a", [1, 2]), asking("b", [2])], input, judge);
  assert.deepEqual(batches.map((b) => b.map((t) => t.sport)), [[1, 2]]);
  assert.equal(nat.asked, 2);
  assert.equal(nat.verdict(cand(1))?.kind, "translated");
  assert.equal(nat.verdict(cand(2))?.kind, "not_proven");
  assert.equal(nat.verdict(cand(3)), undefined, "not asked: no verdict");
});

Deno.test("askNatRules reads nothing when no rule asks, and a failing judge is unreadable", async () => {
  let called = 0;
  const judge = {
    judge: () => {
      called++;
      return Promise.reject(new Error("EPERM"));
    },
  };
  assert.equal((await askNatRules([asking("a", [])], input, judge)).asked, 0);
  assert.equal(called, 0);
  const nat = await askNatRules([asking("a", [3])], input, judge);
  assert.deepEqual(nat.verdict(cand(3)), { kind: "unreadable", reason: "NAT rules: EPERM" });
});

Deno.test("decideAll decides each tuple once, for the first rule, and passes the verdicts", () => {
  const nat = (c: Candidate): NatVerdict | undefined =>
    c.sport === 2 ? { kind: "unreadable", reason: "x" } : undefined;
  const { decisions, taken } = decideAll(
    [asking("a", [], [2]), asking("b", [], [1, 2])],
    { ...input, nat },
  );
  assert.deepEqual(decisions.map((d) => [d.rule, d.tuple.sport, d.reason]), [
    ["a", 2, "a: unreadable"],
    ["b", 1, "b: none"],
  ]);
  assert.equal(taken.size, 2);
});
