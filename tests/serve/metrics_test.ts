import assert from "node:assert/strict";
import { Metrics } from "../../lib/serve/metrics.ts";
import { partMetrics } from "../../lib/run/start.ts";
import { kubernetesMetrics } from "../../lib/run/kubernetes.ts";

function value(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

Deno.test("Metrics counts snapshots, renewals, candidates and deletions by result, with no per-tuple labels (the parts' metrics, at zero or off, beside them)", async () => {
  const m = new Metrics({
    version: "1.2.3",
    deno: "2.9.6",
    source: "procfs",
    deleter: "conntrack",
    processMetrics: false,
    nowSeconds: () => 1700000000,
    rules: ["renewals", "unnated"],
    parts: (r) => partMetrics(r),
  });
  const before = await m.registry.metrics();
  for (const rule of ["renewals", "unnated"]) {
    assert.equal(
      value(before, `conntrack_cleaner_deletions_total{result="failed",rule="${rule}"}`),
      0,
      "results exist at 0 from the start, for each rule",
    );
  }
  assert.equal(value(before, 'conntrack_cleaner_snapshots_total{result="error"}'), 0);
  const snap = {
    candidates: [],
    scanned: 1000,
    malformed: 2,
    overflow: 40,
    startedAt: 0,
    finishedAt: 12,
  };
  m.snapshotOk(snap, 12, { stale: [], renewals: 3, tracked: 7, forgotten: 0 });
  m.snapshotOk(snap, 8, { stale: [], renewals: 1, tracked: 5, forgotten: 2 });
  m.snapshotFailed(new Error("EIO"), 1);
  m.deletions([
    { result: "deleted", rule: "renewals" },
    { result: "deleted", rule: "unnated" },
    { result: "already_gone", rule: "renewals" },
    { result: "failed", rule: "unnated" },
  ], 40);
  m.deletions([{ result: "dry_run", rule: "unnated" }], 0);
  m.evidenceRead(3, true);
  m.evidenceRead(2, false);
  m.evidenceRead(0, false); // nothing asked: not a read for evidence
  m.skippedTicks(2);
  const t = await m.registry.metrics();
  assert.equal(value(t, 'conntrack_cleaner_snapshots_total{result="ok"}'), 2);
  assert.equal(value(t, 'conntrack_cleaner_snapshots_total{result="error"}'), 1);
  assert.equal(value(t, "conntrack_cleaner_snapshot_duration_seconds_count"), 3);
  assert.equal(value(t, "conntrack_cleaner_entries_scanned"), 1000);
  assert.equal(value(t, "conntrack_cleaner_malformed_lines_total"), 4);
  assert.equal(value(t, "conntrack_cleaner_candidates"), 5);
  assert.equal(value(t, "conntrack_cleaner_candidates_over_limit"), 40);
  assert.equal(value(t, "conntrack_cleaner_renewals_total"), 4);
  const del = (result: string, rule: string) =>
    value(t, `conntrack_cleaner_deletions_total{result="${result}",rule="${rule}"}`);
  assert.equal(del("deleted", "renewals"), 1);
  assert.equal(del("deleted", "unnated"), 1);
  assert.equal(del("already_gone", "renewals"), 1);
  assert.equal(del("already_gone", "unnated"), 0);
  assert.equal(del("failed", "unnated"), 1);
  assert.equal(del("failed", "renewals"), 0);
  assert.equal(del("dry_run", "unnated"), 1);
  assert.equal(del("dry_run", "renewals"), 0);
  assert.equal(value(t, 'conntrack_cleaner_evidence_reads_total{result="ok"}'), 1);
  assert.equal(value(t, 'conntrack_cleaner_evidence_reads_total{result="missing"}'), 1);
  assert.equal(value(t, "conntrack_cleaner_evidence_keys"), 0);
  assert.equal(
    value(t, "conntrack_cleaner_delete_duration_seconds_count"),
    1,
    "dry runs take no time to delete",
  );
  assert.equal(value(t, "conntrack_cleaner_skipped_ticks_total"), 2);
  assert.equal(value(t, "conntrack_cleaner_last_success_timestamp_seconds"), 1700000000);
  assert.equal(value(t, 'conntrack_cleaner_build_info{version="1.2.3",deno="2.9.6"}'), 1);
  assert.equal(value(t, 'conntrack_cleaner_source_info{source="procfs",deleter="conntrack"}'), 1);
  const labels = new Set([...t.matchAll(/[{,]([a-z_]+)="/g)].map((x) => x[1]));
  assert.deepEqual([...labels].sort(), [
    "deleter",
    "deno",
    "le",
    "reason",
    "resource",
    "result",
    "rule",
    "source",
    "state",
    "version",
  ]);
  // Kubernetes off: the view's state says so, and nothing is counted.
  assert.equal(value(t, 'conntrack_cleaner_kubernetes_view{state="off"}'), 1);
  assert.equal(value(t, 'conntrack_cleaner_kubernetes_view{state="live"}'), 0);
  assert.equal(value(t, "conntrack_cleaner_kubernetes_destinations"), 0);
});

Deno.test("kubernetesMetrics reads the Kubernetes view's status at each scrape", async () => {
  let status = {
    freshness: "live" as const,
    services: 3,
    slices: 4,
    servicesIgnored: 0,
    slicesIgnored: 2,
    overflow: 2,
    destinations: 7,
    lastContactAgeMs: 1500,
    lastError: undefined,
  };
  const m = new Metrics({
    version: "1",
    deno: "2",
    source: "procfs",
    deleter: "conntrack",
    processMetrics: false,
    parts: (r) => kubernetesMetrics(r, () => status),
  });
  let t = await m.registry.metrics();
  assert.equal(value(t, 'conntrack_cleaner_kubernetes_view{state="live"}'), 1);
  assert.equal(value(t, 'conntrack_cleaner_kubernetes_view{state="off"}'), 0);
  assert.equal(value(t, 'conntrack_cleaner_kubernetes_objects{resource="endpointslices"}'), 4);
  assert.equal(
    value(t, 'conntrack_cleaner_kubernetes_objects_ignored{resource="endpointslices"}'),
    2,
  );
  assert.equal(value(t, "conntrack_cleaner_kubernetes_destinations"), 7);
  assert.equal(value(t, "conntrack_cleaner_kubernetes_last_contact_age_seconds"), 1.5);
  status = { ...status, freshness: "stale" as never };
  t = await m.registry.metrics();
  assert.equal(value(t, 'conntrack_cleaner_kubernetes_view{state="stale"}'), 1);
  assert.equal(value(t, 'conntrack_cleaner_kubernetes_view{state="live"}'), 0);
});
