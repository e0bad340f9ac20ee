/**
 * ConstantSets, the anonymous sets kept across generations: which flags
 * qualify, what identifies a set, and that a batch drops what it did not
 * use. The reader's use of it is tested in nft_reader_test.ts (captured
 * replies) and nft_constant_sets_kernel_test.ts (a table re-created).
 */
import assert from "node:assert/strict";
import { ConstantSets, isFrozenSet } from "../../lib/nat/nft_constant_sets.ts";
import type { NftSet, SetFlags } from "../../lib/nat/ruleset.ts";

const flags: SetFlags = {
  anonymous: true,
  constant: true,
  interval: false,
  map: true,
  timeout: false,
  dynamic: false,
  concat: false,
  object: false,
};
const set = (f: Partial<SetFlags> = {}, name = "__map0"): NftSet => ({
  family: "ip",
  table: "kp",
  name,
  flags: { ...flags, ...f },
  keyLen: 4,
  elements: [],
});

Deno.test("isFrozenSet: only anonymous and constant, neither dynamic nor with timeouts", () => {
  assert.equal(isFrozenSet(flags), true);
  for (
    const f of [{ anonymous: false }, { constant: false }, { dynamic: true }, { timeout: true }]
  ) {
    assert.equal(isFrozenSet({ ...flags, ...f }), false, JSON.stringify(f));
  }
});

Deno.test("ConstantSets: found again only under the same table handle, set handle, table and name", () => {
  const c = new ConstantSets();
  const s = set();
  c.put({ tableHandle: 3, setHandle: 9 }, s);
  assert.equal(c.get({ tableHandle: 3, setHandle: 9 }, s), s);
  assert.equal(c.get({ tableHandle: 4, setHandle: 9 }, s), undefined, "table re-created");
  assert.equal(c.get({ tableHandle: 3, setHandle: 10 }, s), undefined, "set re-created");
  assert.equal(c.get({ tableHandle: 3, setHandle: 9 }, { ...s, name: "__map1" }), undefined);
  assert.equal(c.get({ tableHandle: 3, setHandle: 9 }, { ...s, table: "other" }), undefined);
  assert.equal(c.get({ tableHandle: 3, setHandle: 9 }, { ...s, family: "ip6" }), undefined);
  c.put({ tableHandle: 3, setHandle: 11 }, set({ constant: false }, "named"));
  assert.equal(c.size, 1, "a set that may change is not kept");
});

Deno.test("ConstantSets.endBatch: drops the sets the batch did not use", () => {
  const c = new ConstantSets();
  const a = set({}, "__map0");
  const b = set({}, "__map1");
  c.put({ tableHandle: 1, setHandle: 1 }, a);
  c.put({ tableHandle: 1, setHandle: 2 }, b);
  c.endBatch();
  assert.equal(c.size, 2, "both used (put) in the first batch");
  c.get({ tableHandle: 1, setHandle: 1 }, a);
  c.endBatch();
  assert.equal(c.size, 1);
  assert.equal(c.get({ tableHandle: 1, setHandle: 1 }, a), a);
  assert.equal(c.get({ tableHandle: 1, setHandle: 2 }, b), undefined);
});
