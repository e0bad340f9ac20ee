/**
 * A tiny builder of nf_tables models (lib/nat/ruleset.ts) for the NAT
 * evaluator's tests: expressions in the shapes nft 1.0.x and iptables-nft
 * 1.8.9 write them (checked against `nft --debug=netlink`), chains, sets,
 * and an in-memory {@linkcode FakeView} that can hold chains and sets back
 * ("not read yet") to exercise `need`.
 *
 * @module
 */

import { addressBytes } from "../../lib/model/addr.ts";
import { be16, u32Host } from "../../lib/nat/bits.ts";
import type {
  CmpOp,
  NatHook,
  NatQuestion,
  NftChain,
  NftExpr,
  NftFamily,
  NftHook,
  NftRule,
  NftSet,
  RulesetView,
  SetElement,
  SetFlags,
  TableRef,
  Verdict,
} from "../../lib/nat/ruleset.ts";

/** Address text to bytes (IPv4 or IPv6). */
export function addr(text: string): Uint8Array {
  const b = addressBytes(text.includes(":") ? "ipv6" : "ipv4", text);
  if (b === undefined) throw new Error(`bad address ${text}`);
  return b;
}

type X = NftExpr[];
const imm = (dreg: number, data: Uint8Array): NftExpr => ({ op: "immediate", dreg, data });
const cmp = (data: Uint8Array, op: CmpOp = "eq", sreg = 0): NftExpr => ({
  op: "cmp",
  sreg,
  cmp: op,
  data,
});
const v = (verdict: Verdict): X => [{ op: "verdict", verdict }];

/** Expressions, grouped as one nft statement each. */
export const e = {
  /** `meta l4proto tcp`. */
  tcp: (): X => [{ op: "meta", key: 16, dreg: 0 }, cmp(new Uint8Array([6]))],
  /** `meta nfproto ipv4|ipv6` (the implicit test of `ip`/`ip6` matches in inet tables). */
  nfproto: (p: 2 | 10): X => [{ op: "meta", key: 15, dreg: 0 }, cmp(new Uint8Array([p]))],
  /** `ip daddr A` / `ip6 daddr A`, or `!=`. */
  daddr: (a: string, op: CmpOp = "eq"): X => {
    const b = addr(a);
    const off = b.length === 4 ? 16 : 24;
    return [{ op: "payload", base: "network", offset: off, len: b.length, dreg: 0 }, cmp(b, op)];
  },
  saddr: (a: string, op: CmpOp = "eq"): X => {
    const b = addr(a);
    const off = b.length === 4 ? 12 : 8;
    return [{ op: "payload", base: "network", offset: off, len: b.length, dreg: 0 }, cmp(b, op)];
  },
  /** `ip daddr A/len` (bitwise then cmp). */
  dnet: (a: string, len: number, op: CmpOp = "eq"): X => {
    const b = addr(a);
    const mask = b.map((_, i) => {
      const bits = Math.max(0, Math.min(8, len - 8 * i));
      return (0xff << (8 - bits)) & 0xff;
    });
    return [
      { op: "payload", base: "network", offset: b.length === 4 ? 16 : 24, len: b.length, dreg: 0 },
      {
        op: "bitwise",
        sreg: 0,
        dreg: 0,
        len: b.length,
        kind: "bool",
        mask,
        xor: new Uint8Array(b.length),
      },
      cmp(b.map((x, i) => x & mask[i]!), op),
    ];
  },
  dport: (p: number, op: CmpOp = "eq"): X => [
    { op: "payload", base: "transport", offset: 2, len: 2, dreg: 0 },
    cmp(be16(p), op),
  ],
  sport: (p: number, op: CmpOp = "eq"): X => [
    { op: "payload", base: "transport", offset: 0, len: 2, dreg: 0 },
    cmp(be16(p), op),
  ],
  dportRange: (lo: number, hi: number, op: "eq" | "neq" = "eq"): X => [
    { op: "payload", base: "transport", offset: 2, len: 2, dreg: 0 },
    { op: "range", sreg: 0, cmp: op, from: be16(lo), to: be16(hi) },
  ],
  /** `meta mark & mask == value` (or another comparison). */
  mark: (value: number, mask = 0xffffffff, op: CmpOp = "eq"): X => [
    { op: "meta", key: 3, dreg: 0 },
    {
      op: "bitwise",
      sreg: 0,
      dreg: 0,
      len: 4,
      kind: "bool",
      mask: u32Host(mask),
      xor: u32Host(0),
    },
    cmp(u32Host(value), op),
  ],
  /** `meta mark set V`. */
  setMark: (value: number): X => [imm(0, u32Host(value)), { op: "meta_set", key: 3, sreg: 0 }],
  /** `meta mark set meta mark | bits` (kube-proxy nftables mode's mark-for-masquerade). */
  orMark: (bits: number): X => [
    { op: "meta", key: 3, dreg: 0 },
    {
      op: "bitwise",
      sreg: 0,
      dreg: 0,
      len: 4,
      kind: "bool",
      mask: u32Host(~bits),
      xor: u32Host(bits),
    },
    { op: "meta_set", key: 3, sreg: 0 },
  ],
  /** `ct mark set V`. */
  setCtMark: (value: number): X => [imm(0, u32Host(value)), { op: "ct_set", key: 3, sreg: 0 }],
  /** `ct state new` (bitwise != 0). */
  ctStateNew: (): X => [
    { op: "ct", key: 0, dreg: 0 },
    { op: "bitwise", sreg: 0, dreg: 0, len: 4, kind: "bool", mask: u32Host(8), xor: u32Host(0) },
    cmp(u32Host(0), "neq"),
  ],
  /** `iifname "name"` (or `!=`). */
  iifname: (name: string, op: CmpOp = "eq"): X => {
    const b = new Uint8Array(16);
    b.set(new TextEncoder().encode(name));
    return [{ op: "meta", key: 6, dreg: 0 }, cmp(b, op)];
  },
  /** `meta skuid N`. */
  skuid: (uid: number, op: CmpOp = "eq"): X => [
    { op: "meta", key: 10, dreg: 0 },
    cmp(u32Host(uid), op),
  ],
  counter: (): X => [{ op: "counter" }],
  other: (name: string): X => [{ op: "other", name }],
  accept: (): X => v({ kind: "accept" }),
  drop: (): X => v({ kind: "drop" }),
  ret: (): X => v({ kind: "return" }),
  jump: (chain: string): X => v({ kind: "jump", chain }),
  goto: (chain: string): X => v({ kind: "goto", chain }),
  /** `dnat ip to A[:P]` (`nfproto` 2 or 10 from the address). */
  dnat: (a: string, port?: number, nfproto?: number): X => {
    const b = addr(a);
    const proto = nfproto ?? (b.length === 4 ? 2 : 10);
    const pr = b.length === 4 ? 1 : 4;
    return port === undefined
      ? [imm(0, b), { op: "nat", type: "dnat", nfproto: proto, addrMin: 0, flags: 1 }]
      : [
        imm(0, b),
        imm(pr, be16(port)),
        { op: "nat", type: "dnat", nfproto: proto, addrMin: 0, protoMin: pr, flags: 3 },
      ];
  },
  /** `dnat to A1-A2:P1-P2`. */
  dnatRange: (a1: string, a2: string, p1: number, p2: number): X => {
    const [b1, b2] = [addr(a1), addr(a2)];
    const w = b1.length / 4;
    return [
      imm(0, b1),
      imm(w, b2),
      imm(2 * w, be16(p1)),
      imm(2 * w + 1, be16(p2)),
      {
        op: "nat",
        type: "dnat",
        nfproto: w === 1 ? 2 : 10,
        addrMin: 0,
        addrMax: w,
        protoMin: 2 * w,
        protoMax: 2 * w + 1,
        flags: 3,
      },
    ];
  },
  /** `dnat to :P` (port only). */
  dnatPort: (port: number, nfproto = 2): X => [
    imm(0, be16(port)),
    { op: "nat", type: "dnat", nfproto, protoMin: 0, flags: 2 },
  ],
  /** `redirect [to :P]`. */
  redirect: (port?: number): X =>
    port === undefined
      ? [{ op: "redir", flags: 0 }]
      : [imm(0, be16(port)), { op: "redir", protoMin: 0, flags: 2 }],
  /** `numgen random|inc mod N` into reg 0, then a verdict-map look-up of `set`. */
  numgenVmap: (mod: number, set: string, type: "random" | "inc" = "random"): X => [
    { op: "numgen", dreg: 0, mod, type, offset: 0 },
    { op: "lookup", sreg: 0, set, dreg: "verdict", invert: false },
  ],
  /** `ip daddr . meta l4proto . th dport vmap @set` (kube-proxy nftables). */
  daddrProtoPortVmap: (set: string): X => [
    { op: "payload", base: "network", offset: 16, len: 4, dreg: 0 },
    { op: "meta", key: 16, dreg: 1 },
    { op: "payload", base: "transport", offset: 2, len: 2, dreg: 2 },
    { op: "lookup", sreg: 0, set, dreg: "verdict", invert: false },
  ],
  /** `ip daddr @set` (or `!= @set`). */
  daddrIn: (set: string, invert = false): X => [
    { op: "payload", base: "network", offset: 16, len: 4, dreg: 0 },
    { op: "lookup", sreg: 0, set, invert },
  ],
  /** `dnat to ip daddr . tcp dport map @set` (address . port data). */
  dnatMap: (set: string): X => [
    { op: "payload", base: "network", offset: 16, len: 4, dreg: 0 },
    { op: "payload", base: "transport", offset: 2, len: 2, dreg: 1 },
    { op: "lookup", sreg: 0, set, dreg: 0, invert: false },
    { op: "nat", type: "dnat", nfproto: 2, addrMin: 0, protoMin: 1, flags: 3 },
  ],
  match: (name: string, info: Uint8Array = new Uint8Array(0), rev = 0): X => [
    { op: "match", name, rev, info },
  ],
  target: (name: string, info: Uint8Array = new Uint8Array(0), rev = 0): X => [
    { op: "target", name, rev, info },
  ],
};

let handles = 1;

/** A rule of statements (each an expression list). */
export function rule(...parts: X[]): NftRule {
  return { handle: handles++, exprs: parts.flat() };
}

/** A table reference. */
export function table(family: NftFamily, name: string): TableRef {
  return { family, table: name };
}

/** A regular chain. */
export function chain(t: TableRef, name: string, rules: NftRule[]): NftChain {
  return { ...t, name, rules };
}

/** A base chain. */
export function baseChain(
  t: TableRef,
  name: string,
  hook: NftHook,
  priority: number,
  rules: NftRule[],
  opts: { type?: string; policy?: "accept" | "drop" } = {},
): NftChain {
  return {
    ...t,
    name,
    base: { hook, type: opts.type ?? "nat", priority, policy: opts.policy ?? "accept" },
    rules,
  };
}

const NO_FLAGS: SetFlags = {
  anonymous: false,
  constant: false,
  interval: false,
  map: false,
  timeout: false,
  dynamic: false,
  concat: false,
  object: false,
};

/** A set or map. */
export function set(
  t: TableRef,
  name: string,
  keyLen: number,
  elements: SetElement[],
  opts: Partial<SetFlags> & { data?: "verdict" | number; fieldLens?: number[] } = {},
): NftSet {
  const { data, fieldLens, ...flags } = opts;
  return {
    ...t,
    name,
    flags: { ...NO_FLAGS, ...flags, map: data !== undefined },
    keyLen,
    elements,
    ...(data !== undefined ? { data } : {}),
    ...(fieldLens !== undefined ? { fieldLens } : {}),
  };
}

/** A key of 4-byte-padded fields (a concatenation as registers hold it). */
export function concatKey(...fields: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(fields.reduce((n, f) => n + Math.ceil(f.length / 4) * 4, 0));
  let at = 0;
  for (const f of fields) {
    out.set(f, at);
    at += Math.ceil(f.length / 4) * 4;
  }
  return out;
}

/** An in-memory view; `hidden` chains and sets answer `undefined` (not read yet). */
export class FakeView implements RulesetView {
  readonly generation = 1;
  readonly hidden = new Set<string>();
  readonly asked: string[] = [];
  constructor(readonly chains: NftChain[], readonly sets: NftSet[] = []) {}

  baseChains(family: "ipv4" | "ipv6", hook: NftHook): readonly NftChain[] {
    const fams: NftFamily[] = family === "ipv4" ? ["ip", "inet"] : ["ip6", "inet"];
    return this.chains.filter((c) => c.base?.hook === hook && fams.includes(c.family));
  }

  chain(ref: TableRef, name: string): NftChain | undefined {
    const k = `${ref.family}/${ref.table}/${name}`;
    this.asked.push(k);
    if (this.hidden.has(k)) return undefined;
    return this.chains.find((c) =>
      c.family === ref.family && c.table === ref.table && c.name === name
    );
  }

  set(ref: TableRef, name: string): NftSet | undefined {
    const k = `${ref.family}/${ref.table}/${name}`;
    this.asked.push(k);
    if (this.hidden.has(k)) return undefined;
    return this.sets.find((s) =>
      s.family === ref.family && s.table === ref.table && s.name === name
    );
  }
}

/** The question for a SYN `src:sport → dst:dport` at `hook`. */
export function syn(from: string, to: string, hook: NatHook = "prerouting"): NatQuestion {
  const split = (s: string): [Uint8Array, number] => {
    const i = s.lastIndexOf(":");
    return [addr(s.slice(0, i).replace(/^\[|\]$/g, "")), Number(s.slice(i + 1))];
  };
  const [src, sport] = split(from);
  const [dst, dport] = split(to);
  return { family: src.length === 4 ? "ipv4" : "ipv6", src, dst, sport, dport, zone: 0, hook };
}
