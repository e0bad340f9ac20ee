/**
 * The translated entries the events source has heard of (new TCP entries
 * with `IPS_DST_NAT`), by client key, bounded: where the events source's
 * evidence reads start; each entry is read again before it is delivered.
 * Pure.
 *
 * @module
 */
import { type ClientKey, clientKey, type ParsedTuple } from "../model/tuple.ts";

/** One translated entry, as its creation event told. */
export interface HeardEntry {
  tuple: ParsedTuple;
  /** Monotonic ms when the agent received its creation event. */
  heardAt: number;
}

/** Options for {@linkcode EventEvidence}. */
export interface EventEvidenceOptions {
  /** Entries kept per client key, newest first; default 64. */
  perKey?: number;
  /** Client keys kept; the least recently heard go first; default 4096. */
  keys?: number;
  /** Entries heard longer ago are forgotten; default 600 000 ms. */
  maxAgeMs?: number;
}

/**
 * Translated entries by {@linkcode clientKey}. Memory is bounded by
 * `perKey × keys` whatever the rate of new connections. An entry that is
 * forgotten (bounds, age, gone) is never delivered again: the source lists
 * an entry only from the first read after its creation event on, so an
 * entry missing from one read and listed in a later one was created in
 * between, which is what the un-NATed rule infers.
 *
 * @example
 * ```ts
 * import { EventEvidence } from "./heard_translations.ts";
 * import { parseTuple } from "../model/tuple.ts";
 * const ev = new EventEvidence();
 * const r = parseTuple({ family: "ipv4", src: "10.1.0.5", dst: "10.96.0.10", sport: 41000, dport: 80, zone: 0 });
 * if (r.ok) ev.add({ tuple: r.tuple, heardAt: 1000 });
 * ev.entriesFor([{ family: "ipv4", src: "10.1.0.5", dst: "10.96.0.10", dport: 80, zone: 0 }], 2000).length; // => 1
 * ```
 */
export class EventEvidence {
  #by = new Map<string, HeardEntry[]>();
  #per: number;
  #max: number;
  #maxAge: number;

  constructor(o: EventEvidenceOptions = {}) {
    this.#per = o.perKey ?? 64;
    this.#max = o.keys ?? 4096;
    this.#maxAge = o.maxAgeMs ?? 600_000;
  }

  /** Client keys held now. */
  get size(): number {
    return this.#by.size;
  }

  /** Records a translated entry (newest first; the oldest beyond the bounds go). */
  add(e: HeardEntry): void {
    const key = clientKey(e.tuple);
    const list = this.#by.get(key) ?? [];
    this.#by.delete(key); // re-inserted last: the Map's order is least recently heard first
    list.unshift(e);
    if (list.length > this.#per) list.length = this.#per;
    this.#by.set(key, list);
    while (this.#by.size > this.#max) this.#by.delete(this.#by.keys().next().value!);
  }

  /** The entries heard for these keys and not older than `maxAgeMs` at `now`. */
  entriesFor(keys: readonly ClientKey[], now: number): HeardEntry[] {
    const out: HeardEntry[] = [];
    for (const k of keys) {
      const key = clientKey(k);
      const list = this.#by.get(key);
      if (list === undefined) continue;
      const fresh = list.filter((e) => now - e.heardAt <= this.#maxAge);
      if (fresh.length === 0) this.#by.delete(key);
      else if (fresh.length < list.length) this.#by.set(key, fresh);
      out.push(...fresh);
    }
    return out;
  }

  /** Forgets one entry (it was read again and is gone, or no longer translated). */
  remove(e: HeardEntry): void {
    const key = clientKey(e.tuple);
    const list = this.#by.get(key);
    if (list === undefined) return;
    const rest = list.filter((x) => x !== e);
    if (rest.length === 0) this.#by.delete(key);
    else this.#by.set(key, rest);
  }
}
