/**
 * What the poll loop tells an observer (metrics implement it) after each
 * step. Types only: the loop and the metrics both depend on this, not on
 * each other.
 *
 * @module
 */
import type { DeleteOutcome } from "../deleters/deleter.ts";
import type { Snapshot } from "../model/snapshot.ts";
import type { TrackResult } from "../rules/tracker.ts";

/** The outcome of one deletion decision, including dry-run ones. */
export type DecisionResult = DeleteOutcome["result"] | "dry_run";

/** Hooks the agent calls after each step (metrics implement these). */
export interface AgentObserver {
  snapshotOk?(snapshot: Snapshot, durationMs: number, track: TrackResult): void;
  snapshotFailed?(error: unknown, durationMs: number): void;
  deletions?(results: { result: DecisionResult; rule: string }[], durationMs: number): void;
  /**
   * After each successful read: how many keys it was asked to collect
   * evidence for (0: none), and whether it delivered evidence (see
   * `EvidenceRead` in lib/model/snapshot.ts).
   */
  evidenceRead?(keys: number, delivered: boolean): void;
  skippedTicks?(count: number): void;
}
