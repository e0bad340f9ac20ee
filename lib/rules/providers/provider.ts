/**
 * "Is this destination NATed now, for this client?": the un-NATed rule asks
 * its providers, each behind one interface, and deletes a candidate only
 * when one of them vouches for it. A new provider is a new file in this
 * folder plus one entry in the registry, lib/run/providers.ts.
 *
 * A provider answers from what it holds at the moment (its view), never by
 * I/O inside the answer: a provider fed from elsewhere (an API watch)
 * refreshes its view on its own schedule, outside the decide step, and
 * answers nothing for what its view no longer covers (a view too old
 * vouches for nothing).
 *
 * @module
 */
import type { Candidate, Snapshot, SnapshotOptions } from "../../model/snapshot.ts";

/** What a provider is asked about one un-NATed candidate. */
export interface VouchQuery {
  /**
   * The candidate (its family, zone, `dst`, `dport` are the destination;
   * `src`, `sport`, `id` the client and the entry).
   */
  candidate: Candidate;
  /** The tracker's `sameSince` of this very entry (see `RuleInput`); `undefined`: unknown. */
  sameSince: number | undefined;
  /** Monotonic ms of the read (the snapshot's start). */
  now: number;
}

/** A provider's "yes": why, in words, for the log line. */
export interface Vouch {
  reason: string;
}

/** Says whether a candidate's destination is NATed now for its client. */
export interface NatProvider {
  /** Short name, in decisions and logs (`destinations`, `table`, …). */
  readonly name: string;
  /** What the provider wants collected in the next read, if anything. */
  wants?(): SnapshotOptions | undefined;
  /**
   * Takes one successful read into account before any {@linkcode vouch} for
   * it (the table provider notes which translated entries it saw when).
   * Called once per read, in order; `snapshot` holds the in-scope candidates.
   */
  observe?(snapshot: Snapshot): void;
  /** The provider's "yes" for this candidate, or `undefined` (not vouched: keep the entry). */
  vouch(q: VouchQuery): Vouch | undefined;
}
