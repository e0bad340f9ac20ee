/**
 * The translated entries the events source has heard of (new TCP entries
 * with `IPS_DST_NAT`), by client key, bounded: where the events source's
 * evidence reads start; each entry is read again before it is delivered.
 * Pure.
 *
 * @module
 */
import { type ClientKey, clientKey, type ParsedTuple } from "../model/tuple.ts";
import { MAX_EVIDENCE_ENTRIES, MAX_EVIDENCE_PER_KEY } from "../model/snapshot.ts";

/** One translated entry, as its creation event told. */
export interface HeardEntry {
  tuple: ParsedTuple;
  /** Monotonic ms when the agent received its creation event. */
  heardAt: number;
}

/** Options for {@linkcode EventEvidence}. */
export interface EventEvidenceOptions {
  /** Entries kept per key not watched; more: the key is incomplete; default 64. */
  perKey?: number;
  /** Keys not watched kept at most; the least recently heard go first; default 4096. */
  keys?: number;
  /** Entries kept per watched key; more: the key is incomplete; default `MAX_EVIDENCE_PER_KEY`. */
  perWatchedKey?: number;
  /** Entries of all watched keys together; more: the key adding is incomplete; default `MAX_EVIDENCE_ENTRIES`. */
  watchedEntries?: number;
  /** Keys watched at once; a key asked beyond is unknown; default 4096. */
  watchedKeys?: number;
  /** A watched key not asked in this many evidence reads is no longer watched; default 4. */
  watchReads?: number;
}

/** What is kept of one key. */
interface Rec {
  entries: HeardEntry[];
  /**
   * An entry of this key was dropped for a bound: the entries kept are not
   * all there are, so the key proves nothing (until the record is dropped).
   */
  incomplete: boolean;
  /** The evidence read that last asked for it (watched keys only). */
  askedAt: number;
}

/** What {@linkcode EventEvidence.lookup} gives for the keys asked. */
export interface HeardLookup {
  /** The entries heard for the keys asked that are known in full. */
  entries: HeardEntry[];
  /** Keys asked whose entries are not all kept: nothing is known of them. */
  unknown: string[];
}

/**
 * Translated entries by {@linkcode clientKey}.
 *
 * - A key asked in an evidence read is **watched** from then on, until it
 *   has not been asked in `watchReads` reads. A watched key's entries are
 *   never dropped for the recency of others, or for their age: only a read
 *   that finds one gone forgets it ({@linkcode remove}).
 * - Every bound marks a key **incomplete** instead of dropping some of its
 *   entries silently (past `perKey` or `perWatchedKey` entries, past
 *   `watchedEntries` in all): an entry dropped may be in the table and older
 *   than a candidate, and the un-NATed rule must not take its absence for
 *   "none older". An incomplete key is asked in vain ({@linkcode lookup}
 *   lists it as unknown) until its record goes.
 * - Keys not watched are kept by recency of hearing, at most `keys`; a key
 *   dropped that way is forgotten with its entries.
 *
 * Memory is bounded by `keys × perKey + watchedEntries` entries, whatever
 * the rate of new connections. An entry forgotten is never delivered again:
 * the source lists an entry only from the first read after its creation
 * event on, so an entry missing from one read and listed in a later one was
 * created in between, which is what the un-NATed rule infers.
 *
 * @example
 * ```ts
 * import { EventEvidence } from "./heard_translations.ts";
 * import { parseTuple } from "../model/tuple.ts";
 * const ev = new EventEvidence();
 * const r = parseTuple({ family: "ipv4", src: "10.1.0.5", dst: "10.96.0.10", sport: 41000, dport: 80, zone: 0 });
 * if (r.ok) ev.add({ tuple: r.tuple, heardAt: 1000 });
 * ev.lookup([{ family: "ipv4", src: "10.1.0.5", dst: "10.96.0.10", dport: 80, zone: 0 }]).entries.length; // => 1
 * ```
 */
export class EventEvidence {
  /** Keys not watched, least recently heard first. */
  #other = new Map<string, Rec>();
  #watched = new Map<string, Rec>();
  #watchedEntries = 0;
  #reads = 0;
  #perKey: number;
  #maxKeys: number;
  #perWatched: number;
  #maxWatchedEntries: number;
  #maxWatched: number;
  #watchReads: number;

  constructor(o: EventEvidenceOptions = {}) {
    this.#perKey = o.perKey ?? 64;
    this.#maxKeys = o.keys ?? 4096;
    this.#perWatched = o.perWatchedKey ?? MAX_EVIDENCE_PER_KEY;
    this.#maxWatchedEntries = o.watchedEntries ?? MAX_EVIDENCE_ENTRIES;
    this.#maxWatched = o.watchedKeys ?? 4096;
    this.#watchReads = o.watchReads ?? 4;
  }

  /** Client keys held now, watched or not. */
  get size(): number {
    return this.#other.size + this.#watched.size;
  }

  /** Keys watched now. */
  get watched(): number {
    return this.#watched.size;
  }

  /** Records a translated entry. */
  add(e: HeardEntry): void {
    const key = clientKey(e.tuple);
    const w = this.#watched.get(key);
    if (w !== undefined) {
      if (w.incomplete) return;
      if (w.entries.length >= this.#perWatched || this.#watchedEntries >= this.#maxWatchedEntries) {
        this.#incomplete(w, true);
        return;
      }
      w.entries.push(e);
      this.#watchedEntries++;
      return;
    }
    const rec = this.#other.get(key) ?? { entries: [], incomplete: false, askedAt: 0 };
    this.#other.delete(key); // re-inserted last: the Map's order is least recently heard first
    this.#other.set(key, rec);
    if (!rec.incomplete) {
      if (rec.entries.length >= this.#perKey) this.#incomplete(rec, false);
      else rec.entries.push(e);
    }
    while (this.#other.size > this.#maxKeys) this.#other.delete(this.#other.keys().next().value!);
  }

  /**
   * One evidence read's look-up: watches `keys` (see the class), and gives
   * the entries heard for those known in full, and the others as unknown.
   */
  lookup(keys: readonly ClientKey[]): HeardLookup {
    const read = ++this.#reads;
    const asked = keys.map(clientKey);
    for (const key of asked) {
      const w = this.#watched.get(key);
      if (w !== undefined) w.askedAt = read;
    }
    for (const [key, w] of this.#watched) {
      if (read - w.askedAt >= this.#watchReads) this.#unwatch(key, w);
    }
    const out: HeardLookup = { entries: [], unknown: [] };
    for (const key of asked) {
      const w = this.#watched.get(key) ?? this.#startWatching(key, read);
      if (w === undefined || w.incomplete) out.unknown.push(key);
      else out.entries.push(...w.entries);
    }
    return out;
  }

  /** Forgets one entry (it was read again and is gone, or no longer translated). */
  remove(e: HeardEntry): void {
    const key = clientKey(e.tuple);
    const w = this.#watched.get(key);
    const rec = w ?? this.#other.get(key);
    if (rec === undefined) return;
    const at = rec.entries.indexOf(e);
    if (at < 0) return;
    rec.entries.splice(at, 1);
    if (w !== undefined) this.#watchedEntries--;
    else if (rec.entries.length === 0 && !rec.incomplete) this.#other.delete(key);
  }

  /** Moves a key into the watched set; `undefined` when it is full. */
  #startWatching(key: string, read: number): Rec | undefined {
    if (this.#watched.size >= this.#maxWatched) return undefined;
    const rec = this.#other.get(key) ?? { entries: [], incomplete: false, askedAt: read };
    this.#other.delete(key);
    rec.askedAt = read;
    this.#watched.set(key, rec);
    const n = rec.entries.length;
    if (n > this.#perWatched || this.#watchedEntries + n > this.#maxWatchedEntries) {
      this.#incomplete(rec, false);
    } else this.#watchedEntries += n;
    return rec;
  }

  #unwatch(key: string, rec: Rec): void {
    this.#watched.delete(key);
    this.#watchedEntries -= rec.entries.length;
    if (rec.entries.length > this.#perKey) this.#incomplete(rec, false);
    this.#other.set(key, rec);
    while (this.#other.size > this.#maxKeys) this.#other.delete(this.#other.keys().next().value!);
  }

  /** Drops a key's entries and marks it incomplete; `counted`: its entries are in the watched count. */
  #incomplete(rec: Rec, counted: boolean): void {
    if (counted) this.#watchedEntries -= rec.entries.length;
    rec.entries = [];
    rec.incomplete = true;
  }
}
