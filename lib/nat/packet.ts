/**
 * What the NAT evaluator knows about the client's next SYN, as the kernel's
 * loads would see it at a nat hook: header bytes (`payload`), packet
 * metadata (`meta`) and conntrack data (`ct`). Known: the addresses, the
 * protocol (TCP), the ports, the SYN bit (with FIN, RST, ACK and URG clear;
 * PSH, ECE and CWR may be set), the family, ct state new, direction
 * original, the original tuple and the status bits a new unconfirmed entry
 * cannot have. Everything else (lengths, TTL, IDs, flow labels, sequence
 * numbers, TCP options, interfaces, socket owner, cgroup, time, random
 * numbers, zone, …) is unknown, bit for bit. Marks come from the path's
 * state: unknown unless a rule earlier on the same path set them.
 *
 * Before conntrack has run (a base chain at priority ≤ −200) no ct data is
 * known.
 *
 * @example
 * ```ts
 * import { payloadBits } from "./packet.ts";
 * const syn = {
 *   family: "ipv4" as const,
 *   src: new Uint8Array([10, 0, 0, 2]),
 *   dst: new Uint8Array([10, 96, 0, 10]),
 *   sport: 40000,
 *   dport: 80,
 * };
 * payloadBits(syn, "network", 16, 4).val; // => new Uint8Array([10, 96, 0, 10])
 * payloadBits(syn, "transport", 4, 4).isKnown(); // => false
 * ```
 *
 * @module
 */

import { be16, Bits, u32Host } from "./bits.ts";

/** The fields of the next SYN the evaluator knows. */
export interface Syn {
  readonly family: "ipv4" | "ipv6";
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  readonly sport: number;
  readonly dport: number;
}

/** Path state the loads read: the packet mark and the ct mark, as far as known. */
export interface Marks {
  mark: Bits;
  ctmark: Bits;
}

/** The width every unmodelled load is taken to have: wider is only less precise. */
const UNKNOWN_WIDTH = 16;

/** `NFT_META_*` keys the evaluator reads. */
export const META = {
  PROTOCOL: 1,
  PRIORITY: 2,
  MARK: 3,
  NFTRACE: 12,
  SECMARK: 14,
  NFPROTO: 15,
  L4PROTO: 16,
} as const;

/** `NFT_CT_*` keys the evaluator reads or sets. */
export const CT = {
  STATE: 0,
  DIRECTION: 1,
  STATUS: 2,
  MARK: 3,
  SECMARK: 4,
  L3PROTOCOL: 7,
  SRC: 8,
  DST: 9,
  PROTOCOL: 10,
  PROTO_SRC: 11,
  PROTO_DST: 12,
  LABELS: 13,
  ZONE: 17,
  EVENTMASK: 18,
  SRC_IP: 19,
  DST_IP: 20,
  SRC_IP6: 21,
  DST_IP6: 22,
} as const;

/** `NFPROTO_IPV4` / `NFPROTO_IPV6`. */
export function nfproto(family: "ipv4" | "ipv6"): number {
  return family === "ipv4" ? 2 : 10;
}

/** The header of `syn` at `base`, as known bits (`len` bytes from `offset`). */
export function payloadBits(syn: Syn, base: string, offset: number, len: number): Bits {
  const out = Bits.unknown(len);
  const header = base === "network"
    ? networkHeader(syn)
    : base === "transport"
    ? transportHeader(syn)
    : undefined;
  if (header !== undefined) out.write(0, header.slice(offset, Math.max(0, len)));
  return out;
}

function networkHeader(syn: Syn): Bits {
  if (syn.family === "ipv4") {
    const h = Bits.unknown(20);
    h.write(0, new Bits(new Uint8Array([0x40]), new Uint8Array([0xf0]))); // version 4
    h.write(9, Bits.known(new Uint8Array([6])));
    h.write(12, Bits.known(syn.src));
    h.write(16, Bits.known(syn.dst));
    return h;
  }
  const h = Bits.unknown(40);
  h.write(0, new Bits(new Uint8Array([0x60]), new Uint8Array([0xf0]))); // version 6
  h.write(6, Bits.known(new Uint8Array([6])));
  h.write(8, Bits.known(syn.src));
  h.write(24, Bits.known(syn.dst));
  return h;
}

function transportHeader(syn: Syn): Bits {
  const h = Bits.unknown(20);
  h.write(0, Bits.known(be16(syn.sport)));
  h.write(2, Bits.known(be16(syn.dport)));
  // SYN set; FIN, RST, ACK, URG clear; PSH, ECE, CWR unknown
  h.write(13, new Bits(new Uint8Array([0x02]), new Uint8Array([0x37])));
  return h;
}

/**
 * A `meta` load (`NFT_META_*` `key`). The ethertype (`meta protocol`) is
 * taken as known only at prerouting (the UAPI calls it invalid at output).
 */
export function metaBits(syn: Syn, key: number, marks: Marks, hook: string): Bits {
  switch (key) {
    case META.NFPROTO:
      return Bits.known(new Uint8Array([nfproto(syn.family)]));
    case META.L4PROTO:
      return Bits.known(new Uint8Array([6]));
    case META.PROTOCOL:
      if (hook !== "prerouting") return Bits.unknown(UNKNOWN_WIDTH);
      return Bits.known(syn.family === "ipv4" ? be16(0x0800) : be16(0x86dd));
    case META.MARK:
      return marks.mark.clone();
    default:
      return Bits.unknown(UNKNOWN_WIDTH);
  }
}

/** IPS_SEEN_REPLY, ASSURED, CONFIRMED, SRC_NAT, DST_NAT, SRC/DST_NAT_DONE, DYING: clear on a new entry. */
const STATUS_CLEAR = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 7) | (1 << 8) |
  (1 << 9);

/** A `ct` load (`NFT_CT_*` `key`, direction `dir`); `ctKnown` false before conntrack ran. */
export function ctBits(
  syn: Syn,
  key: number,
  dir: 0 | 1 | undefined,
  marks: Marks,
  ctKnown: boolean,
): Bits {
  if (!ctKnown) return Bits.unknown(UNKNOWN_WIDTH);
  const v4 = syn.family === "ipv4";
  switch (key) {
    case CT.STATE:
      return Bits.known(u32Host(1 << 3)); // NF_CT_STATE_BIT(IP_CT_NEW)
    case CT.DIRECTION:
      return Bits.known(new Uint8Array([0]));
    case CT.STATUS:
      return new Bits(new Uint8Array(4), u32Host(STATUS_CLEAR));
    case CT.MARK:
      return marks.ctmark.clone();
    case CT.L3PROTOCOL:
      return Bits.known(new Uint8Array([nfproto(syn.family)]));
    case CT.PROTOCOL:
      return Bits.known(new Uint8Array([6]));
  }
  // the rest are per direction: only the original one is known (no NAT yet)
  if (dir !== 0) return Bits.unknown(UNKNOWN_WIDTH);
  switch (key) {
    case CT.SRC:
      return Bits.known(syn.src);
    case CT.DST:
      return Bits.known(syn.dst);
    case CT.SRC_IP:
      return v4 ? Bits.known(syn.src) : Bits.unknown(UNKNOWN_WIDTH);
    case CT.DST_IP:
      return v4 ? Bits.known(syn.dst) : Bits.unknown(UNKNOWN_WIDTH);
    case CT.SRC_IP6:
      return v4 ? Bits.unknown(UNKNOWN_WIDTH) : Bits.known(syn.src);
    case CT.DST_IP6:
      return v4 ? Bits.unknown(UNKNOWN_WIDTH) : Bits.known(syn.dst);
    case CT.PROTO_SRC:
      return Bits.known(be16(syn.sport));
    case CT.PROTO_DST:
      return Bits.known(be16(syn.dport));
    default:
      return Bits.unknown(UNKNOWN_WIDTH);
  }
}
