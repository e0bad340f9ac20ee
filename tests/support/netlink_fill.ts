/**
 * Test helper: encodes the `IPCTNL_MSG_CT_NEW` request that creates one
 * conntrack entry (used by the codec fuzz tests).
 *
 * @module
 */
import type { Tuple } from "../../lib/model/tuple.ts";
import { addressBytes } from "../../lib/model/addr.ts";
import { MessageBuilder } from "../../lib/netlink/builder.ts";
import {
  appendTuple,
  CTA_ID,
  CTA_IP_V4_DST,
  CTA_IP_V4_SRC,
  CTA_IP_V6_DST,
  CTA_IP_V6_SRC,
  CTA_PROTO_DST_PORT,
  CTA_PROTO_NUM,
  CTA_PROTO_SRC_PORT,
  CTA_PROTOINFO,
  CTA_PROTOINFO_TCP,
  CTA_PROTOINFO_TCP_STATE,
  CTA_STATUS,
  CTA_TIMEOUT,
  CTA_TUPLE_IP,
  CTA_TUPLE_ORIG,
  CTA_TUPLE_PROTO,
  CTA_TUPLE_REPLY,
  CTA_TUPLE_ZONE,
  CTA_ZONE,
  ctMsgType,
  familyNumber,
  IPCTNL_MSG_CT_NEW,
  IPPROTO_TCP,
  IPS_CONFIRMED,
} from "../../lib/netlink/ctnetlink.ts";
import {
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REQUEST,
  NLMSG_HDRLEN,
} from "../../lib/netlink/message.ts";

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

/** An entry as a dump would send it, with a reply tuple that may be translated. */
export interface DumpedSpec extends EntrySpec {
  /** The reply tuple's source (where the destination was translated to); default `dst`. */
  replySrc?: string;
  replySport?: number;
  /** Zones per direction (`CTA_TUPLE_ZONE`) instead of `zone` (`CTA_ZONE`, both ways). */
  origZone?: number;
  replyZone?: number;
  id?: number;
}

/**
 * The `IPCTNL_MSG_CT_NEW` payload (after the netlink header) a dump sends for
 * `e`: for fake kernels whose entries are translated or have directional zones.
 */
export function dumpedPayload(e: DumpedSpec): Uint8Array {
  const proto = e.proto ?? IPPROTO_TCP;
  const b = new MessageBuilder(256);
  b.beginMessage(ctMsgType(IPCTNL_MSG_CT_NEW), 0, 0, familyNumber(e.family));
  zonedTuple(b, CTA_TUPLE_ORIG, e, proto, e.origZone);
  const reply = {
    family: e.family,
    src: e.replySrc ?? e.dst,
    dst: e.src,
    sport: e.replySport ?? e.dport,
    dport: e.sport,
  };
  zonedTuple(b, CTA_TUPLE_REPLY, reply, proto, e.replyZone);
  b.be32(CTA_STATUS, e.status | IPS_CONFIRMED);
  b.be32(CTA_TIMEOUT, e.timeout);
  if (proto === IPPROTO_TCP && e.tcpState !== undefined) {
    b.beginNest(CTA_PROTOINFO);
    b.beginNest(CTA_PROTOINFO_TCP);
    b.u8(CTA_PROTOINFO_TCP_STATE, e.tcpState);
    b.endNest();
    b.endNest();
  }
  if (e.id !== undefined) b.be32(CTA_ID, e.id);
  if (e.zone) b.be16(CTA_ZONE, e.zone);
  b.endMessage();
  return b.bytes().slice(NLMSG_HDRLEN);
}

/** A `CTA_TUPLE_*` nest as the kernel dumps it, with `CTA_TUPLE_ZONE` when `zone` is given. */
function zonedTuple(
  b: MessageBuilder,
  attr: number,
  t: Pick<Tuple, "family" | "src" | "dst" | "sport" | "dport">,
  proto: number,
  zone: number | undefined,
): void {
  const v6 = t.family === "ipv6";
  b.beginNest(attr);
  b.beginNest(CTA_TUPLE_IP);
  b.raw(v6 ? CTA_IP_V6_SRC : CTA_IP_V4_SRC, addressBytes(t.family, t.src)!);
  b.raw(v6 ? CTA_IP_V6_DST : CTA_IP_V4_DST, addressBytes(t.family, t.dst)!);
  b.endNest();
  b.beginNest(CTA_TUPLE_PROTO);
  b.u8(CTA_PROTO_NUM, proto);
  b.be16(CTA_PROTO_SRC_PORT, t.sport);
  b.be16(CTA_PROTO_DST_PORT, t.dport);
  b.endNest();
  if (zone !== undefined) b.be16(CTA_TUPLE_ZONE, zone);
  b.endNest();
}
