/**
 * Set and map look-ups with partly known keys: which elements a key may
 * hit, and whether it may miss. Exact elements compare the key bytes; an
 * interval element `[key, keyEnd]` compares in memcmp order, per field for
 * a concatenated key (`fieldLens`, each field padded to 4 bytes in the
 * registers as in the elements), as the kernel's pipapo set does. A set
 * updated from the packet path (`dynamic`) may hold any key now; elements
 * of a set with timeouts may have expired: both are taken both ways.
 *
 * @example
 * ```ts
 * import { Bits } from "./bits.ts";
 * import { lookupSet } from "./sets.ts";
 * const flags = {
 *   anonymous: true, constant: true, interval: false, map: false,
 *   timeout: false, dynamic: false, concat: false, object: false,
 * };
 * const set = {
 *   family: "ip" as const, table: "nat", name: "__set0", flags, keyLen: 2,
 *   elements: [{ key: new Uint8Array([0, 80]) }, { key: new Uint8Array([1, 187]) }],
 * };
 * lookupSet(set, Bits.known(new Uint8Array([0, 80]))).miss; // => false
 * lookupSet(set, Bits.unknown(2)).hits.length; // => 2
 * ```
 *
 * @module
 */

import { type Bits, equalBits, inRangeBits, type Tri } from "./bits.ts";
import type { NftSet, SetElement } from "./ruleset.ts";

/** What a look-up of a key may do. */
export interface LookupOutcome {
  /** Elements the key may hit (their data or verdict then applies). */
  readonly hits: readonly SetElement[];
  /** The key may find nothing. */
  readonly miss: boolean;
  /** The key may hit an element not read (the set changes from the packet path). */
  readonly unseen: boolean;
}

function and(a: Tri, b: Tri): Tri {
  if (a === false || b === false) return false;
  return a === true && b === true ? true : "both";
}

/** May `key` (the set's key length) hit element `e`? */
export function elementMatch(set: NftSet, key: Bits, e: SetElement): Tri {
  if (e.keyEnd === undefined) return equalBits(key, e.key.subarray(0, set.keyLen));
  const lens = set.fieldLens;
  if (lens === undefined || lens.length <= 1) return inRangeBits(key, e.key, e.keyEnd);
  let at = 0;
  let r: Tri = true;
  for (const len of lens) {
    const k = key.slice(at, len);
    r = and(r, inRangeBits(k, e.key.subarray(at, at + len), e.keyEnd.subarray(at, at + len)));
    if (r === false) return false;
    at += Math.ceil(len / 4) * 4;
  }
  return r;
}

/**
 * Per set object (a reader's set of one generation, immutable): the first
 * element with each key, for sets of exact elements only (no `keyEnd`).
 * Built at the first look-up of a fully known key.
 */
const EXACT = new WeakMap<NftSet, Map<string, SetElement> | null>();

function keyString(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

function exactIndex(set: NftSet): Map<string, SetElement> | null {
  let ix = EXACT.get(set);
  if (ix !== undefined) return ix;
  ix = set.elements.some((e) => e.keyEnd !== undefined || e.key.length < set.keyLen)
    ? null
    : new Map();
  if (ix !== null) {
    for (const e of set.elements) {
      const k = keyString(e.key.subarray(0, set.keyLen));
      if (!ix.has(k)) ix.set(k, e);
    }
  }
  EXACT.set(set, ix);
  return ix;
}

/**
 * Looks `key` up in `set`. A fully known key in a fixed set (neither
 * dynamic nor with timeouts) of exact elements is a hash look-up
 * (kube-proxy's `service-ips` map holds one element per Service); it
 * answers what the scan below would: the first element whose key equals
 * it, or a miss.
 */
export function lookupSet(set: NftSet, key: Bits): LookupOutcome {
  const volatile = set.flags.timeout || set.flags.dynamic;
  if (
    !volatile && key.length >= set.keyLen &&
    key.known.subarray(0, set.keyLen).every((k) => k === 0xff)
  ) {
    const ix = exactIndex(set);
    if (ix !== null) {
      const hit = ix.get(keyString(key.val.subarray(0, set.keyLen)));
      return hit === undefined
        ? { hits: [], miss: true, unseen: false }
        : { hits: [hit], miss: false, unseen: false };
    }
  }
  return scanSet(set, key);
}

/** {@linkcode lookupSet} by comparing the key with every element. */
export function scanSet(set: NftSet, key: Bits): LookupOutcome {
  const volatile = set.flags.timeout || set.flags.dynamic;
  const maybe: SetElement[] = [];
  for (const e of set.elements) {
    const m = elementMatch(set, key, e);
    if (m === true) return { hits: [e], miss: volatile, unseen: set.flags.dynamic };
    if (m === "both") maybe.push(e);
  }
  return { hits: maybe, miss: true, unseen: set.flags.dynamic };
}
