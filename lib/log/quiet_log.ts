/**
 * Log lines that would repeat at every poll, said at most once a minute: the
 * repeats go to debug level, counted where that helps. A failing deleter or a
 * flooded table must not flood the log.
 *
 * @module
 */
import type { Clock } from "../basics.ts";
import type { Fields, Logger } from "./logger.ts";

/**
 * Rate-limited warnings and per-cause error lines over a {@linkcode Logger}.
 *
 * @example
 * ```ts
 * import { createLogger } from "./logger.ts";
 * import { QuietLog } from "./quiet_log.ts";
 * let now = 0;
 * const quiet = new QuietLog(createLogger(), () => now);
 * quiet.warn("skipped malformed table lines", { malformed: 3 }); // said at warn
 * now += 1000;
 * quiet.warn("skipped malformed table lines", { malformed: 3 }); // at debug: within the minute
 * ```
 */
export class QuietLog {
  /** When each repeating warning was last said at warn level. */
  #lastWarned = new Map<string, number>();
  /** Per failure cause: when it was last said at error level, and the lines held back since. */
  #failures = new Map<string, { at: number; held: number }>();

  constructor(readonly log: Logger, readonly clock: Clock) {}

  /** `msg` at warn level once a minute, at debug level in between. */
  warn(msg: string, fields: Fields): void {
    const now = this.clock();
    if (now - (this.#lastWarned.get(msg) ?? -Infinity) >= 60_000) {
      this.#lastWarned.set(msg, now);
      this.log.warn(`${msg} (said at most once a minute)`, fields);
    } else this.log.debug(msg, fields);
  }

  /**
   * `msg` at error level once a minute per `cause`, with the count of lines
   * held back since (`held_back`); at debug level in between.
   */
  errorPerCause(msg: string, cause: string, fields: Fields): void {
    const now = this.clock();
    const seen = this.#failures.get(cause);
    if (seen === undefined || now - seen.at >= 60_000) {
      if (this.#failures.size >= 100) this.#failures.clear(); // causes are few; bound it anyway
      this.#failures.set(cause, { at: now, held: 0 });
      this.log.error(`${msg} (said at most once a minute per cause)`, {
        ...fields,
        error: cause,
        held_back: seen?.held ?? 0,
      });
    } else {
      seen.held++;
      this.log.debug(msg, { ...fields, error: cause });
    }
  }
}
