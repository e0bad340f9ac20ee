/**
 * Builds the `info` structs of xtables matches and targets as iptables-nft
 * hands them to the kernel (UAPI layouts, host order for plain integers,
 * network order for addresses and NAT ports), for the NAT evaluator's tests.
 *
 * @module
 */

import { LITTLE_ENDIAN } from "../../lib/nat/bits.ts";
import { addr } from "./nft_builder.ts";

function buf(n: number): [Uint8Array, DataView] {
  const b = new Uint8Array(n);
  return [b, new DataView(b.buffer)];
}

/** DNAT/REDIRECT ranges: `rev` 0 (IPv4 compat), 1 (`nf_nat_range`), 2 (`nf_nat_range2`). */
export function natRangeInfo(
  rev: 0 | 1 | 2,
  r: { a1?: string; a2?: string; p1?: number; p2?: number },
): Uint8Array {
  const flags = (r.a1 !== undefined ? 1 : 0) | (r.p1 !== undefined ? 2 : 0);
  if (rev === 0) {
    const [b, v] = buf(20);
    v.setUint32(0, 1, LITTLE_ENDIAN);
    v.setUint32(4, flags, LITTLE_ENDIAN);
    if (r.a1 !== undefined) {
      b.set(addr(r.a1), 8);
      b.set(addr(r.a2 ?? r.a1), 12);
    }
    v.setUint16(16, r.p1 ?? 0);
    v.setUint16(18, r.p2 ?? r.p1 ?? 0);
    return b;
  }
  const [b, v] = buf(rev === 1 ? 40 : 44);
  v.setUint32(0, flags, LITTLE_ENDIAN);
  if (r.a1 !== undefined) {
    b.set(addr(r.a1), 4);
    b.set(addr(r.a2 ?? r.a1), 20);
  }
  v.setUint16(36, r.p1 ?? 0);
  v.setUint16(38, r.p2 ?? r.p1 ?? 0);
  return b;
}

/** `xt_mark_tginfo2` (MARK rev 2): mark = (mark & ~mask) ^ value. */
export function markTargetInfo(value: number, mask: number): Uint8Array {
  const [b, v] = buf(8);
  v.setUint32(0, value >>> 0, LITTLE_ENDIAN);
  v.setUint32(4, mask >>> 0, LITTLE_ENDIAN);
  return b;
}

/** `xt_mark_mtinfo1` (mark rev 1). */
export function markMatchInfo(value: number, mask: number, invert = false): Uint8Array {
  const [b, v] = buf(12);
  v.setUint32(0, value >>> 0, LITTLE_ENDIAN);
  v.setUint32(4, mask >>> 0, LITTLE_ENDIAN);
  b[8] = invert ? 1 : 0;
  return b;
}

/** `xt_tcp`: port ranges, flags, inversion bits. */
export function tcpInfo(
  o: {
    sp?: [number, number];
    dp?: [number, number];
    option?: number;
    mask?: number;
    cmp?: number;
    inv?: number;
  },
): Uint8Array {
  const [b, v] = buf(12);
  const [s, d] = [o.sp ?? [0, 65535], o.dp ?? [0, 65535]];
  [s[0], s[1], d[0], d[1]].forEach((p, i) => v.setUint16(2 * i, p!, LITTLE_ENDIAN));
  b.set([o.option ?? 0, o.mask ?? 0, o.cmp ?? 0, o.inv ?? 0], 8);
  return b;
}

/** `xt_multiport_v1`: `flags` 0 source, 1 destination, 2 either; `[lo, hi]` entries are ranges. */
export function multiportInfo(
  flags: 0 | 1 | 2,
  ports: (number | [number, number])[],
  invert = false,
): Uint8Array {
  const [b, v] = buf(48);
  let n = 0;
  for (const p of ports) {
    if (typeof p === "number") v.setUint16(2 + 2 * n++, p, LITTLE_ENDIAN);
    else {
      b[32 + n] = 1;
      v.setUint16(2 + 2 * n++, p[0], LITTLE_ENDIAN);
      v.setUint16(2 + 2 * n++, p[1], LITTLE_ENDIAN);
    }
  }
  b[0] = flags;
  b[1] = n;
  b[47] = invert ? 1 : 0;
  return b;
}

/** `xt_conntrack_mtinfo3` testing only the state (`--ctstate`), e.g. mask 8 = NEW. */
export function ctstateInfo(stateMask: number, invert = false): Uint8Array {
  const [b, v] = buf(164);
  v.setUint16(146, 1, LITTLE_ENDIAN);
  v.setUint16(148, invert ? 1 : 0, LITTLE_ENDIAN);
  v.setUint16(150, stateMask, LITTLE_ENDIAN);
  return b;
}
