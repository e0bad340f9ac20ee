/**
 * `lookupSet`'s hash look-up for fully known keys against `scanSet`, the
 * comparison with every element, on random sets and keys: the same hits,
 * miss and unseen, element for element.
 */
import assert from "node:assert/strict";
import { Bits } from "../../lib/nat/bits.ts";
import { lookupSet, scanSet } from "../../lib/nat/sets.ts";
import type { NftSet, SetElement } from "../../lib/nat/ruleset.ts";

function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("lookupSet: a fully known key finds what scanSet finds (random sets, keys, flags)", () => {
  let indexed = 0;
  for (let seed = 1; seed <= 2000; seed++) {
    const r = rng(seed);
    const int = (n: number) => Math.floor(r() * n);
    const keyLen = [1, 2, 4, 12][int(4)]!;
    // Few byte values, so equal keys (duplicates, hits) are common.
    const bytes = (n: number) => new Uint8Array(Array.from({ length: n }, () => int(3)));
    const elements: SetElement[] = Array.from({ length: int(12) }, (_, i) => {
      const e: SetElement = {
        key: bytes(r() < 0.05 ? keyLen - 1 || 1 : keyLen),
        verdict: { kind: "jump", chain: `c${i}` },
      };
      return r() < 0.1 ? { ...e, keyEnd: bytes(keyLen) } : e;
    });
    const set: NftSet = {
      family: "ip",
      table: "t",
      name: "s",
      keyLen,
      elements,
      flags: {
        anonymous: false,
        constant: false,
        interval: false,
        map: true,
        timeout: r() < 0.2,
        dynamic: r() < 0.2,
        concat: false,
        object: false,
      },
    };
    for (let k = 0; k < 5; k++) {
      const from = elements[int(elements.length + 1)];
      const val = from !== undefined && r() < 0.7 ? from.key.slice() : bytes(keyLen + int(2));
      const key = r() < 0.8 ? Bits.known(val) : new Bits(val, val.map(() => int(2) * 0xff));
      assert.deepEqual(lookupSet(set, key), scanSet(set, key), `seed ${seed}`);
      const fixed = !set.flags.timeout && !set.flags.dynamic;
      if (fixed && key.isKnown() && elements.every((e) => !e.keyEnd && e.key.length >= keyLen)) {
        indexed++;
      }
    }
  }
  assert.ok(indexed > 700, `${indexed} look-ups took the index`);
});
