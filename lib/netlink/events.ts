/**
 * Conntrack events: the socket that receives them (the ctnetlink NEW group,
 * behind the kernel-side filter of `bpf.ts`) and what one event message
 * means to the agent. Decoding is pure.
 *
 * @module
 */
import { conntrackEventFilter, encodeProgram } from "./bpf.ts";
import { type ConntrackEntry, decodeConntrack } from "./conntrack_entry.ts";
import {
  ctMsgType,
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_NEW,
  IPPROTO_TCP,
  IPS_DST_NAT,
  NFNLGRP_CONNTRACK_NEW,
  NFNLGRP_CONNTRACK_UPDATE,
} from "./ctnetlink.ts";
import { type NetlinkMessage, NLM_F_CREATE } from "./message.ts";
import { NetlinkSocket } from "./socket.ts";
import { isSynSentUnreplied } from "./syn_sent.ts";

const CT_NEW = ctMsgType(IPCTNL_MSG_CT_NEW), CT_DELETE = ctMsgType(IPCTNL_MSG_CT_DELETE);

/**
 * Options for {@linkcode openEventSocket}.
 *
 * @example
 * ```ts
 * import type { EventSocketOptions } from "./events.ts";
 * const options: EventSocketOptions = { recvBufferBytes: 4 << 20, evidence: true };
 * ```
 */
export interface EventSocketOptions {
  /** Receive buffer (`SO_RCVBUFFORCE`); default 8 MiB. Full, it makes `recv` fail with `ENOBUFS`. */
  recvBufferBytes?: number;
  /** Also receive newly created translated TCP entries (evidence); default true. */
  evidence?: boolean;
  /**
   * Also join the update group, for what ends a candidate (see
   * `EventFilterOptions.ended` in bpf.ts); default false.
   */
  ended?: boolean;
}

/**
 * A `NETLINK_NETFILTER` socket in the `NFNLGRP_CONNTRACK_NEW` group, with
 * the event filter attached and overflow reported (`NETLINK_NO_ENOBUFS`
 * off). Read it with `tryRecv` (never waits). Throws an `ErrnoError` where
 * the group or the filter is refused (`EPERM` without `CAP_NET_ADMIN`).
 *
 * @example
 * ```ts ignore
 * // ignore: needs root (CAP_NET_ADMIN); listens to this host's conntrack events.
 * import { openEventSocket } from "./events.ts";
 * const sock = openEventSocket();
 * const n = sock.tryRecv(new Uint8Array(65536)); // null: no event queued
 * sock.close();
 * ```
 */
export function openEventSocket(options: EventSocketOptions = {}): NetlinkSocket {
  return NetlinkSocket.open({
    recvBufferBytes: options.recvBufferBytes ?? 8 << 20,
    sendBufferBytes: 4096,
    groups: options.ended
      ? [NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE]
      : [NFNLGRP_CONNTRACK_NEW],
    filter: encodeProgram(
      conntrackEventFilter({ evidence: options.evidence ?? true, ended: options.ended ?? false }),
    ),
  });
}

/**
 * What one event tells: `candidate` (TCP `SYN_SENT` without
 * `IPS_SEEN_REPLY`), `translated` (a new TCP entry with `IPS_DST_NAT`; a
 * translated candidate is both), `ended` (the entry is gone, or an update
 * left it no candidate), else none.
 */
export interface ConntrackEvent {
  entry: ConntrackEntry;
  candidate: boolean;
  translated: boolean;
  ended: boolean;
}

/**
 * Decodes one event message; `undefined` for a message that is not a
 * conntrack entry (another type). Throws `NetlinkDecodeError` when the
 * message is malformed.
 *
 * @example
 * ```ts
 * import { classifyEvent } from "./events.ts";
 * import { parseMessages } from "./message.ts";
 * const bytes = await Deno.readFile("tests/fixtures/netlink/get_reply_ipv4.bin");
 * classifyEvent(parseMessages(bytes).messages[0]!)?.candidate; // => true
 * ```
 */
export function classifyEvent(m: NetlinkMessage): ConntrackEvent | undefined {
  if (m.type === CT_DELETE) {
    return { entry: decodeConntrack(m.payload), candidate: false, translated: false, ended: true };
  }
  if (m.type !== CT_NEW) return undefined;
  const entry = decodeConntrack(m.payload);
  const created = (m.flags & NLM_F_CREATE) !== 0;
  const candidate = isSynSentUnreplied(entry);
  return {
    entry,
    candidate,
    translated: created && entry.proto === IPPROTO_TCP && (entry.status & IPS_DST_NAT) !== 0,
    ended: !created && !candidate,
  };
}
