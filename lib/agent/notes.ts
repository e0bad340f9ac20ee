/**
 * What the poll loop notices about a read and says at most once a minute
 * (lib/log/quiet_log.ts): malformed lines, candidates past the bound, and a
 * deleter whose "already gone" entry is still in the next read; and the log
 * fields of a decision.
 *
 * @module
 */
import type { Snapshot } from "../model/snapshot.ts";
import { type Tuple, tupleKey } from "../model/tuple.ts";
import type { QuietLog } from "../log/quiet_log.ts";
import type { Decision, Rule } from "../rules/rule.ts";

/** The loop's quiet warnings about reads and deletions. */
export class PollNotes {
  #quiet: QuietLog;
  #deleter: string;
  #gone = new Map<string, number | undefined>();

  constructor(quiet: QuietLog, deleter: string) {
    this.#quiet = quiet;
    this.#deleter = deleter;
  }

  /** The deleter said this decision's entry was already gone: check the next read. */
  reportedGone(d: Decision): void {
    this.#gone.set(tupleKey(d.tuple), d.id);
  }

  /**
   * An entry the deleter reported already gone that is in the very next
   * snapshot (same conntrack id, where known) was never deleted: a deleter
   * that does nothing and says so must not pass for one that works.
   */
  stillThere(s: Snapshot): void {
    if (this.#gone.size === 0) return;
    const gone = this.#gone;
    this.#gone = new Map();
    for (const c of s.candidates) {
      const key = tupleKey(c);
      if (!gone.has(key)) continue;
      const id = gone.get(key);
      if (id !== undefined && c.id !== undefined && id !== c.id) continue;
      this.#quiet.warn(
        "the deleter reports success but the entry is still there",
        {
          deleter: this.#deleter,
          family: c.family,
          src: c.src,
          sport: c.sport,
          dst: c.dst,
          dport: c.dport,
          zone: c.zone,
        },
      );
    }
  }

  malformed(s: Snapshot): void {
    if (s.malformed === 0) return;
    this.#quiet.warn("skipped malformed table lines", {
      malformed: s.malformed,
      first: s.firstMalformed,
    });
  }

  overflow(s: Snapshot): void {
    if (!s.overflow) return;
    this.#quiet.warn(
      "more SYN_SENT [UNREPLIED] entries than --max-candidates; the rest are not tracked",
      { tracked_at_most: s.candidates.length, not_tracked: s.overflow },
    );
  }
}

/** The log fields of a decision: the tuple, the rule, why, and the rule's own details. */
export function decisionFields(d: Decision, rules: readonly Rule[]): Record<string, unknown> {
  const t: Tuple = d.tuple;
  return {
    family: t.family,
    src: t.src,
    sport: t.sport,
    dst: t.dst,
    dport: t.dport,
    zone: t.zone,
    rule: d.rule,
    reason: d.reason,
    ...rules.find((r) => r.name === d.rule)?.logFields(d),
  };
}
