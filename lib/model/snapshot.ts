/**
 * What one read of the conntrack table gives: the candidates it saw, with
 * when each was seen, and the counts around them.
 *
 * @module
 */
import type { ClientKey, Endpoint, Tuple } from "./tuple.ts";

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
  /**
   * Known from the entry's creation event alone, not read since (the events
   * source): an observation for the renewal tracker, but no rule acts on it,
   * since the entry may have been answered after its event.
   */
  heard?: true;
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
   * Present only when evidence was asked for (see {@linkcode SnapshotOptions})
   * and this very read collected it for every key asked; absent when it was
   * not asked or could not be collected (then nothing is known this poll).
   */
  evidence?: EvidenceRead;
}

/**
 * One translated TCP entry of a read: an entry whose original destination
 * was translated (DNAT, REDIRECT: the reply source differs from the original
 * destination), in any TCP state, listed under its original direction's
 * {@linkcode ClientKey}.
 */
export interface TranslatedEntry {
  /**
   * The kernel's conntrack id, where the source knows it (netlink). Sources
   * without ids identify an entry by its key and `sport`.
   */
  id?: number;
  /** The original source port (the rest of the tuple is the key). */
  sport: number;
  /** The reply direction's zone (the key holds the original direction's). */
  replyZone: number;
  /** Where the destination was translated to: the reply tuple's source. */
  translated: Endpoint;
}

/**
 * The evidence contract: what a source that was asked for keys delivers,
 * from the same read as the candidates (procfs: the same pass; netlink: an
 * `IPS_DST_NAT` dump beside the candidates'; the CLI: `-L --dst-nat`; an
 * events source: its view of the table at the read).
 *
 * - Complete: every translated TCP entry with an asked key that was in the
 *   table throughout the read is listed, unless its key is in `overflow`.
 *   The un-NATed rule takes an entry missing from a read as proof that it was
 *   not there yet, so a source that cannot promise this for a key must put
 *   the key in `overflow` (or deliver no `evidence` at all).
 * - Current: a listed entry was in the table during the read.
 * - Every key asked is in `entries` (an empty list when it has none), or in
 *   `overflow`; keys not asked may be absent.
 */
export interface EvidenceRead {
  /** By {@linkcode clientKey} (lib/model/tuple.ts): the translated TCP entries of the key. */
  entries: ReadonlyMap<string, readonly TranslatedEntry[]>;
  /**
   * Keys with more entries than the source keeps (see
   * {@linkcode MAX_EVIDENCE_PER_KEY}, {@linkcode MAX_EVIDENCE_ENTRIES}):
   * nothing is known of them in this read.
   */
  overflow: ReadonlySet<string>;
}

/** A source keeps at most this many translated entries per key and read; more: overflow. */
export const MAX_EVIDENCE_PER_KEY = 4096;
/** A source keeps at most this many translated entries per read in all; more: overflow. */
export const MAX_EVIDENCE_ENTRIES = 16_384;

/** What a snapshot may collect on the way. */
export interface SnapshotOptions {
  /**
   * Keys (client address, destination, zone) to collect translated TCP
   * entries for in the same read (see {@linkcode EvidenceRead}). Every
   * source honours it.
   */
  evidenceFor?: readonly ClientKey[];
}
