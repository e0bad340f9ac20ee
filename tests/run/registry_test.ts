/**
 * The registries are the one place a rule, a provider or a source is listed:
 * a test-only rule and a test-only provider, registered here and nowhere
 * else, take part in the agent's polls through the real start module.
 */
import assert from "node:assert/strict";
import { start } from "../../lib/run/start.ts";
import { RULES } from "../../lib/run/rules.ts";
import { PROVIDERS } from "../../lib/run/providers.ts";
import type { ProviderEntry, RuleEntry } from "../../lib/run/parts.ts";
import type { SourceEntry } from "../../lib/run/sources.ts";
import type { Decision, Rule, RuleInput } from "../../lib/rules/rule.ts";
import type { NatProvider, VouchQuery } from "../../lib/rules/providers/provider.ts";
import { toTuple } from "../../lib/model/tuple.ts";
import type { Candidate } from "../../lib/model/snapshot.ts";

/** The test-only rule's details: how many candidates the read held. */
interface CountDetails {
  rule: "test_count";
  seen: number;
}

Deno.test("start: a test-only rule and provider registered from a test file take part in a poll", async () => {
  const vouched: string[] = [];
  const decided: number[] = [];
  let polls = 0;
  const stuck: Omit<Candidate, "seenFrom" | "seenTo"> = {
    family: "ipv4",
    src: "192.0.2.7",
    dst: "198.51.100.80",
    sport: 40000,
    dport: 80,
    zone: 0,
    timeout: 100,
  };
  const provider: NatProvider = {
    name: "test_provider",
    vouch(q: VouchQuery) {
      vouched.push(`${q.candidate.dst}:${q.candidate.dport}`);
      return { reason: "the test says so" };
    },
  };
  const rule: Rule<CountDetails> = {
    name: "test_count",
    decide(input: RuleInput): Decision<CountDetails>[] {
      decided.push(input.snapshot.candidates.length);
      // Two polls are enough to show it: then stop as an operator would.
      if (decided.length === 2) Deno.kill(Deno.pid, "SIGTERM");
      return input.snapshot.candidates.map((c) => ({
        rule: "test_count",
        tuple: toTuple(c),
        reason: "counted",
        seen: input.snapshot.candidates.length,
      }));
    },
    logFields: (d) => ({ seen: d.seen }),
  };
  const ruleEntry: RuleEntry<CountDetails> = {
    name: "test_count",
    summary: "counts candidates (test only)",
    enabled: () => true,
    create: () => Promise.resolve(rule),
  };
  const providerEntry: ProviderEntry = {
    name: "test_provider",
    summary: "vouches for everything (test only)",
    enabled: () => true,
    create: () => Promise.resolve(provider),
  };
  const table: SourceEntry = {
    name: "test_table",
    summary: "one stuck entry (test only)",
    check: () => Promise.resolve({ ok: true, works: "the test table is here" }),
    create: () =>
      Promise.resolve({
        source: {
          name: "test_table",
          snapshot: () => {
            polls++;
            const now = performance.now();
            return Promise.resolve({
              candidates: [{ ...stuck, seenFrom: now, seenTo: now }],
              scanned: 1,
              malformed: 0,
              startedAt: now,
              finishedAt: now,
            });
          },
        },
      }),
  };
  const code = await start(
    [
      "--dry-run",
      "--listen=off",
      "--interval=100ms",
      "--unnated-after=0s",
      "--kubernetes=off",
      "--nat-rules=off",
      "--delete-via=conntrack",
      "--log-level=error",
    ],
    () => undefined,
    {
      rules: [...RULES, ruleEntry],
      providers: [...PROVIDERS, providerEntry],
      sources: [table],
    },
  );
  assert.equal(code, 0);
  assert.ok(polls >= 2, `polls: ${polls}`);
  // A poll may start before the signal is handled: at least the two, one candidate each.
  assert.ok(decided.length >= 2 && decided.every((n) => n === 1), `decided: ${decided}`);
  assert.ok(
    vouched.includes("198.51.100.80:80"),
    "the un-NATed rule asked the test provider (after the registry's own, which did not vouch)",
  );
});
