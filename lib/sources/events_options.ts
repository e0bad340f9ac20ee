/**
 * The events source's options, counters and resync reasons (re-exported by
 * lib/sources/netlink_events.ts; split out to keep that file about what it
 * does).
 *
 * @module
 */
import type { Clock } from "../basics.ts";
import type { NetlinkTransport } from "../netlink/socket.ts";
import type { EventSocketOptions } from "../netlink/events.ts";
import type { SysctlReader } from "./events_health.ts";
import type { Source } from "./source.ts";

/**
 * Why a full dump ran instead of per-tuple reads: `malformed`, an event
 * message that did not decode (lost); `stalled`, no event while the table
 * changed; `events_off`, the kernel's events switched off or on again.
 */
export type ResyncReason =
  | "start"
  | "overflow"
  | "error"
  | "periodic"
  | "limit"
  | "malformed"
  | "stalled"
  | "events_off";
/** Every {@linkcode ResyncReason}, for metrics. */
export const RESYNC_REASONS: readonly ResyncReason[] = [
  "start",
  "overflow",
  "error",
  "periodic",
  "limit",
  "malformed",
  "stalled",
  "events_off",
];

/** Counters of the events source, for metrics. */
export interface EventsStats {
  /** Event messages received (after the kernel's filter). */
  received: number;
  /** Times the event socket overflowed (`ENOBUFS`): events were lost. */
  overflows: number;
  /** Full dumps, by reason. */
  resyncs: Record<ResyncReason, number>;
  /** Candidates a periodic or stall-check dump found that no event had announced. */
  missed: number;
}

/** Counters at zero. */
export function newEventsStats(): EventsStats {
  const resyncs = Object.fromEntries(RESYNC_REASONS.map((r) => [r, 0]));
  return { received: 0, overflows: 0, resyncs: resyncs as Record<ResyncReason, number>, missed: 0 };
}

/** The event socket's options (lib/netlink/events.ts) from the source's. */
export function eventSocketOptions(o: EventsSourceOptions): EventSocketOptions {
  const out: EventSocketOptions = {};
  if (o.recvBufferBytes !== undefined) out.recvBufferBytes = o.recvBufferBytes;
  if (o.evidence !== undefined) out.evidence = o.evidence;
  if (o.ended !== undefined) out.ended = o.ended;
  return out;
}

/** Options for `NetlinkEventsSource` (lib/sources/netlink_events.ts). */
export interface EventsSourceOptions {
  clock?: Clock;
  /** Candidates tracked at most; default unlimited. */
  maxCandidates?: number;
  /** The safety-net dump's period; default 300 000 ms. */
  resyncIntervalMs?: number;
  /** The event socket's receive buffer; default 8 MiB. */
  recvBufferBytes?: number;
  /** Receive translated entries as evidence for the un-NATed rule; default true. */
  evidence?: boolean;
  /** Time to wait for the answers to one batch of GETs; default 5000 ms. */
  timeoutMs?: number;
  /**
   * A candidate heard since the last poll is reported from its event, marked
   * `heard`, instead of being read by GET (the next poll reads it); default
   * false. For callers whose rules never act on a `heard` candidate.
   */
  heardFirst?: boolean;
  /**
   * Also hear what ends a candidate (an update that answers or resets it;
   * see `openEventSocket`'s `ended`) and stop tracking it at once, without a
   * GET; default false.
   */
  ended?: boolean;
  /** Event messages handled per poll at most (the rest wait in the socket); default 200 000. */
  maxEventsPerPoll?: number;
  /** The full (filtered) dump: start, overflow, safety net. */
  dump: Source;
  /** Opens the event socket; default `openEventSocket` (lib/netlink/events.ts). Tests pass a fake. */
  openEvents?: () => NetlinkTransport;
  /** Opens the socket the GETs go out on; default `NetlinkSocket.open`. */
  openTransport?: () => NetlinkTransport;
  /** Told of each full dump, with why (log it). */
  onResync?: (reason: ResyncReason) => void;
  /** Reads `nf_conntrack_events` and `nf_conntrack_count`; default this namespace's `/proc/sys`. */
  sysctl?: SysctlReader;
  /** No event this long while the table changed: check with a dump; default 30 000 ms. */
  quietMs?: number;
  /** Told when a dump found candidates no event announced (log it; the socket is reopened). */
  onMissed?: (missed: number) => void;
  /** Told when the kernel's events are switched off or on again (log it). */
  onEventsSwitch?: (on: boolean) => void;
}
