/**
 * Evidence for the un-NATed rule from a ctnetlink dump: the translated TCP
 * entries of the keys asked about, collected as the dump's messages come.
 * Pure; no I/O.
 *
 * @module
 */
import { formatAddress } from "../model/addr.ts";
import { type ClientKey, clientKey } from "../model/tuple.ts";
import { translation } from "../netlink/entry_candidate.ts";
import { EvidenceBuilder } from "../model/evidence_builder.ts";
import type { EvidenceRead } from "../model/snapshot.ts";
import { decodeConntrack } from "../netlink/conntrack_entry.ts";
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
 * import { EvidenceCollector } from "./evidence_dump.ts";
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
