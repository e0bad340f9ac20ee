/**
 * A node's DNAT rules for Services in the three shapes the end-to-end tests
 * of issue 19 use, written the way the tools that make them do:
 *
 * - `plain`: one hand-written rule per Service in nat PREROUTING,
 *   `-d VIP -p tcp --dport P -j DNAT --to-destination EP` (one endpoint);
 * - `kube-iptables`: kube-proxy's iptables mode, loaded with
 *   `iptables-restore --noflush` (here the nf_tables backend): `KUBE-SERVICES`
 *   (jumped to from PREROUTING and OUTPUT) → `KUBE-SVC-…` (a
 *   `KUBE-MARK-MASQ` jump for sources outside the cluster CIDR, then one
 *   `-m statistic --mode random --probability` rule per endpoint but the
 *   last) → `KUBE-SEP-…` (DNAT), `KUBE-NODEPORTS` last, `KUBE-POSTROUTING`
 *   masquerading marked packets; stale chains removed with `-X`;
 * - `kube-nft`: kube-proxy's nftables mode, loaded with `nft -f`:
 *   `table ip kube-proxy` (`ip6` for IPv6) whose `services` chain does
 *   `ip daddr . meta l4proto . th dport vmap @service-ips`; a `service-…`
 *   chain per Service port with `numgen random mod N vmap { 0 : goto
 *   endpoint-…, … }` and `endpoint-…` chains with `dnat to`.
 *
 * {@linkcode applyShape} brings the rules from one list of Services to the
 * next in one transaction (one restore, one `nft -f`), as the tools do on
 * each sync. The scripts are pure functions ({@linkcode iptablesScript},
 * {@linkcode nftScript}), so they can be read without a kernel.
 *
 * @example
 * ```ts
 * import { nftScript } from "./nat_shapes.ts";
 * const web = { name: "web", vip: "198.19.0.10", port: 80,
 *   endpoints: [{ addr: "198.18.2.2", port: 8080 }] };
 * nftScript("ipv4", [web], [], true).includes("numgen random mod 1 vmap"); // => true
 * ```
 *
 * @module
 */
import type { Netns } from "./netns.ts";

/** The three rule shapes (see the module doc). */
export type NatShape = "plain" | "kube-iptables" | "kube-nft";

/** Every shape, in the order the tests report them. */
export const NAT_SHAPES: readonly NatShape[] = ["plain", "kube-iptables", "kube-nft"];

/** One endpoint a Service port is DNATed to. */
export interface ShapeEndpoint {
  addr: string;
  port: number;
}

/** A Service port (TCP) of one family, in namespace `default`. */
export interface ShapeService {
  /** The Service's name (letters, digits, `-`). */
  name: string;
  /** Its address (the family comes from it). */
  vip: string;
  port: number;
  /** At least one (exactly one for `plain`). */
  endpoints: ShapeEndpoint[];
}

type Family = "ipv4" | "ipv6";

/** Options of {@linkcode applyShape}. */
export interface ShapeOptions {
  /** The cluster CIDR (sources outside it are marked for masquerade), one per family. */
  clusterCidr: Record<Family, string>;
}

const familyOf = (vip: string): Family => vip.includes(":") ? "ipv6" : "ipv4";

/**
 * Brings `ns`'s rules of `shape` from `previous` to `next` (Services of both
 * families; `first` on the first call also hooks the chains in), one
 * transaction per family and tool. Throws with the tool's message on failure.
 */
export async function applyShape(
  ns: Netns,
  shape: NatShape,
  next: readonly ShapeService[],
  previous: readonly ShapeService[],
  first: boolean,
  options: ShapeOptions,
): Promise<void> {
  const of = (list: readonly ShapeService[], f: Family) =>
    list.filter((s) => familyOf(s.vip) === f);
  const families: Family[] = ["ipv4", "ipv6"];
  if (shape === "kube-nft") {
    const script = families.map((f) =>
      nftScript(f, of(next, f), of(previous, f), first, options.clusterCidr[f])
    ).join("");
    await must(ns, ["nft", "-f", "-"], script);
    return;
  }
  await Promise.all(families.map((f) => {
    const script = iptablesScript(
      shape,
      f,
      of(next, f),
      of(previous, f),
      first,
      options.clusterCidr[f],
    );
    const tool = f === "ipv4" ? "iptables-restore" : "ip6tables-restore";
    return must(ns, [tool, "--noflush"], script);
  }));
}

/** `ADDR:PORT`, IPv6 in brackets. */
export function hostPort(e: ShapeEndpoint): string {
  return e.addr.includes(":") ? `[${e.addr}]:${e.port}` : `${e.addr}:${e.port}`;
}

const hostLen = (f: Family) => f === "ipv4" ? 32 : 128;

/**
 * The `iptables-restore --noflush` input that brings the `plain` or
 * `kube-iptables` rules of one family from `previous` to `next`.
 *
 * @example
 * ```ts
 * import { iptablesScript } from "./nat_shapes.ts";
 * const web = { name: "web", vip: "198.19.0.10", port: 80,
 *   endpoints: [{ addr: "198.18.2.2", port: 8080 }] };
 * iptablesScript("plain", "ipv4", [web], [], true, "198.18.1.0/24").split("\n")[1];
 * // => "-A PREROUTING -d 198.19.0.10/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.18.2.2:8080"
 * ```
 */
export function iptablesScript(
  shape: "plain" | "kube-iptables",
  family: Family,
  next: readonly ShapeService[],
  previous: readonly ShapeService[],
  first: boolean,
  clusterCidr: string,
): string {
  const match = (s: ShapeService) =>
    `-d ${s.vip}/${hostLen(family)} -p tcp -m tcp --dport ${s.port}`;
  if (shape === "plain") {
    const rule = (s: ShapeService) => {
      if (s.endpoints.length !== 1) throw new Error(`plain DNAT takes one endpoint: ${s.name}`);
      return `PREROUTING ${match(s)} -j DNAT --to-destination ${hostPort(s.endpoints[0]!)}`;
    };
    const drop = previous.map((s) => `-D ${rule(s)}`);
    return ["*nat", ...drop, ...next.map((s) => `-A ${rule(s)}`), "COMMIT", ""].join("\n");
  }
  const chains = (list: readonly ShapeService[]) =>
    list.flatMap((s) => [svcChain(s), ...s.endpoints.map((e) => sepChain(s, e))]);
  const live = new Set(chains(next));
  const stale = [...new Set(chains(previous))].filter((c) => !live.has(c));
  const fixed = ["KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-MARK-MASQ", "KUBE-POSTROUTING"];
  const out = ["*nat", ...[...fixed, ...live, ...stale].map((c) => `:${c} - [0:0]`)];
  if (first) {
    out.push(
      `-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
      `-I OUTPUT 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
      `-I POSTROUTING 1 -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING`,
    );
  }
  out.push(
    "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
    "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
    "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
    `-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" ` +
      "-j MASQUERADE --random-fully",
  );
  for (const s of next) {
    const comment = `-m comment --comment "default/${s.name}:p${s.port} cluster IP"`;
    out.push(`-A KUBE-SERVICES ${comment} ${match(s)} -j ${svcChain(s)}`);
    out.push(`-A ${svcChain(s)} ${comment} ! -s ${clusterCidr} ${match(s)} -j KUBE-MARK-MASQ`);
    s.endpoints.forEach((e, i) => {
      const left = s.endpoints.length - i;
      const pick = left > 1 ? `-m statistic --mode random --probability ${probability(left)} ` : "";
      const ep = `-m comment --comment "default/${s.name}:p${s.port} -> ${hostPort(e)}"`;
      out.push(`-A ${svcChain(s)} ${ep} ${pick}-j ${sepChain(s, e)}`);
      out.push(
        `-A ${sepChain(s, e)} -m comment --comment default/${s.name}:p${s.port} ` +
          `-s ${e.addr}/${hostLen(family)} -j KUBE-MARK-MASQ`,
      );
      out.push(
        `-A ${sepChain(s, e)} -m comment --comment default/${s.name}:p${s.port} ` +
          `-p tcp -m tcp -j DNAT --to-destination ${hostPort(e)}`,
      );
    });
  }
  out.push(
    `-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports" ` +
      "-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS",
  );
  out.push(...stale.map((c) => `-X ${c}`), "COMMIT", "");
  return out.join("\n");
}

/** kube-proxy's `1/n` with ten decimals. */
function probability(n: number): string {
  return (1 / n).toFixed(10);
}

/**
 * The `nft -f` input that brings the `kube-nft` rules of one family from
 * `previous` to `next` (with `first`, the table, its maps and base chains).
 */
export function nftScript(
  family: Family,
  next: readonly ShapeService[],
  previous: readonly ShapeService[],
  first: boolean,
  clusterCidr: string,
): string {
  const t = family === "ipv4" ? "ip kube-proxy" : "ip6 kube-proxy";
  const ip = family === "ipv4" ? "ip" : "ip6";
  const addrType = family === "ipv4" ? "ipv4_addr" : "ipv6_addr";
  const out: string[] = [];
  if (first) {
    out.push(
      `add table ${t} { comment "rules for kube-proxy" ; }`,
      `add map ${t} service-ips { type ${addrType} . inet_proto . inet_service : verdict ; }`,
      `add map ${t} service-nodeports { type inet_proto . inet_service : verdict ; }`,
      `add chain ${t} mark-for-masquerade`,
      `add rule ${t} mark-for-masquerade meta mark set meta mark or 0x4000`,
      `add chain ${t} masquerading`,
      `add rule ${t} masquerading meta mark & 0x4000 == 0 return`,
      `add rule ${t} masquerading meta mark set meta mark xor 0x4000`,
      `add rule ${t} masquerading masquerade fully-random`,
      `add chain ${t} services`,
      `add rule ${t} services ${ip} daddr . meta l4proto . th dport vmap @service-ips`,
      `add rule ${t} services fib daddr type local meta l4proto . th dport vmap @service-nodeports`,
      `add chain ${t} nat-prerouting { type nat hook prerouting priority -100 ; policy accept ; }`,
      `add rule ${t} nat-prerouting jump services`,
      `add chain ${t} nat-output { type nat hook output priority -100 ; policy accept ; }`,
      `add rule ${t} nat-output jump services`,
      `add chain ${t} nat-postrouting { type nat hook postrouting priority 100 ; policy accept ; }`,
      `add rule ${t} nat-postrouting jump masquerading`,
    );
  }
  const live = new Set<string>();
  for (const s of next) {
    const svc = nftServiceChain(s);
    const eps = s.endpoints.map((e) => nftEndpointChain(s, e));
    for (const c of [svc, ...eps]) {
      live.add(c);
      out.push(`add chain ${t} ${c}`, `flush chain ${t} ${c}`);
    }
    s.endpoints.forEach((e, i) => {
      out.push(`add rule ${t} ${eps[i]} ${ip} saddr ${e.addr} jump mark-for-masquerade`);
      out.push(`add rule ${t} ${eps[i]} meta l4proto tcp dnat to ${hostPort(e)}`);
    });
    out.push(
      `add rule ${t} ${svc} ${ip} daddr ${s.vip} tcp dport ${s.port} ` +
        `${ip} saddr != ${clusterCidr} jump mark-for-masquerade`,
      `add rule ${t} ${svc} numgen random mod ${eps.length} vmap { ` +
        eps.map((c, i) => `${i} : goto ${c}`).join(" , ") + " }",
      `add element ${t} service-ips { ${s.vip} . tcp . ${s.port} : goto ${svc} }`,
    );
  }
  const key = (s: ShapeService) => `${s.vip} . tcp . ${s.port}`;
  const kept = new Set(next.map(key));
  for (const s of previous) {
    if (!kept.has(key(s))) out.push(`delete element ${t} service-ips { ${key(s)} }`);
  }
  const stale = new Set(
    previous.flatMap((
      s,
    ) => [nftServiceChain(s), ...s.endpoints.map((e) => nftEndpointChain(s, e))]),
  );
  for (const c of stale) {
    if (!live.has(c)) out.push(`flush chain ${t} ${c}`, `delete chain ${t} ${c}`);
  }
  return out.map((l) => l + "\n").join("");
}

/** The name of a Service port (`default/NAME:pPORT`). */
const portName = (s: ShapeService) => `default/${s.name}:p${s.port}`;

/** `KUBE-SVC-` and 16 base32 characters of a hash of the Service port (as kube-proxy). */
export function svcChain(s: ShapeService): string {
  return `KUBE-SVC-${hash32(`${portName(s)}tcp`).slice(0, 16)}`;
}

/** `KUBE-SEP-` and 16 base32 characters of a hash of the Service port and endpoint. */
export function sepChain(s: ShapeService, e: ShapeEndpoint): string {
  return `KUBE-SEP-${hash32(`${portName(s)}tcp${hostPort(e)}`).slice(0, 16)}`;
}

/** kube-proxy's nftables service chain name: `service-HASH8-default/NAME/tcp/pPORT`. */
export function nftServiceChain(s: ShapeService): string {
  return `service-${hash32(`${portName(s)}tcp`).slice(0, 8)}-default/${s.name}/tcp/p${s.port}`;
}

/** kube-proxy's nftables endpoint chain name (`:` of IPv6 written as `.`). */
export function nftEndpointChain(s: ShapeService, e: ShapeEndpoint): string {
  const ep = `${e.addr.replaceAll(":", ".")}/${e.port}`;
  const h = hash32(`${portName(s)}tcp${hostPort(e)}`).slice(0, 8);
  return `endpoint-${h}-default/${s.name}/tcp/p${s.port}__${ep}`;
}

/** 64-bit FNV-1a of `text`, twice (seeded apart), in base32 (RFC 4648 alphabet): 26 characters. */
function hash32(text: string): string {
  const bytes = new TextEncoder().encode(text);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let out = "";
  for (const seed of [0xcbf29ce484222325n, 0x84222325cbf29ce4n]) {
    let h = seed;
    for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
    for (let i = 0; i < 13; i++) out += alphabet[Number((h >> BigInt(i * 5)) & 31n)];
  }
  return out;
}

async function must(ns: Netns, cmd: string[], stdin: string): Promise<void> {
  const r = await ns.exec(cmd, { stdin });
  if (r.code !== 0) {
    throw new Error(
      `${cmd.join(" ")} in ${ns.name} exited ${r.code}: ${r.stderr.trim()}\n${stdin}`,
    );
  }
}
