/**
 * Collects one read's translated TCP entries for the keys asked, within the
 * bounds, into an {@linkcode EvidenceRead}: the one builder every source
 * uses, so that all keep the evidence contract of lib/model/snapshot.ts the same
 * way.
 *
 * @module
 */
import {
  type EvidenceRead,
  MAX_EVIDENCE_ENTRIES,
  MAX_EVIDENCE_PER_KEY,
  type TranslatedEntry,
} from "./snapshot.ts";
import { type ClientKey, clientKey } from "./tuple.ts";

/**
 * An {@linkcode EvidenceRead} in the making.
 *
 * @example
 * ```ts
 * import { EvidenceBuilder } from "./evidence_builder.ts";
 * const b = new EvidenceBuilder([{ family: "ipv4", src: "10.1.0.7", dst: "10.96.0.10", dport: 80, zone: 0 }]);
 * b.wantsAddress("10.96.0.10"); // => true
 * b.add("ipv4 10.1.0.7 10.96.0.10 80 0", { sport: 40001, replyZone: 0, translated: { addr: "10.244.0.5", port: 8080 } });
 * b.add("ipv4 10.2.0.9 10.96.0.10 80 0", { sport: 40002, replyZone: 0, translated: { addr: "10.244.0.5", port: 8080 } });
 * b.read().entries.get("ipv4 10.1.0.7 10.96.0.10 80 0")?.length; // => 1
 * b.read().entries.size; // => 1: the other client's entry was not asked for
 * ```
 */
export class EvidenceBuilder {
  readonly #entries = new Map<string, TranslatedEntry[]>();
  readonly #overflow = new Set<string>();
  readonly #addrs = new Set<string>();
  readonly #perKey: number;
  #room: number;

  /** `perKey` and `total` bound what is kept (defaults: the contract's bounds). */
  constructor(
    keys: readonly ClientKey[],
    perKey = MAX_EVIDENCE_PER_KEY,
    total = MAX_EVIDENCE_ENTRIES,
  ) {
    for (const k of keys) {
      this.#entries.set(clientKey(k), []);
      this.#addrs.add(k.dst);
    }
    this.#perKey = perKey;
    this.#room = total;
  }

  /** Whether any key asked has this original destination address (a cheap first check). */
  wantsAddress(dst: string): boolean {
    return this.#addrs.has(dst);
  }

  /**
   * Takes one translated TCP entry under its key (by `clientKey`); an entry
   * of a key not asked is ignored, one past a bound puts its key in overflow.
   */
  add(key: string, e: TranslatedEntry): void {
    const list = this.#entries.get(key);
    if (list === undefined || this.#overflow.has(key)) return;
    if (list.length >= this.#perKey || this.#room <= 0) {
      this.#overflow.add(key);
      this.#room += list.length;
      list.length = 0;
      return;
    }
    list.push(e);
    this.#room--;
  }

  /** Puts an asked key in overflow: the source cannot list all its entries. */
  unknown(key: string): void {
    const list = this.#entries.get(key);
    if (list === undefined || this.#overflow.has(key)) return;
    this.#overflow.add(key);
    this.#room += list.length;
    list.length = 0;
  }

  /** What was collected (keys in overflow keep no entries). */
  read(): EvidenceRead {
    return { entries: this.#entries, overflow: this.#overflow };
  }
}
