/**
 * The ctnetlink layer (conntrack over nfnetlink): its constants, the requests
 * the agent sends (dump, GET and DELETE of one tuple). Framing is in
 * `message.ts`; the `IPCTNL_MSG_CT_NEW` messages the kernel answers with are
 * decoded in `conntrack_entry.ts`. No I/O.
 *
 * Constants are those of the Linux UAPI headers
 * (`linux/netfilter/nfnetlink_conntrack.h`, `nf_conntrack_common.h`).
 * Attribute values are big-endian, except `CTA_FILTER_ORIG_FLAGS`, which the
 * kernel reads as a host-order u32.
 *
 * @module
 */
import { addressBytes } from "../model/addr.ts";
import type { Family, ParsedTuple } from "../model/tuple.ts";
import type { MessageBuilder } from "./builder.ts";
import { NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST } from "./message.ts";

/** Address families as `nfgen_family` spells them. */
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
/** Layer-4 protocol numbers (`IPPROTO_*` in `linux/in.h`). */
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_DCCP = 33;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;

/** The ctnetlink subsystem id and its message types. */
export const NFNL_SUBSYS_CTNETLINK = 1;
export const IPCTNL_MSG_CT_NEW = 0;
export const IPCTNL_MSG_CT_GET = 1;
export const IPCTNL_MSG_CT_DELETE = 2;

/**
 * `nlmsg_type` of a ctnetlink message: subsystem in the high byte.
 *
 * @example
 * ```ts
 * import { ctMsgType, IPCTNL_MSG_CT_GET } from "./ctnetlink.ts";
 * ctMsgType(IPCTNL_MSG_CT_GET); // => 0x101
 * ```
 */
export function ctMsgType(msg: number): number {
  return (NFNL_SUBSYS_CTNETLINK << 8) | msg;
}

/** nfnetlink multicast groups of conntrack events (`enum nfnetlink_groups`). */
export const NFNLGRP_CONNTRACK_NEW = 1;
export const NFNLGRP_CONNTRACK_UPDATE = 2;
export const NFNLGRP_CONNTRACK_DESTROY = 3;

/** Top-level conntrack attributes (`enum ctattr_type`). */
export const CTA_TUPLE_ORIG = 1;
export const CTA_TUPLE_REPLY = 2;
export const CTA_STATUS = 3;
export const CTA_PROTOINFO = 4;
export const CTA_TIMEOUT = 7;
export const CTA_MARK = 8;
export const CTA_ID = 12;
export const CTA_ZONE = 18;
export const CTA_FILTER = 25;
export const CTA_STATUS_MASK = 26;

/** `enum ctattr_tuple`. */
export const CTA_TUPLE_IP = 1;
export const CTA_TUPLE_PROTO = 2;
export const CTA_TUPLE_ZONE = 3;
/** `enum ctattr_ip`. */
export const CTA_IP_V4_SRC = 1;
export const CTA_IP_V4_DST = 2;
export const CTA_IP_V6_SRC = 3;
export const CTA_IP_V6_DST = 4;
/** `enum ctattr_l4proto`. */
export const CTA_PROTO_NUM = 1;
export const CTA_PROTO_SRC_PORT = 2;
export const CTA_PROTO_DST_PORT = 3;
/** `enum ctattr_protoinfo` / `enum ctattr_protoinfo_tcp`. */
export const CTA_PROTOINFO_TCP = 1;
export const CTA_PROTOINFO_TCP_STATE = 1;
/** `enum ctattr_filter`, and the kernel's `CTA_FILTER_F_CTA_PROTO_NUM` bit. */
export const CTA_FILTER_ORIG_FLAGS = 1;
export const CTA_FILTER_F_PROTO_NUM = 1 << 3;

/** `enum ip_conntrack_status` bits used here. */
export const IPS_EXPECTED = 1 << 0;
export const IPS_SEEN_REPLY = 1 << 1;
export const IPS_ASSURED = 1 << 2;
export const IPS_CONFIRMED = 1 << 3;
/** The destination was (to be) translated: set by DNAT/REDIRECT rules and `conntrack --dst-nat`. */
export const IPS_DST_NAT = 1 << 5;
export const IPS_TEMPLATE = 1 << 11;

/** `enum tcp_conntrack` (the values `CTA_PROTOINFO_TCP_STATE` carries). */
export const TCP_CONNTRACK_NONE = 0;
export const TCP_CONNTRACK_SYN_SENT = 1;
export const TCP_CONNTRACK_SYN_RECV = 2;
export const TCP_CONNTRACK_ESTABLISHED = 3;
export const TCP_CONNTRACK_FIN_WAIT = 4;
export const TCP_CONNTRACK_CLOSE_WAIT = 5;
export const TCP_CONNTRACK_LAST_ACK = 6;
export const TCP_CONNTRACK_TIME_WAIT = 7;
export const TCP_CONNTRACK_CLOSE = 8;

/**
 * `nfgen_family` for a tuple family.
 *
 * @example
 * ```ts
 * import { familyNumber } from "./ctnetlink.ts";
 * familyNumber("ipv6"); // => 10
 * ```
 */
export function familyNumber(family: Family): number {
  return family === "ipv6" ? AF_INET6 : AF_INET;
}

/**
 * Writes a `CTA_TUPLE_ORIG`/`CTA_TUPLE_REPLY` nest for a TCP (or `proto`)
 * tuple into the open message. The tuple was checked by `parseTuple`, so
 * nothing is checked here.
 *
 * @example
 * ```ts
 * import { MessageBuilder } from "./builder.ts";
 * import { appendTuple, CTA_TUPLE_ORIG, ctMsgType, IPCTNL_MSG_CT_GET } from "./ctnetlink.ts";
 * import { NLM_F_REQUEST } from "./message.ts";
 * const b = new MessageBuilder();
 * b.beginMessage(ctMsgType(IPCTNL_MSG_CT_GET), NLM_F_REQUEST, 1, 2);
 * appendTuple(b, CTA_TUPLE_ORIG, { family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80 });
 * b.endMessage();
 * ```
 */
export function appendTuple(
  b: MessageBuilder,
  attr: number,
  t: Pick<ParsedTuple, "family" | "src" | "dst" | "sport" | "dport">,
  proto: number = IPPROTO_TCP,
): void {
  const src = addressBytes(t.family, t.src)!;
  const dst = addressBytes(t.family, t.dst)!;
  b.beginNest(attr);
  b.beginNest(CTA_TUPLE_IP);
  b.raw(t.family === "ipv6" ? CTA_IP_V6_SRC : CTA_IP_V4_SRC, src);
  b.raw(t.family === "ipv6" ? CTA_IP_V6_DST : CTA_IP_V4_DST, dst);
  b.endNest();
  b.beginNest(CTA_TUPLE_PROTO);
  b.u8(CTA_PROTO_NUM, proto);
  b.be16(CTA_PROTO_SRC_PORT, t.sport);
  b.be16(CTA_PROTO_DST_PORT, t.dport);
  b.endNest();
  b.endNest();
}

/**
 * What a dump request asks the kernel to filter on.
 *
 * @example
 * ```ts
 * import { type DumpFilter, IPPROTO_TCP, IPS_SEEN_REPLY } from "./ctnetlink.ts";
 * const unrepliedTcp: DumpFilter = { protoNum: IPPROTO_TCP, status: { value: 0, mask: IPS_SEEN_REPLY } };
 * ```
 */
export interface DumpFilter {
  /** Only entries with this layer-4 protocol (`CTA_FILTER` + `CTA_TUPLE_ORIG`); needs a family. */
  protoNum?: number;
  /** Only entries with `(status & mask) === value` (`CTA_STATUS` + `CTA_STATUS_MASK`). */
  status?: { value: number; mask: number };
}

/**
 * Appends an `IPCTNL_MSG_CT_GET` dump request (`NLM_F_DUMP`).
 *
 * @example
 * ```ts
 * import { MessageBuilder } from "./builder.ts";
 * import { AF_INET, appendDumpRequest, IPPROTO_TCP, IPS_SEEN_REPLY } from "./ctnetlink.ts";
 * const b = new MessageBuilder();
 * appendDumpRequest(b, 7, AF_INET, {
 *   protoNum: IPPROTO_TCP,
 *   status: { value: 0, mask: IPS_SEEN_REPLY },
 * });
 * ```
 */
export function appendDumpRequest(
  b: MessageBuilder,
  seq: number,
  family: number,
  filter: DumpFilter = {},
): void {
  b.beginMessage(ctMsgType(IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_DUMP, seq, family);
  if (filter.protoNum !== undefined) {
    b.beginNest(CTA_TUPLE_ORIG);
    b.beginNest(CTA_TUPLE_PROTO);
    b.u8(CTA_PROTO_NUM, filter.protoNum);
    b.endNest();
    b.endNest();
    b.beginNest(CTA_FILTER);
    b.u32(CTA_FILTER_ORIG_FLAGS, CTA_FILTER_F_PROTO_NUM);
    b.endNest();
  }
  if (filter.status) {
    b.be32(CTA_STATUS, filter.status.value);
    b.be32(CTA_STATUS_MASK, filter.status.mask);
  }
  b.endMessage();
}

/**
 * Appends a non-dump `IPCTNL_MSG_CT_GET` of one TCP tuple in its zone. The
 * kernel answers with one `IPCTNL_MSG_CT_NEW` message or an `NLMSG_ERROR`.
 *
 * @example
 * ```ts
 * import { MessageBuilder } from "./builder.ts";
 * import { appendGetRequest } from "./ctnetlink.ts";
 * import { parseTuple } from "../model/tuple.ts";
 * const r = parseTuple({ family: "ipv6", src: "2001:db8::1", dst: "2001:db8::2", sport: 40000, dport: 443, zone: 5 });
 * const b = new MessageBuilder();
 * if (r.ok) appendGetRequest(b, 1, r.tuple);
 * ```
 */
export function appendGetRequest(b: MessageBuilder, seq: number, t: ParsedTuple): void {
  b.beginMessage(ctMsgType(IPCTNL_MSG_CT_GET), NLM_F_REQUEST, seq, familyNumber(t.family));
  appendTuple(b, CTA_TUPLE_ORIG, t);
  b.be16(CTA_ZONE, t.zone);
  b.endMessage();
}

/**
 * Appends an `IPCTNL_MSG_CT_DELETE` of one TCP tuple in its zone, with
 * `NLM_F_ACK`; with `id`, the kernel deletes only the entry with that
 * `CTA_ID` (else `ENOENT`).
 *
 * @example
 * ```ts
 * import { MessageBuilder } from "./builder.ts";
 * import { appendDeleteRequest } from "./ctnetlink.ts";
 * import { parseTuple } from "../model/tuple.ts";
 * const r = parseTuple({ family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, zone: 0 });
 * const b = new MessageBuilder();
 * if (r.ok) appendDeleteRequest(b, 8, r.tuple, 1234);
 * ```
 */
export function appendDeleteRequest(
  b: MessageBuilder,
  seq: number,
  t: ParsedTuple,
  id?: number,
): void {
  b.beginMessage(
    ctMsgType(IPCTNL_MSG_CT_DELETE),
    NLM_F_REQUEST | NLM_F_ACK,
    seq,
    familyNumber(t.family),
  );
  appendTuple(b, CTA_TUPLE_ORIG, t);
  b.be16(CTA_ZONE, t.zone);
  if (id !== undefined) b.be32(CTA_ID, id);
  b.endMessage();
}
