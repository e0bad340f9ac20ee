/**
 * The netlink source's dump filter modes: what each asks the kernel to
 * filter on, where to step down when the kernel rejects a filter, and when
 * to stop asking for a part the kernel evidently ignores. Pure; no I/O.
 *
 * @module
 */
import {
  AF_INET,
  AF_INET6,
  AF_UNSPEC,
  type DumpFilter,
  IPPROTO_TCP,
  IPS_DST_NAT,
  IPS_SEEN_REPLY,
} from "../netlink/ctnetlink.ts";

/**
 * What the dump asks the kernel to filter on. Whatever the mode, the source
 * filters every message again in userspace.
 * - `proto+status`: TCP only (`CTA_FILTER` on the original tuple's protocol,
 *   one dump per address family since the kernel needs one for a tuple
 *   filter; the two run at once, on two sockets) and `IPS_SEEN_REPLY` clear
 *   (`CTA_STATUS` 0 under `CTA_STATUS_MASK`);
 * - `status`: `IPS_SEEN_REPLY` clear only, one dump of both families;
 * - `proto`: TCP only, one dump per family (at once, as above);
 * - `none`: the whole table, one dump of both families.
 */
export type NetlinkFilterMode = "proto+status" | "status" | "proto" | "none";

const PROTO_MODES = new Set<NetlinkFilterMode>(["proto+status", "proto"]);
const STATUS_MODES = new Set<NetlinkFilterMode>(["proto+status", "status"]);
/** Where to go when the kernel rejects a mode's filter with EINVAL/EOPNOTSUPP. */
const ON_REJECT: Record<NetlinkFilterMode, NetlinkFilterMode | undefined> = {
  "proto+status": "status",
  status: "none",
  proto: "none",
  none: undefined,
};

/**
 * The mode to ask for after the kernel rejected `mode`'s filter, or
 * `undefined` when there is nothing left to drop.
 *
 * @example
 * ```ts
 * import { modeAfterRejection } from "./netlink_filter.ts";
 * modeAfterRejection("proto+status"); // => "status"
 * modeAfterRejection("none"); // => undefined
 * ```
 */
export function modeAfterRejection(mode: NetlinkFilterMode): NetlinkFilterMode | undefined {
  return ON_REJECT[mode];
}

/**
 * The address families to dump in `mode`: one dump per family where the
 * kernel needs a family for a tuple filter, else one dump of both.
 *
 * @example
 * ```ts
 * import { dumpFamilies } from "./netlink_filter.ts";
 * dumpFamilies("proto"); // => [2, 10]
 * dumpFamilies("status"); // => [0]
 * ```
 */
export function dumpFamilies(mode: NetlinkFilterMode): number[] {
  return PROTO_MODES.has(mode) ? [AF_INET, AF_INET6] : [AF_UNSPEC];
}

/**
 * The snapshot dump's filter in `mode`: TCP, and `IPS_SEEN_REPLY` clear, as
 * far as the mode asks.
 *
 * @example
 * ```ts
 * import { snapshotFilter } from "./netlink_filter.ts";
 * snapshotFilter("status"); // => { status: { value: 0, mask: 2 } }
 * ```
 */
export function snapshotFilter(mode: NetlinkFilterMode): DumpFilter {
  const f: DumpFilter = {};
  if (PROTO_MODES.has(mode)) f.protoNum = IPPROTO_TCP;
  if (STATUS_MODES.has(mode)) f.status = { value: 0, mask: IPS_SEEN_REPLY };
  return f;
}

/**
 * The evidence dump's filter in `mode`: TCP, and `IPS_DST_NAT` set, as far
 * as the mode asks.
 *
 * @example
 * ```ts
 * import { evidenceFilter } from "./netlink_filter.ts";
 * evidenceFilter("proto"); // => { protoNum: 6 }
 * ```
 */
export function evidenceFilter(mode: NetlinkFilterMode): DumpFilter {
  const f: DumpFilter = {};
  if (PROTO_MODES.has(mode)) f.protoNum = IPPROTO_TCP;
  if (STATUS_MODES.has(mode)) f.status = { value: IPS_DST_NAT, mask: IPS_DST_NAT };
  return f;
}

/** What one snapshot's messages showed of the kernel's filtering. */
export interface FilterSeen {
  /** Non-TCP entries in the dump. */
  nonTcp: number;
  /** Entries with `IPS_SEEN_REPLY`. */
  replied: number;
}

/** A mode change, and why. */
export interface ModeChange {
  mode: NetlinkFilterMode;
  reason: string;
}

/** What {@linkcode learnFromSnapshot} concludes. */
export interface Lesson {
  /** Mode changes to make, in order (none, one or two). */
  changes: ModeChange[];
  /** Whether this snapshot counts as one with replied entries, for the next lesson. */
  repliedBefore: boolean;
}

/**
 * What a snapshot in `mode` teaches: a non-TCP entry in a TCP-only dump
 * means the kernel ignores the protocol filter; replied entries in two
 * snapshots in a row (`repliedBefore` and this one) mean it ignores the
 * status filter. One replied entry alone can slip through when its reply
 * arrives between the kernel's filter check and its formatting.
 *
 * @example
 * ```ts
 * import { learnFromSnapshot } from "./netlink_filter.ts";
 * learnFromSnapshot("proto+status", { nonTcp: 1, replied: 0 }, false).changes[0]?.mode; // => "status"
 * ```
 */
export function learnFromSnapshot(
  mode: NetlinkFilterMode,
  seen: FilterSeen,
  repliedBefore: boolean,
): Lesson {
  const changes: ModeChange[] = [];
  if (PROTO_MODES.has(mode) && seen.nonTcp > 0) {
    mode = mode === "proto+status" ? "status" : "none";
    changes.push({
      mode,
      reason:
        `kernel ignored the TCP-only dump filter (${seen.nonTcp} non-TCP entries); not asking for it`,
    });
  }
  if (!STATUS_MODES.has(mode)) return { changes, repliedBefore };
  if (seen.replied > 0 && repliedBefore) {
    changes.push({
      mode: mode === "proto+status" ? "proto" : "none",
      reason:
        `kernel ignored the unreplied-only dump filter (${seen.replied} replied entries); not asking for it`,
    });
  }
  return { changes, repliedBefore: seen.replied > 0 };
}
