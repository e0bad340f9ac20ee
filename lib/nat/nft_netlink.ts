/**
 * nf_tables over netlink, the requests only: message types and attribute
 * numbers of `linux/netfilter/nf_tables.h` that the reader sends, the request
 * builders (generation, tables, chains, the rules of one chain, one set, the
 * elements of one set) and {@linkcode nftGet}, one non-dump request answered
 * by its reply messages and an ACK. Dumps go through `runDump`
 * (`../netlink/dump.ts`). nf_tables shares the `NETLINK_NETFILTER` socket
 * with ctnetlink, as subsystem 10.
 *
 * @example
 * ```ts
 * import { appendRuleDump, NFT_MSG_GETRULE, nftMsgType } from "./nft_netlink.ts";
 * import { MessageBuilder } from "../netlink/builder.ts";
 * const b = new MessageBuilder();
 * appendRuleDump(b, 7, { family: "ip", table: "nat" }, "PREROUTING");
 * const bytes = b.bytes();
 * new DataView(bytes.buffer).getUint16(4, true) === nftMsgType(NFT_MSG_GETRULE); // => true
 * ```
 *
 * @module
 */
import { MessageBuilder } from "../netlink/builder.ts";
import { Errno, ErrnoError } from "../os/errno.ts";
import {
  decodeError,
  type NetlinkMessage,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NLMSG_NOOP,
  parseMessages,
} from "../netlink/message.ts";
import type { NetlinkTransport } from "../netlink/socket.ts";
import type { NftFamily, TableRef } from "./ruleset.ts";

/** `NFNL_SUBSYS_NFTABLES`. */
export const NFNL_SUBSYS_NFTABLES = 10;

/** `enum nf_tables_msg_types` (the ones read). */
export const NFT_MSG_NEWTABLE = 0;
export const NFT_MSG_GETTABLE = 1;
export const NFT_MSG_NEWCHAIN = 3;
export const NFT_MSG_GETCHAIN = 4;
export const NFT_MSG_NEWRULE = 6;
export const NFT_MSG_GETRULE = 7;
export const NFT_MSG_NEWSET = 9;
export const NFT_MSG_GETSET = 10;
export const NFT_MSG_NEWSETELEM = 12;
export const NFT_MSG_GETSETELEM = 13;
export const NFT_MSG_NEWGEN = 15;
export const NFT_MSG_GETGEN = 16;

/** `NFPROTO_*` of the table families read; `NFPROTO_UNSPEC` asks for all. */
export const NFPROTO_UNSPEC = 0;
export const NFPROTO_INET = 1;
export const NFPROTO_IPV4 = 2;
export const NFPROTO_IPV6 = 10;

/** Request attributes: `NFTA_TABLE_NAME`, `NFTA_CHAIN_TABLE`/`_NAME`, … */
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_SET_TABLE = 1;
const NFTA_SET_NAME = 2;
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;

/** The netlink message type of nf_tables message `msg`. */
export function nftMsgType(msg: number): number {
  return (NFNL_SUBSYS_NFTABLES << 8) | msg;
}

/** `NFPROTO_*` of a table family. */
export function nfproto(family: NftFamily): number {
  return family === "ip" ? NFPROTO_IPV4 : family === "ip6" ? NFPROTO_IPV6 : NFPROTO_INET;
}

/** The table family of an `NFPROTO_*` value, or `undefined` for one NAT of TCP never sees (arp, bridge, netdev). */
export function familyOf(proto: number): NftFamily | undefined {
  return proto === NFPROTO_IPV4
    ? "ip"
    : proto === NFPROTO_IPV6
    ? "ip6"
    : proto === NFPROTO_INET
    ? "inet"
    : undefined;
}

const encoder = new TextEncoder();

/** A NUL-terminated string attribute. */
function str(b: MessageBuilder, type: number, s: string): void {
  const bytes = encoder.encode(s);
  const z = new Uint8Array(bytes.length + 1);
  z.set(bytes);
  b.raw(type, z);
}

/** `NFT_MSG_GETGEN`: the generation id (answered by one `NFT_MSG_NEWGEN`). */
export function appendGetGen(b: MessageBuilder, seq: number): void {
  b.beginMessage(nftMsgType(NFT_MSG_GETGEN), NLM_F_REQUEST | NLM_F_ACK, seq, NFPROTO_UNSPEC);
  b.endMessage();
}

/** `NFT_MSG_GETTABLE` dump of every table (for the dormant flag). */
export function appendTableDump(b: MessageBuilder, seq: number): void {
  b.beginMessage(nftMsgType(NFT_MSG_GETTABLE), NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_UNSPEC);
  b.endMessage();
}

/** `NFT_MSG_GETCHAIN` dump of every chain of every family. */
export function appendChainDump(b: MessageBuilder, seq: number): void {
  b.beginMessage(nftMsgType(NFT_MSG_GETCHAIN), NLM_F_REQUEST | NLM_F_DUMP, seq, NFPROTO_UNSPEC);
  b.endMessage();
}

/** `NFT_MSG_GETRULE` dump of one chain's rules (the kernel filters by table and chain). */
export function appendRuleDump(b: MessageBuilder, seq: number, ref: TableRef, chain: string): void {
  b.beginMessage(nftMsgType(NFT_MSG_GETRULE), NLM_F_REQUEST | NLM_F_DUMP, seq, nfproto(ref.family));
  str(b, NFTA_RULE_TABLE, ref.table);
  str(b, NFTA_RULE_CHAIN, chain);
  b.endMessage();
}

/** `NFT_MSG_GETSET` of one set (ENOENT when it does not exist). */
export function appendGetSet(b: MessageBuilder, seq: number, ref: TableRef, name: string): void {
  b.beginMessage(nftMsgType(NFT_MSG_GETSET), NLM_F_REQUEST | NLM_F_ACK, seq, nfproto(ref.family));
  str(b, NFTA_SET_TABLE, ref.table);
  str(b, NFTA_SET_NAME, name);
  b.endMessage();
}

/** `NFT_MSG_GETSETELEM` dump of one set's elements. */
export function appendSetElemDump(
  b: MessageBuilder,
  seq: number,
  ref: TableRef,
  name: string,
): void {
  b.beginMessage(
    nftMsgType(NFT_MSG_GETSETELEM),
    NLM_F_REQUEST | NLM_F_DUMP,
    seq,
    nfproto(ref.family),
  );
  str(b, NFTA_SET_ELEM_LIST_TABLE, ref.table);
  str(b, NFTA_SET_ELEM_LIST_SET, name);
  b.endMessage();
}

/**
 * Sends one non-dump request built with `NLM_F_ACK` and collects its reply
 * messages until the ACK. Rejects with an {@linkcode ErrnoError} for the
 * kernel's error (e.g. `ENOENT`), or `ETIMEDOUT` past `deadline`.
 */
export async function nftGet(
  t: NetlinkTransport,
  seq: number,
  request: Uint8Array,
  buffer: Uint8Array,
  clock: () => number,
  deadline: number,
): Promise<NetlinkMessage[]> {
  await t.send(request);
  const replies: NetlinkMessage[] = [];
  for (;;) {
    const left = deadline - clock();
    if (left <= 0) throw new ErrnoError(Errno.ETIMEDOUT, "nf_tables request");
    const n = await t.recv(buffer, Math.min(left, 100));
    if (n === null) continue;
    if (n > buffer.length) {
      throw new ErrnoError(Errno.EMSGSIZE, `nf_tables reply of ${n} bytes`);
    }
    const { messages, error } = parseMessages(buffer.subarray(0, n));
    if (error !== undefined) throw new ErrnoError(Errno.EIO, "nf_tables reply", error);
    for (const m of messages) {
      if (m.seq !== seq || m.pid !== t.portId || m.type === NLMSG_NOOP) continue;
      if (m.type === NLMSG_ERROR) {
        const info = decodeError(m);
        if (info.errno === 0) return replies;
        throw new ErrnoError(info.errno, "nf_tables request", info.message);
      }
      if (m.type === NLMSG_DONE) return replies;
      // The caller decodes now; the buffer is reused by the next receive.
      replies.push({ ...m, payload: m.payload.slice() });
    }
  }
}
