/**
 * The renewal rule, for kernels that renew a stuck entry at every
 * retransmitted SYN (before 5.14, and some stable sublevels): an entry whose
 * expiry moved later more than `--threshold` times is stuck. The counting is
 * the {@linkcode RenewalTracker}'s (lib/rules/tracker.ts); this rule turns what it
 * found into decisions.
 *
 * @module
 */
import type { RenewalTracker } from "./tracker.ts";
import { tupleKey } from "../model/tuple.ts";
import type { Decision, Rule, RuleInput } from "./rule.ts";

/** The renewal rule's details of a decision. */
export interface RenewalDetails {
  rule: "renewals";
  /** Renewals observed (more than the threshold). */
  renewals: number;
  /** Milliseconds between the first read that saw the entry and this one. */
  trackedMs: number;
}

/**
 * Entries renewed more than the tracker's threshold.
 *
 * @example
 * ```ts
 * import { RenewalRule } from "./renewals.ts";
 * import { RenewalTracker } from "./tracker.ts";
 * const rule = new RenewalRule(new RenewalTracker({ threshold: 3 }));
 * const tuple = { family: "ipv4" as const, src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, zone: 0 };
 * const snapshot = { candidates: [], scanned: 0, malformed: 0, startedAt: 0, finishedAt: 1 };
 * const track = { stale: [{ tuple, renewals: 4, trackedMs: 4000 }], renewals: 1, tracked: 1, forgotten: 0 };
 * rule.decide({ snapshot, track, sameSince: () => undefined })[0]?.reason;
 * // => "renewed 4 times, more than the threshold 3"
 * ```
 */
export class RenewalRule implements Rule<RenewalDetails> {
  readonly name = "renewals";
  #threshold: number;
  #renewalsOf: RenewalTracker["renewalsOf"] | undefined;

  /** `renewalsOf`, where given, says how often a kept candidate was renewed. */
  constructor(
    tracker: Pick<RenewalTracker, "threshold"> & Partial<Pick<RenewalTracker, "renewalsOf">>,
  ) {
    this.#threshold = tracker.threshold;
    this.#renewalsOf = tracker.renewalsOf?.bind(tracker);
  }

  decide(input: RuleInput): Decision<RenewalDetails>[] {
    if (input.keep) this.#explainKept(input, input.keep);
    return input.track.stale.map((r) => ({
      rule: "renewals",
      tuple: r.tuple,
      reason: `renewed ${r.renewals} times, more than the threshold ${this.#threshold}`,
      renewals: r.renewals,
      trackedMs: r.trackedMs,
      ...(r.id !== undefined ? { id: r.id } : {}),
    }));
  }

  /** Every candidate not renewed more than the threshold (debug only). */
  #explainKept(input: RuleInput, keep: NonNullable<RuleInput["keep"]>): void {
    const stale = new Set(input.track.stale.map((r) => tupleKey(r.tuple)));
    for (const c of input.snapshot.candidates) {
      if (stale.has(tupleKey(c))) continue;
      const n = this.#renewalsOf?.(c);
      const times = n === undefined ? "not tracked" : `renewed ${n} time${n === 1 ? "" : "s"}`;
      keep(c, `${times}, not more than the threshold ${this.#threshold}`);
    }
  }

  logFields(d: Decision<RenewalDetails>): Record<string, unknown> {
    return { renewals: d.renewals, tracked_s: Math.round(d.trackedMs) / 1000 };
  }
}
