/**
 * Netlink framing, the layer below ctnetlink: the `nlmsghdr` header and its
 * flags, the `nfgenmsg` header every nfnetlink message starts with, `nlattr`
 * attributes, splitting a datagram into messages, and `NLMSG_ERROR` /
 * `NLMSG_DONE`. No I/O. Layouts and constants are those of the Linux UAPI
 * headers (`linux/netlink.h`, `linux/netfilter/nfnetlink.h`); header fields
 * are in host byte order.
 *
 * Every decoder checks each length before it reads, so arbitrary bytes give a
 * {@linkcode NetlinkDecodeError} (or an `error` field), never an out-of-range
 * read or another exception.
 *
 * @module
 */

/** `AF_NETLINK`. */
export const AF_NETLINK = 16;
/** `NETLINK_NETFILTER`, the netlink protocol of nfnetlink. */
export const NETLINK_NETFILTER = 12;

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

/** True on little-endian hosts; netlink headers are in host byte order. */
export const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** `NLMSG_ALIGN`/`NLA_ALIGN`: rounds a length up to 4 bytes. */
export const align4 = (n: number): number => (n + 3) & ~3;

// ---------------------------------------------------------------------------
// Errors

/**
 * Bytes that are not a well-formed netlink/ctnetlink message. Thrown by the
 * decoders only; callers count it as one malformed message and go on.
 *
 * @example
 * ```ts
 * import { AttrCursor, NetlinkDecodeError } from "./message.ts";
 * const bytes = new Uint8Array([9, 0, 1, 0]); // an attribute of 9 bytes in 4
 * try {
 *   new AttrCursor(new DataView(bytes.buffer), 0, bytes.length, "example").next();
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
 * import { parseMessages } from "./message.ts";
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
 * import { parseMessages } from "./message.ts";
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
 * import { decodeError, type NetlinkErrorInfo } from "./message.ts";
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
 * import { decodeError } from "./message.ts";
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
 * import { decodeDone, NLMSG_DONE } from "./message.ts";
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
 * import { AttrCursor } from "./message.ts";
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
