import assert from "node:assert/strict";
import { kernelTest } from "../support/kernel_test.ts";
import { runScenario, type ScenarioOptions, type ScenarioResult } from "./scenario.ts";

/** The outcome every configuration must show. */
export function assertStory(r: ScenarioResult, label: string): void {
  const ctx = `${label}\n${r.logs.map((l) => JSON.stringify(l)).join("\n")}`;
  assert.deepEqual(r.renewedLeft, [], `renewed entries left after 12 s: ${ctx}`);
  assert.ok(r.allGoneMs !== undefined && r.allGoneMs <= 12_000, ctx);
  assert.deepEqual(r.keptMissing, [], `entries that had to stay are gone: ${ctx}`);
  const deleted = r.logs.filter((l) => l.msg === "deleted stale entry");
  assert.equal(deleted.length, r.renewed.length, `one log line per deletion: ${ctx}`);
  for (const d of deleted) {
    assert.ok((d.renewals as number) > 3, ctx);
    assert.ok(r.renewed.some((s) => s.sport === d.sport && (s.zone ?? 0) === d.zone), ctx);
  }
  assert.deepEqual(r.logs.filter((l) => l.level === "error" || l.stderr), [], ctx);
  assert.equal(r.exitCode, 0, ctx);
  assert.ok(r.exitMs < 2000, `exit took ${r.exitMs} ms`);
}

const cases: [string, ScenarioOptions][] = [
  ["IPv4", { family: "ipv4", zone: 0 }],
  ["IPv6", { family: "ipv6", zone: 0 }],
  ["IPv4 in zone 5", { family: "ipv4", zone: 5 }],
  ["IPv6 in zone 5", { family: "ipv6", zone: 5 }],
];
for (const [label, o] of cases) {
  kernelTest(
    `main.ts at 1s/3 deletes every entry renewed each second within 12 s and nothing else (${label})`,
    async () => {
      const r = await runScenario(o);
      console.log(`${label}: renewed entries gone after ${(r.allGoneMs! / 1000).toFixed(1)} s`);
      assertStory(r, label);
    },
  );
}
