/**
 * The one thing every deleter (conntrack CLI, netlink) does.
 *
 * @module
 */
import type { Tuple } from "../model/tuple.ts";

/**
 * What became of one tuple:
 * - `deleted`: it was still SYN_SENT + UNREPLIED and is gone now;
 * - `already_gone`: nothing matched any more (it expired, or got its reply);
 * - `failed`: the deleter could not do its job (see `error`); try again later.
 */
export type DeleteResult = "deleted" | "already_gone" | "failed";

/**
 * What to delete: a tuple and, where the source knew it, the conntrack id of
 * the entry that was seen renewed. A deleter that can (netlink) deletes only
 * that entry: a newer entry with the same tuple is not the one that was seen.
 */
export interface DeleteTarget extends Tuple {
  id?: number;
}

/** The outcome for one target passed to {@linkcode Deleter.delete}. */
export interface DeleteOutcome {
  tuple: Tuple;
  result: DeleteResult;
  /** Why it failed, with the tool's own words where there are any. */
  error?: string | undefined;
}

/**
 * Deletes exact tuples, and only while they are still SYN_SENT + UNREPLIED.
 * A deleter also says how much one poll may ask of it and how long that can
 * take, so the agent's per-poll limit and the `/healthz` poll limit follow
 * from the deleter in use.
 */
export interface Deleter {
  /** `conntrack` or `netlink`: used in logs and metrics. */
  readonly name: string;
  /** Most targets one poll hands to {@linkcode Deleter.delete}; the rest wait for the next poll. */
  readonly maxPerPoll: number;
  /**
   * The longest {@linkcode Deleter.delete} of `count` targets can take, in
   * milliseconds, when every step runs into its timeout.
   */
  worstCaseMs(count: number): number;
  /** One outcome per target, in the same order. Never rejects. */
  delete(targets: readonly DeleteTarget[], signal?: AbortSignal): Promise<DeleteOutcome[]>;
  close?(): void;
}
