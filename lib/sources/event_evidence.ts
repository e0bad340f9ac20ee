/**
 * The translated entries the events source has heard of (new TCP entries
 * with `IPS_DST_NAT`), by destination, bounded: what the un-NATed rule's
 * evidence is looked up in, each one read again before it counts. Pure.
 *
 * @module
 */
import { type Destination, destinationKey, type Endpoint, type ParsedTuple } from "../tuple.ts";

/** One translated entry, as its creation event told. */
export interface HeardEntry {
  tuple: ParsedTuple;
  /** Where its destination was translated to. */
  translated: Endpoint;
  /** Monotonic ms when the agent received its creation event. */
  heardAt: number;
}

/** Options for {@linkcode EventEvidence}. */
export interface EventEvidenceOptions {
  /** Entries kept per destination, newest first; default 8. */
  perDestination?: number;
  /** Destinations kept; the least recently heard go first; default 4096. */
  destinations?: number;
  /** Entries older than this are forgotten; default 120 000 ms (a SYN_SENT lifetime). */
  maxAgeMs?: number;
}

/**
 * Translated entries by {@linkcode destinationKey}. Memory is bounded by
 * `perDestination × destinations` whatever the rate of new connections.
 *
 * @example
 * ```ts
 * import { EventEvidence } from "./event_evidence.ts";
 * import { parseTuple } from "../tuple.ts";
 * const ev = new EventEvidence();
 * const r = parseTuple({ family: "ipv4", src: "10.1.0.5", dst: "10.96.0.10", sport: 41000, dport: 80, zone: 0 });
 * if (r.ok) ev.add({ tuple: r.tuple, translated: { addr: "10.244.1.7", port: 8080 }, heardAt: 1000 });
 * ev.entriesFor([{ family: "ipv4", dst: "10.96.0.10", dport: 80, zone: 0 }], 2000).length; // => 1
 * ```
 */
export class EventEvidence {
  #by = new Map<string, HeardEntry[]>();
  #per: number;
  #max: number;
  #maxAge: number;

  constructor(o: EventEvidenceOptions = {}) {
    this.#per = o.perDestination ?? 8;
    this.#max = o.destinations ?? 4096;
    this.#maxAge = o.maxAgeMs ?? 120_000;
  }

  /** Destinations held now. */
  get size(): number {
    return this.#by.size;
  }

  /** Records a translated entry (newest first; the oldest beyond the bounds go). */
  add(e: HeardEntry): void {
    const key = destinationKey({ ...e.tuple });
    const list = this.#by.get(key) ?? [];
    this.#by.delete(key); // re-inserted last: the Map's order is least recently heard first
    list.unshift(e);
    if (list.length > this.#per) list.length = this.#per;
    this.#by.set(key, list);
    while (this.#by.size > this.#max) this.#by.delete(this.#by.keys().next().value!);
  }

  /** The entries heard for these destinations and not older than `maxAgeMs` at `now`. */
  entriesFor(destinations: readonly Destination[], now: number): HeardEntry[] {
    const out: HeardEntry[] = [];
    for (const d of destinations) {
      const key = destinationKey(d);
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
    const key = destinationKey({ ...e.tuple });
    const list = this.#by.get(key);
    if (list === undefined) return;
    const rest = list.filter((x) => x !== e);
    if (rest.length === 0) this.#by.delete(key);
    else this.#by.set(key, rest);
  }
}
