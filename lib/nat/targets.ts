/**
 * Target sets of a NAT answer: a list of boxes (address range × port
 * range, {@linkcode TargetRange}). The rules that use an answer ask two
 * questions of it: does T hold the original destination (then the
 * translation may be the identity and nothing is proven), and does T hold
 * an entry's current translation X (a stale translation is one whose X is
 * not in T).
 *
 * @example
 * ```ts
 * import { box, targetsContain, unionTargets } from "./targets.ts";
 * const a = box(new Uint8Array([10, 244, 1, 5]), new Uint8Array([10, 244, 1, 5]), 8080, 8080);
 * const b = box(new Uint8Array([10, 244, 2, 0]), new Uint8Array([10, 244, 2, 255]), 80, 80);
 * const t = unionTargets([a], [b, a]);
 * t.length; // => 2
 * targetsContain(t, new Uint8Array([10, 244, 2, 7]), 80); // => true
 * targetsContain(t, new Uint8Array([10, 244, 1, 5]), 80); // => false
 * ```
 *
 * @module
 */

import type { TargetRange } from "./ruleset.ts";
import { memcmp } from "./bits.ts";

/** One box; the bounds are inclusive. */
export function box(
  addrMin: Uint8Array,
  addrMax: Uint8Array,
  portMin: number,
  portMax: number,
): TargetRange {
  return { addrMin, addrMax, portMin, portMax };
}

/** Every address of the family (4 or 16 bytes) × the ports: where a REDIRECT to an unknown address may go. */
export function anyAddress(len: number, portMin: number, portMax: number): TargetRange {
  return box(new Uint8Array(len), new Uint8Array(len).fill(0xff), portMin, portMax);
}

/** True when `t` holds address `addr` (same length) and `port`. */
export function rangeContains(t: TargetRange, addr: Uint8Array, port: number): boolean {
  return addr.length === t.addrMin.length && memcmp(addr, t.addrMin) >= 0 &&
    memcmp(addr, t.addrMax) <= 0 && port >= t.portMin && port <= t.portMax;
}

/** True when some box of `targets` holds `addr`:`port`. */
export function targetsContain(
  targets: readonly TargetRange[],
  addr: Uint8Array,
  port: number,
): boolean {
  return targets.some((t) => rangeContains(t, addr, port));
}

function sameRange(a: TargetRange, b: TargetRange): boolean {
  return a.portMin === b.portMin && a.portMax === b.portMax &&
    memcmp(a.addrMin, b.addrMin) === 0 && memcmp(a.addrMax, b.addrMax) === 0;
}

/** `a ∪ b`, without repeating a box already present (boxes are not merged). */
export function unionTargets(
  a: readonly TargetRange[],
  b: readonly TargetRange[],
): TargetRange[] {
  const out: TargetRange[] = [...a];
  for (const t of b) if (!out.some((o) => sameRange(o, t))) out.push(t);
  return out;
}

/** A box as text: `10.0.0.2-10.0.0.5:8000-8010`, `[fd00::1]:80`. */
export function formatTarget(t: TargetRange): string {
  const addr = (a: Uint8Array): string =>
    a.length === 4
      ? [...a].join(".")
      : `[${
        Array.from({ length: 8 }, (_, i) => ((a[2 * i]! << 8) | a[2 * i + 1]!).toString(16))
          .join(":")
      }]`;
  const lo = addr(t.addrMin);
  const hi = addr(t.addrMax);
  const a = lo === hi ? lo : `${lo}-${hi}`;
  const p = t.portMin === t.portMax ? `${t.portMin}` : `${t.portMin}-${t.portMax}`;
  return `${a}:${p}`;
}
