/**
 * What else on the node may translate a new connection, outside nf_tables:
 * a legacy iptables `nat` table (listed in `/proc/net/ip_tables_names` or
 * `/proc/net/ip6_tables_names` once something created it; these files are
 * only read, never `iptables-legacy`, which would create the table) and IPVS
 * virtual services (`/proc/net/ip_vs`; absent without the module: none).
 * Read once per batch of questions; parsing is pure.
 *
 * @example
 * ```ts
 * import { ipvsMayServe, parseIpvs } from "./host_checks.ts";
 * const services = parseIpvs(
 *   "IP Virtual Server version 1.2.1 (size=4096)\n" +
 *     "Prot LocalAddress:Port Scheduler Flags\n" +
 *     "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n" +
 *     "TCP  0A60000A:0050 rr\n" +
 *     "  -> 0AF40105:1F90      Masq    1      0          0\n",
 * );
 * ipvsMayServe(services, "ipv4", new Uint8Array([10, 96, 0, 10]), 80); // => true
 * ipvsMayServe(services, "ipv4", new Uint8Array([10, 96, 0, 10]), 81); // => false
 * ```
 *
 * @module
 */

/** One IPVS virtual service; `"any"` when it could serve any TCP destination (fwmark, unparsed). */
export type IpvsService = { readonly addr: Uint8Array; readonly port: number } | "any";

/** What the node has besides nf_tables. */
export interface HostNat {
  /** Legacy iptables `nat` tables present, per family. */
  readonly legacyNat: { readonly ipv4: boolean; readonly ipv6: boolean };
  readonly ipvs: readonly IpvsService[];
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** Whether a `*_tables_names` text lists `nat`. */
export function listsNat(text: string | undefined): boolean {
  return (text ?? "").split("\n").some((l) => l.trim() === "nat");
}

function hexBytes(hex: string): Uint8Array | undefined {
  if (!/^[0-9A-Fa-f]*$/.test(hex) || hex.length % 2 !== 0) return undefined;
  return Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
}

/** The TCP and fwmark services of `/proc/net/ip_vs`; UDP and SCTP ones never serve TCP. */
export function parseIpvs(text: string | undefined): IpvsService[] {
  const out: IpvsService[] = [];
  for (const line of (text ?? "").split("\n")) {
    const m = /^(TCP|UDP|SCTP|FWM)\s+(\S+)/.exec(line);
    if (!m) continue;
    if (m[1] === "UDP" || m[1] === "SCTP") continue;
    if (m[1] === "FWM") {
      out.push("any");
      continue;
    }
    const v4 = /^([0-9A-Fa-f]{8}):([0-9A-Fa-f]{4})$/.exec(m[2]!);
    const v6 = /^\[([0-9A-Fa-f:]+)\]:([0-9A-Fa-f]{4})$/.exec(m[2]!);
    const addr = v4 ? hexBytes(v4[1]!) : v6 ? v6Bytes(v6[1]!) : undefined;
    const port = v4?.[2] ?? v6?.[2];
    out.push(addr === undefined || port === undefined ? "any" : { addr, port: parseInt(port, 16) });
  }
  return out;
}

/** The kernel prints IPv6 services as eight 4-digit groups. */
function v6Bytes(text: string): Uint8Array | undefined {
  const groups = text.split(":");
  if (groups.length !== 8 || groups.some((g) => g.length !== 4)) return undefined;
  return hexBytes(groups.join(""));
}

/** Whether one of `services` could take a TCP connection to `dst`:`dport`. */
export function ipvsMayServe(
  services: readonly IpvsService[],
  family: "ipv4" | "ipv6",
  dst: Uint8Array,
  dport: number,
): boolean {
  const len = family === "ipv4" ? 4 : 16;
  return services.some((s) =>
    s === "any" ||
    (s.addr.length === len && s.port === dport && s.addr.every((b, i) => b === dst[i]))
  );
}

/** Reads the three files under `procRoot` (default `/proc`). */
export async function readHostNat(procRoot = "/proc"): Promise<HostNat> {
  const [v4, v6, ipvs] = await Promise.all([
    readOptional(`${procRoot}/net/ip_tables_names`),
    readOptional(`${procRoot}/net/ip6_tables_names`),
    readOptional(`${procRoot}/net/ip_vs`),
  ]);
  return { legacyNat: { ipv4: listsNat(v4), ipv6: listsNat(v6) }, ipvs: parseIpvs(ipvs) };
}
