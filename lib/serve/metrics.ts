/**
 * The agent's Prometheus metrics, on a registry of its own (lib/serve/prom.ts).
 * No label ever carries a tuple or an address: cardinality stays fixed.
 *
 * @module
 */
import { type Counter, type Gauge, type Histogram, Registry } from "./prom.ts";
import { registerProcessMetrics } from "./process_metrics.ts";
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
  /** The active rules' names (each rule's `name`), so their counters exist from the start. */
  rules?: readonly string[];
  /**
   * The optional parts' own metrics (a source's, a feed's), registered on the
   * registry after the agent's and before the process metrics.
   */
  parts?: (registry: Registry) => void;
}

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
    o.parts?.(r);
    for (const result of ["ok", "error"]) this.#snapshots.inc({ result }, 0);
    for (const result of DECISION_RESULTS) {
      for (const rule of o.rules ?? []) this.#deletions.inc({ result, rule }, 0);
    }
    for (const result of ["ok", "missing"]) this.#evidence.inc({ result }, 0);
    if (o.processMetrics ?? true) registerProcessMetrics(r);
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
