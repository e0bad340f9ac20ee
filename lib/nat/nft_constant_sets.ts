/**
 * Anonymous sets kept from one generation to the next. nft creates the
 * set of an inline `{ … }` or `vmap { … }` (kube-proxy nftables mode has
 * one per Service: `numgen random mod 2 vmap { 0 : goto endpoint-…, … }`)
 * as an anonymous, constant set bound to its rule; the kernel refuses any
 * element change to a bound anonymous or constant set (`EBUSY`) and
 * deletes it with its rule. A set object is identified by its table's
 * handle (numbered per network namespace, never reused) and its own handle
 * (numbered per table, never reused), so a set found again under the same
 * table name, table handle, set name and set handle holds the elements
 * read before: its `GETSETELEM` dump (which, like `GETSET`, makes the
 * kernel walk the table's list of sets by name, ~0.25 ms at 10,000 sets)
 * is skipped. Only sets flagged anonymous and constant, and neither
 * dynamic nor with timeouts, are kept; an entry not used in a batch is
 * dropped after it, so the cache holds at most one batch's sets.
 *
 * @example
 * ```ts
 * import { ConstantSets } from "./nft_constant_sets.ts";
 * const flags = {
 *   anonymous: true, constant: true, interval: false, map: true,
 *   timeout: false, dynamic: false, concat: false, object: false,
 * };
 * const set = { family: "ip" as const, table: "kp", name: "__map0", flags, keyLen: 4, elements: [] };
 * const sets = new ConstantSets();
 * sets.put({ tableHandle: 3, setHandle: 9 }, set);
 * sets.get({ tableHandle: 3, setHandle: 9 }, set) === set; // => true
 * sets.get({ tableHandle: 4, setHandle: 9 }, set); // => undefined
 * ```
 *
 * @module
 */
import type { NftSet, SetFlags, TableRef } from "./ruleset.ts";

/** What identifies one set object: its table's handle and its own. */
export interface SetIdentity {
  readonly tableHandle: number;
  readonly setHandle: number;
}

/** Whether a set's elements cannot change while it exists (see the module doc). */
export function isFrozenSet(flags: SetFlags): boolean {
  return flags.anonymous && flags.constant && !flags.dynamic && !flags.timeout;
}

function keyOf(id: SetIdentity, ref: TableRef & { readonly name: string }): string {
  return `${ref.family}\0${ref.table}\0${id.tableHandle}\0${ref.name}\0${id.setHandle}`;
}

/** See the module doc. */
export class ConstantSets {
  #sets = new Map<string, NftSet>();
  #used = new Set<string>();

  /** The set read before under this identity, if any. */
  get(id: SetIdentity, ref: TableRef & { readonly name: string }): NftSet | undefined {
    const k = keyOf(id, ref);
    const s = this.#sets.get(k);
    if (s !== undefined) this.#used.add(k);
    return s;
  }

  /** Keeps `set` (read under `id`) when its flags say it cannot change. */
  put(id: SetIdentity, set: NftSet): void {
    if (!isFrozenSet(set.flags)) return;
    const k = keyOf(id, set);
    this.#sets.set(k, set);
    this.#used.add(k);
  }

  /** Drops what the batch just ended did not use. */
  endBatch(): void {
    for (const k of this.#sets.keys()) if (!this.#used.has(k)) this.#sets.delete(k);
    this.#used.clear();
  }

  get size(): number {
    return this.#sets.size;
  }
}
