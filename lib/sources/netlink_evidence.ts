/**
 * Evidence for the un-NATed rule from a ctnetlink dump: where an entry's
 * destination was translated to, and which of the destinations asked about
 * have such an entry. Pure; no I/O.
 *
 * @module
 */
import { formatAddress } from "../addr.ts";
import { type Destination, destinationKey, type Endpoint } from "../tuple.ts";
import { type ConntrackEntry, decodeConntrack } from "../netlink/conntrack_entry.ts";
import {
  AF_INET,
  AF_INET6,
  ctMsgType,
  familyNumber,
  IPCTNL_MSG_CT_NEW,
  IPPROTO_TCP,
} from "../netlink/ctnetlink.ts";
import { NetlinkDecodeError, type NetlinkMessage } from "../netlink/message.ts";

const CT_NEW = ctMsgType(IPCTNL_MSG_CT_NEW);

/**
 * Where the entry's destination was translated to: the reply source, when it
 * differs from the original destination address or port; `undefined` for an
 * un-NATed entry. An entry without a reply tuple counts as translated to
 * nowhere (`::`/`0.0.0.0` port 0) rather than as un-NATed: never a guess that
 * lets something be deleted.
 *
 * @example
 * ```ts
 * import { translation } from "./netlink_evidence.ts";
 * translation({
 *   family: "ipv4", proto: 6, srcAddr: new Uint8Array([10, 0, 0, 1]), dstAddr: new Uint8Array([10, 96, 0, 1]),
 *   dport: 80, replySrcAddr: new Uint8Array([10, 244, 1, 5]), replySport: 8080, zone: 0, status: 40,
 * }); // => { addr: "10.244.1.5", port: 8080 }
 * ```
 */
export function translation(e: ConntrackEntry): Endpoint | undefined {
  const r = e.replySrcAddr;
  if (r === undefined || e.replySport === undefined) {
    return { addr: e.family === "ipv4" ? "0.0.0.0" : "::", port: 0 };
  }
  let same = r.length === e.dstAddr.length && e.replySport === e.dport;
  for (let i = 0; same && i < r.length; i++) same = r[i] === e.dstAddr[i];
  return same ? undefined : { addr: formatAddress(r), port: e.replySport };
}

/** The families (`nfgen_family`) of the destinations asked about. */
export function evidenceFamilies(destinations: readonly Destination[]): number[] {
  return [AF_INET, AF_INET6].filter((f) => destinations.some((d) => familyNumber(d.family) === f));
}

/**
 * Collects, from the messages of an evidence dump, the first translation
 * seen for each destination asked about (by {@linkcode destinationKey}).
 * Messages that do not decode are not evidence (snapshots count those).
 *
 * @example
 * ```ts
 * import { EvidenceCollector } from "./netlink_evidence.ts";
 * const c = new EvidenceCollector([{ family: "ipv4", dst: "10.96.0.10", dport: 53, zone: 0 }]);
 * c.found.size; // => 0
 * ```
 */
export class EvidenceCollector {
  /** What was found, by destination key. */
  readonly found = new Map<string, Endpoint>();
  #want: Set<string>;

  constructor(destinations: readonly Destination[]) {
    this.#want = new Set(destinations.map(destinationKey));
  }

  /** Looks at one data message of the evidence dump. */
  add(m: NetlinkMessage): void {
    if (m.type !== CT_NEW) return;
    let e;
    try {
      e = decodeConntrack(m.payload);
    } catch (err) {
      if (err instanceof NetlinkDecodeError) return;
      throw err;
    }
    if (e.proto !== IPPROTO_TCP || e.dport === undefined) return;
    const to = e.replySrcAddr === undefined ? undefined : translation(e);
    if (to === undefined) return;
    const key = destinationKey({
      family: e.family,
      dst: formatAddress(e.dstAddr),
      dport: e.dport,
      zone: e.zone,
    });
    if (this.#want.has(key) && !this.found.has(key)) this.found.set(key, to);
  }
}
