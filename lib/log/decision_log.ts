/**
 * One poll's decision lines, bounded: the first few are said one by one at
 * info, the rest at debug, and one summary line at info counts them all by
 * rule and result. A poll that deletes 10,000 entries writes a dozen info
 * lines, not 10,000; `--log-level=debug` still shows every one.
 *
 * @module
 */
import type { Fields, Logger } from "./logger.ts";

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
