/**
 * deploy/components/prometheusrule: valid against prometheus-operator's
 * schema, rendered by `kubectl kustomize` through an overlay, and every
 * expression names only metrics (and labels, and label values) the agent's
 * real registry exports, or the few Prometheus itself makes (`up`).
 */
import assert from "node:assert/strict";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { parse } from "yaml";
import { kubectlTest, renderOverlay } from "../support/kustomize.ts";
import { EXPECTED_METRICS, type ExpectedMetric } from "./expected_metrics.ts";

const RULE_FILE = new URL(
  "../../deploy/components/prometheusrule/prometheusrule.yaml",
  import.meta.url,
);
const PODMONITOR_FILE = new URL(
  "../../deploy/components/podmonitor/podmonitor.yaml",
  import.meta.url,
);

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleDoc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string };
  spec: { groups: { name: string; rules: AlertRule[] }[] };
}

const load = (): RuleDoc => parse(Deno.readTextFileSync(RULE_FILE)) as RuleDoc;
const rules = (d = load()) => d.spec.groups.flatMap((g) => g.rules);

/** Series Prometheus makes itself for each target. */
const PROMETHEUS_METRICS: ExpectedMetric[] = [{ name: "up", type: "gauge", labels: [] }];
const FAMILIES = new Map([...EXPECTED_METRICS, ...PROMETHEUS_METRICS].map((m) => [m.name, m]));

/** Labels on every scraped series: Prometheus' job and instance, and the PodMonitor's. */
function targetLabels(): string[] {
  const pm = parse(Deno.readTextFileSync(PODMONITOR_FILE)) as {
    spec: { podMetricsEndpoints: { relabelings?: { targetLabel?: string }[] }[] };
  };
  const relabeled = pm.spec.podMetricsEndpoints.flatMap((e) =>
    (e.relabelings ?? []).flatMap((r) => (r.targetLabel ? [r.targetLabel] : []))
  );
  return ["job", "instance", ...relabeled];
}

/** PromQL words that are not metric names. */
const PROMQL_WORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
  "sum",
  "min",
  "max",
  "avg",
  "count",
  "rate",
  "increase",
  "irate",
  "delta",
  "time",
  "absent",
  "absent_over_time",
  "histogram_quantile",
  "max_over_time",
  "min_over_time",
  "clamp_min",
]);

interface Selector {
  family: ExpectedMetric;
  suffix: string;
  matchers: { label: string; op: string; value: string }[];
  /** Where it starts in the expression. */
  index: number;
}

/**
 * The metric selectors of an expression, each resolved to its family; a
 * problem for every name, label or value that is not real.
 */
function analyse(expr: string, problems: string[]): Selector[] {
  const out: Selector[] = [];
  const labels = targetLabels();
  // Label lists of by/on/without/ignoring, then durations, blanked out (same length, so
  // indexes stay those of `expr`), leave identifiers to check.
  const grouped = [...expr.matchAll(/\b(by|on|without|ignoring)\s*\(([^)]*)\)/g)];
  const blank = (m: string) => " ".repeat(m.length);
  const rest = expr.replace(/\b(by|on|without|ignoring|group_left|group_right)\s*\([^)]*\)/g, blank)
    .replace(/\[[^\]]*\]/g, blank);
  for (const m of rest.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{([^}]*)\})?/g)) {
    const name = m[1]!;
    if (PROMQL_WORDS.has(name) || /^\d/.test(name)) continue;
    const exact = FAMILIES.get(name);
    const sfx = /^(.*)(_bucket|_sum|_count)$/.exec(name);
    const base = sfx ? FAMILIES.get(sfx[1]!) : undefined;
    const family = exact ?? (base?.type === "histogram" ? base : undefined);
    if (!family) {
      problems.push(`${name} is not a metric the agent exports`);
      continue;
    }
    const matchers = [...(m[3] ?? "").matchAll(/([a-zA-Z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)]
      .map(([, label, op, value]) => ({ label: label!, op: op!, value: value! }));
    for (const { label, op, value } of matchers) {
      if (labels.includes(label)) continue;
      if (!family.labels.includes(label)) {
        problems.push(`${name} has no label ${label}`);
        continue;
      }
      const allowed = family.labelValues?.[label];
      const values = op.endsWith("~") ? value.split("|") : [value];
      for (const v of values) {
        if (allowed && !allowed.includes(v)) problems.push(`${name}{${label}} is never "${v}"`);
      }
    }
    out.push({ family, suffix: exact ? "" : sfx![2]!, matchers, index: m.index! });
  }
  const names = out.map((s) => s.family);
  for (const g of grouped) {
    for (const label of g[2]!.split(",").map((s) => s.trim()).filter(Boolean)) {
      if (labels.includes(label) || names.some((f) => f.labels.includes(label))) continue;
      problems.push(`${g[1]} (${label}): no metric of the expression has it`);
    }
  }
  return out;
}

Deno.test("PrometheusRule: validates against prometheus-operator's schema, in the agent's namespace", () => {
  const d = load();
  new PrometheusRule(d as unknown as ConstructorParameters<typeof PrometheusRule>[0]).validate();
  assert.equal(d.metadata.namespace, "conntrack-cleaner");
  // The schema check itself rejects a broken rule.
  const broken = structuredClone(d);
  broken.spec.groups[0]!.rules[0]!.for = "ten minutes";
  assert.throws(() =>
    new PrometheusRule(broken as unknown as ConstructorParameters<typeof PrometheusRule>[0])
      .validate()
  );
});

Deno.test("PrometheusRule: alerts for absence, snapshot errors, failed deletes, no success, over the limit, spikes, the Kubernetes view", () => {
  const byName = new Map(rules().map((r) => [r.alert, r]));
  const uses = (alert: string, re: RegExp) => {
    const r = byName.get(alert);
    assert.ok(r, `an alert ${alert}`);
    assert.match(r.expr, re, alert);
    assert.match(r.for ?? "", /^\d+m$/, `${alert} waits before firing`);
    assert.match(r.labels?.severity ?? "", /^(info|warning|critical)$/, `${alert} severity`);
    assert.ok(r.annotations?.summary && r.annotations.description, `${alert} says what and why`);
  };
  uses("ConntrackCleanerAbsent", /absent\(up\{job="conntrack-cleaner"\} == 1\)/);
  uses("ConntrackCleanerDown", /up\{job="conntrack-cleaner"\} == 0/);
  uses("ConntrackCleanerSnapshotErrors", /conntrack_cleaner_snapshots_total\{[^}]*result="error"/);
  uses("ConntrackCleanerDeletesFailing", /conntrack_cleaner_deletions_total\{[^}]*result="failed"/);
  uses(
    "ConntrackCleanerNoSuccessfulPoll",
    /time\(\) - conntrack_cleaner_last_success_timestamp_seconds/,
  );
  uses("ConntrackCleanerCandidatesOverLimit", /conntrack_cleaner_candidates_over_limit\{/);
  uses("ConntrackCleanerDeletionsSpiking", /rate\(conntrack_cleaner_deletions_total\{/);
  uses("ConntrackCleanerKubernetesViewNotLive", /conntrack_cleaner_kubernetes_view\{/);
  assert.equal(byName.size, rules().length, "alert names are unique");
});

Deno.test("PrometheusRule: every expression names real metrics, labels and label values", () => {
  for (const r of rules()) {
    const problems: string[] = [];
    const selectors = analyse(r.expr, problems);
    assert.deepEqual(problems, [], `${r.alert}: ${r.expr}`);
    assert.ok(selectors.length > 0, r.alert);
    for (const s of selectors) {
      const job = s.matchers.find((m) => m.label === "job");
      assert.deepEqual(job, { label: "job", op: "=", value: "conntrack-cleaner" }, r.alert);
    }
  }
});

Deno.test("PrometheusRule: the Kubernetes view alert selects every state but live and off, as one series per agent", () => {
  const r = rules().find((r) => r.alert === "ConntrackCleanerKubernetesViewNotLive");
  assert.ok(r);
  const problems: string[] = [];
  const [sel, ...more] = analyse(r.expr, problems);
  assert.deepEqual(problems, []);
  assert.equal(more.length, 0);
  assert.equal(sel?.family.name, "conntrack_cleaner_kubernetes_view");
  const state = sel.matchers.find((m) => m.label === "state");
  assert.equal(state?.op, "=~");
  // The registry's states, less the two that are fine: a live view, and Kubernetes off.
  const all = sel.family.labelValues?.state ?? [];
  assert.ok(all.includes("live") && all.includes("off"), all.join(","));
  assert.deepEqual(
    state.value.split("|").sort(),
    all.filter((s) => s !== "live" && s !== "off").sort(),
  );
  // Grouped without the state, so a view going unsynced -> stale -> expired stays one alert.
  assert.match(r.expr, /^sum by \(job, instance, node\) \(/);
  assert.match(r.expr, /\)\s*> 0$/);
});

Deno.test("PrometheusRule: counters are read through rate()/increase() only", () => {
  for (const r of rules()) {
    for (const s of analyse(r.expr, [])) {
      if (s.family.type !== "counter" && s.family.type !== "histogram") continue;
      assert.match(r.expr.slice(0, s.index), /(rate|increase)\($/, `${r.alert}: ${r.expr}`);
    }
  }
});

Deno.test("PrometheusRule's expression check catches made-up metrics, labels and values", () => {
  const cases: [string, RegExp][] = [
    ["conntrack_cleaner_deletes_total > 0", /deletes_total is not a metric/],
    ['conntrack_cleaner_deletions_total{zone="1"}', /has no label zone/],
    ['conntrack_cleaner_deletions_total{result=~"deleted|removed"}', /never "removed"/],
    ['conntrack_cleaner_kubernetes_view{state=~"stale|dead"}', /never "dead"/],
    ["sum by (zone) (conntrack_cleaner_candidates)", /by \(zone\)/],
    ["conntrack_cleaner_candidates_bucket", /candidates_bucket is not a metric/],
    ["process_heap_bytes > 1", /process_heap_bytes is not a metric/],
  ];
  for (const [expr, want] of cases) {
    const problems: string[] = [];
    analyse(expr, problems);
    assert.ok(problems.some((p) => want.test(p)), `${expr}: ${JSON.stringify(problems)}`);
  }
  const fine: string[] = [];
  analyse(
    'sum by (node) (rate(conntrack_cleaner_delete_duration_seconds_bucket{node="a"}[5m]))',
    fine,
  );
  assert.deepEqual(fine, []);
});

Deno.test("PodMonitor: the job label is the pods' app.kubernetes.io/name, which the rules select on", () => {
  const pm = parse(Deno.readTextFileSync(PODMONITOR_FILE)) as {
    spec: { jobLabel?: string; selector: { matchLabels: Record<string, string> } };
  };
  assert.equal(pm.spec.jobLabel, "app.kubernetes.io/name");
  assert.equal(pm.spec.selector.matchLabels[pm.spec.jobLabel], "conntrack-cleaner");
});

kubectlTest(
  "kubectl kustomize: an overlay with both components renders the PodMonitor and the PrometheusRule",
  async () => {
    const objs = await renderOverlay(["components/podmonitor", "components/prometheusrule"]);
    const kinds = objs.map((o) => `${o.kind}/${o.metadata?.name}`).sort();
    assert.ok(kinds.includes("PrometheusRule/conntrack-cleaner"), kinds.join(" "));
    assert.ok(kinds.includes("PodMonitor/conntrack-cleaner"), kinds.join(" "));
    const rule = objs.find((o) => o.kind === "PrometheusRule")!;
    new PrometheusRule(rule as ConstructorParameters<typeof PrometheusRule>[0]).validate();
    assert.deepEqual(rule.spec, load().spec, "rendered as written");
    const ds = objs.find((o) => o.kind === "DaemonSet")!;
    assert.equal(rule.metadata?.namespace, ds.metadata?.namespace);
  },
);
