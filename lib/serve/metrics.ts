/**
 * The agent's Prometheus metrics, on a registry of its own (lib/serve/prom.ts).
 * No label ever carries a tuple or an address: cardinality stays fixed.
 *
 * @module
 */
import { type Counter, type Gauge, type Histogram, Registry } from "./prom.ts";
import { registerProcessMetrics } from "./process_metrics.ts";
import type { KubeStatus } from "../kube/services.ts";
import type { AgentObserver, DecisionResult } from "../agent/observer.ts";
import type { Snapshot } from "../model/snapshot.ts";
import type { TrackResult } from "../rules/tracker.ts";

/** Options for {@linkcode Metrics}. */
export interface MetricsOptions {
  version: string;
  deno: string;
  source: string;
  deleter: string;
  /** Also export the standard `process_*` metrics (CPU, RSS, start time, fds); default true. */
  processMetrics?: boolean;
  /** Wall-clock seconds for the last-success gauge; default `Date.now() / 1000`. */
  nowSeconds?: () => number;
  /** Log lines dropped so far (the logger's count), read at each scrape. */
  logLinesDropped?: () => number;
  /** The events source's counters, read at each scrape (absent for other sources). */
  eventStats?: () => EventCounters;
  /** The active rules' names (each rule's `name`), so their counters exist from the start. */
  rules?: readonly string[];
  /** The Kubernetes view's status, read at each scrape; absent when Kubernetes is off. */
  kubernetes?: () => KubeStatus;
}

/** What the events source counts (`EventsStats` in lib/sources/netlink_events.ts). */
export interface EventCounters {
  received: number;
  overflows: number;
  resyncs: Readonly<Record<string, number>>;
}

/** Resync reasons, for the label (the events source's `ResyncReason`). */
const RESYNC_REASONS = ["start", "overflow", "error", "periodic", "limit"];

const PREFIX = "conntrack_cleaner_";
const DECISION_RESULTS: DecisionResult[] = ["deleted", "already_gone", "failed", "dry_run"];

/**
 * The registry and every metric, fed by the agent through
 * {@linkcode AgentObserver}.
 *
 * @example
 * ```ts
 * import { Metrics } from "./metrics.ts";
 * const m = new Metrics({
 *   version: "0.1.0", deno: Deno.version.deno, source: "procfs", deleter: "conntrack", rules: ["renewals"],
 * });
 * m.deletions([{ result: "deleted", rule: "renewals" }], 12);
 * m.registry.metrics().includes('conntrack_cleaner_deletions_total{result="deleted",rule="renewals"} 1'); // => true
 * ```
 */
export class Metrics implements AgentObserver {
  readonly registry: Registry = new Registry();
  #snapshots: Counter;
  #snapshotDuration: Histogram;
  #scanned: Gauge;
  #malformed: Counter;
  #candidates: Gauge;
  #overflow: Gauge;
  #renewals: Counter;
  #deletions: Counter;
  #deleteDuration: Histogram;
  #evidence: Counter;
  #evidenceKeys: Gauge;
  #skipped: Counter;
  #lastSuccess: Gauge;
  #now: () => number;

  constructor(o: MetricsOptions) {
    const r = this.registry;
    this.#now = o.nowSeconds ?? (() => Date.now() / 1000);
    this.#snapshots = r.counter(
      `${PREFIX}snapshots_total`,
      "Reads of the conntrack table, by result (ok, error).",
      ["result"],
    );
    this.#snapshotDuration = r.histogram(
      `${PREFIX}snapshot_duration_seconds`,
      "How long one read of the conntrack table took.",
      [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    );
    this.#scanned = r.gauge(
      `${PREFIX}entries_scanned`,
      "Entries (lines or messages) in the last successful snapshot.",
    );
    this.#malformed = r.counter(
      `${PREFIX}malformed_lines_total`,
      "Table lines or messages that did not match the format and were skipped.",
    );
    this.#candidates = r.gauge(
      `${PREFIX}candidates`,
      "SYN_SENT [UNREPLIED] TCP entries tracked now.",
    );
    this.#overflow = r.gauge(
      `${PREFIX}candidates_over_limit`,
      "SYN_SENT [UNREPLIED] entries in the last snapshot beyond --max-candidates, not tracked.",
    );
    this.#renewals = r.counter(
      `${PREFIX}renewals_total`,
      "Timeout renewals observed on tracked entries.",
    );
    this.#deletions = r.counter(
      `${PREFIX}deletions_total`,
      "Stale entries acted on, by result (deleted, already_gone, failed, dry_run) and by the rule that decided.",
      ["result", "rule"],
    );
    this.#deleteDuration = r.histogram(
      `${PREFIX}delete_duration_seconds`,
      "How long deleting one poll's stale entries took.",
      [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
    );
    this.#evidence = r.counter(
      `${PREFIX}evidence_reads_total`,
      "Reads of the table asked to collect the un-NATed rule's evidence in the same read, by result (ok, missing: none came, nothing is proven in that poll).",
      ["result"],
    );
    this.#evidenceKeys = r.gauge(
      `${PREFIX}evidence_keys`,
      "Client/destination keys whose translated entries the last read was asked to collect.",
    );
    this.#skipped = r.counter(
      `${PREFIX}skipped_ticks_total`,
      "Poll ticks that came due while the previous poll was still running.",
    );
    this.#lastSuccess = r.gauge(
      `${PREFIX}last_success_timestamp_seconds`,
      "Unix time of the last successful snapshot.",
    );
    r.gauge(
      `${PREFIX}build_info`,
      "Always 1; the labels say which build runs.",
      ["version", "deno"],
    ).set(1, { version: o.version, deno: o.deno });
    r.gauge(
      `${PREFIX}source_info`,
      "Always 1; the labels say how the table is read and how entries are deleted.",
      ["source", "deleter"],
    ).set(1, { source: o.source, deleter: o.deleter });
    const dropped = o.logLinesDropped ?? (() => 0);
    let droppedSeen = 0;
    r.counter(
      `${PREFIX}log_lines_dropped_total`,
      "Log lines dropped: stdout closed or broken, or its bounded queue full behind a stalled reader.",
      [],
      (c) => {
        const n = dropped();
        if (n > droppedSeen) c.inc({}, n - droppedSeen);
        droppedSeen = Math.max(n, droppedSeen);
      },
    );
    this.#eventMetrics(o.eventStats);
    this.#kubernetes(o.kubernetes);
    for (const result of ["ok", "error"]) this.#snapshots.inc({ result }, 0);
    for (const result of DECISION_RESULTS) {
      for (const rule of o.rules ?? []) this.#deletions.inc({ result, rule }, 0);
    }
    for (const result of ["ok", "missing"]) this.#evidence.inc({ result }, 0);
    if (o.processMetrics ?? true) registerProcessMetrics(r);
  }

  /** Counters that follow the events source's own counts, read at each scrape. */
  #eventMetrics(stats: (() => EventCounters) | undefined): void {
    const r = this.registry;
    const read = stats ?? ((): EventCounters => ({ received: 0, overflows: 0, resyncs: {} }));
    const seen = { received: 0, overflows: 0, resyncs: {} as Record<string, number> };
    const follow = (name: string, help: string, key: "received" | "overflows") =>
      r.counter(name, help, [], (c) => {
        const n = read()[key];
        if (n > seen[key]) c.inc({}, n - seen[key]);
        seen[key] = Math.max(n, seen[key]);
      });
    follow(
      `${PREFIX}events_received_total`,
      "Conntrack event messages received (events source; after the kernel's filter).",
      "received",
    );
    follow(
      `${PREFIX}events_overflows_total`,
      "Times the event socket overflowed (ENOBUFS): events were dropped, the table is read.",
      "overflows",
    );
    const resyncs = r.counter(
      `${PREFIX}resyncs_total`,
      "Full reads of the table by the events source, by reason (start, overflow, error, periodic, limit).",
      ["reason"],
      (c) => {
        const now = read().resyncs;
        for (const reason of RESYNC_REASONS) {
          const n = now[reason] ?? 0, was = seen.resyncs[reason] ?? 0;
          if (n > was) c.inc({ reason }, n - was);
          seen.resyncs[reason] = Math.max(n, was);
        }
      },
    );
    for (const reason of RESYNC_REASONS) resyncs.inc({ reason }, 0);
  }

  /** The Kubernetes view's gauges, read from its status at each scrape. */
  #kubernetes(status: (() => KubeStatus) | undefined): void {
    const r = this.registry;
    const states = ["off", "unsynced", "live", "stale", "expired"] as const;
    const get = () => status?.();
    r.gauge(
      `${PREFIX}kubernetes_view`,
      "1 for the Kubernetes Services view's state now (off, unsynced, live, stale, expired), 0 for the others.",
      ["state"],
      (g) => {
        const now = get()?.freshness ?? "off";
        for (const state of states) g.set(state === now ? 1 : 0, { state });
      },
    );
    r.gauge(
      `${PREFIX}kubernetes_last_contact_age_seconds`,
      "Seconds since the Kubernetes API last answered (the older of the two watches); 0 when off.",
      [],
      (g) => g.set((get()?.lastContactAgeMs ?? 0) / 1000),
    );
    r.gauge(
      `${PREFIX}kubernetes_objects`,
      "Services and EndpointSlices kept, by resource.",
      ["resource"],
      (g) => {
        const s = get();
        g.set(s?.services ?? 0, { resource: "services" });
        g.set(s?.slices ?? 0, { resource: "endpointslices" });
      },
    );
    r.gauge(
      `${PREFIX}kubernetes_objects_ignored`,
      "Services and EndpointSlices over the bound (10,000 Services), not kept, by resource.",
      ["resource"],
      (g) => {
        const s = get();
        g.set(s?.servicesIgnored ?? 0, { resource: "services" });
        g.set(s?.slicesIgnored ?? 0, { resource: "endpointslices" });
      },
    );
    r.gauge(
      `${PREFIX}kubernetes_destinations`,
      "Service addresses and ports with ready endpoints that the Kubernetes provider vouches for.",
      [],
      (g) => g.set(get()?.destinations ?? 0),
    );
  }

  snapshotOk(s: Snapshot, durationMs: number, track: TrackResult): void {
    this.#snapshots.inc({ result: "ok" });
    this.#snapshotDuration.observe(durationMs / 1000);
    this.#scanned.set(s.scanned);
    this.#malformed.inc({}, s.malformed);
    this.#candidates.set(track.tracked);
    this.#overflow.set(s.overflow ?? 0);
    this.#renewals.inc({}, track.renewals);
    this.#lastSuccess.set(this.#now());
  }

  snapshotFailed(_error: unknown, durationMs: number): void {
    this.#snapshots.inc({ result: "error" });
    this.#snapshotDuration.observe(durationMs / 1000);
  }

  deletions(results: { result: DecisionResult; rule: string }[], durationMs: number): void {
    for (const { result, rule } of results) this.#deletions.inc({ result, rule });
    if (!results.every((r) => r.result === "dry_run")) {
      this.#deleteDuration.observe(durationMs / 1000);
    }
  }

  evidenceRead(keys: number, delivered: boolean): void {
    if (keys > 0) this.#evidence.inc({ result: delivered ? "ok" : "missing" });
    this.#evidenceKeys.set(keys);
  }

  skippedTicks(count: number): void {
    this.#skipped.inc({}, count);
  }
}
