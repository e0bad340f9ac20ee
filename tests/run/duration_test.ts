import assert from "node:assert/strict";
import { formatDuration, parseGoDuration } from "../../lib/run/duration.ts";

Deno.test("parseGoDuration reads what Go's time.ParseDuration reads", () => {
  const cases: [string, number][] = [
    ["1s", 1000],
    ["500ms", 500],
    ["1m30s", 90_000],
    ["1.5h", 5_400_000],
    ["2h45m", 9_900_000],
    [".5s", 500],
    ["1.s", 1000],
    ["100000us", 100],
    ["100000µs", 100],
    ["100000μs", 100],
    ["1000000ns", 1],
    ["0", 0],
    ["+2s", 2000],
    ["-1m", -60_000],
    ["1h1m1s1ms", 3_661_001],
  ];
  for (const [s, ms] of cases) assert.equal(parseGoDuration(s), ms, s);
});

Deno.test("parseGoDuration rejects what Go rejects", () => {
  for (
    const s of [
      "",
      "1",
      "s",
      ".s",
      "1x",
      "1 s",
      " 1s",
      "1s ",
      "--1s",
      "1e3ms",
      "1,5s",
      "one",
      "-",
      "1S",
      "0x10s",
    ]
  ) {
    assert.equal(parseGoDuration(s), undefined, JSON.stringify(s));
  }
});

Deno.test("formatDuration writes short Go-style durations", () => {
  assert.equal(formatDuration(1000), "1s");
  assert.equal(formatDuration(250), "250ms");
  assert.equal(formatDuration(90_000), "1m30s");
  assert.equal(formatDuration(1500), "1.5s");
  assert.equal(formatDuration(3_600_000), "1h0m0s");
});
