/**
 * The events source's tracked set: the candidates it reads each poll, by
 * tuple key, with the kernel ids its events told, bounded, and (optionally)
 * those known from their creation event alone ({@linkcode HeardCandidates}).
 * No I/O.
 *
 * @module
 */
import type { Candidate } from "../model/snapshot.ts";
import type { ParsedTuple } from "../model/tuple.ts";
import type { ConntrackEntry } from "../netlink/conntrack_entry.ts";
import { HeardCandidates } from "./heard_candidates.ts";

/**
 * Tracked candidates. An event that ends a candidate (`ended`) drops it only
 * when it names the kernel id the candidate was heard with: another entry
 * of the same tuple (created after the one that ended) stays tracked, and a
 * candidate whose id is unknown is left to the next read.
 *
 * @example
 * ```ts
 * import { TrackedCandidates } from "./tracked_candidates.ts";
 * import { parseTuple } from "../model/tuple.ts";
 * const t = new TrackedCandidates(10);
 * const p = parseTuple({ family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 80, zone: 0 });
 * if (!p.ok) throw new Error(p.problem);
 * t.replace([["k", p.tuple, 7]]);
 * t.ended("k", 8);
 * t.size; // => 1
 * t.ended("k", 7);
 * t.size; // => 0
 * ```
 */
export class TrackedCandidates {
  #max: number;
  #byKey = new Map<string, ParsedTuple>();
  #ids = new Map<string, number>();
  #heard: HeardCandidates | undefined;
  /** Candidates were left out for the bound since the last `replace`. */
  leftOut = false;

  /** `heardSince`: keep heard candidates (see `HeardCandidates`), events since then. */
  constructor(max: number, heardSince?: number) {
    this.#max = max;
    if (heardSince !== undefined) this.#heard = new HeardCandidates(heardSince);
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** Whether there is room for more (a bound was hit before). */
  get room(): boolean {
    return this.#byKey.size < this.#max;
  }

  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /** A candidate's event, read at `readAt`: tracked unless it is or there is no room. */
  heard(key: string, tuple: ParsedTuple, entry: ConntrackEntry, readAt: number): void {
    if (this.#byKey.has(key)) return;
    if (this.#byKey.size >= this.#max) {
      this.leftOut = true;
      return;
    }
    this.#byKey.set(key, tuple);
    if (entry.id !== undefined) this.#ids.set(key, entry.id);
    this.#heard?.add(key, entry, readAt);
  }

  /** An event says entry `id` of `key` is gone or no longer a candidate. */
  ended(key: string, id: number | undefined): void {
    if (id !== undefined && this.#ids.get(key) === id) this.delete(key);
  }

  delete(key: string): void {
    this.#byKey.delete(key);
    this.#ids.delete(key);
  }

  /** The whole set replaced by a full read's: `[key, tuple, id]`; clears the heard ones. */
  replace(entries: Iterable<[string, ParsedTuple, number | undefined]>): void {
    this.#byKey = new Map();
    this.#ids = new Map();
    for (const [k, t, id] of entries) {
      this.#byKey.set(k, t);
      if (id !== undefined) this.#ids.set(k, id);
    }
    this.#heard?.clear();
  }

  /** A drain that started at `startedAt` emptied the event socket, losing nothing. */
  drained(startedAt: number): void {
    this.#heard?.drained(startedAt);
  }

  /** Every tracked `[key, tuple]`. */
  entries(): IterableIterator<[string, ParsedTuple]> {
    return this.#byKey.entries();
  }

  /**
   * For a poll: the candidates known from their event since the last call
   * (reported as they are), and the tuples to read; forgets the heard ones.
   */
  toRead(): { heard: Candidate[]; read: ParsedTuple[] } {
    if (this.#heard === undefined) return { heard: [], read: [...this.#byKey.values()] };
    return this.#heard.split(this.#byKey);
  }

  /** Forgets the heard ones (all were read another way). */
  clearHeard(): void {
    this.#heard?.clear();
  }
}
