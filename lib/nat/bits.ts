/**
 * Bytes whose bits are known or unknown: the values the NAT evaluator
 * (`evaluate.ts`) keeps in nf_tables registers and in the packet's marks.
 * A byte is a pair (`val`, `known`): bit `b` is known to be `val`'s bit `b`
 * when `known`'s bit `b` is set, and may be 0 or 1 otherwise. Every
 * operation over-approximates: it never claims a bit it cannot know.
 *
 * A comparison answers `true`, `false` or `"both"` (the kernel could take
 * either way for some packet the agent cannot tell apart).
 *
 * @example
 * ```ts
 * import { Bits, cmpBits } from "./bits.ts";
 * const mark = Bits.unknown(4);
 * cmpBits(mark, new Uint8Array([0, 0x40, 0, 0]), "eq"); // => "both"
 * const low = Bits.known(new Uint8Array([0x10, 0, 0, 0]));
 * cmpBits(low, new Uint8Array([0x10, 0, 0, 0]), "eq"); // => true
 * cmpBits(low, new Uint8Array([0x11, 0, 0, 0]), "lt"); // => true
 * ```
 *
 * @module
 */

import type { CmpOp } from "./ruleset.ts";

/** A three-valued truth: certainly true, certainly false, or either. */
export type Tri = boolean | "both";

/** A byte string with per-bit knowledge. */
export class Bits {
  constructor(readonly val: Uint8Array, readonly known: Uint8Array) {}

  /** `n` bytes, every bit unknown. */
  static unknown(n: number): Bits {
    return new Bits(new Uint8Array(n), new Uint8Array(n));
  }

  /** Exactly these bytes. */
  static known(data: Uint8Array): Bits {
    return new Bits(data.slice(), new Uint8Array(data.length).fill(0xff));
  }

  get length(): number {
    return this.val.length;
  }

  /** True when every bit is known. */
  isKnown(): boolean {
    return this.known.every((k) => k === 0xff);
  }

  /** The bytes `from..from+len` (a copy). */
  slice(from: number, len: number): Bits {
    return new Bits(this.val.slice(from, from + len), this.known.slice(from, from + len));
  }

  clone(): Bits {
    return new Bits(this.val.slice(), this.known.slice());
  }

  /** Writes `src` at `at`, clipped to this length. */
  write(at: number, src: Bits): void {
    for (let i = 0; i < src.length && at + i < this.length; i++) {
      this.val[at + i] = src.val[i]!;
      this.known[at + i] = src.known[i]!;
    }
  }

  /** Forgets `len` bytes from `at`. */
  forget(at: number, len: number): void {
    for (let i = at; i < at + len && i < this.length; i++) this.known[i] = 0;
  }

  /** A key for de-duplicating states: equal keys, equal knowledge. */
  key(): string {
    let s = "";
    for (let i = 0; i < this.length; i++) {
      const k = this.known[i]!;
      s += k === 0 ? "??" : (this.val[i]! & k | (k << 8)).toString(36) + ",";
    }
    return s;
  }
}

/** Bytes of the register file: 16 words of 4 bytes (`NFT_REG32_00`..`15`). */
export const REG_BYTES = 64;

/**
 * The register file of one base-chain run: a load of `len` bytes into word
 * `reg` zero-fills the rest of its last word, as the kernel does
 * (`nft_data_copy`, `nft_reg_store8/16`).
 */
export class Registers {
  constructor(readonly bits: Bits = Bits.unknown(REG_BYTES)) {}

  clone(): Registers {
    return new Registers(this.bits.clone());
  }

  /** Stores `b` at word `reg`, zero-padding its last word. */
  store(reg: number, b: Bits): void {
    const at = reg * 4;
    this.bits.write(at, b);
    const pad = (4 - (b.length % 4)) % 4;
    if (pad > 0) this.bits.write(at + b.length, Bits.known(new Uint8Array(pad)));
  }

  /** Forgets `len` bytes (rounded up to words) from word `reg`: a write the evaluator cannot model. */
  clobber(reg: number, len: number): void {
    this.bits.forget(reg * 4, Math.ceil(len / 4) * 4);
  }

  /** Forgets everything. */
  clobberAll(): void {
    this.bits.forget(0, REG_BYTES);
  }

  /** `len` bytes from word `reg`; bytes past the file are unknown. */
  load(reg: number, len: number): Bits {
    const at = reg * 4;
    const out = Bits.unknown(len);
    out.write(0, this.bits.slice(at, Math.max(0, Math.min(len, REG_BYTES - at))));
    return out;
  }
}

/** Compares `a` with constant `data` (as many bytes as `data`, memcmp order). */
export function cmpBits(a: Bits, data: Uint8Array, op: CmpOp): Tri {
  const eq = equalBits(a, data);
  if (op === "eq") return eq;
  if (op === "neq") return eq === "both" ? "both" : !eq;
  // the lowest and highest values `a` may hold, in memcmp order
  const lo = minOf(a);
  const hi = maxOf(a);
  const test = (x: Uint8Array): boolean => {
    const c = memcmp(x, data);
    return op === "lt" ? c < 0 : op === "lte" ? c <= 0 : op === "gt" ? c > 0 : c >= 0;
  };
  const tl = test(lo);
  const th = test(hi);
  return tl === th ? tl : "both";
}

/** `a == data`: false as soon as one known bit differs. */
export function equalBits(a: Bits, data: Uint8Array): Tri {
  let all = true;
  for (let i = 0; i < data.length; i++) {
    const k = i < a.length ? a.known[i]! : 0;
    const v = i < a.length ? a.val[i]! : 0;
    if (((v ^ data[i]!) & k) !== 0) return false;
    if (k !== 0xff) all = false;
  }
  return all ? true : "both";
}

/** `from <= a <= to` in memcmp order. */
export function inRangeBits(a: Bits, from: Uint8Array, to: Uint8Array): Tri {
  const lo = minOf(a);
  const hi = maxOf(a);
  if (memcmp(hi, from) < 0 || memcmp(lo, to) > 0) return false;
  if (memcmp(lo, from) >= 0 && memcmp(hi, to) <= 0) return true;
  return "both";
}

/** The smallest value `a` may hold (unknown bits 0). */
export function minOf(a: Bits): Uint8Array {
  return a.val.map((v, i) => v & a.known[i]!);
}

/** The largest value `a` may hold (unknown bits 1). */
export function maxOf(a: Bits): Uint8Array {
  return a.val.map((v, i) => (v & a.known[i]!) | (~a.known[i]! & 0xff));
}

/** memcmp over the shorter length, then by length. */
export function memcmp(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** `(a & mask) ^ xor`, bit by bit: bits the mask clears become known. */
export function bitwiseBool(a: Bits, mask: Uint8Array, xor: Uint8Array): Bits {
  const out = Bits.unknown(a.length);
  for (let i = 0; i < a.length; i++) {
    const m = mask[i] ?? 0;
    const x = xor[i] ?? 0;
    out.val[i] = ((a.val[i]! & m) ^ x) & 0xff;
    out.known[i] = (a.known[i]! | ~m) & 0xff;
  }
  return out;
}

/** True on a little-endian host (the byte order of host-order register values). */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Byte-order conversion in elements of `size` bytes (a no-op on a big-endian host). */
export function swapBits(a: Bits, size: number): Bits {
  if (!LITTLE_ENDIAN || size <= 1) return a.clone();
  const out = Bits.unknown(a.length);
  for (let base = 0; base + size <= a.length; base += size) {
    for (let i = 0; i < size; i++) {
      out.val[base + i] = a.val[base + size - 1 - i]!;
      out.known[base + i] = a.known[base + size - 1 - i]!;
    }
  }
  return out;
}

/** `n` as 4 bytes in host order (how the kernel keeps marks, states, numgen values). */
export function u32Host(n: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n >>> 0, LITTLE_ENDIAN);
  return out;
}

/** `n` as 2 bytes in network order. */
export function be16(n: number): Uint8Array {
  return new Uint8Array([(n >> 8) & 0xff, n & 0xff]);
}
