/**
 * One rule's `NFTA_RULE_EXPRESSIONS` → `NftExpr[]`: each `NFTA_LIST_ELEM`
 * holds `NFTA_EXPR_NAME` and `NFTA_EXPR_DATA`, decoded by name into the
 * model of `ruleset.ts` (attribute numbers from the kernel's UAPI header
 * `linux/netfilter/nf_tables.h` and `nf_tables_compat.h`). A name not
 * modelled, or a form of a modelled one this reader does not know (a newer
 * bitwise operation), becomes `{ op: "other", name }`; bytes that break the
 * framing throw {@linkcode NftDecodeError}. The xtables `comment` match
 * keeps an empty `info` (it matches every packet; its text would cost 256
 * bytes a rule in kube-proxy's chains).
 *
 * @example
 * ```ts
 * import { decodeExprs } from "./nft_expr.ts";
 * // NFTA_LIST_ELEM { NFTA_EXPR_NAME "counter" }
 * const bytes = new Uint8Array([16, 0, 1, 0x80, 12, 0, 1, 0, 99, 111, 117, 110, 116, 101, 114, 0]);
 * decodeExprs(new DataView(bytes.buffer), 0, bytes.length); // => [{ op: "counter" }]
 * ```
 *
 * @module
 */
import { AttrCursor, NetlinkDecodeError } from "../netlink/message.ts";
import {
  Attrs,
  dataRegister,
  nftData,
  NftDecodeError,
  nftValue,
  registerIndex,
} from "./nft_attrs.ts";
import { ELIDED, type Prefilter } from "./nft_prefilter.ts";
import type { CmpOp, NftExpr } from "./ruleset.ts";

const NFTA_LIST_ELEM = 1;
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;

const elem = new Attrs(2);
const data = new Attrs(10);

const NO_BYTES = new Uint8Array(0);

const CMP_OPS: readonly CmpOp[] = ["eq", "neq", "lt", "lte", "gt", "gte"];
const PAYLOAD_BASES = ["ll", "network", "transport", "inner"] as const;

/**
 * The expressions of the list nest in `[off, end)` of `view`, in order.
 * With `filter`, decoding stops where the expressions so far rule out every
 * question of its batch, and {@linkcode ELIDED} ends the list
 * (`nft_prefilter.ts`).
 */
export function decodeExprs(
  view: DataView,
  off: number,
  end: number,
  filter?: Prefilter,
): NftExpr[] {
  const out: NftExpr[] = [];
  filter?.start();
  try {
    const c = new AttrCursor(view, off, end, "rule expressions");
    while (c.next()) {
      if (c.type !== NFTA_LIST_ELEM) continue;
      const e = interned(view, c.start, c.size) ?? decodeElem(view, c.start, c.size);
      out.push(e);
      if (filter?.step(e)) {
        out.push(ELIDED);
        return out;
      }
    }
  } catch (e) {
    if (e instanceof NetlinkDecodeError) throw new NftDecodeError(e.message);
    throw e;
  }
  return out;
}

/** One `NFTA_LIST_ELEM`'s expression. */
function decodeElem(view: DataView, start: number, size: number): NftExpr {
  elem.parse(view, start, start + size, "expression");
  const name = elem.str(NFTA_EXPR_NAME);
  let e: NftExpr;
  if (!elem.has(NFTA_EXPR_DATA)) {
    e = name === "counter" ? { op: "counter" } : { op: "other", name };
  } else {
    data.parse(view, elem.start(NFTA_EXPR_DATA), elem.end(NFTA_EXPR_DATA), name);
    e = decodeExpr(name, data);
  }
  if (size <= INTERN_BYTES) remember(view, start, size, e);
  return e;
}

/**
 * Expressions already decoded, by their bytes: rules written by tools
 * repeat the same few (`meta l4proto`, `cmp eq tcp`, `payload ip daddr`,
 * the same jump), so each is decoded once and shared (expressions are
 * read-only). A direct-mapped table of small ones, found by a hash and then
 * compared byte by byte (a collision only costs a decode); an expression is
 * kept the second time its hash comes by, so unique ones (a rule's own
 * address) cost no allocation.
 */
const INTERN_BYTES = 96;
const SLOTS = 4096;
const slotHash = new Int32Array(SLOTS);
const slotRaw: (Uint8Array | undefined)[] = new Array(SLOTS);
const slotExpr: (NftExpr | undefined)[] = new Array(SLOTS);
let lastHash = 0;

function hashOf(view: DataView, start: number, size: number): number {
  let h = 0x811c9dc5 ^ size;
  let i = 0;
  for (; i + 4 <= size; i += 4) h = Math.imul(h ^ view.getUint32(start + i, true), 0x01000193);
  for (; i < size; i++) h = Math.imul(h ^ view.getUint8(start + i), 0x01000193);
  return h | 1; // never 0, the empty slot
}

function interned(view: DataView, start: number, size: number): NftExpr | undefined {
  if (size > INTERN_BYTES) return undefined;
  const h = lastHash = hashOf(view, start, size);
  const slot = h & (SLOTS - 1);
  const raw = slotRaw[slot];
  if (slotHash[slot] !== h || raw === undefined || raw.length !== size) return undefined;
  for (let i = 0; i < size; i++) if (raw[i] !== view.getUint8(start + i)) return undefined;
  return slotExpr[slot];
}

/** After a miss of `interned` (whose hash is `lastHash`): keep `e` if that hash came by before. */
function remember(view: DataView, start: number, size: number, e: NftExpr): void {
  const h = lastHash;
  const slot = h & (SLOTS - 1);
  if (slotHash[slot] !== h) {
    slotHash[slot] = h;
    slotRaw[slot] = undefined;
    return;
  }
  slotRaw[slot] = new Uint8Array(view.buffer, view.byteOffset + start, size).slice();
  slotExpr[slot] = Object.freeze(e);
}

/** Optional register attribute → index, `undefined` when absent. */
function optReg(a: Attrs, type: number, where: string): number | undefined {
  return a.has(type) ? dataRegister(a.u32(type), where) : undefined;
}

/** The expression of kind `O`, its optional fields allowed to be `undefined` while built. */
type Loose<O extends NftExpr["op"]> = {
  [K in keyof Extract<NftExpr, { op: O }>]: Extract<NftExpr, { op: O }>[K] | undefined;
};

/** An expression without its `undefined` fields (exactOptionalPropertyTypes). */
function defined<O extends NftExpr["op"]>(o: Loose<O>): NftExpr {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v;
  return out as NftExpr;
}

function decodeExpr(name: string, a: Attrs): NftExpr {
  switch (name) {
    case "immediate": {
      const reg = registerIndex(a.u32(1)); // NFTA_IMMEDIATE_DREG
      const d = nftData(a, 2, name); // NFTA_IMMEDIATE_DATA
      if (reg === "verdict") {
        if (d.verdict === undefined) throw new NftDecodeError("immediate: value to verdict");
        return { op: "verdict", verdict: d.verdict };
      }
      if (d.value === undefined) throw new NftDecodeError("immediate: verdict to data register");
      return { op: "immediate", dreg: reg, data: d.value };
    }
    case "payload": {
      // DREG 1, BASE 2, OFFSET 3, LEN 4, SREG 5 (a write, with checksum attributes 6-8)
      const base = PAYLOAD_BASES[a.u32(2)];
      if (base === undefined) return { op: "other", name };
      const offset = a.u32(3);
      const len = a.u32(4);
      if (a.has(5)) {
        return { op: "payload_set", base, offset, len, sreg: dataRegister(a.u32(5), name) };
      }
      return { op: "payload", base, offset, len, dreg: dataRegister(a.u32(1), name) };
    }
    case "meta": // DREG 1, KEY 2, SREG 3
      if (a.has(3)) return { op: "meta_set", key: a.u32(2), sreg: dataRegister(a.u32(3), name) };
      return { op: "meta", key: a.u32(2), dreg: dataRegister(a.u32(1), name) };
    case "ct": { // DREG 1, KEY 2, DIRECTION 3 (u8), SREG 4
      const key = a.u32(2);
      if (a.has(3) && a.size(3) < 1) throw new NftDecodeError("ct: empty direction");
      const dir = a.has(3) ? a.view.getUint8(a.start(3)) : undefined;
      if (dir !== undefined && dir !== 0 && dir !== 1) throw new NftDecodeError("ct: direction");
      const d = dir === undefined ? {} : { dir: dir as 0 | 1 };
      if (a.has(4)) return { op: "ct_set", key, ...d, sreg: dataRegister(a.u32(4), name) };
      return { op: "ct", key, ...d, dreg: dataRegister(a.u32(1), name) };
    }
    case "cmp": { // SREG 1, OP 2, DATA 3
      const cmp = CMP_OPS[a.u32(2)];
      if (cmp === undefined) return { op: "other", name };
      return { op: "cmp", sreg: dataRegister(a.u32(1), name), cmp, data: nftValue(a, 3, name) };
    }
    case "bitwise": { // SREG 1, DREG 2, LEN 3, MASK 4, XOR 5, OP 6, DATA 7
      const opn = a.u32Or(6, 0);
      const sreg = dataRegister(a.u32(1), name);
      const dreg = dataRegister(a.u32(2), name);
      const len = a.u32(3);
      if (opn === 0) {
        return {
          op: "bitwise",
          sreg,
          dreg,
          len,
          kind: "bool",
          mask: nftValue(a, 4, name),
          xor: nftValue(a, 5, name),
        };
      }
      if (opn === 1 || opn === 2) {
        const shiftBytes = nftValue(a, 7, name);
        if (shiftBytes.length !== 4) throw new NftDecodeError("bitwise: shift of odd size");
        // The shift amount is a host-order u32 inside nft_data.
        const shift = new DataView(shiftBytes.buffer, shiftBytes.byteOffset, 4).getUint32(0, true);
        return { op: "bitwise", sreg, dreg, len, kind: opn === 1 ? "lshift" : "rshift", shift };
      }
      return { op: "other", name }; // newer AND/OR/XOR between registers
    }
    case "byteorder": { // SREG 1, DREG 2, OP 3, LEN 4, SIZE 5
      const o = a.u32(3);
      if (o > 1) return { op: "other", name };
      return {
        op: "byteorder",
        sreg: dataRegister(a.u32(1), name),
        dreg: dataRegister(a.u32(2), name),
        kind: o === 0 ? "ntoh" : "hton",
        len: a.u32(4),
        size: a.u32(5),
      };
    }
    case "range": { // SREG 1, OP 2, FROM 3, TO 4
      const o = a.u32(2);
      if (o > 1) return { op: "other", name };
      return {
        op: "range",
        sreg: dataRegister(a.u32(1), name),
        cmp: o === 0 ? "eq" : "neq",
        from: nftValue(a, 3, name),
        to: nftValue(a, 4, name),
      };
    }
    case "lookup": { // SET 1, SREG 2, DREG 3, SET_ID 4, FLAGS 5
      const dreg = a.has(3) ? registerIndex(a.u32(3)) : undefined;
      return defined<"lookup">({
        op: "lookup",
        sreg: dataRegister(a.u32(2), name),
        set: a.str(1),
        dreg,
        invert: (a.u32Or(5, 0) & 1) !== 0,
      });
    }
    case "nat": { // TYPE 1, FAMILY 2, ADDR_MIN 3, ADDR_MAX 4, PROTO_MIN 5, PROTO_MAX 6, FLAGS 7
      const type = a.u32(1);
      if (type > 1) return { op: "other", name };
      return defined<"nat">({
        op: "nat",
        type: type === 0 ? "snat" : "dnat",
        nfproto: a.u32(2),
        addrMin: optReg(a, 3, name),
        addrMax: optReg(a, 4, name),
        protoMin: optReg(a, 5, name),
        protoMax: optReg(a, 6, name),
        flags: a.u32Or(7, 0),
      });
    }
    case "redir": // PROTO_MIN 1, PROTO_MAX 2, FLAGS 3
      return defined<"redir">({
        op: "redir",
        protoMin: optReg(a, 1, name),
        protoMax: optReg(a, 2, name),
        flags: a.u32Or(3, 0),
      });
    case "masq": // FLAGS 1, PROTO_MIN 2, PROTO_MAX 3
      return defined<"masq">({
        op: "masq",
        protoMin: optReg(a, 2, name),
        protoMax: optReg(a, 3, name),
      });
    case "numgen": { // DREG 1, MODULUS 2, TYPE 3, OFFSET 4
      const type = a.u32(3);
      if (type > 1) return { op: "other", name };
      return {
        op: "numgen",
        dreg: dataRegister(a.u32(1), name),
        mod: a.u32(2),
        type: type === 0 ? "inc" : "random",
        offset: a.u32Or(4, 0),
      };
    }
    case "hash": // SREG 1, DREG 2, LEN 3, MODULUS 4, SEED 5, OFFSET 6, TYPE 7
      return {
        op: "hash",
        dreg: dataRegister(a.u32(2), name),
        mod: a.u32(4),
        offset: a.u32Or(6, 0),
      };
    case "counter":
      return { op: "counter" };
    case "match": // NAME 1, REV 2, INFO 3
    case "target": {
      const xt = a.str(1);
      // A comment matches every packet; its 256-byte text is not kept.
      const info = name === "match" && xt === "comment" ? NO_BYTES : a.bytes(3);
      return { op: name, name: xt, rev: a.u32(2), info };
    }
    default:
      return { op: "other", name };
  }
}
