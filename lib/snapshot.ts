/**
 * What one read of the conntrack table gives: the candidates it saw, with
 * when each was seen, and the counts around them.
 *
 * @module
 */
import type { Destination, Endpoint, Tuple } from "./tuple.ts";

/** One TCP entry in `SYN_SENT` with `[UNREPLIED]`, as one snapshot saw it. */
export interface Candidate extends Tuple {
  /** Seconds left before the entry expires, as the kernel printed it (rounded down). */
  timeout: number;
  /**
   * Monotonic milliseconds (same clock as {@linkcode Snapshot.startedAt}): the
   * kernel formatted this entry no earlier than `seenFrom` and no later than
   * `seenTo`. A source that cannot tell better uses the snapshot's start and end.
   */
  seenFrom: number;
  seenTo: number;
  /** The kernel's conntrack id, where the source knows it (netlink). */
  id?: number;
  /**
   * Where the destination was translated to (the reply tuple's source), when
   * it differs from the original destination address or port; absent for an
   * un-NATed entry (reply source = original destination).
   */
  translated?: Endpoint;
}

/** What one read of the table produced. */
export interface Snapshot {
  /** Only TCP `SYN_SENT` + `[UNREPLIED]` entries; everything else is counted, not kept. */
  candidates: Candidate[];
  /** Entries (lines or messages) looked at, candidates or not. */
  scanned: number;
  /** Lines or messages that did not match the format and were skipped. */
  malformed: number;
  /**
   * Entries past the source's `maxCandidates`: counted, not parsed, not kept
   * (a bound on memory and CPU when the table is flooded). procfs and the
   * CLI count SYN_SENT lines; netlink counts the (kernel-filtered) messages.
   */
  overflow?: number;
  /** The first malformed line and why, for the log. */
  firstMalformed?: { reason: string; line: string } | undefined;
  /** Monotonic milliseconds when the read started and finished. */
  startedAt: number;
  finishedAt: number;
  /**
   * Present when evidence was asked for (see {@linkcode SnapshotOptions})
   * and the source collected it in the same read: for each destination
   * asked (by `destinationKey` (lib/tuple.ts)) that has one, where an entry to it
   * was translated to. Absent: nothing is known (ask elsewhere).
   */
  evidence?: ReadonlyMap<string, Endpoint>;
}

/** What a snapshot may collect on the way. */
export interface SnapshotOptions {
  /**
   * Destinations to look evidence up for in the same read, where the source
   * reads the whole table anyway (procfs); other sources ignore it.
   */
  evidenceFor?: readonly Destination[];
}
