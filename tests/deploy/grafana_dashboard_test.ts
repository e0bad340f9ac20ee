/**
 * deploy/grafana-dashboard.json: valid JSON, a Prometheus data source chosen
 * through ${DS_PROMETHEUS}, and PromQL that only names metrics (and label
 * values) the agent exports.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { EXPECTED_METRICS, type ExpectedMetric } from "./expected_metrics.ts";

const DASHBOARD_URL = new URL("../../deploy/grafana-dashboard.json", import.meta.url);
const PODMONITOR_URL = new URL(
  "../../deploy/components/podmonitor/podmonitor.yaml",
  import.meta.url,
);

/** The labels the PodMonitor's relabelings set on every series of the agent. */
function podMonitorLabels(): string[] {
  const pm = parse(Deno.readTextFileSync(PODMONITOR_URL)) as {
    spec: { podMetricsEndpoints: { relabelings?: { targetLabel?: string }[] }[] };
  };
  return pm.spec.podMetricsEndpoints.flatMap((e) =>
    (e.relabelings ?? []).flatMap((r) => (r.targetLabel ? [r.targetLabel] : []))
  );
}

/**
 * Target labels the dashboard may filter and group by: `job` (Prometheus
 * sets it on every series) and those the PodMonitor sets. Not `instance`:
 * the node's IP:port, which the PodMonitor replaces by `node` for people.
 */
const TARGET_LABELS = ["job", ...podMonitorLabels()];

interface Target {
  refId?: string;
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  definition?: string;
}
interface Dashboard {
  uid?: string;
  title?: string;
  schemaVersion?: number;
  panels?: Panel[];
  templating?: { list?: Variable[] };
}

function load(): Dashboard {
  const text = Deno.readTextFileSync(DASHBOARD_URL);
  return JSON.parse(text) as Dashboard;
}

function allPanels(d: Dashboard): Panel[] {
  const out: Panel[] = [];
  const walk = (ps: Panel[] | undefined) => {
    for (const p of ps ?? []) {
      out.push(p);
      walk(p.panels);
    }
  };
  walk(d.panels);
  return out;
}

/** Every PromQL string in the dashboard: panel targets and variable queries. */
function queries(d: Dashboard): string[] {
  const exprs = allPanels(d).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ""));
  for (const v of d.templating?.list ?? []) {
    if (v.type !== "query") continue;
    exprs.push(typeof v.query === "string" ? v.query : v.query?.query ?? "");
    if (v.definition) exprs.push(v.definition);
  }
  return exprs.filter((e) => e.trim() !== "");
}

const BY_NAME = new Map(EXPECTED_METRICS.map((m) => [m.name, m]));

/**
 * The family a series name belongs to: itself, or a histogram's family for
 * its _bucket/_sum/_count series. undefined when the agent exports no such
 * series.
 */
function family(series: string): { metric: ExpectedMetric; suffix: string } | undefined {
  const exact = BY_NAME.get(series);
  if (exact) return { metric: exact, suffix: "" };
  const m = /^(.*)(_bucket|_sum|_count)$/.exec(series);
  const base = m ? BY_NAME.get(m[1]!) : undefined;
  if (m && base?.type === "histogram") return { metric: base, suffix: m[2]! };
  return undefined;
}

/** The agent's own metric names and the standard process metrics. */
const METRIC_NAME = /\b(?:conntrack_cleaner|process)_[a-z_]+/g;

function metricNames(expr: string): string[] {
  return [...expr.matchAll(METRIC_NAME)].map((m) => m[0]);
}

Deno.test("grafana dashboard: is valid JSON with a uid, a title and schemaVersion >= 36", () => {
  const d = load();
  assert.equal(typeof d.uid, "string");
  assert.equal(typeof d.title, "string");
  assert.ok((d.schemaVersion ?? 0) >= 36, `schemaVersion ${d.schemaVersion}`);
});

Deno.test("grafana dashboard: has a DS_PROMETHEUS data source variable used by every panel and query", () => {
  const d = load();
  const ds = d.templating?.list?.find((v) => v.name === "DS_PROMETHEUS");
  assert.ok(ds, "a DS_PROMETHEUS variable");
  assert.equal(ds.type, "datasource");
  assert.equal(ds.query, "prometheus");
  for (const p of allPanels(d)) {
    if (p.type === "row") continue;
    assert.equal(p.datasource?.uid, "${DS_PROMETHEUS}", `panel '${p.title}'`);
    for (const t of p.targets ?? []) {
      assert.equal(t.datasource?.uid ?? "${DS_PROMETHEUS}", "${DS_PROMETHEUS}");
    }
  }
});

Deno.test("grafana dashboard: panel ids are unique and panels fit the 24-column grid", () => {
  const panels = allPanels(load());
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "unique ids");
  for (const p of panels) {
    assert.ok(p.gridPos, `panel '${p.title}' has gridPos`);
    assert.ok(p.gridPos.x >= 0 && p.gridPos.x + p.gridPos.w <= 24, `panel '${p.title}' fits`);
  }
  const refIds = panels.map((p) => (p.targets ?? []).map((t) => t.refId));
  for (const refs of refIds) assert.equal(new Set(refs).size, refs.length, "unique refIds");
});

Deno.test("grafana dashboard: every metric its queries use is one the agent exports", () => {
  const unknown = new Set<string>();
  for (const expr of queries(load())) {
    for (const name of metricNames(expr)) if (!family(name)) unknown.add(name);
  }
  assert.deepEqual([...unknown], [], "metrics not in tests/deploy/expected_metrics.ts");
});

Deno.test("grafana dashboard: _bucket/_sum/_count only on histograms; histogram_quantile reads _bucket by le", () => {
  for (const expr of queries(load())) {
    for (const name of metricNames(expr)) {
      const f = family(name);
      assert.ok(f, name);
      if (f.suffix) assert.equal(f.metric.type, "histogram", name);
    }
    if (/histogram_quantile/.test(expr)) {
      assert.match(expr, /_bucket\b/, `histogram_quantile over buckets: ${expr}`);
      assert.match(expr, /by \([^)]*\ble\b[^)]*\)/, `histogram_quantile keeps le: ${expr}`);
    }
  }
});

Deno.test("grafana dashboard: label matchers and by() clauses use labels and values the metrics have", () => {
  for (const expr of queries(load())) {
    for (const sel of expr.matchAll(/\b((?:conntrack_cleaner|process)_[a-z_]+)\{([^}]*)\}/g)) {
      const f = family(sel[1]!);
      assert.ok(f, sel[1]);
      for (const m of sel[2]!.matchAll(/([a-zA-Z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)) {
        const [, label, op, value] = m as unknown as [string, string, string, string];
        if (TARGET_LABELS.includes(label)) continue;
        if (label === "le" && f.suffix === "_bucket") continue;
        assert.ok(f.metric.labels.includes(label), `${sel[1]} has label ${label}`);
        const allowed = f.metric.labelValues?.[label];
        if (allowed && (op === "=" || op === "!=")) {
          assert.ok(allowed.includes(value), `${sel[1]}{${label}="${value}"} is a real value`);
        }
      }
    }
    // by (...) must name labels that some metric of the expression has.
    const names = metricNames(expr).map((n) => family(n)!);
    for (const by of expr.matchAll(/\bby\s*\(([^)]*)\)/g)) {
      for (const label of by[1]!.split(",").map((s) => s.trim()).filter(Boolean)) {
        const known = TARGET_LABELS.includes(label) ||
          names.some((f) =>
            f.metric.labels.includes(label) || (label === "le" && f.suffix === "_bucket")
          );
        assert.ok(known, `by (${label}) in: ${expr}`);
      }
    }
  }
});

Deno.test("grafana dashboard: covers deletions by rule, candidates, snapshot latency, errors, scans, freshness, skipped ticks, the Kubernetes view", () => {
  const all = queries(load());
  const uses = (re: RegExp) => all.some((e) => re.test(e));
  assert.ok(
    uses(/rate\(conntrack_cleaner_deletions_total\{[^}]*\}\[[^\]]+\]\)/) &&
      uses(/by \(rule, result\)[^\n]*conntrack_cleaner_deletions_total/),
    "deletion rate by rule and result",
  );
  assert.ok(uses(/conntrack_cleaner_candidates\b/), "candidates");
  assert.ok(
    uses(/histogram_quantile\([^,]+,.*conntrack_cleaner_snapshot_duration_seconds_bucket/),
    "snapshot duration quantiles",
  );
  assert.ok(uses(/conntrack_cleaner_snapshots_total\{[^}]*result="error"/), "snapshot errors");
  assert.ok(uses(/conntrack_cleaner_deletions_total\{[^}]*result="failed"/), "failed deletions");
  assert.ok(uses(/conntrack_cleaner_malformed_lines_total/), "malformed lines");
  assert.ok(uses(/conntrack_cleaner_entries_scanned\b/), "entries scanned");
  assert.ok(
    uses(/time\(\)\s*-\s*conntrack_cleaner_last_success_timestamp_seconds/),
    "age of the last success",
  );
  assert.ok(uses(/conntrack_cleaner_skipped_ticks_total/), "skipped ticks");
  assert.ok(
    uses(/conntrack_cleaner_kubernetes_view\{[^}]*state=~"unsynced\|stale\|expired"/),
    "the Kubernetes view when not live",
  );
  assert.ok(uses(/conntrack_cleaner_kubernetes_last_contact_age_seconds/), "API contact age");
});

Deno.test("grafana dashboard: a state=~ matcher names only states the metric has", () => {
  let checked = 0;
  for (const expr of queries(load())) {
    for (const sel of expr.matchAll(/\b(conntrack_cleaner_[a-z_]+)\{([^}]*)\}/g)) {
      const allowed = family(sel[1]!)?.metric.labelValues;
      for (const m of sel[2]!.matchAll(/([a-z_]+)=~"([^"]*)"/g)) {
        const values = allowed?.[m[1]!];
        if (!values) continue;
        for (const v of m[2]!.split("|")) {
          assert.ok(values.includes(v), `${sel[1]}{${m[1]}=~"${v}"} is a real value`);
          checked++;
        }
      }
    }
  }
  assert.ok(checked >= 3, "the Kubernetes view's states are checked");
});

Deno.test("grafana dashboard: no two panels overlap", () => {
  const boxes = allPanels(load()).map((p) => ({ title: p.title, ...p.gridPos! }));
  for (const [i, a] of boxes.entries()) {
    for (const b of boxes.slice(i + 1)) {
      const apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
      assert.ok(apart, `'${a.title}' and '${b.title}' overlap`);
    }
  }
});

Deno.test("grafana dashboard: counters are only read through rate()/increase()", () => {
  for (const expr of queries(load())) {
    for (const m of expr.matchAll(METRIC_NAME)) {
      const f = family(m[0]);
      const counterLike = f?.metric.type === "counter" || f?.metric.type === "histogram";
      if (!counterLike) continue;
      const before = expr.slice(0, m.index);
      assert.match(before, /(rate|increase)\($/, `${m[0]} inside rate()/increase(): ${expr}`);
    }
  }
});

Deno.test("grafana dashboard: the node variable and every query use the label the PodMonitor sets", () => {
  assert.deepEqual(podMonitorLabels(), ["node"]);
  const d = load();
  const node = d.templating?.list?.find((v) => v.type === "query");
  assert.equal(node?.name, "node");
  assert.equal(node?.definition, "label_values(conntrack_cleaner_build_info, node)");
  for (const expr of queries(d)) {
    if (expr.startsWith("label_values")) continue;
    assert.match(expr, /\{[^}]*node=~"\$node"[^}]*\}/, `filters on $node: ${expr}`);
    assert.doesNotMatch(expr, /\binstance\s*(=~|!~|!=|=)|by \([^)]*\binstance\b/, expr);
  }
  // The standard process metrics are shared by every exporter: only the agent's are shown.
  for (const expr of queries(d).filter((e) => /\bprocess_/.test(e))) {
    assert.match(expr, / and on \(job, instance\) conntrack_cleaner_build_info\{/, expr);
  }
});
