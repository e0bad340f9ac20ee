/**
 * Where a DNAT or REDIRECT binding may send the SYN, as target boxes: the
 * kernel picks an address in `[min, max]` and a port in `[min, max]` by
 * hash (or at random), so the whole range is the answer. No address range
 * (`NF_NAT_RANGE_MAP_IPS` clear): the address is kept; no port range
 * (`NF_NAT_RANGE_PROTO_SPECIFIED` clear): the port is kept (a destination
 * rewrite never changes the port on its own). `NF_NAT_RANGE_NETMAP` maps the
 * address bit for bit: one address. REDIRECT goes to the input interface's
 * primary address at prerouting (unknown here: every address) and to
 * loopback at output.
 *
 * @example
 * ```ts
 * import { natTargets } from "./nat_target.ts";
 * import { formatTarget } from "./targets.ts";
 * const syn = { family: "ipv4" as const, src: new Uint8Array([10, 0, 0, 2]),
 *   dst: new Uint8Array([10, 96, 0, 1]), sport: 40000, dport: 80 };
 * const kept = natTargets(syn, "dnat", { flags: 1, addrMin: new Uint8Array([10, 0, 0, 9]),
 *   addrMax: new Uint8Array([10, 0, 0, 9]) }, "prerouting");
 * typeof kept === "string" ? kept : kept.map(formatTarget); // => ["10.0.0.9:80"]
 * const lo = natTargets(syn, "redirect", { flags: 2, portMin: 3128, portMax: 3128 }, "output");
 * typeof lo === "string" ? lo : lo.map(formatTarget); // => ["127.0.0.1:3128"]
 * ```
 *
 * @module
 */

import { memcmp } from "./bits.ts";
import type { Syn } from "./packet.ts";
import type { NatHook, TargetRange } from "./ruleset.ts";
import { anyAddress, box } from "./targets.ts";
import { MAP_IPS, type NatRange, PROTO_SPECIFIED } from "./xt.ts";

/** `NF_NAT_RANGE_NETMAP`. */
const NETMAP = 1 << 6;

const LOOPBACK4 = new Uint8Array([127, 0, 0, 1]);
const LOOPBACK6 = new Uint8Array(16).fill(0, 0, 15).fill(1, 15);

/** The boxes a binding of `kind` with `range` may choose, or why none can be said. */
export function natTargets(
  syn: Syn,
  kind: "dnat" | "redirect",
  range: NatRange,
  hook: NatHook,
): TargetRange[] | string {
  const alen = syn.family === "ipv4" ? 4 : 16;
  let [pmin, pmax] = [syn.dport, syn.dport];
  if ((range.flags & PROTO_SPECIFIED) !== 0) {
    if (range.portMin === undefined || range.portMax === undefined) {
      return "a port range without ports";
    }
    [pmin, pmax] = [range.portMin, range.portMax];
    if (pmin > pmax) return `an empty port range ${pmin}-${pmax}`;
  }
  if (kind === "redirect") {
    if (hook === "output") {
      const lo = alen === 4 ? LOOPBACK4 : LOOPBACK6;
      return [box(lo, lo, pmin, pmax)];
    }
    return [anyAddress(alen, pmin, pmax)];
  }
  if ((range.flags & MAP_IPS) === 0) return [box(syn.dst, syn.dst, pmin, pmax)];
  const { addrMin: min, addrMax: max } = range;
  if (min === undefined || max === undefined || min.length !== alen || max.length !== alen) {
    return "an address range of another family";
  }
  if ((range.flags & NETMAP) !== 0) {
    const a = syn.dst.map((d, i) => {
      const nm = ~(min[i]! ^ max[i]!) & 0xff;
      return (d & ~nm) | (min[i]! & nm);
    });
    return [box(a, a, pmin, pmax)];
  }
  if (memcmp(min, max) > 0) return "an empty address range";
  return [box(min, max, pmin, pmax)];
}
