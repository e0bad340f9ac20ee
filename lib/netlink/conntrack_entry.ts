/**
 * Decodes the `IPCTNL_MSG_CT_NEW` messages the kernel sends for a dump or a
 * GET into a {@linkcode ConntrackEntry}: one small function per nested
 * attribute. No I/O. Every length is checked before it is read, so arbitrary
 * bytes give a {@linkcode NetlinkDecodeError}, never an out-of-range read.
 *
 * @module
 */
import { formatAddress } from "../model/addr.ts";
import type { Family, Tuple } from "../model/tuple.ts";
import {
  AF_INET,
  AF_INET6,
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
  IPPROTO_DCCP,
  IPPROTO_SCTP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_UDPLITE,
} from "./ctnetlink.ts";
import { AttrCursor, HOST_LE, NetlinkDecodeError, NFGENMSG_LEN, NLA_F_NESTED } from "./message.ts";

/**
 * A conntrack entry as an `IPCTNL_MSG_CT_NEW` message describes it.
 *
 * @example
 * ```ts
 * import { type ConntrackEntry, decodeConntrack } from "./conntrack_entry.ts";
 * import { parseMessages } from "./message.ts";
 * const bytes = await Deno.readFile("tests/fixtures/netlink/get_reply_ipv4.bin");
 * const e: ConntrackEntry = decodeConntrack(parseMessages(bytes).messages[0]!.payload);
 * e.tcpState; // => 1 (SYN_SENT)
 * ```
 */
export interface ConntrackEntry {
  family: Family;
  /** Layer-4 protocol number of the original tuple. */
  proto: number;
  /** Original-direction addresses (network order, 4 or 16 bytes; views into the message). */
  srcAddr: Uint8Array;
  dstAddr: Uint8Array;
  /** Original-direction ports (TCP/UDP/SCTP/DCCP/UDP-Lite only). */
  sport?: number;
  dport?: number;
  /** The reply tuple's source address and port: where the destination was translated to. */
  replySrcAddr?: Uint8Array;
  replySport?: number;
  /** `CTA_ZONE`, else the original tuple's `CTA_TUPLE_ZONE`, else 0. */
  zone: number;
  /**
   * `CTA_ZONE`, else the reply tuple's `CTA_TUPLE_ZONE`, else 0: differs
   * from `zone` for an entry with a directional zone.
   */
  replyZone: number;
  /** `CTA_STATUS` (`IPS_*` bits). */
  status: number;
  /** `CTA_PROTOINFO_TCP_STATE`, for TCP entries that carry it. */
  tcpState?: number;
  /** `CTA_TIMEOUT`: whole seconds left (absent for offloaded entries). */
  timeout?: number;
  /** `CTA_ID`, read as a big-endian u32 (as `conntrack -o id` prints it). */
  id?: number;
}

const PORT_PROTOS = new Set([
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPPROTO_DCCP,
  IPPROTO_SCTP,
  IPPROTO_UDPLITE,
]);

function need(cond: boolean, what: string): void {
  if (!cond) throw new NetlinkDecodeError(what);
}

/** One `CTA_TUPLE_*` nest, as far as it was there. */
interface DecodedTuple {
  src?: Uint8Array;
  dst?: Uint8Array;
  proto?: number;
  sport?: number;
  dport?: number;
  zone?: number;
}

/** The top-level attributes of one message, as far as they were there. */
interface Decoded {
  orig?: DecodedTuple;
  reply?: DecodedTuple;
  zone?: number;
  status?: number;
  tcpState?: number | undefined;
  timeout?: number;
  id?: number;
}

/** A big-endian u32 attribute of exactly 4 bytes. */
function be32(c: AttrCursor, view: DataView, name: string): number {
  need(c.size === 4, `${name} of ${c.size} bytes`);
  return view.getUint32(c.start, false);
}

/** A big-endian u16 attribute of exactly 2 bytes. */
function be16(c: AttrCursor, view: DataView, name: string): number {
  need(c.size === 2, `${name} of ${c.size} bytes`);
  return view.getUint16(c.start, false);
}

/** Decodes a `CTA_TUPLE_ORIG`/`CTA_TUPLE_REPLY` nest of an entry of family `fam`. */
function decodeTuple(t: AttrCursor, view: DataView, fam: number): DecodedTuple {
  const out: DecodedTuple = {};
  while (t.next()) {
    if (t.type === CTA_TUPLE_IP) decodeTupleIp(t.nested("CTA_TUPLE_IP"), view, fam, out);
    else if (t.type === CTA_TUPLE_PROTO) decodeTupleProto(t.nested("CTA_TUPLE_PROTO"), view, out);
    else if (t.type === CTA_TUPLE_ZONE) out.zone = be16(t, view, "CTA_TUPLE_ZONE");
  }
  return out;
}

/** `CTA_TUPLE_IP`: the two addresses, which must match the message's family. */
function decodeTupleIp(ip: AttrCursor, view: DataView, fam: number, out: DecodedTuple): void {
  const addrLen = fam === AF_INET ? 4 : 16;
  while (ip.next()) {
    const v4 = ip.type === CTA_IP_V4_SRC || ip.type === CTA_IP_V4_DST;
    const v6 = ip.type === CTA_IP_V6_SRC || ip.type === CTA_IP_V6_DST;
    if (!v4 && !v6) continue;
    need(
      v4 === (fam === AF_INET),
      `${fam === AF_INET ? "ipv4" : "ipv6"} entry with a ${v4 ? "v4" : "v6"} address`,
    );
    need(ip.size === addrLen, `address attribute of ${ip.size} bytes`);
    const bytes = new Uint8Array(view.buffer, view.byteOffset + ip.start, addrLen);
    if (ip.type === CTA_IP_V4_SRC || ip.type === CTA_IP_V6_SRC) out.src = bytes;
    else out.dst = bytes;
  }
}

/** `CTA_TUPLE_PROTO`: the protocol number and the ports. */
function decodeTupleProto(pr: AttrCursor, view: DataView, out: DecodedTuple): void {
  while (pr.next()) {
    if (pr.type === CTA_PROTO_NUM) {
      need(pr.size === 1, `CTA_PROTO_NUM of ${pr.size} bytes`);
      out.proto = view.getUint8(pr.start);
    } else if (pr.type === CTA_PROTO_SRC_PORT) {
      out.sport = be16(pr, view, "port attribute");
    } else if (pr.type === CTA_PROTO_DST_PORT) {
      out.dport = be16(pr, view, "port attribute");
    }
  }
}

/** `CTA_PROTOINFO`: the TCP state inside `CTA_PROTOINFO_TCP`, if there is one. */
function decodeProtoinfo(pi: AttrCursor, view: DataView): number | undefined {
  let state: number | undefined;
  while (pi.next()) {
    if (pi.type === CTA_PROTOINFO_TCP) {
      state = decodeProtoinfoTcp(pi.nested("CTA_PROTOINFO_TCP"), view);
    }
  }
  return state;
}

/** `CTA_PROTOINFO_TCP`: `CTA_PROTOINFO_TCP_STATE`. */
function decodeProtoinfoTcp(tcp: AttrCursor, view: DataView): number | undefined {
  let state: number | undefined;
  while (tcp.next()) {
    if (tcp.type === CTA_PROTOINFO_TCP_STATE) {
      need(tcp.size === 1, `CTA_PROTOINFO_TCP_STATE of ${tcp.size} bytes`);
      state = view.getUint8(tcp.start);
    }
  }
  return state;
}

/**
 * An attribute the agent does not read: skipped, but a nest is still walked,
 * so a nest that lies about its children's lengths is rejected too.
 */
function skipAttribute(top: AttrCursor, view: DataView): void {
  const raw = view.getUint16(top.start - 2, HOST_LE);
  if (raw & NLA_F_NESTED) {
    const n = top.nested("nested attribute");
    while (n.next()) { /* bounds only */ }
  }
}

/** Reads one top-level attribute into `d`. */
function decodeTop(top: AttrCursor, view: DataView, fam: number, d: Decoded): void {
  switch (top.type) {
    case CTA_TUPLE_ORIG:
      d.orig = decodeTuple(top.nested("CTA_TUPLE_ORIG"), view, fam);
      break;
    case CTA_TUPLE_REPLY:
      d.reply = decodeTuple(top.nested("CTA_TUPLE_REPLY"), view, fam);
      break;
    case CTA_STATUS:
      d.status = be32(top, view, "CTA_STATUS");
      break;
    case CTA_TIMEOUT:
      d.timeout = be32(top, view, "CTA_TIMEOUT");
      break;
    case CTA_ID:
      d.id = be32(top, view, "CTA_ID");
      break;
    case CTA_ZONE:
      d.zone = be16(top, view, "CTA_ZONE");
      break;
    case CTA_PROTOINFO:
      d.tcpState = decodeProtoinfo(top.nested("CTA_PROTOINFO"), view) ?? d.tcpState;
      break;
    default:
      skipAttribute(top, view);
  }
}

/**
 * Decodes the payload (after `nlmsghdr`) of a ctnetlink `IPCTNL_MSG_CT_NEW`
 * message, as sent for a dump or a GET. Throws
 * {@linkcode NetlinkDecodeError} for anything malformed: bad attribute
 * lengths, a fixed-size attribute of the wrong size, an address that does
 * not match `nfgen_family`, or a missing original tuple or status.
 *
 * @example
 * ```ts
 * import { decodeConntrack, entryTuple } from "./conntrack_entry.ts";
 * import { parseMessages } from "./message.ts";
 * const bytes = await Deno.readFile("tests/fixtures/netlink/get_reply_ipv4.bin");
 * const entry = decodeConntrack(parseMessages(bytes).messages[0]!.payload);
 * entryTuple(entry).src; // => "10.10.0.1"
 * ```
 */
export function decodeConntrack(payload: Uint8Array): ConntrackEntry {
  need(payload.length >= NFGENMSG_LEN, `ctnetlink payload of ${payload.length} bytes`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const fam = view.getUint8(0);
  need(fam === AF_INET || fam === AF_INET6, `nfgen_family ${fam} is neither AF_INET nor AF_INET6`);
  const d: Decoded = {};
  const top = new AttrCursor(view, NFGENMSG_LEN, payload.length, "ctnetlink");
  while (top.next()) decodeTop(top, view, fam, d);
  return toEntry(fam === AF_INET ? "ipv4" : "ipv6", d);
}

/** Checks that what every entry needs is there, and assembles it. */
function toEntry(family: Family, d: Decoded): ConntrackEntry {
  const { orig, reply } = d;
  need(orig?.src !== undefined && orig.dst !== undefined, "no original addresses");
  const proto = orig!.proto;
  need(proto !== undefined, "no CTA_PROTO_NUM in the original tuple");
  need(d.status !== undefined, "no CTA_STATUS");
  const ports = PORT_PROTOS.has(proto!);
  if (ports) need(orig!.sport !== undefined && orig!.dport !== undefined, "no ports");
  const entry: ConntrackEntry = {
    family,
    proto: proto!,
    srcAddr: orig!.src!,
    dstAddr: orig!.dst!,
    zone: d.zone ?? orig!.zone ?? 0,
    replyZone: d.zone ?? reply?.zone ?? 0,
    status: d.status!,
  };
  if (orig!.sport !== undefined) entry.sport = orig!.sport;
  if (orig!.dport !== undefined) entry.dport = orig!.dport;
  if (reply?.src !== undefined) entry.replySrcAddr = reply.src;
  if (ports && reply?.sport !== undefined) entry.replySport = reply.sport;
  if (d.tcpState !== undefined) entry.tcpState = d.tcpState;
  if (d.timeout !== undefined) entry.timeout = d.timeout;
  if (d.id !== undefined) entry.id = d.id;
  return entry;
}

/**
 * The agent's {@linkcode Tuple} (canonical address text) of a decoded entry.
 * Ports default to 0 for protocols without them.
 *
 * @example
 * ```ts
 * import { entryTuple } from "./conntrack_entry.ts";
 * entryTuple({
 *   family: "ipv4", proto: 6, srcAddr: new Uint8Array([10, 0, 0, 1]), dstAddr: new Uint8Array([10, 0, 0, 2]),
 *   sport: 40000, dport: 80, zone: 0, replyZone: 0, status: 8,
 * }); // => { family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, zone: 0 }
 * ```
 */
export function entryTuple(e: ConntrackEntry): Tuple {
  return {
    family: e.family,
    src: formatAddress(e.srcAddr),
    dst: formatAddress(e.dstAddr),
    sport: e.sport ?? 0,
    dport: e.dport ?? 0,
    zone: e.zone,
  };
}
