import assert from "node:assert/strict";
import { formatValue, Registry } from "../../lib/serve/prom.ts";

Deno.test("Registry renders counters, gauges and histograms in the text format, HELP and TYPE first", () => {
  const r = new Registry();
  const c = r.counter("jobs_total", "Jobs done.\nBy result.", ["result"]);
  c.inc({ result: "ok" });
  c.inc({ result: "ok" }, 2);
  c.inc({ result: 'a"b\\c\nd' });
  r.gauge("queue", "Queue length.").set(-4.5);
  const h = r.histogram("took_seconds", "Time.", [1, 0.1]);
  for (const v of [0.05, 0.1, 0.5, 7]) h.observe(v);
  assert.equal(
    r.metrics(),
    [
      "# HELP jobs_total Jobs done.\\nBy result.",
      "# TYPE jobs_total counter",
      'jobs_total{result="ok"} 3',
      'jobs_total{result="a\\"b\\\\c\\nd"} 1',
      "# HELP queue Queue length.",
      "# TYPE queue gauge",
      "queue -4.5",
      "# HELP took_seconds Time.",
      "# TYPE took_seconds histogram",
      'took_seconds_bucket{le="0.1"} 2',
      'took_seconds_bucket{le="1"} 3',
      'took_seconds_bucket{le="+Inf"} 4',
      "took_seconds_sum 7.65",
      "took_seconds_count 4",
      "",
    ].join("\n"),
  );
});

Deno.test("Registry: an unlabelled series exists at 0; collectors run at each rendering", () => {
  const r = new Registry();
  let outside = 0;
  r.counter("idle_total", "Never counted.");
  r.gauge("outside", "Read at scrape.", [], (g) => g.set(outside));
  outside = 7;
  assert.match(r.metrics(), /^idle_total 0$/m);
  assert.match(r.metrics(), /^outside 7$/m);
  outside = 8;
  assert.deepEqual(
    r.families().map((f) => [f.name, f.type, f.labelNames, f.series]),
    [["idle_total", "counter", [], [{}]], ["outside", "gauge", [], [{}]]],
  );
  assert.match(r.metrics(), /^outside 8$/m);
});

Deno.test("Registry refuses bad names, unknown labels, duplicates and a counter going down", () => {
  const r = new Registry();
  assert.throws(() => r.counter("bad-name", "x"), /bad metric name/);
  assert.throws(() => r.counter("x_total", "x", ["le"]), /bad label name le/);
  const c = r.counter("x_total", "x", ["result"]);
  assert.throws(() => r.gauge("x_total", "x"), /registered twice/);
  assert.throws(() => c.inc({ rule: "a" }), /no label rule/);
  assert.throws(() => c.inc({ result: "ok" }, -1), /only goes up/);
  assert.throws(() => c.inc({ result: "ok" }, NaN), /only goes up/);
});

Deno.test("formatValue spells infinities and NaN as Prometheus does", () => {
  assert.deepEqual([Infinity, -Infinity, NaN, 0.25, 1e21].map(formatValue), [
    "+Inf",
    "-Inf",
    "NaN",
    "0.25",
    "1e+21",
  ]);
});
