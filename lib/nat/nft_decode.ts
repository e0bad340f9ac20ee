/**
 * nf_tables reply messages → the model of `ruleset.ts`: the generation id
 * (`NFT_MSG_NEWGEN`), a table's dormant flag, a chain and its hook, a rule
 * with its expressions (`nft_expr.ts`), a set's description and its
 * elements; and {@linkcode intervalRanges}, which turns the start and
 * `NFT_SET_ELEM_INTERVAL_END` elements of an rbtree interval set into
 * inclusive ranges. Pure; every decoder throws {@linkcode NftDecodeError}
 * on bytes it cannot read.
 *
 * @example
 * ```ts
 * import { decodeGen } from "./nft_decode.ts";
 * // nfgenmsg, then NFTA_GEN_ID = 42 (big-endian)
 * const payload = new Uint8Array([0, 0, 0, 42, 8, 0, 1, 0, 0, 0, 0, 42]);
 * decodeGen({ type: 0xa0f, flags: 0, seq: 1, pid: 0, payload }); // => 42
 * ```
 *
 * @module
 */
import { HOST_LE, type NetlinkMessage, NFGENMSG_LEN } from "../netlink/message.ts";
import { Attrs, nftData, NftDecodeError, nftValue } from "./nft_attrs.ts";
import { decodeExprs } from "./nft_expr.ts";
import { familyOf } from "./nft_netlink.ts";
import type { Prefilter } from "./nft_prefilter.ts";
import type {
  BaseChainInfo,
  NftFamily,
  NftHook,
  NftRule,
  NftSet,
  SetElement,
  SetFlags,
  TableRef,
  Verdict,
} from "./ruleset.ts";

const top = new Attrs(20);
const nest = new Attrs(12);

let lastBuffer: ArrayBufferLike | undefined;
let lastView: DataView = new DataView(new ArrayBuffer(0));

/**
 * A view of the whole buffer `p` lies in, reused while messages come from
 * the same receive buffer (offsets into it are absolute): not one DataView
 * per message.
 */
function viewOf(p: Uint8Array): DataView {
  if (p.buffer !== lastBuffer || lastView.byteLength !== p.buffer.byteLength) {
    lastBuffer = p.buffer;
    lastView = new DataView(p.buffer);
  }
  return lastView;
}

/** The message's attributes (after `nfgenmsg`) and its table family (undefined: not ip/ip6/inet). */
function open(msg: NetlinkMessage, where: string): NftFamily | undefined {
  const p = msg.payload;
  if (p.length < NFGENMSG_LEN) throw new NftDecodeError(`${where}: no nfgenmsg`);
  const start = p.byteOffset + NFGENMSG_LEN;
  top.parse(viewOf(p), start, p.byteOffset + p.length, where);
  return familyOf(p[0]!);
}

/** The generation id of an `NFT_MSG_NEWGEN`. */
export function decodeGen(msg: NetlinkMessage): number {
  open(msg, "generation");
  return top.u32(1); // NFTA_GEN_ID
}

/** A table of an `NFT_MSG_NEWTABLE`: whether it is dormant (its chains are not registered). */
export function decodeTable(
  msg: NetlinkMessage,
): (TableRef & { readonly dormant: boolean; readonly handle?: number }) | undefined {
  const family = open(msg, "table");
  if (family === undefined) return undefined;
  // NFTA_TABLE_NAME 1, NFTA_TABLE_FLAGS 2 (NFT_TABLE_F_DORMANT 1), NFTA_TABLE_HANDLE 4
  const t = { family, table: top.str(1), dormant: (top.u32Or(2, 0) & 1) !== 0 };
  return top.has(4) ? { ...t, handle: top.u64(4) } : t;
}

const HOOKS: readonly NftHook[] = [
  "prerouting",
  "input",
  "forward",
  "output",
  "postrouting",
  "ingress",
];

/** A chain of an `NFT_MSG_NEWCHAIN`: where it lives, and its hook when it is a base chain. */
export interface ChainHeader extends TableRef {
  readonly name: string;
  readonly base?: BaseChainInfo;
}

/**
 * Whether an `NFT_MSG_NEWCHAIN` may be a base chain: false only when its
 * attributes frame cleanly and none is `NFTA_CHAIN_HOOK`. Lets a dump of
 * every chain skip the regular ones without decoding their names; anything
 * it cannot frame goes to {@linkcode decodeChain}, which says why.
 */
export function mayBeBaseChain(msg: NetlinkMessage): boolean {
  const p = msg.payload;
  const v = viewOf(p);
  const end = p.byteOffset + p.length;
  for (let off = p.byteOffset + NFGENMSG_LEN; off + 4 <= end;) {
    const len = v.getUint16(off, HOST_LE);
    if (len < 4 || off + len > end) return true;
    if ((v.getUint16(off + 2, HOST_LE) & 0x3fff) === 4) return true; // NFTA_CHAIN_HOOK
    off += (len + 3) & ~3;
  }
  return false;
}

/** Decodes a chain; `undefined` for tables of families NAT of TCP never meets. */
export function decodeChain(msg: NetlinkMessage): ChainHeader | undefined {
  const family = open(msg, "chain");
  if (family === undefined) return undefined;
  // TABLE 1, NAME 3, HOOK 4, POLICY 5, TYPE 7
  const ref = { family, table: top.str(1), name: top.str(3) };
  if (!top.has(4)) return ref;
  const policy = top.u32Or(5, 1);
  const type = top.has(7) ? top.str(7) : "filter";
  nest.parse(top.view, top.start(4), top.end(4), "chain hook");
  const hook = HOOKS[nest.u32(1)]; // NFTA_HOOK_HOOKNUM
  if (hook === undefined) throw new NftDecodeError(`chain ${ref.name}: hook ${nest.u32(1)}`);
  if (policy > 1) throw new NftDecodeError(`chain ${ref.name}: policy ${policy}`);
  const base: BaseChainInfo = {
    hook,
    type,
    priority: nest.i32(2), // NFTA_HOOK_PRIORITY
    policy: policy === 1 ? "accept" : "drop",
  };
  return { ...ref, base };
}

/** A rule of an `NFT_MSG_NEWRULE`, with the chain it belongs to; `filter`: see `decodeExprs`. */
export function decodeRule(
  msg: NetlinkMessage,
  filter?: Prefilter,
): (NftRule & TableRef & { readonly chain: string }) | undefined {
  const family = open(msg, "rule");
  if (family === undefined) return undefined;
  // TABLE 1, CHAIN 2, HANDLE 3, EXPRESSIONS 4
  const table = top.str(1);
  const chain = top.str(2);
  const handle = top.u64(3);
  const exprs = top.has(4) ? decodeExprs(top.view, top.start(4), top.end(4), filter) : [];
  return { family, table, chain, handle, exprs };
}

const NFT_DATA_VERDICT = 0xffffff00;

/** A set of an `NFT_MSG_NEWSET`, without elements. */
export function decodeSet(msg: NetlinkMessage): Omit<NftSet, "elements"> | undefined {
  const family = open(msg, "set");
  if (family === undefined) return undefined;
  // TABLE 1, NAME 2, FLAGS 3, KEY_LEN 5, DATA_TYPE 6, DATA_LEN 7, DESC 9
  const f = top.u32Or(3, 0);
  const flags: SetFlags = {
    anonymous: (f & 0x1) !== 0,
    constant: (f & 0x2) !== 0,
    interval: (f & 0x4) !== 0,
    map: (f & 0x8) !== 0,
    timeout: (f & 0x10) !== 0,
    dynamic: (f & 0x20) !== 0,
    concat: (f & 0x80) !== 0,
    object: (f & 0x40) !== 0,
  };
  const set = { family, table: top.str(1), name: top.str(2), flags, keyLen: top.u32(5) };
  const data = !flags.map
    ? undefined
    : top.u32Or(6, 0) === NFT_DATA_VERDICT
    ? "verdict" as const
    : top.u32(7);
  const fieldLens = top.has(9) ? concatFields() : undefined;
  return {
    ...set,
    ...(fieldLens === undefined ? {} : { fieldLens }),
    ...(data === undefined ? {} : { data }),
  };
}

/** The handle (`NFTA_SET_HANDLE`) of the set of an `NFT_MSG_NEWSET`, when the kernel sent one. */
export function decodeSetHandle(msg: NetlinkMessage): number | undefined {
  if (open(msg, "set") === undefined) return undefined;
  return top.has(16) ? top.u64(16) : undefined;
}

/** `NFTA_SET_DESC_CONCAT` of the set just opened: field lengths in bytes, or undefined. */
function concatFields(): number[] | undefined {
  nest.parse(top.view, top.start(9), top.end(9), "set desc");
  if (!nest.has(2)) return undefined;
  // Each NFTA_LIST_ELEM holds NFTA_SET_FIELD_LEN; Attrs keeps only the last of a type, so walk.
  const lens: number[] = [];
  const field = new Attrs(1);
  let off = nest.start(2);
  const end = nest.end(2);
  while (off + 4 <= end) {
    const len = nest.view.getUint16(off, HOST_LE);
    if (len < 4 || off + len > end) throw new NftDecodeError("set concat: bad field");
    field.parse(nest.view, off + 4, off + len, "set field");
    lens.push(field.u32(1));
    off += (len + 3) & ~3;
  }
  return lens;
}

/** One element as the kernel dumps it, before intervals are paired. */
export interface RawElement extends SetElement {
  /** `NFT_SET_ELEM_INTERVAL_END`: this key ends the previous interval (exclusive). */
  readonly end: boolean;
}

/**
 * The elements of an `NFT_MSG_NEWSETELEM`, appended to `out`; returns the set
 * name. A catch-all element (no key) throws: the model has no place for it.
 */
export function decodeSetElems(msg: NetlinkMessage, out: RawElement[]): string | undefined {
  const family = open(msg, "set elements");
  if (family === undefined) return undefined;
  const name = top.str(2); // NFTA_SET_ELEM_LIST_SET
  if (!top.has(3)) return name;
  const view = top.view;
  let off = top.start(3);
  const end = top.end(3);
  const e = new Attrs(11);
  while (off + 4 <= end) {
    const len = view.getUint16(off, HOST_LE);
    if (len < 4 || off + len > end) throw new NftDecodeError("set element: bad length");
    e.parse(view, off + 4, off + len, "set element");
    off += (len + 3) & ~3;
    const flags = e.u32Or(3, 0); // NFTA_SET_ELEM_FLAGS
    if (flags & 0x2) throw new NftDecodeError(`set ${name}: a catch-all element`);
    const key = nftValue(e, 1, "set element key");
    const keyEnd = e.has(10) ? nftValue(e, 10, "set element key end") : undefined;
    let data: Uint8Array | undefined;
    let verdict: Verdict | undefined;
    if (e.has(2)) {
      const d = nftData(e, 2, "set element data");
      if (d.value !== undefined) data = d.value;
      else verdict = d.verdict;
    }
    out.push({
      key,
      end: (flags & 0x1) !== 0,
      ...(keyEnd === undefined ? {} : { keyEnd }),
      ...(data === undefined ? {} : { data }),
      ...(verdict === undefined ? {} : { verdict }),
    });
  }
  return name;
}

function compare(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** `key - 1` (big-endian); undefined for zero. */
function predecessor(key: Uint8Array): Uint8Array | undefined {
  const out = key.slice();
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i]! > 0) {
      out[i]!--;
      return out;
    }
    out[i] = 0xff;
  }
  return undefined;
}

/**
 * The elements of a set as the model holds them. Elements with a key end
 * (pipapo, concatenations) are kept as they are. For an interval set
 * without key ends (rbtree) each start element runs to the key before the
 * next interval-end element in key order, or to the largest key when a start
 * (or nothing) follows; the end elements themselves, including the zero key
 * nft adds, go.
 *
 * @example
 * ```ts
 * import { intervalRanges } from "./nft_decode.ts";
 * const k = (...b: number[]) => new Uint8Array(b);
 * intervalRanges(true, [
 *   { key: k(10, 0, 0, 0), end: false },
 *   { key: k(11, 0, 0, 0), end: true },
 *   { key: k(0, 0, 0, 0), end: true },
 * ]).map((e) => [e.key[0], e.keyEnd?.[3]]); // => [[10, 255]]
 * ```
 */
export function intervalRanges(interval: boolean, raw: readonly RawElement[]): SetElement[] {
  const plain = (r: RawElement): SetElement => {
    const { end: _, ...e } = r;
    return e;
  };
  if (!interval || raw.every((r) => r.keyEnd !== undefined)) {
    if (raw.some((r) => r.end)) throw new NftDecodeError("an interval end in a set without them");
    return raw.map(plain);
  }
  if (raw.some((r) => r.keyEnd !== undefined)) {
    throw new NftDecodeError("an interval set mixing key ends and end elements");
  }
  const sorted = raw.slice().sort((a, b) =>
    compare(a.key, b.key) || (a.end ? -1 : 0) - (b.end ? -1 : 0)
  );
  const out: SetElement[] = [];
  for (let i = 0; i < sorted.length; i++) {
    const s = sorted[i]!;
    if (s.end) continue;
    const next = sorted[i + 1];
    let last: Uint8Array | undefined;
    if (next === undefined || !next.end) last = new Uint8Array(s.key.length).fill(0xff);
    else last = predecessor(next.key);
    if (last === undefined || compare(last, s.key) < 0) {
      throw new NftDecodeError("an interval that ends before it starts");
    }
    out.push({ ...plain(s), keyEnd: last });
  }
  return out;
}
