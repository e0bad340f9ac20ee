/**
 * Test helper: encodes the `IPCTNL_MSG_CT_NEW` request that creates one
 * conntrack entry (used by the codec fuzz tests).
 *
 * @module
 */
import type { Tuple } from "../../lib/tuple.ts";
import { MessageBuilder } from "../../lib/netlink/builder.ts";
import {
  appendTuple,
  CTA_PROTOINFO,
  CTA_PROTOINFO_TCP,
  CTA_PROTOINFO_TCP_STATE,
  CTA_STATUS,
  CTA_TIMEOUT,
  CTA_TUPLE_ORIG,
  CTA_TUPLE_REPLY,
  CTA_ZONE,
  ctMsgType,
  familyNumber,
  IPCTNL_MSG_CT_NEW,
  IPPROTO_TCP,
  IPS_CONFIRMED,
} from "../../lib/netlink/ctnetlink.ts";
import { NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST } from "../../lib/netlink/message.ts";

/** One entry to create. */
export interface EntrySpec extends Tuple {
  /** Layer-4 protocol; default TCP. */
  proto?: number;
  /** TCP state (`TCP_CONNTRACK_*`), TCP only. */
  tcpState?: number;
  /** `IPS_*` bits (`IPS_CONFIRMED` is added). */
  status: number;
  /** Seconds. */
  timeout: number;
}

/** Appends one `IPCTNL_MSG_CT_NEW` (create, exclusive, acked). */
export function appendNewRequest(b: MessageBuilder, seq: number, e: EntrySpec): void {
  const proto = e.proto ?? IPPROTO_TCP;
  b.beginMessage(
    ctMsgType(IPCTNL_MSG_CT_NEW),
    NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
    seq,
    familyNumber(e.family),
  );
  appendTuple(b, CTA_TUPLE_ORIG, e, proto);
  appendTuple(
    b,
    CTA_TUPLE_REPLY,
    { family: e.family, src: e.dst, dst: e.src, sport: e.dport, dport: e.sport },
    proto,
  );
  // The kernel marks a created entry IPS_CONFIRMED before applying CTA_STATUS
  // and refuses (EBUSY) a status that would clear it.
  b.be32(CTA_STATUS, e.status | IPS_CONFIRMED);
  b.be32(CTA_TIMEOUT, e.timeout);
  if (proto === IPPROTO_TCP && e.tcpState !== undefined) {
    b.beginNest(CTA_PROTOINFO);
    b.beginNest(CTA_PROTOINFO_TCP);
    b.u8(CTA_PROTOINFO_TCP_STATE, e.tcpState);
    b.endNest();
    b.endNest();
  }
  if (e.zone) b.be16(CTA_ZONE, e.zone);
  b.endMessage();
}
