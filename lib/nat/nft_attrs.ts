/**
 * Reading nf_tables attributes: every attribute of one nest gathered into a
 * slot table at once (the kernel's `nla_parse_nested`), and the value types
 * nf_tables uses — big-endian 32/64-bit numbers, NUL-terminated strings,
 * registers (normalised to 32-bit word indexes, as `ruleset.ts` says),
 * `nft_data` (a value or a verdict). Every reader checks sizes and throws
 * {@linkcode NftDecodeError}, never reads out of range.
 *
 * @example
 * ```ts
 * import { Attrs, registerIndex } from "./nft_attrs.ts";
 * const bytes = new Uint8Array([8, 0, 1, 0, 0, 0, 0, 9]); // type 1: be32 9 (NFT_REG32_01)
 * const a = new Attrs(4);
 * a.parse(new DataView(bytes.buffer), 0, bytes.length, "example");
 * registerIndex(a.u32(1)); // => 1
 * ```
 *
 * @module
 */
import { AttrCursor, NetlinkDecodeError } from "../netlink/message.ts";
import type { Verdict } from "./ruleset.ts";

/**
 * nf_tables bytes that do not decode into the model (a bad length, a
 * missing attribute, an unknown register): the rules are unreadable.
 *
 * @example
 * ```ts
 * import { NftDecodeError } from "./nft_attrs.ts";
 * new NftDecodeError("cmp: no NFTA_CMP_DATA").name; // => "NftDecodeError"
 * ```
 */
export class NftDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NftDecodeError";
  }
}

const decoder = new TextDecoder();

/**
 * The attributes of one nest, by type: `has`, then typed getters. Reused:
 * `parse` forgets the previous nest.
 */
export class Attrs {
  view: DataView = new DataView(new ArrayBuffer(0));
  #start: Int32Array;
  #size: Int32Array;
  #where = "";

  /** Room for types `1..max`; larger types are ignored (newer kernels). */
  constructor(max: number) {
    this.#start = new Int32Array(max + 1).fill(-1);
    this.#size = new Int32Array(max + 1);
  }

  /** Gathers the attributes in `[off, end)` of `view`. */
  parse(view: DataView, off: number, end: number, where: string): this {
    this.view = view;
    this.#where = where;
    this.#start.fill(-1);
    let c: AttrCursor;
    try {
      c = new AttrCursor(view, off, end, where);
      while (c.next()) {
        if (c.type < this.#start.length) {
          this.#start[c.type] = c.start;
          this.#size[c.type] = c.size;
        }
      }
    } catch (e) {
      if (e instanceof NetlinkDecodeError) throw new NftDecodeError(e.message);
      throw e;
    }
    return this;
  }

  has(type: number): boolean {
    return (this.#start[type] ?? -1) >= 0;
  }

  /** Offset of attribute `type`'s data (it must be present). */
  start(type: number): number {
    const s = this.#start[type] ?? -1;
    if (s < 0) throw new NftDecodeError(`${this.#where}: attribute ${type} missing`);
    return s;
  }

  size(type: number): number {
    this.start(type);
    return this.#size[type] ?? 0;
  }

  /** End offset of attribute `type`'s data. */
  end(type: number): number {
    return this.start(type) + this.size(type);
  }

  /** A big-endian 32-bit number (`NLA_U32` in nf_tables is `__be32`). */
  u32(type: number): number {
    if (this.size(type) < 4) throw new NftDecodeError(`${this.#where}: attribute ${type} short`);
    return this.view.getUint32(this.start(type), false);
  }

  /** `u32`, or `fallback` when absent. */
  u32Or(type: number, fallback: number): number {
    return this.has(type) ? this.u32(type) : fallback;
  }

  /** A big-endian signed 32-bit number. */
  i32(type: number): number {
    return this.u32(type) | 0;
  }

  /** A big-endian 64-bit number (handles), as a number (exact below 2^53). */
  u64(type: number): number {
    if (this.size(type) < 8) throw new NftDecodeError(`${this.#where}: attribute ${type} short`);
    const s = this.start(type);
    return this.view.getUint32(s, false) * 2 ** 32 + this.view.getUint32(s + 4, false);
  }

  /** A string, without its NUL terminator (ASCII by hand: names are short, and this is hot). */
  str(type: number): string {
    const s = this.start(type);
    const n = this.size(type);
    const v = this.view;
    let out = "";
    for (let i = 0; i < n; i++) {
      const c = v.getUint8(s + i);
      if (c === 0) return out;
      if (c > 0x7f) {
        const bytes = new Uint8Array(v.buffer, v.byteOffset + s, n);
        const nul = bytes.indexOf(0);
        return decoder.decode(nul === -1 ? bytes : bytes.subarray(0, nul));
      }
      out += String.fromCharCode(c);
    }
    return out;
  }

  /** A copy of the raw bytes (carved from a shared arena: one ArrayBuffer per 64 KiB, not per value). */
  bytes(type: number): Uint8Array {
    const s = this.view.byteOffset + this.start(type);
    return copyBytes(new Uint8Array(this.view.buffer, s, this.size(type)));
  }
}

const ARENA_BYTES = 64 << 10;
let arena = new Uint8Array(ARENA_BYTES);
let arenaUsed = 0;

/**
 * A copy of `src` that shares its backing store with other small copies:
 * values of a few bytes each would otherwise cost an ArrayBuffer apiece.
 * Large values get their own.
 */
export function copyBytes(src: Uint8Array): Uint8Array {
  const n = src.length;
  if (n > 1024) return src.slice();
  if (arenaUsed + n > ARENA_BYTES) {
    arena = new Uint8Array(ARENA_BYTES);
    arenaUsed = 0;
  }
  const out = arena.subarray(arenaUsed, arenaUsed + n);
  out.set(src);
  arenaUsed += (n + 7) & ~7;
  return out;
}

/**
 * A register number as the kernel dumps it (`NFT_REG_1..4`, `NFT_REG32_00..15`)
 * as the index of a 32-bit word; `NFT_REG_VERDICT` → `"verdict"`.
 */
export function registerIndex(reg: number): number | "verdict" {
  if (reg === 0) return "verdict";
  if (reg >= 1 && reg <= 4) return (reg - 1) * 4;
  if (reg >= 8 && reg <= 23) return reg - 8;
  throw new NftDecodeError(`register ${reg} out of range`);
}

/** A data register (never the verdict register). */
export function dataRegister(reg: number, where: string): number {
  const r = registerIndex(reg);
  if (r === "verdict") throw new NftDecodeError(`${where}: the verdict register as data`);
  return r;
}

const NFTA_DATA_VALUE = 1;
const NFTA_DATA_VERDICT = 2;
const NFTA_VERDICT_CODE = 1;
const NFTA_VERDICT_CHAIN = 2;

/** Verdict codes: `NF_DROP`, `NF_ACCEPT`, `NFT_CONTINUE` … `NFT_RETURN`. */
const NF_DROP = 0;
const NF_ACCEPT = 1;
const NFT_CONTINUE = -1;
const NFT_BREAK = -2;
const NFT_JUMP = -3;
const NFT_GOTO = -4;
const NFT_RETURN = -5;

/** An `nft_data` nest: its value bytes or its verdict. */
export type NftData = { value: Uint8Array; verdict?: never } | { verdict: Verdict; value?: never };

const dataAttrs = new Attrs(2);
const verdictAttrs = new Attrs(3);

/** Decodes the `nft_data` nest held by attribute `type` of `a`. */
export function nftData(a: Attrs, type: number, where: string): NftData {
  const d = dataAttrs.parse(a.view, a.start(type), a.end(type), where);
  if (d.has(NFTA_DATA_VALUE)) return { value: d.bytes(NFTA_DATA_VALUE) };
  if (d.has(NFTA_DATA_VERDICT)) {
    const v = verdictAttrs.parse(
      d.view,
      d.start(NFTA_DATA_VERDICT),
      d.end(NFTA_DATA_VERDICT),
      where,
    );
    return { verdict: verdictOf(v.i32(NFTA_VERDICT_CODE), v, where) };
  }
  throw new NftDecodeError(`${where}: nft_data with neither value nor verdict`);
}

/** The value bytes of the `nft_data` nest at attribute `type` (a verdict there is an error). */
export function nftValue(a: Attrs, type: number, where: string): Uint8Array {
  const d = nftData(a, type, where);
  if (d.value === undefined) throw new NftDecodeError(`${where}: a verdict where a value belongs`);
  return d.value;
}

function verdictOf(code: number, v: Attrs, where: string): Verdict {
  switch (code) {
    case NF_DROP:
      return { kind: "drop" };
    case NF_ACCEPT:
      return { kind: "accept" };
    case NFT_CONTINUE:
      return { kind: "continue" };
    case NFT_BREAK:
      return { kind: "break" };
    case NFT_RETURN:
      return { kind: "return" };
    case NFT_JUMP:
    case NFT_GOTO:
      if (!v.has(NFTA_VERDICT_CHAIN)) throw new NftDecodeError(`${where}: jump without a chain`);
      return { kind: code === NFT_JUMP ? "jump" : "goto", chain: v.str(NFTA_VERDICT_CHAIN) };
    default:
      return { kind: "other", code };
  }
}
