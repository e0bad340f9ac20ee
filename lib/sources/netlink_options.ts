/**
 * What a {@linkcode NetlinkSource} is told (its options) and tells (the
 * report of its last dump).
 *
 * @module
 */
import type { Clock } from "../basics.ts";
import type { NetlinkTransport } from "../netlink/socket.ts";
import type { NetlinkFilterMode } from "./netlink_filter.ts";

/**
 * What the last `NetlinkSource.snapshot` did, for logs and metrics.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root (CAP_NET_ADMIN); dumps this host's conntrack table.
 * import { NetlinkSource } from "./netlink.ts";
 * const source = new NetlinkSource();
 * await source.snapshot();
 * const { mode, attempts, retries } = source.lastDump!;
 * console.log(`dump mode ${mode}, ${attempts} attempt(s)`, retries);
 * ```
 */
export interface NetlinkDumpReport {
  /** The filter mode of the dump that produced the snapshot. */
  mode: NetlinkFilterMode;
  /** Dumps started, counting the ones thrown away and retried. */
  attempts: number;
  /** Why earlier attempts were thrown away (interrupted dump, ENOBUFS, rejected filter). */
  retries: string[];
}

/**
 * Options for `NetlinkSource`.
 *
 * @example
 * ```ts
 * import { NetlinkSource, type NetlinkSourceOptions } from "./netlink.ts";
 * const options: NetlinkSourceOptions = {
 *   filter: "proto+status",
 *   maxRetries: 3,
 *   timeoutMs: 10_000,
 *   onFilterModeChange: (mode, reason) => console.warn(`netlink filter mode ${mode}: ${reason}`),
 * };
 * const source = new NetlinkSource(options);
 * ```
 */
export interface NetlinkSourceOptions {
  /** Monotonic milliseconds; default `performance.now`. */
  clock?: Clock;
  /** The filter mode to try first; default `proto+status`. */
  filter?: NetlinkFilterMode;
  /** Times an interrupted or overrun dump is started again before the snapshot fails; default 3. */
  maxRetries?: number;
  /** Time allowed for one snapshot, retries included; default 30 000 ms. */
  timeoutMs?: number;
  /** Longest single wait for data before abort and deadline are checked; default 100 ms. */
  pollIntervalMs?: number;
  /**
   * Size of each userspace receive buffer (one per socket); default 64 KiB
   * (a dump datagram is at most 32 KiB).
   */
  bufferBytes?: number;
  /** Socket receive buffer to ask the kernel for, per socket; default 8 MiB. */
  recvBufferBytes?: number;
  /**
   * Keep at most this many candidates per snapshot (see `Snapshot.overflow`);
   * default unlimited. Each family's dump keeps its first ones in table order,
   * then the IPv4 ones come first: the same entries are kept poll after poll.
   */
  maxCandidates?: number;
  /** Called when the filter mode changes, with the reason (log it). */
  onFilterModeChange?: (mode: NetlinkFilterMode, reason: string) => void;
  /** Called when a dump is thrown away and started again (interrupted, ENOBUFS, …), with why. */
  onRetry?: (reason: string) => void;
  /**
   * Opens a socket (called once per socket: two when both families are
   * dumped at once); tests pass a fake kernel. Default `NetlinkSocket.open`.
   */
  openTransport?: () => NetlinkTransport;
}
