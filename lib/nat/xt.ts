/**
 * The xtables matches and targets iptables-nft leaves in nf_tables rules as
 * opaque `match`/`target` expressions, decoded from their `info` structs
 * (the kernel's UAPI layouts, host byte order for plain integers, network
 * order for addresses and NAT ports):
 *
 * | name | rev | struct | what the evaluator does |
 * | --- | --- | --- | --- |
 * | DNAT | 0 | `nf_nat_ipv4_multi_range_compat` (IPv4) | a binding to the range |
 * | DNAT | 1, 2 | `nf_nat_range`, `nf_nat_range2` | a binding to the range |
 * | REDIRECT | 0 | compat (IPv4), `nf_nat_range` (IPv6) | a binding to the local address |
 * | MARK | 2 | `xt_mark_tginfo2` | mark = (mark & ~mask) ^ value |
 * | CONNMARK | any | — | both marks become unknown |
 * | LOG, NFLOG, TRACE | any | — | nothing |
 * | comment | any | — | always true |
 * | tcp / udp | 0 | `xt_tcp` / `xt_udp` | ports, TCP flags (an option test: both ways) |
 * | multiport | 0, 1 | `xt_multiport(_v1)` | port lists and ranges |
 * | mark | 1 | `xt_mark_mtinfo1` | on the known bits of the mark |
 * | conntrack | 2, 3 | `xt_conntrack_mtinfo2/3` | ctstate alone is decided (new); other tests both ways |
 * | state | 0 | `xt_state_info` | new |
 *
 * Any other match (addrtype, owner, statistic, recent, limit, …) is taken
 * both ways; any other target is unknown, which the evaluator answers with
 * "not proven". A struct shorter than its layout is unknown too.
 *
 * @example
 * ```ts
 * import { decodeTarget } from "./xt.ts";
 * // iptables -t nat -A PREROUTING -j DNAT --to-destination 10.0.0.2:8080 (rev 2)
 * const info = new Uint8Array(48);
 * const v = new DataView(info.buffer);
 * v.setUint32(0, 3, true); // MAP_IPS | PROTO_SPECIFIED, host order (little-endian here)
 * info.set([10, 0, 0, 2], 4);
 * info.set([10, 0, 0, 2], 20);
 * info.set([0x1f, 0x90], 36);
 * info.set([0x1f, 0x90], 38);
 * const t = decodeTarget("DNAT", 2, info, "ipv4");
 * t.kind === "dnat" ? t.range.portMin : -1; // => 8080
 * ```
 *
 * @module
 */

import { type Bits, bitwiseBool, equalBits, LITTLE_ENDIAN, type Tri, u32Host } from "./bits.ts";
import type { Marks, Syn } from "./packet.ts";

/** A NAT range as the kernel's `nf_nat_range2` holds it; absent parts are kept from the packet. */
export interface NatRange {
  readonly flags: number;
  /** Present with `NF_NAT_RANGE_MAP_IPS`. */
  readonly addrMin?: Uint8Array;
  readonly addrMax?: Uint8Array;
  /** Present with `NF_NAT_RANGE_PROTO_SPECIFIED`. */
  readonly portMin?: number;
  readonly portMax?: number;
}

/** `NF_NAT_RANGE_MAP_IPS`, `NF_NAT_RANGE_PROTO_SPECIFIED`. */
export const MAP_IPS = 1;
export const PROTO_SPECIFIED = 2;

/** A decoded xtables target. */
export type XtTarget =
  | { readonly kind: "dnat"; readonly range: NatRange }
  | { readonly kind: "redirect"; readonly range: NatRange }
  | { readonly kind: "masquerade" }
  /** mark = (mark & ~mask) ^ value (host-order 32-bit numbers). */
  | { readonly kind: "mark"; readonly value: number; readonly mask: number }
  | { readonly kind: "marks_unknown" }
  | { readonly kind: "noop" }
  | { readonly kind: "unknown"; readonly why: string };

/** Targets that change nothing a NAT decision reads. */
const NOOP_TARGETS = new Set(["LOG", "NFLOG", "TRACE"]);

function view(info: Uint8Array): DataView {
  return new DataView(info.buffer, info.byteOffset, info.byteLength);
}

/** `nf_nat_ipv4_multi_range_compat`: rangesize, then one `nf_nat_ipv4_range` (20 bytes). */
function compatRange(info: Uint8Array): NatRange | string {
  if (info.length < 20) return `a compat NAT range of ${info.length} bytes`;
  const v = view(info);
  if (v.getUint32(0, LITTLE_ENDIAN) !== 1) return "a compat NAT range with rangesize != 1";
  return withParts(
    v.getUint32(4, LITTLE_ENDIAN),
    info.slice(8, 12),
    info.slice(12, 16),
    v.getUint16(16),
    v.getUint16(18),
  );
}

/** `nf_nat_range` / `nf_nat_range2`: flags, two `nf_inet_addr`, then ports (network order). */
function fullRange(info: Uint8Array, family: "ipv4" | "ipv6", size: number): NatRange | string {
  if (info.length < size) return `a NAT range of ${info.length} bytes`;
  const v = view(info);
  const alen = family === "ipv4" ? 4 : 16;
  return withParts(
    v.getUint32(0, LITTLE_ENDIAN),
    info.slice(4, 4 + alen),
    info.slice(20, 20 + alen),
    v.getUint16(36),
    v.getUint16(38),
  );
}

function withParts(
  flags: number,
  addrMin: Uint8Array,
  addrMax: Uint8Array,
  portMin: number,
  portMax: number,
): NatRange {
  return {
    flags,
    ...((flags & MAP_IPS) !== 0 ? { addrMin, addrMax } : {}),
    ...((flags & PROTO_SPECIFIED) !== 0 ? { portMin, portMax } : {}),
  };
}

/** Decodes target `name` revision `rev` of a table of `family`. */
export function decodeTarget(
  name: string,
  rev: number,
  info: Uint8Array,
  family: "ipv4" | "ipv6",
): XtTarget {
  const nat = (kind: "dnat" | "redirect", r: NatRange | string): XtTarget =>
    typeof r === "string" ? { kind: "unknown", why: `${name}: ${r}` } : { kind, range: r };
  switch (name) {
    case "DNAT":
      if (rev === 0 && family === "ipv4") return nat("dnat", compatRange(info));
      if (rev === 1) return nat("dnat", fullRange(info, family, 40));
      if (rev === 2) return nat("dnat", fullRange(info, family, 42));
      break;
    case "REDIRECT":
      if (rev === 0) {
        return nat(
          "redirect",
          family === "ipv4" ? compatRange(info) : fullRange(info, family, 40),
        );
      }
      break;
    case "MASQUERADE":
      return { kind: "masquerade" };
    case "MARK":
      if (rev === 2 && info.length >= 8) {
        const v = view(info);
        return {
          kind: "mark",
          value: v.getUint32(0, LITTLE_ENDIAN),
          mask: v.getUint32(4, LITTLE_ENDIAN),
        };
      }
      return { kind: "marks_unknown" };
    case "CONNMARK":
      return { kind: "marks_unknown" };
  }
  if (NOOP_TARGETS.has(name)) return { kind: "noop" };
  return { kind: "unknown", why: `target ${name} rev ${rev}` };
}

/** `mark` after MARK: (mark & ~mask) ^ value, bit by bit. */
export function applyMark(mark: Bits, value: number, mask: number): Bits {
  return bitwiseBool(mark, u32Host(~mask), u32Host(value));
}

function portIn(p: number, lo: number, hi: number): boolean {
  return p >= lo && p <= hi;
}

function tcpUdp(info: Uint8Array, syn: Syn, invSrc: boolean, invDst: boolean): boolean {
  const v = view(info);
  const h = (o: number) => v.getUint16(o, LITTLE_ENDIAN);
  return (portIn(syn.sport, h(0), h(2)) !== invSrc) && (portIn(syn.dport, h(4), h(6)) !== invDst);
}

/** The SYN's TCP flags byte as known bits (see packet.ts). */
const FLAGS_VAL = 0x02;
const FLAGS_KNOWN = 0x37;

function tcpMatch(info: Uint8Array, syn: Syn): Tri {
  if (info.length < 12) return "both";
  const [option, flgMask, flgCmp, inv] = [info[8]!, info[9]!, info[10]!, info[11]!];
  if (!tcpUdp(info, syn, (inv & 1) !== 0, (inv & 2) !== 0)) return false;
  // (flags & flgMask) == flgCmp, on the bits known
  let flags: Tri;
  if (((FLAGS_VAL ^ flgCmp) & flgMask & FLAGS_KNOWN) !== 0 || (flgCmp & ~flgMask) !== 0) {
    flags = false;
  } else flags = (flgMask & ~FLAGS_KNOWN & 0xff) === 0 ? true : "both";
  if ((inv & 4) !== 0 && flags !== "both") flags = !flags;
  if (flags === false) return false;
  const opt: Tri = option === 0 ? true : "both";
  return flags === true && opt === true ? true : "both";
}

function multiport(info: Uint8Array, rev: number, syn: Syn): Tri {
  if (info.length < (rev === 0 ? 32 : 48)) return "both";
  const v = view(info);
  const [flags, count] = [info[0]!, Math.min(info[1]!, 15)];
  const port = (i: number) => v.getUint16(2 + 2 * i, LITTLE_ENDIAN);
  const hit = (lo: number, hi: number): boolean =>
    (flags !== 1 && portIn(syn.sport, lo, hi)) || (flags !== 0 && portIn(syn.dport, lo, hi));
  if (flags > 2) return "both";
  if (rev === 0) {
    for (let i = 0; i < count; i++) if (hit(port(i), port(i))) return true;
    return false;
  }
  const invert = info[47]! !== 0;
  for (let i = 0; i < count; i++) {
    const lo = port(i);
    const hi = info[32 + i]! !== 0 && i + 1 < 15 ? port(++i) : lo;
    if (hit(lo, hi)) return !invert;
  }
  return invert;
}

/** `XT_CONNTRACK_STATE` and `XT_CONNTRACK_STATE_ALIAS`. */
const CT_STATE_FLAGS = 1 | (1 << 13);
/** `XT_STATE_BIT(IP_CT_NEW)`. */
const STATE_NEW = 1 << 3;

function conntrack(info: Uint8Array, ctKnown: boolean): Tri {
  if (info.length < 154 || !ctKnown) return "both";
  const v = view(info);
  const [flags, inv, mask] = [146, 148, 150].map((o) => v.getUint16(o, LITTLE_ENDIAN));
  if ((flags! & ~CT_STATE_FLAGS) !== 0 || (flags! & 1) === 0) return "both";
  return ((mask! & STATE_NEW) !== 0) !== ((inv! & 1) !== 0);
}

/**
 * Evaluates match `name` revision `rev` for the SYN: true, false, or both
 * ways. `ctKnown`: conntrack has run (state new is certain).
 */
export function evalMatch(
  name: string,
  rev: number,
  info: Uint8Array,
  syn: Syn,
  marks: Marks,
  ctKnown: boolean,
): Tri {
  switch (name) {
    case "comment":
      return true;
    case "tcp":
      return rev === 0 ? tcpMatch(info, syn) : "both";
    case "udp":
      return rev === 0 && info.length >= 9
        ? tcpUdp(info, syn, (info[8]! & 1) !== 0, (info[8]! & 2) !== 0)
        : "both";
    case "multiport":
      return rev <= 1 ? multiport(info, rev, syn) : "both";
    case "mark": {
      if (rev !== 1 || info.length < 9) return "both";
      const v = view(info);
      const masked = bitwiseBool(marks.mark, u32Host(v.getUint32(4, LITTLE_ENDIAN)), u32Host(0));
      const eq = equalBits(masked, u32Host(v.getUint32(0, LITTLE_ENDIAN)));
      return eq === "both" ? eq : eq !== (info[8]! !== 0);
    }
    case "conntrack":
      return rev === 2 || rev === 3 ? conntrack(info, ctKnown) : "both";
    case "state":
      if (info.length < 4 || !ctKnown) return "both";
      return (view(info).getUint32(0, LITTLE_ENDIAN) & STATE_NEW) !== 0;
    default:
      return "both";
  }
}
