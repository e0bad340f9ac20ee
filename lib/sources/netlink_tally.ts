/**
 * What the netlink source keeps of one dump attempt: each message is counted,
 * decoded, checked again in userspace, and kept as a {@linkcode Candidate}
 * when it is a TCP `SYN_SENT` entry without `IPS_SEEN_REPLY`. Pure; no I/O.
 *
 * @module
 */
import type { Candidate, Snapshot } from "../model/snapshot.ts";
import { decodeConntrack } from "../netlink/conntrack_entry.ts";
import { ctMsgType, IPCTNL_MSG_CT_NEW, IPPROTO_TCP, IPS_SEEN_REPLY } from "../netlink/ctnetlink.ts";
import { NetlinkDecodeError, type NetlinkMessage } from "../netlink/message.ts";
import { isSynSentUnreplied } from "../netlink/syn_sent.ts";
import { entryCandidate } from "../netlink/entry_candidate.ts";

const CT_NEW = ctMsgType(IPCTNL_MSG_CT_NEW);
const HEX_PREVIEW_BYTES = 96;

function hex(bytes: Uint8Array): string {
  const n = Math.min(bytes.length, HEX_PREVIEW_BYTES);
  let s = "";
  for (let i = 0; i < n; i++) s += bytes[i]!.toString(16).padStart(2, "0");
  return n < bytes.length ? `${s}… (${bytes.length} bytes)` : s;
}

/**
 * Counts of one attempt, shared by its dumps; thrown away with the attempt
 * when it is retried.
 *
 * @example
 * ```ts
 * import { Tally } from "./netlink_tally.ts";
 * const tally = new Tally(Infinity, 2, true);
 * tally.bad("netlink framing: 3 trailing bytes", new Uint8Array(3));
 * tally.firstMalformed; // => { reason: "netlink framing: 3 trailing bytes", line: "000000" }
 * ```
 */
export class Tally {
  /** Candidates per dump, in dump order: the IPv4 ones come first in the snapshot. */
  readonly candidates: Candidate[][];
  /**
   * Candidates past `maxCandidates`, not kept. Where the kernel already sends
   * only unreplied TCP entries (`proto+status`), they are counted without
   * being decoded, so a flooded table costs no more.
   */
  overflow = 0;
  constructor(
    readonly maxCandidates: number,
    dumps: number,
    readonly kernelFiltered: boolean,
  ) {
    this.candidates = Array.from({ length: dumps }, () => []);
  }
  scanned = 0;
  malformed = 0;
  firstMalformed: { reason: string; line: string } | undefined;
  /** Messages the kernel filter should have dropped. */
  nonTcp = 0;
  replied = 0;

  /** Counts a malformed message; the first one is kept (as hex) for the log. */
  bad(reason: string, bytes: Uint8Array): void {
    this.malformed++;
    this.firstMalformed ??= { reason, line: hex(bytes) };
  }

  /**
   * The snapshot of a finished attempt: the dumps' candidates in dump order,
   * at most `maxCandidates` of them (the rest counted in `overflow`).
   */
  snapshot(startedAt: number, finishedAt: number): Snapshot {
    const candidates = this.candidates.flat();
    if (candidates.length > this.maxCandidates) {
      this.overflow += candidates.length - this.maxCandidates;
      candidates.length = this.maxCandidates;
    }
    return {
      candidates,
      scanned: this.scanned,
      malformed: this.malformed,
      overflow: this.overflow,
      firstMalformed: this.firstMalformed,
      startedAt,
      finishedAt,
    };
  }
}

/**
 * Counts one data message of a snapshot dump and, when it is a candidate,
 * adds it to `into` (the candidates of its dump), seen between `from` and `to`.
 *
 * @example
 * ```ts
 * import { Tally, tallyMessage } from "./netlink_tally.ts";
 * import { parseMessages } from "../netlink/message.ts";
 * const tally = new Tally(Infinity, 1, false);
 * const bytes = await Deno.readFile("tests/fixtures/netlink/get_reply_ipv4.bin");
 * tallyMessage(parseMessages(bytes).messages[0]!, 0, 1, tally, tally.candidates[0]!);
 * tally.candidates[0]!.length; // => 1
 * ```
 */
export function tallyMessage(
  m: NetlinkMessage,
  from: number,
  to: number,
  tally: Tally,
  into: Candidate[],
): void {
  tally.scanned++;
  if (m.type !== CT_NEW) {
    tally.bad(`unexpected message type 0x${m.type.toString(16)}`, m.payload);
    return;
  }
  const full = into.length >= tally.maxCandidates;
  if (full && tally.kernelFiltered) {
    tally.overflow++;
    return;
  }
  let e;
  try {
    e = decodeConntrack(m.payload);
  } catch (err) {
    if (!(err instanceof NetlinkDecodeError)) throw err;
    tally.bad(err.message, m.payload);
    return;
  }
  if (e.proto !== IPPROTO_TCP) tally.nonTcp++;
  if (e.status & IPS_SEEN_REPLY) tally.replied++;
  if (!isSynSentUnreplied(e)) return;
  if (full) {
    tally.overflow++;
    return;
  }
  const c = entryCandidate(e, from, to);
  if (c === undefined) {
    // Whether the destination was NATed cannot be told: not a candidate for any rule.
    tally.bad("SYN_SENT entry without a reply tuple", m.payload);
    return;
  }
  into.push(c);
}
