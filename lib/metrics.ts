/**
 * The agent's Prometheus metrics, on a prom-client registry of its own.
 * No label ever carries a tuple or an address: cardinality stays fixed.
 *
 * @module
 */
import type * as Prom from "prom-client";
// Only the parts used, by path: prom-client's index also loads the push
// gateway (node:http), cluster aggregation, summaries and every default
// metric, about 6 MB more resident memory (deno task bench, docs/benchmarks.md).
import Counter from "prom-client/lib/counter.js";
import Gauge from "prom-client/lib/gauge.js";
import Histogram from "prom-client/lib/histogram.js";
import Registry from "prom-client/lib/registry.js";
import heapSizeAndUsed from "prom-client/lib/metrics/heapSizeAndUsed.js";
import osMemoryHeap from "prom-client/lib/metrics/osMemoryHeap.js";
import processCpuTotal from "prom-client/lib/metrics/processCpuTotal.js";
import processMaxFileDescriptors from "prom-client/lib/metrics/processMaxFileDescriptors.js";
import processOpenFileDescriptors from "prom-client/lib/metrics/processOpenFileDescriptors.js";
import processStartTime from "prom-client/lib/metrics/processStartTime.js";
import type { KubeStatus } from "./kube/services.ts";
import type { AgentObserver, DecisionResult } from "./observer.ts";
import type { Snapshot } from "./snapshot.ts";
import type { TrackResult } from "./tracker.ts";

/** Options for {@linkcode Metrics}. */
export interface MetricsOptions {
  version: string;
  deno: string;
  source: string;
  deleter: string;
  /** Also export prom-client's process metrics (RSS, CPU, fds, …); default true. */
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

const client = {
  Registry: Registry as typeof Prom.Registry,
  Counter: Counter as typeof Prom.Counter,
  Gauge: Gauge as typeof Prom.Gauge,
  Histogram: Histogram as typeof Prom.Histogram,
};
/** prom-client's process metrics that are kept: CPU, RSS, start time, fds, heap. */
const PROCESS_METRICS: ((registry: Prom.Registry, config: { prefix: string }) => void)[] = [
  processCpuTotal,
  processStartTime,
  osMemoryHeap,
  processOpenFileDescriptors,
  processMaxFileDescriptors,
  heapSizeAndUsed,
];
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
 * console.log(await m.registry.metrics());
 * ```
 */
export class Metrics implements AgentObserver {
  readonly registry: Prom.Registry = new client.Registry();
  #snapshots;
  #snapshotDuration;
  #scanned;
  #malformed;
  #candidates;
  #overflow;
  #renewals;
  #deletions;
  #deleteDuration;
  #evidence;
  #evidenceKeys;
  #skipped;
  #lastSuccess;
  #now: () => number;

  constructor(o: MetricsOptions) {
    const registers = [this.registry];
    this.#now = o.nowSeconds ?? (() => Date.now() / 1000);
    this.#snapshots = new client.Counter({
      name: `${PREFIX}snapshots_total`,
      help: "Reads of the conntrack table, by result (ok, error).",
      labelNames: ["result"] as const,
      registers,
    });
    this.#snapshotDuration = new client.Histogram({
      name: `${PREFIX}snapshot_duration_seconds`,
      help: "How long one read of the conntrack table took.",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.#scanned = new client.Gauge({
      name: `${PREFIX}entries_scanned`,
      help: "Entries (lines or messages) in the last successful snapshot.",
      registers,
    });
    this.#malformed = new client.Counter({
      name: `${PREFIX}malformed_lines_total`,
      help: "Table lines or messages that did not match the format and were skipped.",
      registers,
    });
    this.#candidates = new client.Gauge({
      name: `${PREFIX}candidates`,
      help: "SYN_SENT [UNREPLIED] TCP entries tracked now.",
      registers,
    });
    this.#overflow = new client.Gauge({
      name: `${PREFIX}candidates_over_limit`,
      help:
        "SYN_SENT [UNREPLIED] entries in the last snapshot beyond --max-candidates, not tracked.",
      registers,
    });
    this.#renewals = new client.Counter({
      name: `${PREFIX}renewals_total`,
      help: "Timeout renewals observed on tracked entries.",
      registers,
    });
    this.#deletions = new client.Counter({
      name: `${PREFIX}deletions_total`,
      help:
        "Stale entries acted on, by result (deleted, already_gone, failed, dry_run) and by the rule that decided.",
      labelNames: ["result", "rule"] as const,
      registers,
    });
    this.#deleteDuration = new client.Histogram({
      name: `${PREFIX}delete_duration_seconds`,
      help: "How long deleting one poll's stale entries took.",
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60],
      registers,
    });
    this.#evidence = new client.Counter({
      name: `${PREFIX}evidence_reads_total`,
      help:
        "Reads of the table asked to collect the un-NATed rule's evidence in the same read, by result (ok, missing: none came, nothing is proven in that poll).",
      labelNames: ["result"] as const,
      registers,
    });
    this.#evidenceKeys = new client.Gauge({
      name: `${PREFIX}evidence_keys`,
      help: "Client/destination keys whose translated entries the last read was asked to collect.",
      registers,
    });
    this.#skipped = new client.Counter({
      name: `${PREFIX}skipped_ticks_total`,
      help: "Poll ticks that came due while the previous poll was still running.",
      registers,
    });
    this.#lastSuccess = new client.Gauge({
      name: `${PREFIX}last_success_timestamp_seconds`,
      help: "Unix time of the last successful snapshot.",
      registers,
    });
    new client.Gauge({
      name: `${PREFIX}build_info`,
      help: "Always 1; the labels say which build runs.",
      labelNames: ["version", "deno"] as const,
      registers,
    }).set({ version: o.version, deno: o.deno }, 1);
    new client.Gauge({
      name: `${PREFIX}source_info`,
      help: "Always 1; the labels say how the table is read and how entries are deleted.",
      labelNames: ["source", "deleter"] as const,
      registers,
    }).set({ source: o.source, deleter: o.deleter }, 1);
    const dropped = o.logLinesDropped ?? (() => 0);
    let droppedSeen = 0;
    new client.Counter({
      name: `${PREFIX}log_lines_dropped_total`,
      help: "Log lines that could not be written (stdout closed or broken) and were dropped.",
      registers,
      collect() {
        const n = dropped();
        if (n > droppedSeen) this.inc(n - droppedSeen);
        droppedSeen = Math.max(n, droppedSeen);
      },
    });
    this.#eventMetrics(registers, o.eventStats);
    this.#kubernetes(o.kubernetes, registers);
    for (const result of ["ok", "error"]) this.#snapshots.inc({ result }, 0);
    for (const result of DECISION_RESULTS) {
      for (const rule of o.rules ?? []) this.#deletions.inc({ result, rule }, 0);
    }
    for (const result of ["ok", "missing"]) this.#evidence.inc({ result }, 0);
    if (o.processMetrics ?? true) {
      for (const collect of PROCESS_METRICS) collect(this.registry, { prefix: PREFIX });
    }
  }

  /** Counters that follow the events source's own counts, read at each scrape. */
  #eventMetrics(registers: Prom.Registry[], stats: (() => EventCounters) | undefined): void {
    const read = stats ?? ((): EventCounters => ({ received: 0, overflows: 0, resyncs: {} }));
    const seen = { received: 0, overflows: 0, resyncs: {} as Record<string, number> };
    new client.Counter({
      name: `${PREFIX}events_received_total`,
      help: "Conntrack event messages received (events source; after the kernel's filter).",
      registers,
      collect() {
        const n = read().received;
        if (n > seen.received) this.inc(n - seen.received);
        seen.received = Math.max(n, seen.received);
      },
    });
    new client.Counter({
      name: `${PREFIX}events_overflows_total`,
      help: "Times the event socket overflowed (ENOBUFS): events were dropped, the table is read.",
      registers,
      collect() {
        const n = read().overflows;
        if (n > seen.overflows) this.inc(n - seen.overflows);
        seen.overflows = Math.max(n, seen.overflows);
      },
    });
    const resyncs = new client.Counter({
      name: `${PREFIX}resyncs_total`,
      help:
        "Full reads of the table by the events source, by reason (start, overflow, error, periodic, limit).",
      labelNames: ["reason"] as const,
      registers,
      collect() {
        const now = read().resyncs;
        for (const reason of RESYNC_REASONS) {
          const n = now[reason] ?? 0, was = seen.resyncs[reason] ?? 0;
          if (n > was) this.inc({ reason }, n - was);
          seen.resyncs[reason] = Math.max(n, was);
        }
      },
    });
    for (const reason of RESYNC_REASONS) resyncs.inc({ reason }, 0);
  }

  /** The Kubernetes view's gauges, read from its status at each scrape. */
  #kubernetes(status: (() => KubeStatus) | undefined, registers: Prom.Registry[]): void {
    const states = ["off", "unsynced", "live", "stale", "expired"] as const;
    const get = () => status?.();
    new client.Gauge({
      name: `${PREFIX}kubernetes_view`,
      help:
        "1 for the Kubernetes Services view's state now (off, unsynced, live, stale, expired), 0 for the others.",
      labelNames: ["state"] as const,
      registers,
      collect() {
        const now = get()?.freshness ?? "off";
        for (const state of states) this.set({ state }, state === now ? 1 : 0);
      },
    });
    new client.Gauge({
      name: `${PREFIX}kubernetes_last_contact_age_seconds`,
      help:
        "Seconds since the Kubernetes API last answered (the older of the two watches); 0 when off.",
      registers,
      collect() {
        this.set((get()?.lastContactAgeMs ?? 0) / 1000);
      },
    });
    new client.Gauge({
      name: `${PREFIX}kubernetes_objects`,
      help: "Services and EndpointSlices kept, by resource.",
      labelNames: ["resource"] as const,
      registers,
      collect() {
        const s = get();
        this.set({ resource: "services" }, s?.services ?? 0);
        this.set({ resource: "endpointslices" }, s?.slices ?? 0);
      },
    });
    new client.Gauge({
      name: `${PREFIX}kubernetes_objects_ignored`,
      help: "Services and EndpointSlices over the bound (10,000 Services), not kept, by resource.",
      labelNames: ["resource"] as const,
      registers,
      collect() {
        const s = get();
        this.set({ resource: "services" }, s?.servicesIgnored ?? 0);
        this.set({ resource: "endpointslices" }, s?.slicesIgnored ?? 0);
      },
    });
    new client.Gauge({
      name: `${PREFIX}kubernetes_destinations`,
      help:
        "Service addresses and ports with ready endpoints that the Kubernetes provider vouches for.",
      registers,
      collect() {
        this.set(get()?.destinations ?? 0);
      },
    });
  }

  snapshotOk(s: Snapshot, durationMs: number, track: TrackResult): void {
    this.#snapshots.inc({ result: "ok" });
    this.#snapshotDuration.observe(durationMs / 1000);
    this.#scanned.set(s.scanned);
    this.#malformed.inc(s.malformed);
    this.#candidates.set(track.tracked);
    this.#overflow.set(s.overflow ?? 0);
    this.#renewals.inc(track.renewals);
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
    this.#skipped.inc(count);
  }
}
