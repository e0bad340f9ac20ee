/**
 * The node addresses on which NodePorts count as NATed, as kube-proxy's
 * `--nodeport-addresses` chooses them:
 *
 * - `primary` (the default, and kube-proxy's in nftables mode): the node's
 *   primary address of each family, taken as the kubelet takes the node IP
 *   when it is not told: the first global address of the interface that
 *   holds the family's default route (lowest metric). No default route in a
 *   family: no NodePort vouched in it (less, never more, than kube-proxy).
 * - a list of CIDRs (as kube-proxy's flag): every local address inside one of
 *   them, loopback included if a CIDR covers it.
 *
 * The agent runs with `hostNetwork`, so the local interfaces are the node's.
 * Pure but for the defaults of {@linkcode NodeAddressSources}.
 *
 * @module
 */
import { addressBytes } from "../model/addr.ts";
import type { Family } from "../model/tuple.ts";
import { canonicalAddress } from "./objects.ts";
import type { NodeAddress } from "./view.ts";

/** One CIDR of `--nodeport-addresses`. */
export interface Cidr {
  family: Family;
  bytes: Uint8Array;
  bits: number;
  text: string;
}

/** `--nodeport-addresses` parsed: `primary`, or CIDRs. */
export type NodePortAddresses = { kind: "primary" } | { kind: "cidrs"; cidrs: Cidr[] };

/** The accepted form, for `--help` and error messages. */
export const NODEPORT_ADDRESSES_FORM =
  "primary, or comma-separated CIDRs such as 192.0.2.0/24,2001:db8::/64 (as kube-proxy's --nodeport-addresses)";

/**
 * Parses `--nodeport-addresses`; `undefined` when malformed.
 *
 * @example
 * ```ts
 * import { parseNodePortAddresses } from "./node_addresses.ts";
 * parseNodePortAddresses("primary"); // => { kind: "primary" }
 * const c = parseNodePortAddresses("10.0.0.0/8,2001:db8::/64");
 * c?.kind === "cidrs" ? c.cidrs.map((x) => x.text) : []; // => ["10.0.0.0/8", "2001:db8::/64"]
 * parseNodePortAddresses("10.0.0.0/33"); // => undefined
 * ```
 */
export function parseNodePortAddresses(s: string): NodePortAddresses | undefined {
  if (s === "primary") return { kind: "primary" };
  const cidrs: Cidr[] = [];
  for (const item of s.split(",")) {
    const m = /^([0-9a-fA-F:.]+)\/([0-9]{1,3})$/.exec(item.trim());
    if (m === null) return undefined;
    const a = canonicalAddress(m[1]);
    if (a === undefined) return undefined;
    const bits = Number(m[2]);
    if (bits > (a.family === "ipv4" ? 32 : 128)) return undefined;
    cidrs.push({
      family: a.family,
      bytes: addressBytes(a.family, a.addr)!,
      bits,
      text: `${a.addr}/${bits}`,
    });
  }
  return cidrs.length > 0 ? { kind: "cidrs", cidrs } : undefined;
}

/** Whether `addr` (canonical, of `family`) is inside `c`. */
export function inCidr(c: Cidr, family: Family, addr: string): boolean {
  if (c.family !== family) return false;
  const b = addressBytes(family, addr);
  if (b === undefined) return false;
  for (let i = 0; i < c.bits; i++) {
    const bit = 0x80 >> (i & 7);
    if ((b[i >> 3]! & bit) !== (c.bytes[i >> 3]! & bit)) return false;
  }
  return true;
}

/** Where the addresses come from (tests replace them). */
export interface NodeAddressSources {
  interfaces: () => Deno.NetworkInterfaceInfo[];
  /** `/proc/net/route` and `/proc/net/ipv6_route`; a read that fails counts as empty. */
  readFile: (path: string) => string;
}

/** The real sources. */
export const REAL_SOURCES: NodeAddressSources = {
  interfaces: () => Deno.networkInterfaces(),
  readFile: (p) => {
    try {
      return Deno.readTextFileSync(p);
    } catch {
      return "";
    }
  },
};

/**
 * The interface holding each family's default route (lowest metric), from
 * `/proc/net/route` (destination and mask 0) and `/proc/net/ipv6_route`
 * (`::/0`); loopback routes are left out.
 */
export function defaultRouteInterfaces(s: NodeAddressSources): Partial<Record<Family, string>> {
  const out: Partial<Record<Family, string>> = {};
  let best = Infinity;
  for (const line of s.readFile("/proc/net/route").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[1] !== "00000000" || f[7] !== "00000000" || f[0] === "lo") continue;
    const metric = Number(f[6]);
    if (metric < best) [best, out.ipv4] = [metric, f[0]!];
  }
  best = Infinity;
  for (const line of s.readFile("/proc/net/ipv6_route").split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || !/^0{32}$/.test(f[0]!) || f[1] !== "00" || f[9] === "lo") continue;
    const metric = parseInt(f[5]!, 16);
    if (metric < best) [best, out.ipv6] = [metric, f[9]!];
  }
  return out;
}

/** Global (not loopback, not link-local) canonical address of an interface entry, or none. */
function globalAddress(i: Deno.NetworkInterfaceInfo): NodeAddress | undefined {
  const c = canonicalAddress(i.address.split("%")[0]);
  if (c === undefined) return undefined;
  if (c.family === "ipv4" ? c.addr.startsWith("127.") : c.addr === "::1") return undefined;
  if (c.family === "ipv6" && /^fe[89ab]/.test(c.addr)) return undefined;
  return c;
}

/**
 * The node addresses for NodePorts under `choice`, canonical, de-duplicated.
 *
 * @example
 * ```ts
 * import { nodePortAddresses, parseNodePortAddresses } from "./node_addresses.ts";
 * const sources = {
 *   interfaces: () => [
 *     { name: "eth0", family: "IPv4" as const, address: "192.0.2.10", netmask: "", scopeid: null, cidr: "", mac: "" },
 *     { name: "eth1", family: "IPv4" as const, address: "198.51.100.3", netmask: "", scopeid: null, cidr: "", mac: "" },
 *   ],
 *   readFile: (p: string) => p === "/proc/net/route"
 *     ? "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\neth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n"
 *     : "",
 * };
 * nodePortAddresses({ kind: "primary" }, sources).map((a) => a.addr); // => ["192.0.2.10"]
 * nodePortAddresses(parseNodePortAddresses("198.51.100.0/24")!, sources).map((a) => a.addr); // => ["198.51.100.3"]
 * ```
 */
export function nodePortAddresses(
  choice: NodePortAddresses,
  s: NodeAddressSources = REAL_SOURCES,
): NodeAddress[] {
  const out = new Map<string, NodeAddress>();
  const all = s.interfaces();
  if (choice.kind === "cidrs") {
    for (const i of all) {
      const c = canonicalAddress(i.address.split("%")[0]);
      if (c && choice.cidrs.some((x) => inCidr(x, c.family, c.addr))) out.set(c.addr, c);
    }
    return [...out.values()];
  }
  const routes = defaultRouteInterfaces(s);
  for (const family of ["ipv4", "ipv6"] as const) {
    const name = routes[family];
    if (name === undefined) continue;
    for (const i of all) {
      if (i.name !== name) continue;
      const c = globalAddress(i);
      if (c?.family === family) {
        out.set(c.addr, c);
        break;
      }
    }
  }
  return [...out.values()];
}
