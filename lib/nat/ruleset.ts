/**
 * The node's NAT rules as the kernel holds them: nf_tables tables, chains,
 * rules (lists of expressions in the kernel's register machine) and sets,
 * exactly as read over netlink and no higher. Native nftables and
 * iptables-nft arrive in this one form (iptables-nft's xtables matches and
 * targets as opaque `match`/`target` expressions carrying their `info`
 * struct). Data only: the reader (`nft_reader.ts`) fills it, lazily, and
 * the evaluator (`evaluate.ts`) walks it for one question at a time.
 *
 * Registers are normalised: `reg` is the index of a 32-bit word in the
 * 16-word data register file (`NFT_REG_1` → 0, `NFT_REG_2` → 4, …,
 * `NFT_REG32_00` → 0, `NFT_REG32_01` → 1, …), and `"verdict"` is the verdict
 * register (`NFT_REG_VERDICT`).
 *
 * @example
 * ```ts
 * import type { NftRule } from "./ruleset.ts";
 * // ip daddr 10.96.0.10 tcp dport 80 dnat to 10.244.1.5:8080
 * const rule: NftRule = {
 *   handle: 4,
 *   exprs: [
 *     { op: "payload", base: "network", offset: 16, len: 4, dreg: 0 },
 *     { op: "cmp", sreg: 0, cmp: "eq", data: new Uint8Array([10, 96, 0, 10]) },
 *     { op: "meta", key: 16, dreg: 0 }, // NFT_META_L4PROTO
 *     { op: "cmp", sreg: 0, cmp: "eq", data: new Uint8Array([6]) },
 *     { op: "payload", base: "transport", offset: 2, len: 2, dreg: 0 },
 *     { op: "cmp", sreg: 0, cmp: "eq", data: new Uint8Array([0, 80]) },
 *     { op: "immediate", dreg: 0, data: new Uint8Array([10, 244, 1, 5]) },
 *     { op: "immediate", dreg: 1, data: new Uint8Array([0x1f, 0x90]) },
 *     { op: "nat", type: "dnat", nfproto: 2, addrMin: 0, protoMin: 1, flags: 3 },
 *   ],
 * };
 * rule.exprs.length; // => 9
 * ```
 *
 * @module
 */

/** nf_tables table families that can hold NAT chains for TCP over IPv4/IPv6. */
export type NftFamily = "ip" | "ip6" | "inet";

/** Netfilter hooks of a base chain (the ones NAT questions involve, and the rest by name). */
export type NftHook = "prerouting" | "input" | "forward" | "output" | "postrouting" | "ingress";

/** The hooks at which a new connection's first packet gets its destination NAT. */
export type NatHook = "prerouting" | "output";

/** The table a chain or set belongs to. */
export interface TableRef {
  readonly family: NftFamily;
  readonly table: string;
}

/** A verdict, as an immediate writes it to the verdict register or a verdict map holds it. */
export type Verdict =
  | { readonly kind: "accept" }
  | { readonly kind: "drop" }
  | { readonly kind: "continue" }
  | { readonly kind: "return" }
  | { readonly kind: "break" }
  | { readonly kind: "jump"; readonly chain: string }
  | { readonly kind: "goto"; readonly chain: string }
  /** `NF_QUEUE`, `NF_STOLEN`, `NF_REPEAT` or anything else: the raw code. */
  | { readonly kind: "other"; readonly code: number };

/** Comparison of `cmp` (`NFT_CMP_*`). */
export type CmpOp = "eq" | "neq" | "lt" | "lte" | "gt" | "gte";

/**
 * One expression of a rule. Field names follow the kernel's `NFTA_*`
 * attributes; numbers are the kernel's (`NFT_META_*`, `NFT_CT_*`, `NFPROTO_*`,
 * `NF_NAT_RANGE_*` flags). An expression the reader does not decode is
 * `{ op: "other", name }` with the kernel's expression name; the evaluator
 * decides what an unknown one means (never "it does nothing").
 */
export type NftExpr =
  /** Loads constant data into `dreg`. */
  | { readonly op: "immediate"; readonly dreg: number; readonly data: Uint8Array }
  /** Sets the verdict register. */
  | { readonly op: "verdict"; readonly verdict: Verdict }
  /** Loads `len` bytes of the packet at `base` + `offset` into `dreg`. */
  | {
    readonly op: "payload";
    readonly base: "ll" | "network" | "transport" | "inner";
    readonly offset: number;
    readonly len: number;
    readonly dreg: number;
  }
  /** Writes `sreg` into the packet (mangling): any write is decoded only this far. */
  | {
    readonly op: "payload_set";
    readonly base: "ll" | "network" | "transport" | "inner";
    readonly offset: number;
    readonly len: number;
    readonly sreg: number;
  }
  /** Loads packet metadata `key` (`NFT_META_*`) into `dreg`. */
  | { readonly op: "meta"; readonly key: number; readonly dreg: number }
  /** Sets packet metadata `key` (e.g. `NFT_META_MARK`) from `sreg`. */
  | { readonly op: "meta_set"; readonly key: number; readonly sreg: number }
  /** Loads conntrack data `key` (`NFT_CT_*`), optionally of one direction (0 original, 1 reply). */
  | { readonly op: "ct"; readonly key: number; readonly dir?: 0 | 1; readonly dreg: number }
  /** Sets conntrack data `key` (mark, zone, label, …) from `sreg`. */
  | { readonly op: "ct_set"; readonly key: number; readonly dir?: 0 | 1; readonly sreg: number }
  /** Compares `sreg` with `data` (as many bytes as `data` has); false ends the rule. */
  | { readonly op: "cmp"; readonly sreg: number; readonly cmp: CmpOp; readonly data: Uint8Array }
  /** `dreg = (sreg & mask) ^ xor` over `len` bytes, or a shift. */
  | {
    readonly op: "bitwise";
    readonly sreg: number;
    readonly dreg: number;
    readonly len: number;
    readonly kind: "bool" | "lshift" | "rshift";
    readonly mask?: Uint8Array;
    readonly xor?: Uint8Array;
    readonly shift?: number;
  }
  /** Byte-order conversion of `len` bytes in elements of `size` bytes. */
  | {
    readonly op: "byteorder";
    readonly sreg: number;
    readonly dreg: number;
    readonly kind: "ntoh" | "hton";
    readonly len: number;
    readonly size: number;
  }
  /** `from <= sreg <= to` (big-endian byte comparison), or its negation. */
  | {
    readonly op: "range";
    readonly sreg: number;
    readonly cmp: "eq" | "neq";
    readonly from: Uint8Array;
    readonly to: Uint8Array;
  }
  /**
   * Looks `sreg` up in a set (by name, in the rule's table). With `dreg` it
   * is a map: the element's data goes to `dreg` (`"verdict"` for a verdict
   * map). `invert`: the rule goes on only when the key is NOT in the set.
   */
  | {
    readonly op: "lookup";
    readonly sreg: number;
    readonly set: string;
    readonly dreg?: number | "verdict";
    readonly invert: boolean;
  }
  /**
   * Source or destination NAT. Addresses come from registers `addrMin`
   * (..`addrMax`), ports from `protoMin` (..`protoMax`); absent registers
   * mean "keep" (no port register: the port is kept). `nfproto` is the
   * family it applies to (`NFPROTO_IPV4` 2, `NFPROTO_IPV6` 10).
   */
  | {
    readonly op: "nat";
    readonly type: "snat" | "dnat";
    readonly nfproto: number;
    readonly addrMin?: number;
    readonly addrMax?: number;
    readonly protoMin?: number;
    readonly protoMax?: number;
    readonly flags: number;
  }
  /** REDIRECT: to the input interface's primary address (prerouting) or loopback (output). */
  | {
    readonly op: "redir";
    readonly protoMin?: number;
    readonly protoMax?: number;
    readonly flags: number;
  }
  /** MASQUERADE (postrouting only). */
  | { readonly op: "masq"; readonly protoMin?: number; readonly protoMax?: number }
  /** A number generator: `inc` (packet-path state) or `random`, modulo `mod`, plus `offset`. */
  | {
    readonly op: "numgen";
    readonly dreg: number;
    readonly mod: number;
    readonly type: "inc" | "random";
    readonly offset: number;
  }
  /** A hash of `len` bytes at `sreg` (or symmetric over the flow), modulo `mod`, plus `offset`. */
  | { readonly op: "hash"; readonly dreg: number; readonly mod: number; readonly offset: number }
  /** An xtables match (iptables-nft): name, revision and its raw `info` struct. */
  | { readonly op: "match"; readonly name: string; readonly rev: number; readonly info: Uint8Array }
  /** An xtables target (iptables-nft): name, revision and its raw `info` struct. */
  | {
    readonly op: "target";
    readonly name: string;
    readonly rev: number;
    readonly info: Uint8Array;
  }
  /** Counts only: no effect on the path. */
  | { readonly op: "counter" }
  /**
   * Any other expression, by its kernel name (`limit`, `dynset`, `notrack`, `fib`, …). The
   * reader also ends a rule with `{ op: "other", name: "(elided)" }` where it stopped decoding
   * because the expressions before already fail for every question it read the rule for
   * (`nft_prefilter.ts`): like any unknown expression, reaching it proves nothing.
   */
  | { readonly op: "other"; readonly name: string };

/** One rule: its kernel handle and its expressions in order. */
export interface NftRule {
  readonly handle: number;
  readonly exprs: readonly NftExpr[];
}

/** What makes a chain a base chain: where it hangs and how it ends. */
export interface BaseChainInfo {
  readonly hook: NftHook;
  /** `nat`, `filter` or `route`. */
  readonly type: string;
  readonly priority: number;
  readonly policy: "accept" | "drop";
}

/** A chain, with its rules once read. */
export interface NftChain extends TableRef {
  readonly name: string;
  /** Present for a base chain. */
  readonly base?: BaseChainInfo;
  readonly rules: readonly NftRule[];
}

/** `NFT_SET_*` flags that change what a look-up may answer. */
export interface SetFlags {
  readonly anonymous: boolean;
  readonly constant: boolean;
  readonly interval: boolean;
  readonly map: boolean;
  readonly timeout: boolean;
  /** `NFT_SET_EVAL`: updated from the packet path (a dynamic set). */
  readonly dynamic: boolean;
  readonly concat: boolean;
  readonly object: boolean;
}

/**
 * One element. For an interval set the reader turns the kernel's start and
 * end-flagged elements into inclusive ranges `[key, keyEnd]`; otherwise
 * `keyEnd` is absent. A map element carries `data` or `verdict`.
 */
export interface SetElement {
  readonly key: Uint8Array;
  readonly keyEnd?: Uint8Array;
  readonly data?: Uint8Array;
  readonly verdict?: Verdict;
}

/** A set or map with the elements the reader read. */
export interface NftSet extends TableRef {
  readonly name: string;
  readonly flags: SetFlags;
  readonly keyLen: number;
  /** Field lengths of a concatenated key (`NFTA_SET_DESC_CONCAT`), in bytes. */
  readonly fieldLens?: readonly number[];
  /** `"verdict"` for a verdict map, the data length in bytes for a data map. */
  readonly data?: "verdict" | number;
  readonly elements: readonly SetElement[];
}

/**
 * The question: would the next SYN of this connection be destination-NATed,
 * and to what? Addresses are raw bytes (4 or 16), ports host numbers.
 */
export interface NatQuestion {
  readonly family: "ipv4" | "ipv6";
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  readonly sport: number;
  readonly dport: number;
  readonly zone: number;
  readonly hook: NatHook;
}

/** One box of destinations: addresses `addrMin..addrMax` × ports `portMin..portMax`. */
export interface TargetRange {
  readonly addrMin: Uint8Array;
  readonly addrMax: Uint8Array;
  readonly portMin: number;
  readonly portMax: number;
}

/**
 * The only answers: translated to one of `targets` on every path (none of
 * them the original destination and port), or not proven, with why; or the
 * evaluator needs chains or sets that the view has not read yet.
 */
export type NatAnswer =
  | { readonly kind: "translated"; readonly targets: readonly TargetRange[] }
  | { readonly kind: "not_proven"; readonly reason: string }
  | {
    readonly kind: "need";
    readonly chains: readonly (TableRef & { readonly name: string })[];
    readonly sets: readonly (TableRef & { readonly name: string })[];
  };

/**
 * What the evaluator reads from: the reader's lazily filled view of one
 * ruleset generation. `undefined` means "not read yet" (the evaluator then
 * answers `need`), never "absent"; an absent chain or set is reported by the
 * reader as unreadable instead.
 */
export interface RulesetView {
  /** The nf_tables generation id the view was read at. */
  readonly generation: number;
  /** Every base chain, of any type, at `hook` in tables that see `family` packets (ip/inet, ip6/inet). */
  baseChains(family: "ipv4" | "ipv6", hook: NftHook): readonly NftChain[] | undefined;
  /** A chain with its rules. */
  chain(ref: TableRef, name: string): NftChain | undefined;
  /** A set with its elements. */
  set(ref: TableRef, name: string): NftSet | undefined;
}
