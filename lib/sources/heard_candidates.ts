/**
 * The events source's candidates known from their creation event alone:
 * an event is an observation of the entry (its timeout, addresses, zone,
 * id), so a candidate heard since the last poll need not be read again by
 * GET in the same poll. No I/O.
 *
 * @module
 */
import type { Candidate } from "../model/snapshot.ts";
import type { ConntrackEntry } from "../netlink/conntrack_entry.ts";
import { entryCandidate } from "../netlink/entry_candidate.ts";

/**
 * Candidates heard as events and not read since, by tuple key, each with
 * `heard: true` and the window its event was sent in:
 *
 * - `seenFrom`: the start of the last drain of the event socket that
 *   emptied it (`drained`), or when this object was made: an event read
 *   later was queued after it (the kernel queues a creation's event as it
 *   confirms the entry, its timeout counted from then);
 * - `seenTo`: when the event was read.
 *
 * So the renewal tracker may take it as an observation (the entry's
 * deadline lies in the interval it derives); the rules must not act on it,
 * since the entry may have been answered since its event.
 *
 * @example
 * ```ts
 * import { HeardCandidates } from "./heard_candidates.ts";
 * const heard = new HeardCandidates(0);
 * heard.drained(1000);
 * heard.add("k", {
 *   family: "ipv4", proto: 6, srcAddr: new Uint8Array([10, 0, 0, 1]), dstAddr: new Uint8Array([10, 0, 0, 2]),
 *   sport: 40000, dport: 80, replySrcAddr: new Uint8Array([10, 0, 0, 2]), replySport: 80,
 *   zone: 0, replyZone: 0, status: 8, tcpState: 1, timeout: 120,
 * }, 1500);
 * const c = heard.split(new Map([["k", "tuple"]])).heard[0]!;
 * [c.seenFrom, c.seenTo, c.heard]; // => [1000, 1500, true]
 * ```
 */
export class HeardCandidates {
  #from: number;
  #heard = new Map<string, Candidate>();

  /** `since`: a time before any event the socket(s) will deliver was queued. */
  constructor(since: number) {
    this.#from = since;
  }

  /** A drain that started at `startedAt` emptied the socket without losing anything. */
  drained(startedAt: number): void {
    if (startedAt > this.#from) this.#from = startedAt;
  }

  /** The creation event of a newly tracked candidate, read at `readAt`. */
  add(key: string, entry: ConntrackEntry, readAt: number): void {
    if (entry.timeout === undefined) return; // no observation: read it by GET
    const c = entryCandidate(entry, this.#from, readAt);
    if (c === undefined) return;
    c.heard = true;
    this.#heard.set(key, c);
  }

  /**
   * The `tracked` candidates (by key) as heard since the last `split` or
   * `clear`, and the others' tuples (to read); empties the set.
   */
  split<T>(tracked: ReadonlyMap<string, T>): { heard: Candidate[]; read: T[] } {
    const heard: Candidate[] = [], read: T[] = [];
    for (const [k, t] of tracked) {
      const h = this.#heard.get(k);
      if (h === undefined) read.push(t);
      else heard.push(h);
    }
    this.#heard.clear();
    return { heard, read };
  }

  clear(): void {
    this.#heard.clear();
  }
}
