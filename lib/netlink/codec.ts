/**
 * Pure encoder and decoder for the ctnetlink messages the agent uses:
 * `nlmsghdr` framing, the `nfgenmsg` header and `nlattr` attributes. No I/O.
 *
 * Layouts and constants are those of the Linux UAPI headers
 * (`linux/netlink.h`, `linux/netfilter/nfnetlink.h`,
 * `linux/netfilter/nfnetlink_conntrack.h`, `nf_conntrack_common.h`). Header
 * fields are in host byte order; ctnetlink attribute values are big-endian,
 * except `CTA_FILTER_ORIG_FLAGS`, which the kernel reads as a host-order u32.
 *
 * Every decoder checks each length before it reads, so arbitrary bytes give a
 * {@linkcode NetlinkDecodeError} (or an `error` field), never an out-of-range
 * read or another exception.
 *
 * @module
 */
import type { Family, Tuple } from "../entry.ts";
import { formatIPv6, parseIPv4, parseIPv6 } from "../addr.ts";

// ---------------------------------------------------------------------------
// Constants

/** `AF_NETLINK`. */
export const AF_NETLINK = 16;
/** `NETLINK_NETFILTER`, the netlink protocol of nfnetlink. */
export const NETLINK_NETFILTER = 12;
/** Address families as `nfgen_family` spells them. */
export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;
/** Layer-4 protocol numbers. */
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** Size of `struct nlmsghdr`. */
export const NLMSG_HDRLEN = 16;
/** Size of `struct nfgenmsg`. */
export const NFGENMSG_LEN = 4;
/** Size of `struct nlattr`. */
export const NLA_HDRLEN = 4;

/** Control message types (`nlmsg_type` below `NLMSG_MIN_TYPE`). */
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

/** `nlmsg_flags` bits. */
export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP_FILTERED = 0x20;
export const NLM_F_DUMP = 0x300;
export const NLM_F_CREATE = 0x400;
export const NLM_F_EXCL = 0x200;
/** On `NLMSG_ERROR`: the echoed request was cut to its header. */
export const NLM_F_CAPPED = 0x100;
/** On `NLMSG_ERROR`/`NLMSG_DONE`: extended-ACK attributes follow. */
export const NLM_F_ACK_TLVS = 0x200;
/** Extended-ACK attribute: the kernel's error string. */
export const NLMSGERR_ATTR_MSG = 1;

/** `nlattr` flag bits and the mask that leaves the type. */
export const NLA_F_NESTED = 0x8000;
export const NLA_TYPE_MASK = 0x3fff;

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
 * import { ctMsgType, IPCTNL_MSG_CT_GET } from "./codec.ts";
 * ctMsgType(IPCTNL_MSG_CT_GET); // => 0x101
 * ```
 */
export function ctMsgType(msg: number): number {
  return (NFNL_SUBSYS_CTNETLINK << 8) | msg;
}

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

/** True on little-endian hosts; netlink headers are in host byte order. */
export const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const align4 = (n: number) => (n + 3) & ~3;

// ---------------------------------------------------------------------------
// Errors

/**
 * Bytes that are not a well-formed netlink/ctnetlink message. Thrown by the
 * decoders only; callers count it as one malformed message and go on.
 *
 * @example
 * ```ts
 * import { decodeConntrack, NetlinkDecodeError } from "./codec.ts";
 * try {
 *   decodeConntrack(new Uint8Array([2, 0]));
 * } catch (e) {
 *   e instanceof NetlinkDecodeError; // => true
 * }
 * ```
 */
export class NetlinkDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetlinkDecodeError";
  }
}

// ---------------------------------------------------------------------------
// Encoding

/**
 * Appends netlink messages with nfgenmsg headers and (nested) attributes to
 * one growing buffer. Several messages in one buffer go to the kernel in one
 * `sendto(2)`, which processes them in order.
 *
 * @example
 * ```ts
 * import { CTA_STATUS, ctMsgType, IPCTNL_MSG_CT_GET, MessageBuilder, NLM_F_REQUEST } from "./codec.ts";
 * const b = new MessageBuilder();
 * b.beginMessage(ctMsgType(IPCTNL_MSG_CT_GET), NLM_F_REQUEST, 1, 2);
 * b.be32(CTA_STATUS, 0);
 * b.endMessage();
 * b.bytes().length; // => 28
 * ```
 */
export class MessageBuilder {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;
  #msgStart = -1;
  #nests: number[] = [];

  constructor(capacity = 256) {
    this.#buf = new Uint8Array(Math.max(64, capacity));
    this.#view = new DataView(this.#buf.buffer);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.#len;
  }

  #reserve(n: number): number {
    const at = this.#len;
    const need = at + align4(n);
    if (need > this.#buf.length) {
      let cap = this.#buf.length * 2;
      while (cap < need) cap *= 2;
      const next = new Uint8Array(cap);
      next.set(this.#buf.subarray(0, this.#len));
      this.#buf = next;
      this.#view = new DataView(next.buffer);
    }
    // Zero the padding so the output never carries stale bytes.
    this.#buf.fill(0, at, need);
    this.#len = need;
    return at;
  }

  /** Starts a message: `nlmsghdr` (length patched by {@linkcode endMessage}) and `nfgenmsg`. */
  beginMessage(type: number, flags: number, seq: number, family: number): void {
    if (this.#msgStart !== -1) throw new Error("MessageBuilder: message already open");
    const at = this.#reserve(NLMSG_HDRLEN + NFGENMSG_LEN);
    this.#msgStart = at;
    const v = this.#view;
    v.setUint32(at, 0, HOST_LE);
    v.setUint16(at + 4, type, HOST_LE);
    v.setUint16(at + 6, flags, HOST_LE);
    v.setUint32(at + 8, seq >>> 0, HOST_LE);
    v.setUint32(at + 12, 0, HOST_LE);
    v.setUint8(at + 16, family);
    v.setUint8(at + 17, 0); // NFNETLINK_V0
    v.setUint16(at + 18, 0, false); // res_id
  }

  /** Closes the open message and writes its length. */
  endMessage(): void {
    if (this.#msgStart === -1 || this.#nests.length) {
      throw new Error("MessageBuilder: no message open, or a nest is still open");
    }
    this.#view.setUint32(this.#msgStart, this.#len - this.#msgStart, HOST_LE);
    this.#msgStart = -1;
  }

  #attr(type: number, size: number): number {
    if (this.#msgStart === -1) throw new Error("MessageBuilder: attribute outside a message");
    const at = this.#reserve(NLA_HDRLEN + size);
    this.#view.setUint16(at, NLA_HDRLEN + size, HOST_LE);
    this.#view.setUint16(at + 2, type, HOST_LE);
    return at + NLA_HDRLEN;
  }

  /** A one-byte attribute. */
  u8(type: number, value: number): void {
    const at = this.#attr(type, 1); // may grow the buffer: take the offset first
    this.#view.setUint8(at, value);
  }

  /** A big-endian 16-bit attribute. */
  be16(type: number, value: number): void {
    const at = this.#attr(type, 2);
    this.#view.setUint16(at, value, false);
  }

  /** A big-endian 32-bit attribute. */
  be32(type: number, value: number): void {
    const at = this.#attr(type, 4);
    this.#view.setUint32(at, value >>> 0, false);
  }

  /** A host-order 32-bit attribute (`NLA_U32` read with `nla_get_u32`). */
  u32(type: number, value: number): void {
    const at = this.#attr(type, 4);
    this.#view.setUint32(at, value >>> 0, HOST_LE);
  }

  /** An attribute with raw bytes. */
  raw(type: number, data: Uint8Array): void {
    const at = this.#attr(type, data.length);
    this.#buf.set(data, at);
  }

  /** Opens a nested attribute (`NLA_F_NESTED` set); close it with {@linkcode endNest}. */
  beginNest(type: number): void {
    this.#nests.push(this.#attr(type | NLA_F_NESTED, 0) - NLA_HDRLEN);
  }

  /** Closes the innermost nested attribute. */
  endNest(): void {
    const at = this.#nests.pop();
    if (at === undefined) throw new Error("MessageBuilder: no nest open");
    this.#view.setUint16(at, this.#len - at, HOST_LE);
  }

  /** A copy of everything written. */
  bytes(): Uint8Array {
    return this.#buf.slice(0, this.#len);
  }

  /** Forgets everything written, keeping the buffer. */
  reset(): void {
    this.#len = 0;
    this.#msgStart = -1;
    this.#nests.length = 0;
  }
}

/**
 * The 4 or 16 network-order bytes of a textual address of `family`, or
 * `undefined` when the text is not a valid address of that family.
 *
 * @example
 * ```ts
 * import { addressBytes } from "./codec.ts";
 * addressBytes("ipv4", "10.0.0.1"); // => Uint8Array [10, 0, 0, 1]
 * addressBytes("ipv4", "::1"); // => undefined
 * ```
 */
export function addressBytes(family: Family, text: string): Uint8Array | undefined {
  if (family === "ipv4") {
    const octets = parseIPv4(text);
    return octets === undefined ? undefined : new Uint8Array(octets);
  }
  if (family !== "ipv6" || text.includes(".") && !text.includes(":")) return undefined;
  const groups = parseIPv6(text);
  if (groups === undefined) return undefined;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i]! >> 8;
    out[2 * i + 1] = groups[i]! & 0xff;
  }
  return out;
}

/**
 * Canonical text of a 4-byte (dotted quad) or 16-byte (RFC 5952) address.
 *
 * @example
 * ```ts
 * import { formatAddress } from "./codec.ts";
 * formatAddress(new Uint8Array([10, 0, 0, 1])); // => "10.0.0.1"
 * ```
 */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new RangeError(`address of ${bytes.length} bytes`);
  const groups = new Array<number>(8);
  for (let i = 0; i < 8; i++) groups[i] = (bytes[2 * i]! << 8) | bytes[2 * i + 1]!;
  return formatIPv6(groups);
}

/**
 * `nfgen_family` for a tuple family.
 *
 * @example
 * ```ts
 * import { familyNumber } from "./codec.ts";
 * familyNumber("ipv6"); // => 10
 * ```
 */
export function familyNumber(family: Family): number {
  return family === "ipv6" ? AF_INET6 : AF_INET;
}

/**
 * Checks a tuple's fields; returns why it cannot be encoded, or `undefined`.
 *
 * @example
 * ```ts
 * import { tupleProblem } from "./codec.ts";
 * tupleProblem({ family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 70000, dport: 80, zone: 0 });
 * // => "bad sport 70000"
 * ```
 */
export function tupleProblem(t: Tuple): string | undefined {
  if (t.family !== "ipv4" && t.family !== "ipv6") return `bad family ${JSON.stringify(t.family)}`;
  if (addressBytes(t.family, t.src) === undefined) {
    return `bad ${t.family} src ${JSON.stringify(t.src)}`;
  }
  if (addressBytes(t.family, t.dst) === undefined) {
    return `bad ${t.family} dst ${JSON.stringify(t.dst)}`;
  }
  for (const [k, v] of [["sport", t.sport], ["dport", t.dport], ["zone", t.zone]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffff) return `bad ${k} ${JSON.stringify(v)}`;
  }
  return undefined;
}

/**
 * Writes a `CTA_TUPLE_ORIG`/`CTA_TUPLE_REPLY` nest for a TCP (or `proto`)
 * tuple into the open message. Throws on an invalid tuple.
 *
 * @example
 * ```ts
 * import { appendTuple, CTA_TUPLE_ORIG, ctMsgType, IPCTNL_MSG_CT_GET, MessageBuilder, NLM_F_REQUEST } from "./codec.ts";
 * const b = new MessageBuilder();
 * b.beginMessage(ctMsgType(IPCTNL_MSG_CT_GET), NLM_F_REQUEST, 1, 2);
 * appendTuple(b, CTA_TUPLE_ORIG, { family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80 });
 * b.endMessage();
 * ```
 */
export function appendTuple(
  b: MessageBuilder,
  attr: number,
  t: Pick<Tuple, "family" | "src" | "dst" | "sport" | "dport">,
  proto = IPPROTO_TCP,
): void {
  const src = addressBytes(t.family, t.src);
  const dst = addressBytes(t.family, t.dst);
  if (!src || !dst) throw new RangeError(`invalid ${t.family} address in tuple`);
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
 * import { IPPROTO_TCP, IPS_SEEN_REPLY, type DumpFilter } from "./codec.ts";
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
 * import { AF_INET, appendDumpRequest, IPPROTO_TCP, IPS_SEEN_REPLY, MessageBuilder } from "./codec.ts";
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
 * import { appendGetRequest, MessageBuilder } from "./codec.ts";
 * const b = new MessageBuilder();
 * appendGetRequest(b, 1, { family: "ipv6", src: "2001:db8::1", dst: "2001:db8::2", sport: 40000, dport: 443, zone: 5 });
 * ```
 */
export function appendGetRequest(b: MessageBuilder, seq: number, t: Tuple): void {
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
 * import { appendDeleteRequest, MessageBuilder } from "./codec.ts";
 * const b = new MessageBuilder();
 * appendDeleteRequest(b, 8, {
 *   family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, zone: 0,
 * }, 1234);
 * ```
 */
export function appendDeleteRequest(b: MessageBuilder, seq: number, t: Tuple, id?: number): void {
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

// ---------------------------------------------------------------------------
// Decoding

/** One netlink message as framed in a datagram; `payload` is a view, not a copy. */
export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** The bytes after the 16-byte header, up to `nlmsg_len`. */
  payload: Uint8Array;
}

/**
 * The messages of one datagram, and why framing stopped early, if it did.
 *
 * @example
 * ```ts
 * import { parseMessages } from "./codec.ts";
 * const { messages, error } = parseMessages(new Uint8Array(0));
 * messages.length; // => 0
 * error; // => undefined
 * ```
 */
export interface ParsedMessages {
  messages: NetlinkMessage[];
  /** Set when the rest of the buffer could not be framed (bad `nlmsg_len`). */
  error?: string;
}

/**
 * Splits a received datagram into netlink messages. A length below the
 * header size or beyond the buffer stops framing: the messages before it are
 * returned and `error` says why the rest was dropped.
 *
 * @example
 * ```ts
 * import { parseMessages } from "./codec.ts";
 * parseMessages(new Uint8Array(3)).error; // => "3 trailing bytes, fewer than a netlink header"
 * ```
 */
export function parseMessages(buf: Uint8Array): ParsedMessages {
  const messages: NetlinkMessage[] = [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = 0;
  while (off < buf.length) {
    const rem = buf.length - off;
    if (rem < NLMSG_HDRLEN) {
      return { messages, error: `${rem} trailing bytes, fewer than a netlink header` };
    }
    const len = view.getUint32(off, HOST_LE);
    if (len < NLMSG_HDRLEN) {
      return { messages, error: `nlmsg_len ${len} at offset ${off} is below the header size` };
    }
    if (len > rem) {
      return {
        messages,
        error: `nlmsg_len ${len} at offset ${off} runs past the ${rem} bytes left`,
      };
    }
    messages.push({
      type: view.getUint16(off + 4, HOST_LE),
      flags: view.getUint16(off + 6, HOST_LE),
      seq: view.getUint32(off + 8, HOST_LE),
      pid: view.getUint32(off + 12, HOST_LE),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += align4(len);
  }
  return { messages };
}

/**
 * What an `NLMSG_ERROR` (or an errno-carrying `NLMSG_DONE`) says.
 *
 * @example
 * ```ts
 * import { decodeError, type NetlinkErrorInfo } from "./codec.ts";
 * const info: NetlinkErrorInfo = decodeError({ type: 2, flags: 0, seq: 1, pid: 0, payload: new Uint8Array(4) });
 * info.errno; // => 0 (an ACK)
 * ```
 */
export interface NetlinkErrorInfo {
  /** Positive errno, or 0 for an acknowledgement. */
  errno: number;
  /** The kernel's extended-ACK text, when it sent one. */
  message?: string;
  /** Sequence number of the request that the error answers (from the echoed header). */
  requestSeq?: number;
}

/**
 * Decodes the payload of an `NLMSG_ERROR`: `int error` (0 or a negative
 * errno), the echoed request header, then extended-ACK attributes when
 * `NLM_F_ACK_TLVS` is set. Throws {@linkcode NetlinkDecodeError} when the
 * errno itself cannot be read; a broken extended ACK is ignored.
 *
 * @example
 * ```ts
 * import { decodeError } from "./codec.ts";
 * decodeError({ type: 2, flags: 0, seq: 1, pid: 0, payload: new Uint8Array([254, 255, 255, 255]) });
 * // => { errno: 2 }
 * ```
 */
export function decodeError(msg: NetlinkMessage): NetlinkErrorInfo {
  const p = msg.payload;
  if (p.length < 4) throw new NetlinkDecodeError(`NLMSG_ERROR payload of ${p.length} bytes`);
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const error = view.getInt32(0, HOST_LE);
  if (error > 0) throw new NetlinkDecodeError(`NLMSG_ERROR with positive error ${error}`);
  const info: NetlinkErrorInfo = { errno: error === 0 ? 0 : -error };
  if (p.length >= 4 + NLMSG_HDRLEN) {
    info.requestSeq = view.getUint32(4 + 8, HOST_LE);
    if (msg.flags & NLM_F_ACK_TLVS) {
      const echoed = msg.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : view.getUint32(4, HOST_LE);
      const text = extAckMessage(p, 4 + align4(Math.max(NLMSG_HDRLEN, echoed)));
      if (text !== undefined) info.message = text;
    }
  }
  return info;
}

/**
 * The errno an `NLMSG_DONE` carries (0 for a clean end); its payload is an
 * `int`, optionally followed by extended-ACK attributes.
 *
 * @example
 * ```ts
 * import { decodeDone, NLMSG_DONE } from "./codec.ts";
 * decodeDone({ type: NLMSG_DONE, flags: 2, seq: 1, pid: 0, payload: new Uint8Array(4) }).errno; // => 0
 * ```
 */
export function decodeDone(msg: NetlinkMessage): NetlinkErrorInfo {
  const p = msg.payload;
  if (p.length < 4) return { errno: 0 };
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const v = view.getInt32(0, HOST_LE);
  const info: NetlinkErrorInfo = { errno: v < 0 ? -v : 0 };
  if (msg.flags & NLM_F_ACK_TLVS) {
    const text = extAckMessage(p, 4);
    if (text !== undefined) info.message = text;
  }
  return info;
}

/** `NLMSGERR_ATTR_MSG` from the attributes at `off`, or `undefined`. */
function extAckMessage(p: Uint8Array, off: number): string | undefined {
  try {
    const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
    const c = new AttrCursor(view, off, p.length, "extended ack");
    while (c.next()) {
      if (c.type === NLMSGERR_ATTR_MSG) {
        let end = c.start + c.size;
        const nul = p.subarray(c.start, end).indexOf(0);
        if (nul !== -1) end = c.start + nul;
        return new TextDecoder().decode(p.subarray(c.start, end));
      }
    }
  } catch {
    // A broken extended ACK does not hide the errno.
  }
  return undefined;
}

/**
 * Walks the attributes in `[off, end)` of a view, checking each header the
 * way the kernel's `nla_ok()` does. `next()` returns false at the end and
 * throws {@linkcode NetlinkDecodeError} on a bad length.
 *
 * @example
 * ```ts
 * import { AttrCursor } from "./codec.ts";
 * const bytes = new Uint8Array([8, 0, 3, 0, 0, 0, 0, 2]); // CTA_STATUS = 2
 * const c = new AttrCursor(new DataView(bytes.buffer), 0, bytes.length, "example");
 * c.next(); // => true
 * [c.type, c.start, c.size]; // => [3, 4, 4]
 * c.next(); // => false
 * ```
 */
export class AttrCursor {
  /** Attribute type without the nested/byte-order flags. */
  type = 0;
  /** Offset of the attribute's data in the view. */
  start = 0;
  /** Length of the data (without header or padding). */
  size = 0;
  #view: DataView;
  #off: number;
  #end: number;
  #where: string;

  constructor(view: DataView, off: number, end: number, where: string) {
    this.#view = view;
    this.#off = off;
    this.#end = end;
    this.#where = where;
  }

  next(): boolean {
    const rem = this.#end - this.#off;
    if (rem <= 0) return false;
    if (rem < NLA_HDRLEN) {
      // Fewer than 4 bytes cannot hold an attribute: the kernel stops here
      // too; anything but zero padding is garbage.
      for (let i = this.#off; i < this.#end; i++) {
        if (this.#view.getUint8(i) !== 0) {
          throw new NetlinkDecodeError(`${this.#where}: ${rem} stray bytes after the attributes`);
        }
      }
      return false;
    }
    const len = this.#view.getUint16(this.#off, HOST_LE);
    if (len < NLA_HDRLEN || len > rem) {
      throw new NetlinkDecodeError(
        `${this.#where}: attribute length ${len} at offset ${this.#off} (${rem} bytes left)`,
      );
    }
    this.type = this.#view.getUint16(this.#off + 2, HOST_LE) & NLA_TYPE_MASK;
    this.start = this.#off + NLA_HDRLEN;
    this.size = len - NLA_HDRLEN;
    this.#off += align4(len);
    return true;
  }

  /** A cursor over the current attribute's data (for nested attributes). */
  nested(where: string): AttrCursor {
    return new AttrCursor(this.#view, this.start, this.start + this.size, where);
  }
}

/**
 * A conntrack entry as an `IPCTNL_MSG_CT_NEW` message describes it.
 *
 * @example
 * ```ts
 * import { decodeConntrack, type ConntrackEntry, parseMessages } from "./codec.ts";
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
  /** `CTA_STATUS` (`IPS_*` bits). */
  status: number;
  /** `CTA_PROTOINFO_TCP_STATE`, for TCP entries that carry it. */
  tcpState?: number;
  /** `CTA_TIMEOUT`: whole seconds left (absent for offloaded entries). */
  timeout?: number;
  /** `CTA_ID`, read as a big-endian u32 (as `conntrack -o id` prints it). */
  id?: number;
}

const PORT_PROTOS = new Set([IPPROTO_TCP, IPPROTO_UDP, 33, 132, 136]);

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

/** Decodes a `CTA_TUPLE_ORIG`/`CTA_TUPLE_REPLY` nest of an entry of family `fam`. */
function decodeTuple(t: AttrCursor, view: DataView, fam: number): DecodedTuple {
  const out: DecodedTuple = {};
  while (t.next()) {
    if (t.type === CTA_TUPLE_IP) decodeTupleIp(t.nested("CTA_TUPLE_IP"), view, fam, out);
    else if (t.type === CTA_TUPLE_PROTO) decodeTupleProto(t.nested("CTA_TUPLE_PROTO"), view, out);
    else if (t.type === CTA_TUPLE_ZONE) {
      need(t.size === 2, `CTA_TUPLE_ZONE of ${t.size} bytes`);
      out.zone = view.getUint16(t.start, false);
    }
  }
  return out;
}

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

function decodeTupleProto(pr: AttrCursor, view: DataView, out: DecodedTuple): void {
  while (pr.next()) {
    if (pr.type === CTA_PROTO_NUM) {
      need(pr.size === 1, `CTA_PROTO_NUM of ${pr.size} bytes`);
      out.proto = view.getUint8(pr.start);
    } else if (pr.type === CTA_PROTO_SRC_PORT || pr.type === CTA_PROTO_DST_PORT) {
      need(pr.size === 2, `port attribute of ${pr.size} bytes`);
      const port = view.getUint16(pr.start, false);
      if (pr.type === CTA_PROTO_SRC_PORT) out.sport = port;
      else out.dport = port;
    }
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
 * import { decodeConntrack, entryTuple, parseMessages } from "./codec.ts";
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
  const family: Family = fam === AF_INET ? "ipv4" : "ipv6";

  let orig: DecodedTuple | undefined;
  let reply: DecodedTuple | undefined;
  let zone: number | undefined;
  let status: number | undefined;
  let tcpState: number | undefined;
  let timeout: number | undefined;
  let id: number | undefined;

  const top = new AttrCursor(view, NFGENMSG_LEN, payload.length, "ctnetlink");
  while (top.next()) {
    switch (top.type) {
      case CTA_TUPLE_ORIG:
        orig = decodeTuple(top.nested("CTA_TUPLE_ORIG"), view, fam);
        break;
      case CTA_TUPLE_REPLY:
        reply = decodeTuple(top.nested("CTA_TUPLE_REPLY"), view, fam);
        break;
      case CTA_STATUS:
        need(top.size === 4, `CTA_STATUS of ${top.size} bytes`);
        status = view.getUint32(top.start, false);
        break;
      case CTA_TIMEOUT:
        need(top.size === 4, `CTA_TIMEOUT of ${top.size} bytes`);
        timeout = view.getUint32(top.start, false);
        break;
      case CTA_ID:
        need(top.size === 4, `CTA_ID of ${top.size} bytes`);
        id = view.getUint32(top.start, false);
        break;
      case CTA_ZONE:
        need(top.size === 2, `CTA_ZONE of ${top.size} bytes`);
        zone = view.getUint16(top.start, false);
        break;
      case CTA_PROTOINFO: {
        const pi = top.nested("CTA_PROTOINFO");
        while (pi.next()) {
          if (pi.type !== CTA_PROTOINFO_TCP) continue;
          const tcp = pi.nested("CTA_PROTOINFO_TCP");
          while (tcp.next()) {
            if (tcp.type === CTA_PROTOINFO_TCP_STATE) {
              need(tcp.size === 1, `CTA_PROTOINFO_TCP_STATE of ${tcp.size} bytes`);
              tcpState = view.getUint8(tcp.start);
            }
          }
        }
        break;
      }
      default: {
        // Other attributes are skipped; their nests are still walked, so a
        // nest that lies about its children's lengths is rejected too.
        const raw = view.getUint16(top.start - 2, HOST_LE);
        if (raw & NLA_F_NESTED) {
          const n = top.nested("nested attribute");
          while (n.next()) { /* bounds only */ }
        }
      }
    }
  }

  need(orig?.src !== undefined && orig.dst !== undefined, "no original addresses");
  const proto = orig!.proto;
  need(proto !== undefined, "no CTA_PROTO_NUM in the original tuple");
  need(status !== undefined, "no CTA_STATUS");
  const ports = PORT_PROTOS.has(proto!);
  if (ports) need(orig!.sport !== undefined && orig!.dport !== undefined, "no ports");
  const entry: ConntrackEntry = {
    family,
    proto: proto!,
    srcAddr: orig!.src!,
    dstAddr: orig!.dst!,
    zone: zone ?? orig!.zone ?? 0,
    status: status!,
  };
  if (orig!.sport !== undefined) entry.sport = orig!.sport;
  if (orig!.dport !== undefined) entry.dport = orig!.dport;
  if (reply?.src !== undefined) entry.replySrcAddr = reply.src;
  if (ports && reply?.sport !== undefined) entry.replySport = reply.sport;
  if (tcpState !== undefined) entry.tcpState = tcpState;
  if (timeout !== undefined) entry.timeout = timeout;
  if (id !== undefined) entry.id = id;
  return entry;
}

/**
 * The agent's {@linkcode Tuple} (canonical address text) of a decoded entry.
 * Ports default to 0 for protocols without them.
 *
 * @example
 * ```ts
 * import { entryTuple } from "./codec.ts";
 * entryTuple({
 *   family: "ipv4", proto: 6, srcAddr: new Uint8Array([10, 0, 0, 1]), dstAddr: new Uint8Array([10, 0, 0, 2]),
 *   sport: 40000, dport: 80, zone: 0, status: 8,
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

/**
 * True when the entry is what the agent hunts: TCP, state `SYN_SENT`, no
 * `IPS_SEEN_REPLY`, and a timeout (offloaded entries carry none).
 *
 * @example
 * ```ts
 * import { isSynSentUnreplied } from "./codec.ts";
 * isSynSentUnreplied({
 *   family: "ipv4", proto: 6, srcAddr: new Uint8Array(4), dstAddr: new Uint8Array(4),
 *   zone: 0, status: 8, tcpState: 1, timeout: 100,
 * }); // => true
 * ```
 */
export function isSynSentUnreplied(e: ConntrackEntry): boolean {
  return e.proto === IPPROTO_TCP && (e.status & IPS_SEEN_REPLY) === 0 &&
    e.tcpState === TCP_CONNTRACK_SYN_SENT && e.timeout !== undefined;
}
