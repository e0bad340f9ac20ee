/**
 * Evidence for the un-NATed rule from a ctnetlink dump: where an entry's
 * destination was translated to, and the translated TCP entries of the keys
 * asked about. Pure; no I/O.
 *
 * @module
 */
import { formatAddress } from "../model/addr.ts";
import { type ClientKey, clientKey, type Endpoint } from "../model/tuple.ts";
import { EvidenceBuilder } from "../model/evidence_builder.ts";
import type { EvidenceRead } from "../model/snapshot.ts";
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
 *   dport: 80, replySrcAddr: new Uint8Array([10, 244, 1, 5]), replySport: 8080, zone: 0, replyZone: 0, status: 40,
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

/** The families (`nfgen_family`) of the keys asked about. */
export function evidenceFamilies(keys: readonly ClientKey[]): number[] {
  return [AF_INET, AF_INET6].filter((f) => keys.some((k) => familyNumber(k.family) === f));
}

/**
 * Collects, from the messages of an evidence dump, the translated TCP
 * entries of each key asked about (see `EvidenceRead` in lib/model/snapshot.ts),
 * with their conntrack ids. Whatever the dump's filter mode, each message is
 * checked here: TCP, translated, a key asked. Messages that do not decode
 * are not evidence (snapshots count those).
 *
 * @example
 * ```ts
 * import { EvidenceCollector } from "./netlink_evidence.ts";
 * const c = new EvidenceCollector([{ family: "ipv4", src: "10.1.0.7", dst: "10.96.0.10", dport: 53, zone: 0 }]);
 * c.read().entries.get("ipv4 10.1.0.7 10.96.0.10 53 0"); // => []
 * ```
 */
export class EvidenceCollector {
  #found: EvidenceBuilder;

  constructor(keys: readonly ClientKey[]) {
    this.#found = new EvidenceBuilder(keys);
  }

  /** What was collected. */
  read(): EvidenceRead {
    return this.#found.read();
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
    if (e.proto !== IPPROTO_TCP || e.dport === undefined || e.sport === undefined) return;
    const to = e.replySrcAddr === undefined ? undefined : translation(e);
    if (to === undefined) return;
    const dst = formatAddress(e.dstAddr);
    if (!this.#found.wantsAddress(dst)) return;
    const key = clientKey({
      family: e.family,
      src: formatAddress(e.srcAddr),
      dst,
      dport: e.dport,
      zone: e.zone,
    });
    this.#found.add(key, {
      sport: e.sport,
      replyZone: e.replyZone,
      translated: to,
      ...(e.id !== undefined ? { id: e.id } : {}),
    });
  }
}
