/**
 * Decides which SYN_SENT + UNREPLIED entries keep being renewed. Pure: a
 * snapshot in, decisions out; no clock of its own, no I/O.
 *
 * ## How a renewal is recognised
 *
 * The kernel prints the seconds left rounded down, and formats each line at
 * some moment inside the window the source reports (`seenFrom`..`seenTo`).
 * So one observation says: the entry's real expiry deadline D lies in
 *
 * ```
 * [seenFrom + timeout·1000 − margin,  seenTo + (timeout + 1)·1000 + margin)
 * ```
 *
 * An entry that is not renewed keeps one D, which lies in every such
 * interval; the tracker intersects them. A renewal is counted only when a new
 * interval lies entirely after the current one: then the deadline has moved
 * later for certain, whatever the poll interval, snapshot duration or phase.
 * An entry that is never renewed can never be counted, by construction. At
 * most one renewal counts per poll; after a counted renewal the new
 * observation becomes the reference.
 *
 * @module
 */
import type { Candidate, Snapshot } from "../model/snapshot.ts";
import { toTuple, type Tuple, tupleKey } from "../model/tuple.ts";

/** Options for {@linkcode RenewalTracker}. */
export interface TrackerOptions {
  /** An entry is stale when its observed renewals are more than this. */
  threshold: number;
  /**
   * Milliseconds added on both sides of each deadline interval, for the
   * kernel's jiffy granularity against our monotonic clock. Default 50.
   */
  marginMs?: number;
}

/** An entry renewed more than the threshold (the renewal rule turns it into a decision). */
export interface Renewed {
  tuple: Tuple;
  /** Renewals observed (more than the threshold). */
  renewals: number;
  /** Milliseconds between the first snapshot that saw it and this one. */
  trackedMs: number;
  /** The kernel's id, where the source knows it. */
  id?: number;
}

/** What one {@linkcode RenewalTracker.observe} call decided. */
export interface TrackResult {
  /** Entries with more renewals than the threshold, in snapshot order. */
  stale: Renewed[];
  /** Renewals counted in this snapshot. */
  renewals: number;
  /** Candidates tracked after this snapshot. */
  tracked: number;
  /** Tracked tuples dropped because they were gone or no longer candidates. */
  forgotten: number;
}

interface Track {
  tuple: Tuple;
  /** The deadline lies in [lo, hi) (monotonic ms), if not renewed since. */
  lo: number;
  hi: number;
  renewals: number;
  firstSeen: number;
  /**
   * `seenTo` of the first observation of the entry as it is now: reset when a
   * renewal is counted or the kernel id changes (it may be another entry).
   */
  sameSince: number;
  lastPoll: number;
  id?: number;
}

/**
 * Tracks candidates across snapshots and reports the ones renewed more than
 * `threshold` times.
 *
 * @example
 * ```ts
 * import { RenewalTracker } from "./tracker.ts";
 * const tracker = new RenewalTracker({ threshold: 3 });
 * const tuple = { family: "ipv4" as const, src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, zone: 0 };
 * for (let s = 0; s <= 10; s++) {
 *   // renewed every second: always 120 s left
 *   const at = s * 1000;
 *   const r = tracker.observe({
 *     candidates: [{ ...tuple, timeout: 119, seenFrom: at, seenTo: at + 5 }],
 *     scanned: 1, malformed: 0, startedAt: at, finishedAt: at + 5,
 *   });
 *   for (const d of r.stale) tracker.forget(d.tuple);
 * }
 * ```
 */
export class RenewalTracker {
  readonly threshold: number;
  readonly marginMs: number;
  #tracks = new Map<string, Track>();
  #poll = 0;

  constructor(options: TrackerOptions) {
    if (!Number.isInteger(options.threshold) || options.threshold < 0) {
      throw new RangeError(`threshold must be an integer >= 0, got ${options.threshold}`);
    }
    this.threshold = options.threshold;
    this.marginMs = options.marginMs ?? 50;
  }

  /** Number of tuples tracked now. */
  get size(): number {
    return this.#tracks.size;
  }

  /** Takes one snapshot into account and returns what is stale now. */
  observe(snapshot: Snapshot): TrackResult {
    const poll = ++this.#poll;
    let renewals = 0;
    const stale: Renewed[] = [];
    for (const c of snapshot.candidates) {
      const key = tupleKey(c);
      const lo = c.seenFrom + c.timeout * 1000 - this.marginMs;
      const hi = c.seenTo + (c.timeout + 1) * 1000 + this.marginMs;
      const t = this.#tracks.get(key);
      if (t === undefined) {
        this.#tracks.set(key, this.#newTrack(c, lo, hi, poll));
        continue;
      }
      if (c.id !== undefined && t.id !== undefined && c.id !== t.id) {
        // Same tuple, another kernel entry: the old one went away in between.
        this.#tracks.set(key, this.#newTrack(c, lo, hi, poll));
        continue;
      }
      const again = t.lastPoll === poll; // the same tuple twice in one read
      if (lo >= t.hi && !again) {
        t.renewals++;
        renewals++;
        t.lo = lo;
        t.hi = hi;
        t.sameSince = c.seenTo;
      } else if (hi <= t.lo) {
        // Deadline moved earlier (someone shortened the timeout): new reference.
        t.lo = lo;
        t.hi = hi;
      } else {
        t.lo = Math.max(t.lo, lo);
        t.hi = Math.min(t.hi, hi);
      }
      t.lastPoll = poll;
      if (t.renewals > this.threshold && !again) {
        stale.push({
          tuple: t.tuple,
          renewals: t.renewals,
          trackedMs: snapshot.startedAt - t.firstSeen,
          ...(c.id !== undefined ? { id: c.id } : {}),
        });
      }
    }
    let forgotten = 0;
    for (const [key, t] of this.#tracks) {
      if (t.lastPoll !== poll) {
        this.#tracks.delete(key);
        forgotten++;
      }
    }
    return { stale, renewals, tracked: this.#tracks.size, forgotten };
  }

  /**
   * The monotonic time from which the tracked entry of `tuple` is known to
   * have existed unchanged (no renewal counted, same kernel id): the `seenTo`
   * of its first such observation. `undefined` when the tuple is not tracked.
   */
  sameSince(tuple: Tuple): number | undefined {
    return this.#tracks.get(tupleKey(tuple))?.sameSince;
  }

  /** Renewals counted so far for the tracked entry of `tuple`; `undefined` when not tracked. */
  renewalsOf(tuple: Tuple): number | undefined {
    return this.#tracks.get(tupleKey(tuple))?.renewals;
  }

  /**
   * Drops a tuple after it was deleted (or reported in a dry run), so that a
   * new entry with the same tuple starts from zero renewals.
   */
  forget(tuple: Tuple): void {
    this.#tracks.delete(tupleKey(tuple));
  }

  #newTrack(c: Candidate, lo: number, hi: number, poll: number): Track {
    return {
      tuple: toTuple(c),
      lo,
      hi,
      renewals: 0,
      firstSeen: c.seenFrom,
      sameSince: c.seenTo,
      lastPoll: poll,
      ...(c.id !== undefined ? { id: c.id } : {}),
    };
  }
}
