/**
 * The netlink side of "what the agent hunts", shared by the netlink source
 * (which keeps such entries as candidates) and the netlink deleter (which
 * deletes an entry only while it still is one).
 *
 * @module
 */
import type { ConntrackEntry } from "./conntrack_entry.ts";
import { IPPROTO_TCP, IPS_SEEN_REPLY, TCP_CONNTRACK_SYN_SENT } from "./ctnetlink.ts";

/**
 * True when the entry is what the agent hunts: TCP, state `SYN_SENT`, no
 * `IPS_SEEN_REPLY`, and a timeout (offloaded entries carry none).
 *
 * @example
 * ```ts
 * import { isSynSentUnreplied } from "./syn_sent.ts";
 * isSynSentUnreplied({
 *   family: "ipv4", proto: 6, srcAddr: new Uint8Array(4), dstAddr: new Uint8Array(4),
 *   zone: 0, replyZone: 0, status: 8, tcpState: 1, timeout: 100,
 * }); // => true
 * ```
 */
export function isSynSentUnreplied(e: ConntrackEntry): boolean {
  return e.proto === IPPROTO_TCP && (e.status & IPS_SEEN_REPLY) === 0 &&
    e.tcpState === TCP_CONNTRACK_SYN_SENT && e.timeout !== undefined;
}
