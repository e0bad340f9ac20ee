/**
 * Encodes netlink messages: the `nlmsghdr` and `nfgenmsg` headers and
 * (nested) `nlattr` attributes, into one growing buffer. No I/O.
 *
 * @module
 */
import {
  align4,
  HOST_LE,
  NFGENMSG_LEN,
  NLA_F_NESTED,
  NLA_HDRLEN,
  NLMSG_HDRLEN,
} from "./message.ts";

/**
 * Appends netlink messages with nfgenmsg headers and (nested) attributes to
 * one growing buffer. Several messages in one buffer go to the kernel in one
 * `sendto(2)`, which processes them in order.
 *
 * @example
 * ```ts
 * import { MessageBuilder } from "./builder.ts";
 * import { CTA_STATUS, ctMsgType, IPCTNL_MSG_CT_GET } from "./ctnetlink.ts";
 * import { NLM_F_REQUEST } from "./message.ts";
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
