/**
 * One poll's decision lines, bounded: the first few are said one by one at
 * info, the rest at debug, and one summary line at info counts them all by
 * rule and result. A poll that deletes 10,000 entries writes a dozen info
 * lines, not 10,000; `--log-level=debug` still shows every one.
 *
 * At `--log-level=debug` only, {@linkcode PollKeptLog} says the other side:
 * each candidate a rule considered and kept, with every rule's reason, one
 * debug line per candidate, the first {@linkcode KEPT_AT_DEBUG} of a poll,
 * then one line counting them all; at most {@linkcode KEPT_NOTED} are
 * remembered per poll. The agent makes one only at debug level, so an
 * info-level agent does no work for it.
 *
 * @module
 */
import type { Fields, Logger } from "./logger.ts";
import { type Tuple, tupleKey } from "../model/tuple.ts";

/** Decisions said one by one at info per poll, by default. */
export const DECISIONS_AT_INFO = 10;

/**
 * Collects one poll's decision lines; call {@linkcode PollDecisionLog.end}
 * once the poll's decisions are all said.
 *
 * @example
 * ```ts
 * import { PollDecisionLog } from "./decision_log.ts";
 * const lines: string[] = [];
 * const log = { debug: () => {}, info: (m: string) => lines.push(m), warn: () => {}, error: () => {} };
 * const poll = new PollDecisionLog(log, 1);
 * poll.say("renewals", "deleted", "deleted stale entry", {});
 * poll.say("unnated", "deleted", "deleted stale entry", {});
 * poll.end();
 * lines; // => ["deleted stale entry", "2 stale entries acted on this poll; 1 logged one by one, the rest at debug"]
 * ```
 */
export class PollDecisionLog {
  #said = 0;
  readonly #counts = new Map<string, number>();

  constructor(
    private readonly log: Logger,
    private readonly atInfo: number = DECISIONS_AT_INFO,
  ) {}

  /** Says one decision: at info while under the limit, else at debug; counts it. */
  say(rule: string, result: string, msg: string, fields: Fields): void {
    const key = `${result}_${rule}`;
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1);
    (this.#said++ < this.atInfo ? this.log.info : this.log.debug)(msg, fields);
  }

  /** The summary line, when some decisions went to debug; resets for the next poll. */
  end(): void {
    if (this.#said > this.atInfo) {
      const counts = Object.fromEntries([...this.#counts].sort(([a], [b]) => a < b ? -1 : 1));
      this.log.info(
        `${this.#said} stale entries acted on this poll; ${this.atInfo} logged one by one, the rest at debug`,
        { total: this.#said, ...counts },
      );
    }
    this.#said = 0;
    this.#counts.clear();
  }
}

/** Kept candidates said one by one per poll. */
export const KEPT_AT_DEBUG = 20;
/** Distinct candidates remembered per poll (their reasons); the rest are only counted. */
export const KEPT_NOTED = 1000;

/**
 * Collects why each candidate was kept; {@linkcode PollKeptLog.end} says it.
 *
 * @example
 * ```ts
 * import { PollKeptLog } from "./decision_log.ts";
 * const lines: string[] = [];
 * const log = { debug: (m: string, f?: Record<string, unknown>) => lines.push(`${m}: ${f?.reason}`), info: () => {}, warn: () => {}, error: () => {} };
 * const kept = new PollKeptLog(log);
 * const c = { family: "ipv4" as const, src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, zone: 0 };
 * kept.note("renewals", c, "renewed 1 time, not more than the threshold 3");
 * kept.note("unnated", c, "younger than --unnated-after 2s");
 * kept.end(new Set());
 * lines; // => ["kept candidate: renewals: renewed 1 time, not more than the threshold 3; unnated: younger than --unnated-after 2s"]
 * ```
 */
export class PollKeptLog {
  readonly #kept = new Map<string, { tuple: Tuple; reasons: string[] }>();
  /** Candidates past {@linkcode KEPT_NOTED}: only counted. */
  #unnoted = new Set<string>();

  constructor(
    private readonly log: Logger,
    private readonly atDebug: number = KEPT_AT_DEBUG,
    private readonly noted: number = KEPT_NOTED,
  ) {}

  /** `rule` considered `c` and keeps it, because of `reason`. */
  note(rule: string, c: Tuple, reason: string): void {
    const key = tupleKey(c);
    const seen = this.#kept.get(key);
    if (seen !== undefined) seen.reasons.push(`${rule}: ${reason}`);
    else if (this.#kept.size < this.noted) {
      this.#kept.set(key, {
        tuple: {
          family: c.family,
          src: c.src,
          sport: c.sport,
          dst: c.dst,
          dport: c.dport,
          zone: c.zone,
        },
        reasons: [`${rule}: ${reason}`],
      });
    } else this.#unnoted.add(key);
  }

  /**
   * Says the candidates noted this poll that no rule decided (`decided`:
   * tuple keys), the first few one by one, then how many in all; resets.
   */
  end(decided: ReadonlySet<string>): void {
    let said = 0, total = 0;
    for (const [key, { tuple, reasons }] of this.#kept) {
      if (decided.has(key)) continue;
      total++;
      if (said >= this.atDebug) continue;
      said++;
      this.log.debug("kept candidate", { ...tuple, reason: reasons.join("; ") });
    }
    for (const key of this.#unnoted) if (!decided.has(key)) total++;
    if (total > said) {
      this.log.debug(
        `${total} candidates kept this poll; ${said} logged one by one, the rest only counted`,
        { kept: total },
      );
    }
    this.#kept.clear();
    this.#unnoted.clear();
  }
}
