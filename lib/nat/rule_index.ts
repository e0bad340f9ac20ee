/**
 * Skips the rules of a chain that cannot match a destination address, so a
 * kube-proxy chain of 10,000 Service rules costs a look-up, not 10,000 rule
 * runs. A rule is skippable for destination `d` when it starts with pure
 * tests (loads, comparisons, xtables matches: nothing that ends the path or
 * writes anything but registers) followed by the pair nft and iptables-nft
 * write for `ip daddr X` / `ip6 daddr X` (a network-header load of the
 * address into a register and a `cmp eq` of that register) with `X != d`:
 * that rule breaks for the SYN whatever the earlier tests said. Skipped
 * rules may have loaded registers; the walker forgets all registers after a
 * skip, so nothing a skipped rule would have left behind is relied on.
 *
 * The index is built once per chain object (a reader's chain of one
 * generation) and kept in a WeakMap.
 *
 * @example
 * ```ts
 * import { nextRule } from "./rule_index.ts";
 * const guard = (last: number) => ({ handle: last, exprs: [
 *   { op: "payload" as const, base: "network" as const, offset: 16, len: 4, dreg: 0 },
 *   { op: "cmp" as const, sreg: 0, cmp: "eq" as const, data: new Uint8Array([10, 96, 0, last]) },
 * ] });
 * const chain = { family: "ip" as const, table: "nat", name: "S",
 *   rules: [guard(1), guard(2), { handle: 9, exprs: [] }, guard(3)] };
 * nextRule(chain, 0, new Uint8Array([10, 96, 0, 3])); // => 2
 * nextRule(chain, 3, new Uint8Array([10, 96, 0, 3])); // => 3
 * nextRule(chain, 0, new Uint8Array([10, 96, 0, 2])); // => 1
 * ```
 *
 * @module
 */

import type { NftChain, NftExpr } from "./ruleset.ts";

/** Expressions that only load registers or test: they cannot end a path otherwise than by a break. */
const PURE = new Set<NftExpr["op"]>([
  "payload",
  "meta",
  "ct",
  "cmp",
  "range",
  "bitwise",
  "byteorder",
  "immediate",
  "counter",
  "match",
]);

/** The destination a rule requires (as a string of bytes), or undefined if none or not provably so. */
function guardOf(exprs: readonly NftExpr[]): string | undefined {
  for (let i = 0; i + 1 < exprs.length; i++) {
    const a = exprs[i]!;
    const b = exprs[i + 1]!;
    if (
      a.op === "payload" && a.base === "network" &&
      ((a.offset === 16 && a.len === 4) || (a.offset === 24 && a.len === 16)) &&
      b.op === "cmp" && b.cmp === "eq" && b.sreg === a.dreg && b.data.length === a.len
    ) {
      return (a.len === 4 ? "4:" : "6:") + String.fromCharCode(...b.data);
    }
    if (!PURE.has(a.op)) return undefined;
  }
  return undefined;
}

interface Index {
  /** The rules without a guard, ascending. */
  readonly unguarded: readonly number[];
  /** Per guard: its rules, ascending. */
  readonly byGuard: Map<string, number[]>;
  /** Per destination key: the rules that may match it, ascending. */
  readonly byDst: Map<string, Int32Array>;
}

/** One pass over the chain: each rule under its guard, or among the unguarded. */
function buildIndex(rules: NftChain["rules"]): Index {
  const unguarded: number[] = [];
  const byGuard = new Map<string, number[]>();
  rules.forEach((r, i) => {
    const g = guardOf(r.exprs);
    if (g === undefined) unguarded.push(i);
    else {
      const l = byGuard.get(g);
      if (l === undefined) byGuard.set(g, [i]);
      else l.push(i);
    }
  });
  return { unguarded, byGuard, byDst: new Map() };
}

/** Two ascending lists merged into one. */
function merge(a: readonly number[], b: readonly number[]): Int32Array {
  const out = new Int32Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i]! < b[j]! ? a[i++]! : b[j++]!;
  while (i < a.length) out[k++] = a[i++]!;
  while (j < b.length) out[k++] = b[j++]!;
  return out;
}

const INDEXES = new WeakMap<NftChain, Index>();

/** Rules not worth indexing: short chains are walked rule by rule. */
const MIN_RULES = 16;

function dstKey(dst: Uint8Array): string {
  return (dst.length === 4 ? "4:" : "6:") + String.fromCharCode(...dst);
}

/** The first rule at or after `ri` that may match a SYN to `dst` (`rules.length` if none). */
export function nextRule(chain: NftChain, ri: number, dst: Uint8Array): number {
  const rules = chain.rules;
  if (rules.length < MIN_RULES && ri < rules.length) {
    const g = guardOf(rules[ri]!.exprs);
    if (g === undefined || g === dstKey(dst)) return ri;
  }
  let ix = INDEXES.get(chain);
  if (ix === undefined) {
    ix = buildIndex(rules);
    INDEXES.set(chain, ix);
  }
  const key = dstKey(dst);
  let list = ix.byDst.get(key);
  if (list === undefined) {
    list = merge(ix.unguarded, ix.byGuard.get(key) ?? []);
    ix.byDst.set(key, list);
  }
  // the first entry >= ri
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid]! < ri) lo = mid + 1;
    else hi = mid;
  }
  return lo < list.length ? list[lo]! : rules.length;
}
