/**
 * The metrics the agent really exports, read from its own registry
 * (lib/serve/metrics.ts), so the dashboard is checked against the code and not
 * against a list that can drift.
 *
 * @module
 */
import { Metrics } from "../../lib/serve/metrics.ts";
import { RULES } from "../../lib/run/rules.ts";
import { partMetrics } from "../../lib/run/start.ts";

/** One metric family as Prometheus scrapes it. */
export interface ExpectedMetric {
  /** Family name; a histogram's series add `_bucket`, `_sum`, `_count`. */
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary";
  /** Labels of its series (a histogram's `le` not included). */
  labels: readonly string[];
  /** The values a label takes, where they are a closed set (`result`). */
  labelValues?: Readonly<Record<string, readonly string[]>>;
}

const CLOSED_LABELS = new Set(["result", "rule", "state"]);

function fromRegistry(): ExpectedMetric[] {
  const m = new Metrics({
    version: "test",
    deno: Deno.version.deno,
    source: "procfs",
    deleter: "conntrack",
    rules: RULES.map((r) => r.name),
    parts: (r) => partMetrics(r),
  });
  return m.registry.families().map((f) => {
    const values: Record<string, Set<string>> = {};
    for (const labels of f.series) {
      for (const [k, val] of Object.entries(labels)) {
        if (CLOSED_LABELS.has(k)) (values[k] ??= new Set()).add(val);
      }
    }
    const labelValues = Object.fromEntries(Object.entries(values).map(([k, s]) => [k, [...s]]));
    return {
      name: f.name,
      type: f.type,
      labels: [...f.labelNames],
      ...(Object.keys(labelValues).length ? { labelValues } : {}),
    };
  });
}

/** Every metric family `/metrics` serves, with the standard process metrics. */
export const EXPECTED_METRICS: readonly ExpectedMetric[] = fromRegistry();
