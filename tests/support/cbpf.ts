/**
 * Test helper: a classic BPF interpreter with the kernel's netlink
 * attribute look-ups (`SKF_AD_NLATTR`, `SKF_AD_NLATTR_NEST`), so that a
 * socket filter can be run against messages without the kernel. Written
 * from the kernel's semantics (net/core/filter.c), not from lib/netlink/bpf.ts.
 *
 * @module
 */
import type { BpfInsn } from "../../lib/netlink/bpf.ts";

const NLA_HDRLEN = 4;
const NLA_TYPE_MASK = ~(0x8000 | 0x4000) & 0xffff;

/** `nla_find`: the offset of the first attribute of `type` in [start, end), or 0. */
function nlaFind(data: DataView, start: number, end: number, type: number): number {
  let off = start;
  while (off + NLA_HDRLEN <= end) {
    const len = data.getUint16(off, true);
    if (len < NLA_HDRLEN || off + len > end) return 0;
    if ((data.getUint16(off + 2, true) & NLA_TYPE_MASK) === type) return off;
    off += (len + 3) & ~3;
  }
  return 0;
}

/**
 * Runs `program` on `packet` (little-endian host); resolves with what the
 * program returns (0 drops). Throws on an instruction it does not know, or
 * on running off the end, as the kernel's checker would have refused it.
 */
export function runFilter(program: readonly BpfInsn[], packet: Uint8Array): number {
  const d = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  let A = 0, X = 0;
  const load = (off: number, size: number): number | undefined => {
    if (off < 0 || off + size > packet.length) return undefined;
    return size === 4
      ? d.getUint32(off, false)
      : size === 2
      ? d.getUint16(off, false)
      : d.getUint8(off);
  };
  for (let pc = 0; pc < program.length; pc++) {
    const { code, jt, jf, k } = program[pc]!;
    const cls = code & 0x07;
    if (cls === 0x00 || cls === 0x01) {
      const mode = code & 0xe0, size = [4, 2, 1][(code & 0x18) >> 3]!;
      if (mode === 0x00) {
        if (cls === 0x00) A = k;
        else X = k;
        continue;
      }
      if (cls === 0x00 && mode === 0x20 && k >= 0xfffff000) {
        const anc = k - 0xfffff000;
        if (anc === 12) {
          if (packet.length < NLA_HDRLEN || A > packet.length - NLA_HDRLEN) A = 0;
          else A = nlaFind(d, A, packet.length, X);
        } else if (anc === 16) {
          if (packet.length < NLA_HDRLEN || A > packet.length - NLA_HDRLEN) A = 0;
          else {
            const len = d.getUint16(A, true);
            A = len > packet.length - A ? 0 : nlaFind(d, A + NLA_HDRLEN, A + len, X);
          }
        } else throw new Error(`ancillary load ${anc} not modelled`);
        continue;
      }
      if (cls === 0x00 && (mode === 0x20 || mode === 0x40)) {
        const v = load(mode === 0x20 ? k : X + k, size);
        if (v === undefined) return 0; // out of bounds: the kernel drops the packet
        A = v;
        continue;
      }
      throw new Error(`load 0x${code.toString(16)} not modelled`);
    }
    if (cls === 0x04 && (code & 0xf0) === 0x50) {
      A = (A & k) >>> 0;
      continue;
    }
    if (cls === 0x05) {
      const op = code & 0xf0;
      if (op === 0x00) pc += k;
      else if (op === 0x10) pc += A === k ? jt : jf;
      else if (op === 0x40) pc += (A & k) !== 0 ? jt : jf;
      else throw new Error(`jump 0x${code.toString(16)} not modelled`);
      continue;
    }
    if (cls === 0x06) return (code & 0x18) === 0x10 ? A : k;
    if (cls === 0x07 && code === 0x07) {
      X = A;
      continue;
    }
    throw new Error(`instruction 0x${code.toString(16)} not modelled`);
  }
  throw new Error("ran off the end of the program");
}
