/**
 * What the poll loop tells an observer (metrics implement it) after each
 * step. Types only: the loop and the metrics both depend on this, not on
 * each other.
 *
 * @module
 */
import type { DeleteOutcome } from "./deleters/deleter.ts";
import type { Snapshot } from "./snapshot.ts";
import type { Rule, TrackResult } from "./tracker.ts";

/** The outcome of one deletion decision, including dry-run ones. */
export type DecisionResult = DeleteOutcome["result"] | "dry_run";

/** Hooks the agent calls after each step (metrics implement these). */
export interface AgentObserver {
  snapshotOk?(snapshot: Snapshot, durationMs: number, track: TrackResult): void;
  snapshotFailed?(error: unknown, durationMs: number): void;
  deletions?(results: { result: DecisionResult; rule: Rule }[], durationMs: number): void;
  /** One evidence look-up for the un-NATed rule: destinations asked, found, or the error. */
  evidenceLookup?(asked: number, found: number, durationMs: number, error?: unknown): void;
  skippedTicks?(count: number): void;
}
