/**
 * `--destinations`: the original destinations the rules may act on, parsed
 * once into a {@linkcode DestinationSet} that only matches.
 *
 * An item is `CIDR`, `CIDR:PORT` or `CIDR:LOW-HIGH`; with a port, an IPv6
 * CIDR goes in brackets (`[2001:db8::/64]:443`). A bare address is a /32 or
 * /128. A CIDR with host bits set is refused rather than silently widened,
 * and so is port 0 (alone or as the low end of a range): no connection goes
 * there. Without a port, an item holds every port.
 *
 * @module
 */
import { formatIPv6, parseIPv4, parseIPv6 } from "./addr.ts";
import type { Family } from "./tuple.ts";

/** One parsed item. */
export interface DestinationItem {
  family: Family;
  /** The network as 16-bit groups (IPv4: two groups), host bits zero. */
  groups: number[];
  prefix: number;
  portLow: number;
  portHigh: number;
  /** The item in canonical spelling, as logs name it. */
  text: string;
}

/** The accepted form, for help and error messages. */
export const DESTINATIONS_FORM =
  "comma-separated CIDR, CIDR:PORT or CIDR:LOW-HIGH items (IPv6 with a port in brackets: [2001:db8::/64]:443)";

/**
 * A parsed, non-empty `--destinations` list.
 *
 * @example
 * ```ts
 * import { parseDestinations } from "./destination_set.ts";
 * const set = parseDestinations("10.96.0.0/12, [2001:db8::/64]:443");
 * if (typeof set !== "string") {
 *   set.match("ipv4", "10.96.0.10", 53)?.text; // => "10.96.0.0/12"
 *   set.match("ipv6", "2001:db8::1", 80); // => undefined
 * }
 * ```
 */
export class DestinationSet {
  readonly items: readonly DestinationItem[];
  #v4: PrefixIndex;
  #v6: PrefixIndex;

  constructor(items: readonly DestinationItem[]) {
    if (items.length === 0) throw new RangeError("a destination set needs at least one item");
    this.items = items;
    this.#v4 = new PrefixIndex(items, "ipv4");
    this.#v6 = new PrefixIndex(items, "ipv6");
  }

  /**
   * The first item (in list order) that holds `addr` (canonical spelling)
   * and `port`, if any. Indexed: one hash look-up per distinct prefix length
   * of the family, then a binary search over that network's port ranges, so
   * the cost does not grow with the number of items.
   */
  match(family: Family, addr: string, port: number): DestinationItem | undefined {
    const index = family === "ipv4" ? this.#v4 : this.#v6;
    if (index.empty) return undefined;
    const groups = toGroups(family, addr);
    if (groups === undefined) return undefined;
    const i = index.first(groups, port);
    return i < 0 ? undefined : this.items[i];
  }

  /** The items in canonical spelling, comma-separated. */
  toString(): string {
    return this.items.map((i) => i.text).join(",");
  }
}

/**
 * Parses a `--destinations` value into a {@linkcode DestinationSet}, or
 * returns why it is wrong, naming the first bad item.
 *
 * @example
 * ```ts
 * import { parseDestinations } from "./destination_set.ts";
 * parseDestinations("10.0.0.1/8"); // => 'item "10.0.0.1/8": host bits set (did you mean 10.0.0.0/8?)'
 * ```
 */
export function parseDestinations(list: string): DestinationSet | string {
  const items: DestinationItem[] = [];
  for (const raw of list.split(",")) {
    const s = raw.trim();
    if (s === "") return "empty item (two commas in a row, or a comma at either end)";
    const item = parseItem(s);
    if (typeof item === "string") return `item ${JSON.stringify(s)}: ${item}`;
    items.push(item);
  }
  return new DestinationSet(items);
}

function parseItem(s: string): DestinationItem | string {
  let cidr = s;
  let ports: string | undefined;
  if (s.startsWith("[")) {
    const m = /^\[([^\]]*)\](?::(.*))?$/.exec(s);
    if (!m) return "expected [IPV6-CIDR] or [IPV6-CIDR]:PORT";
    cidr = m[1]!;
    ports = m[2];
    if (!cidr.includes(":")) return "brackets are for IPv6 only";
  } else if (s.includes("]")) {
    return "unbalanced brackets";
  } else if (colons(s) === 1) {
    // IPv4 with a port. (A bare IPv6 CIDR has two colons or more.)
    const i = s.indexOf(":");
    cidr = s.slice(0, i);
    ports = s.slice(i + 1);
  }
  const net = parseCidr(cidr);
  if (typeof net === "string") return net;
  let portLow = 0, portHigh = 65535;
  if (ports !== undefined) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(ports);
    if (!m) return `bad port ${JSON.stringify(ports)}: expected PORT or LOW-HIGH`;
    portLow = Number(m[1]);
    portHigh = m[2] === undefined ? portLow : Number(m[2]);
    if (portLow > 65535 || portHigh > 65535) return "ports go from 1 to 65535";
    // No connection goes to port 0: an item naming it is a typo, not a wish.
    if (portLow === 0) return "port 0 is no destination port: ports go from 1 to 65535";
    if (portLow > portHigh) return `port range ${ports} runs backwards`;
  }
  const addr = net.family === "ipv4" ? groupsToIPv4(net.groups) : formatIPv6(net.groups);
  const base = `${addr}/${net.prefix}`;
  if (ports === undefined) return { ...net, portLow, portHigh, text: base };
  const portText = portLow === portHigh ? `${portLow}` : `${portLow}-${portHigh}`;
  const text = net.family === "ipv6" ? `[${base}]:${portText}` : `${base}:${portText}`;
  return { ...net, portLow, portHigh, text };
}

function colons(s: string): number {
  return s.split(":").length - 1;
}

function parseCidr(s: string): { family: Family; groups: number[]; prefix: number } | string {
  const slash = s.indexOf("/");
  const addr = slash === -1 ? s : s.slice(0, slash);
  const family: Family = addr.includes(":") ? "ipv6" : "ipv4";
  const groups = toGroups(family, addr);
  if (groups === undefined) {
    return `bad ${family === "ipv4" ? "IPv4" : "IPv6"} address ${JSON.stringify(addr)}`;
  }
  const max = family === "ipv4" ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const p = s.slice(slash + 1);
    if (family === "ipv6" && p.includes(":")) {
      return "an IPv6 CIDR with a port goes in brackets, as in [2001:db8::/64]:443";
    }
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > max) {
      return `bad prefix length ${JSON.stringify(p)}: expected 0 to ${max}`;
    }
    prefix = Number(p);
  }
  const network = masked(groups, prefix);
  if (network.some((g, i) => g !== groups[i])) {
    const fixed = family === "ipv4" ? groupsToIPv4(network) : formatIPv6(network);
    return `host bits set (did you mean ${fixed}/${prefix}?)`;
  }
  return { family, groups, prefix };
}

/** 16-bit groups of an address: 2 for IPv4, 8 for IPv6; `undefined` if it is not one. */
function toGroups(family: Family, addr: string): number[] | undefined {
  if (family === "ipv6") return parseIPv6(addr);
  const o = parseIPv4(addr);
  return o === undefined ? undefined : [(o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!];
}

function groupsToIPv4(g: readonly number[]): string {
  return [g[0]! >> 8, g[0]! & 255, g[1]! >> 8, g[1]! & 255].join(".");
}

function masked(groups: readonly number[], prefix: number): number[] {
  return groups.map((g, i) => {
    const bits = Math.min(16, Math.max(0, prefix - i * 16));
    return bits === 0 ? 0 : g & ((0xffff << (16 - bits)) & 0xffff);
  });
}

/** A trie node: one 16-bit group deeper than its parent. */
interface TrieNode {
  children: Map<number, TrieNode>;
  /** Items whose prefix ends exactly at this node's depth (before building: their indexes). */
  exact: PortSegments | undefined;
  /** Items whose prefix ends 1 to 15 bits into the next group, by that many bits. */
  partial: { mask: number; nets: Map<number, PortSegments> }[];
}

/**
 * One family's items in a trie over 16-bit groups (2 levels for IPv4, 8 for
 * IPv6). A look-up walks the address's groups and, at each node, asks the
 * items ending there or a few bits further by one hash look-up per distinct
 * length; each network's port ranges are cut into segments naming the first
 * item (lowest index) that covers them.
 */
class PrefixIndex {
  readonly empty: boolean;
  #root: TrieNode = { children: new Map(), exact: undefined, partial: [] };

  constructor(items: readonly DestinationItem[], family: Family) {
    // Indexes first, by node and length; PortSegments once all are known.
    const lists = new Map<TrieNode, Map<number, Map<number, number[]>>>();
    let count = 0;
    items.forEach((item, i) => {
      if (item.family !== family) return;
      count++;
      const whole = item.prefix >> 4, bits = item.prefix & 15;
      let node = this.#root;
      for (let d = 0; d < whole; d++) {
        const g = item.groups[d]!;
        let child = node.children.get(g);
        if (!child) {
          node.children.set(g, child = { children: new Map(), exact: undefined, partial: [] });
        }
        node = child;
      }
      let byBits = lists.get(node);
      if (!byBits) lists.set(node, byBits = new Map());
      let nets = byBits.get(bits);
      if (!nets) byBits.set(bits, nets = new Map());
      const key = bits === 0 ? 0 : item.groups[whole]!;
      const list = nets.get(key);
      if (list) list.push(i);
      else nets.set(key, [i]);
    });
    for (const [node, byBits] of lists) {
      for (const [bits, nets] of [...byBits].sort((x, y) => x[0] - y[0])) {
        if (bits === 0) {
          node.exact = new PortSegments(nets.get(0)!, items);
          continue;
        }
        const built = new Map<number, PortSegments>();
        for (const [key, list] of nets) built.set(key, new PortSegments(list, items));
        node.partial.push({ mask: (0xffff << (16 - bits)) & 0xffff, nets: built });
      }
    }
    this.empty = count === 0;
  }

  /** Index of the first item holding the address (as groups) and port, or -1. */
  first(groups: readonly number[], port: number): number {
    let best = -1;
    const better = (seg: PortSegments | undefined) => {
      const i = seg === undefined ? -1 : seg.first(port);
      if (i >= 0 && (best < 0 || i < best)) best = i;
    };
    let node: TrieNode | undefined = this.#root;
    for (let d = 0; node !== undefined; d++) {
      better(node.exact);
      if (d === groups.length) break;
      const g = groups[d]!;
      for (const p of node.partial) better(p.nets.get(g & p.mask));
      node = node.children.get(g);
    }
    return best;
  }
}

/** The port ranges of the items of one network: which item comes first at each port. */
class PortSegments {
  /** Segment `k` is ports `starts[k]` to `starts[k + 1] - 1`. */
  #starts: number[];
  /** The first item covering segment `k`, or -1. */
  #first: Int32Array;

  /** `indexes` in ascending order. */
  constructor(indexes: readonly number[], items: readonly DestinationItem[]) {
    const points = new Set<number>();
    for (const i of indexes) points.add(items[i]!.portLow).add(items[i]!.portHigh + 1);
    this.#starts = [...points].sort((a, b) => a - b);
    const n = this.#starts.length - 1;
    this.#first = new Int32Array(Math.max(0, n)).fill(-1);
    // Paint each segment once, in item order: `next` skips painted runs.
    const next = Int32Array.from({ length: n + 1 }, (_, k) => k);
    const find = (k: number): number => {
      while (next[k] !== k) k = next[k] = next[next[k]!]!;
      return k;
    };
    for (const i of indexes) {
      const from = this.#segment(items[i]!.portLow);
      const to = this.#segment(items[i]!.portHigh + 1);
      for (let k = find(from); k < to; k = find(k)) {
        this.#first[k] = i;
        next[k] = k + 1;
      }
    }
  }

  first(port: number): number {
    const k = this.#segment(port + 1) - 1;
    return k < 0 || k >= this.#first.length ? -1 : this.#first[k]!;
  }

  /** How many segment starts are ≤ `port` - 1 … i.e. the index of the first start ≥ `port`. */
  #segment(port: number): number {
    let lo = 0, hi = this.#starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#starts[mid]! < port) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
