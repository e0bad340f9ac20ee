import assert from "node:assert/strict";
import { KEPT_AT_DEBUG, PollKeptLog } from "../../lib/log/decision_log.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { type Tuple, tupleKey } from "../../lib/model/tuple.ts";

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: "debug", write: (l) => lines.push(JSON.parse(l)) });
  return { log, lines };
}

const tuple = (sport: number): Tuple => ({
  family: "ipv4",
  src: "10.0.0.1",
  dst: "10.96.0.10",
  sport,
  dport: 80,
  zone: 0,
});

Deno.test("PollKeptLog says each kept candidate once with every rule's reason, and none a rule decided", () => {
  const { log, lines } = capture();
  const kept = new PollKeptLog(log);
  kept.note("renewals", { ...tuple(1), timeout: 100 } as Tuple, "renewed 0 times");
  kept.note("renewals", tuple(2), "renewed 1 time");
  kept.note("unnated", tuple(1), "younger than --unnated-after (1s of 2s)");
  kept.note("renewals", tuple(3), "renewed 2 times");
  kept.end(new Set([tupleKey(tuple(2))]));
  assert.deepEqual(lines.map((l) => [l.level, l.msg, l.sport, l.reason]), [
    [
      "debug",
      "kept candidate",
      1,
      "renewals: renewed 0 times; unnated: younger than --unnated-after (1s of 2s)",
    ],
    ["debug", "kept candidate", 3, "renewals: renewed 2 times"],
  ]);
  assert.deepEqual(Object.keys(lines[0]!).sort(), [
    "dport",
    "dst",
    "family",
    "level",
    "msg",
    "reason",
    "sport",
    "src",
    "time",
    "zone",
  ], "the tuple and the reason, nothing of the candidate beyond its tuple");
  lines.length = 0;
  kept.end(new Set());
  assert.deepEqual(lines, [], "reset after end: the next poll starts empty");
});

Deno.test("PollKeptLog bounds a poll's lines and memory: the first few, then one count of all kept", () => {
  const { log, lines } = capture();
  const kept = new PollKeptLog(log, KEPT_AT_DEBUG, 100);
  for (let p = 1; p <= 5000; p++) kept.note("renewals", tuple(p), "renewed 0 times");
  // Decided ones are not kept, whether remembered (2) or only counted (4000).
  kept.end(new Set([tupleKey(tuple(2)), tupleKey(tuple(4000))]));
  assert.equal(lines.length, KEPT_AT_DEBUG + 1);
  assert.deepEqual(
    lines.slice(0, KEPT_AT_DEBUG).map((l) => l.sport),
    [1, ...Array.from({ length: KEPT_AT_DEBUG - 1 }, (_, i) => i + 3)],
  );
  const summary = lines.at(-1)!;
  assert.equal(summary.level, "debug");
  assert.equal(summary.kept, 4998);
  assert.match(String(summary.msg), /^4998 candidates kept this poll; 20 logged one by one/);
});

Deno.test("PollKeptLog writes no summary when every kept candidate was said", () => {
  const { log, lines } = capture();
  const kept = new PollKeptLog(log);
  for (let p = 1; p <= KEPT_AT_DEBUG; p++) kept.note("renewals", tuple(p), "renewed 0 times");
  kept.end(new Set());
  assert.equal(lines.length, KEPT_AT_DEBUG);
  assert.ok(lines.every((l) => l.msg === "kept candidate"));
});
