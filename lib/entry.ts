/**
 * The data every part of the agent shares: a conntrack tuple, a candidate seen
 * in a snapshot, and the snapshot itself. No logic beyond the tuple key.
 *
 * @module
 */

/** Address family of a tuple, spelled the way `conntrack -f` wants it. */
export type Family = "ipv4" | "ipv6";

/**
 * The identity of a conntrack entry as the agent tracks and deletes it: the
 * original-direction TCP tuple plus the zone the kernel looks it up in.
 *
 * Addresses are canonical: IPv4 dotted quad without leading zeros, IPv6 in
 * the RFC 5952 compressed lower-case form, so one tuple has exactly one key.
 */
export interface Tuple {
  family: Family;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  /** The zone of the original direction (0 when the table shows none). */
  zone: number;
}

/** One TCP entry in `SYN_SENT` with `[UNREPLIED]`, as one snapshot saw it. */
export interface Candidate extends Tuple {
  /** Seconds left before the entry expires, as the kernel printed it (rounded down). */
  timeout: number;
  /**
   * Monotonic milliseconds (same clock as {@linkcode Snapshot.startedAt}): the
   * kernel formatted this entry no earlier than `seenFrom` and no later than
   * `seenTo`. A source that cannot tell better uses the snapshot's start and end.
   */
  seenFrom: number;
  seenTo: number;
  /** The kernel's conntrack id, where the source knows it (netlink). */
  id?: number;
  /**
   * Where the destination was translated to (the reply tuple's source), when
   * it differs from the original destination address or port; absent for an
   * un-NATed entry (reply source = original destination).
   */
  translated?: Endpoint;
}

/** An address and port, as the reply tuple's source names them. */
export interface Endpoint {
  addr: string;
  port: number;
}

/** Where a client connects to: the original destination address and port, in a zone. */
export interface Destination {
  family: Family;
  dst: string;
  dport: number;
  zone: number;
}

/** What one read of the table produced. */
export interface Snapshot {
  /** Only TCP `SYN_SENT` + `[UNREPLIED]` entries; everything else is counted, not kept. */
  candidates: Candidate[];
  /** Entries (lines or messages) looked at, candidates or not. */
  scanned: number;
  /** Lines or messages that did not match the format and were skipped. */
  malformed: number;
  /**
   * Entries past the source's `maxCandidates`: counted, not parsed, not kept
   * (a bound on memory and CPU when the table is flooded). procfs and the
   * CLI count SYN_SENT lines; netlink counts the (kernel-filtered) messages.
   */
  overflow?: number;
  /** The first malformed line and why, for the log. */
  firstMalformed?: { reason: string; line: string } | undefined;
  /** Monotonic milliseconds when the read started and finished. */
  startedAt: number;
  finishedAt: number;
  /**
   * Present when evidence was asked for (see {@linkcode SnapshotOptions})
   * and the source collected it in the same read: for each destination
   * asked (by {@linkcode destinationKey}) that has one, where an entry to it
   * was translated to. Absent: nothing is known (ask elsewhere).
   */
  evidence?: ReadonlyMap<string, Endpoint>;
}

/** What a snapshot may collect on the way. */
export interface SnapshotOptions {
  /**
   * Destinations to look evidence up for in the same read, where the source
   * reads the whole table anyway (procfs); other sources ignore it.
   */
  evidenceFor?: readonly Destination[];
}

/**
 * A string that identifies a tuple: family, addresses, ports and zone.
 *
 * @example
 * ```ts
 * import { tupleKey } from "./entry.ts";
 * tupleKey({ family: "ipv4", src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80, zone: 0 });
 * // => "ipv4 10.0.0.1 10.0.0.2 40000 80 0"
 * ```
 */
export function tupleKey(t: Tuple): string {
  return `${t.family} ${t.src} ${t.dst} ${t.sport} ${t.dport} ${t.zone}`;
}

/**
 * A string that identifies a destination: family, address, port and zone.
 *
 * @example
 * ```ts
 * import { destinationKey } from "./entry.ts";
 * destinationKey({ family: "ipv4", dst: "10.96.0.10", dport: 53, zone: 0 });
 * // => "ipv4 10.96.0.10 53 0"
 * ```
 */
export function destinationKey(d: Destination): string {
  return `${d.family} ${d.dst} ${d.dport} ${d.zone}`;
}

/** Copies only the tuple fields of a candidate (or anything wider). */
export function toTuple(t: Tuple): Tuple {
  return {
    family: t.family,
    src: t.src,
    dst: t.dst,
    sport: t.sport,
    dport: t.dport,
    zone: t.zone,
  };
}
