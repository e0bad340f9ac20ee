/**
 * The abstract NAT rule sets the differential test generates
 * (`generate.ts`) and renders as native nft text (`render_nft.ts`) or
 * iptables-restore text (`render_iptables.ts`), and the seeded random
 * numbers they are drawn with. Data only.
 *
 * @module
 */

/** A deterministic PRNG (mulberry32): the same seed gives the same rule set. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }
  /** One element of a non-empty list. */
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  /** One key of `weights`, drawn by weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as [K, number][];
    let r = this.next() * entries.reduce((s, [, w]) => s + w, 0);
    for (const [k, w] of entries) {
      if ((r -= w) < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }
}

/** 4 or 6: the IP version a rule's addresses belong to. */
export type IpVersion = 4 | 6;

/** A port or an inclusive port range. */
export type PortSpec = number | readonly [number, number];

/** One condition of a rule. `neg`: the negated form (`!=`, `!`). */
export type Match =
  /** Destination or source: one address or prefix, or a set of them (`{ a, b }` / several rules' worth). */
  | { kind: "daddr" | "saddr"; neg: boolean; values: readonly string[] }
  /** TCP destination port: one port or range, or a set (`{ 80, 443 }` / `-m multiport`). */
  | { kind: "dport"; neg: boolean; values: readonly PortSpec[] }
  /** The packet mark (`meta mark` / `-m mark --mark`). */
  | { kind: "mark"; neg: boolean; value: number }
  /** The sending socket's uid (`meta skuid` / `-m owner --uid-owner`). */
  | { kind: "uid"; neg: boolean; value: number }
  /** Half of the packets at random (`numgen random mod 2 0` / `-m statistic --mode random`). */
  | { kind: "random" }
  /** Every second packet (`numgen inc mod 2 0` / `-m statistic --mode nth`): packet-path state. */
  | { kind: "nth" }
  /** Source in the table's dynamic set `dyn` (nft only). */
  | { kind: "inDynSet"; neg: boolean };

/** A DNAT destination: an address range and/or a port range (absent: kept). */
export interface NatTo {
  addr?: readonly [string, string];
  port?: readonly [number, number];
}

/** What a rule does when its matches hold. */
export type Action =
  | { kind: "dnat"; to: NatTo }
  | { kind: "redirect"; port?: readonly [number, number] }
  | { kind: "jump" | "goto"; chain: string }
  | { kind: "return" | "accept" | "drop" }
  /** Sets the packet mark and goes on. */
  | { kind: "setMark"; value: number }
  /** Adds the source to the table's dynamic set `dyn` and goes on (nft only). */
  | { kind: "updateDynSet" }
  /** Untracks the packet (raw chains only). */
  | { kind: "notrack" }
  /** `dnat to ip daddr . tcp dport map { … }` (nft only). */
  | {
    kind: "dnatMap";
    entries: readonly { daddr: string; dport: number; addr: string; port: number }[];
  }
  /** `ip daddr . tcp dport vmap { … : jump|goto C }` (nft only). */
  | {
    kind: "vmap";
    entries: readonly { daddr: string; dport: number; verdict: "jump" | "goto"; chain: string }[];
  }
  /** `numgen random mod N vmap { 0 : jump A, … }` (nft only). */
  | { kind: "numgenVmap"; verdict: "jump" | "goto"; chains: readonly string[] }
  /** `dnat to numgen random mod N map { 0 : A, … }` (nft only). */
  | { kind: "numgenDnat"; addrs: readonly string[] };

/** One rule: matches in order, then the action; `ip` says which family its addresses are. */
export interface Rule {
  ip?: IpVersion;
  matches: readonly Match[];
  action: Action;
}

/** Base chain placement. `type` `filter` chains stand for raw/mangle in iptables. */
export interface BaseHook {
  hook: "prerouting" | "output";
  type: "nat" | "filter";
  priority: number;
}

/** A chain; `base` for a base chain. */
export interface Chain {
  name: string;
  base?: BaseHook;
  rules: Rule[];
}

/**
 * A table. For iptables, `name` is `nat`, `mangle` or `raw`, `family` `ip`
 * (iptables) or `ip6` (ip6tables), and base chains are named `PREROUTING`
 * and `OUTPUT`.
 */
export interface Table {
  family: "ip" | "ip6" | "inet";
  name: string;
  chains: Chain[];
  /** Declares the dynamic set `dyn` of source addresses (nft only). */
  dynSet: boolean;
}

/** One generated rule set: how it is loaded and its tables. */
export interface RuleSet {
  style: "nft" | "iptables";
  tables: Table[];
}

/** Address and port pools the rules and the probes draw from. */
export const POOL = {
  vip4: ["203.0.113.10", "203.0.113.11", "203.0.113.12", "203.0.113.1", "192.0.2.1"],
  vipPrefix4: ["203.0.113.8/30", "203.0.113.0/28"],
  vip6: ["2001:db8:1::10", "2001:db8:1::11", "2001:db8:1::1"],
  vipPrefix6: ["2001:db8:1::/124"],
  client4: ["198.51.100.1", "198.51.100.10", "198.51.100.11"],
  clientPrefix4: ["198.51.100.8/29"],
  client6: ["2001:db8::1", "2001:db8::10"],
  clientPrefix6: ["2001:db8::8/125"],
  node4: ["198.51.100.2", "203.0.113.1"],
  node6: ["2001:db8::2"],
  target4: ["192.0.2.1", "192.0.2.2", "192.0.2.3", "203.0.113.2", "198.51.100.1"],
  target6: ["2001:db8:2::1", "2001:db8:2::2", "2001:db8::1"],
  targetRange4: ["192.0.2.1", "192.0.2.3"] as const,
  targetRange6: ["2001:db8:2::1", "2001:db8:2::3"] as const,
  ports: [80, 443, 8080, 9000],
  portRanges: [[8000, 8100], [1, 1024]] as readonly (readonly [number, number])[],
  targetPorts: [8080, 8443, 80, 9000],
  marks: [1, 2],
  uids: [1000],
} as const;
