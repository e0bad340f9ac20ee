/**
 * Whether the events source can still trust its event stream: conntrack
 * events switched off (`nf_conntrack_events` 0) since the start, and a
 * stream that has gone quiet while the table kept changing. Reads two
 * sysctls per poll through an injected reader; no other I/O.
 *
 * @module
 */
import type { Clock } from "../basics.ts";

/** A sysctl of `net.netfilter` (read from `/proc/sys/net/netfilter/`). */
export type NetfilterSysctl = "nf_conntrack_events" | "nf_conntrack_count";

/** Reads a sysctl's value; `undefined` where it is absent or unreadable. */
export type SysctlReader = (name: NetfilterSysctl) => Promise<string | undefined>;

/** The default {@linkcode SysctlReader}: this network namespace's `/proc/sys/net/netfilter/`. */
export const readNetfilterSysctl: SysctlReader = async (name) => {
  try {
    return (await Deno.readTextFile(`/proc/sys/net/netfilter/${name}`)).trim();
  } catch {
    return undefined;
  }
};

/** What {@linkcode EventsHealth.check} asks for: a full read, and why. */
export type HealthVerdict = "events_off" | "stalled" | undefined;

/** Options for {@linkcode EventsHealth}. */
export interface EventsHealthOptions {
  clock: Clock;
  read?: SysctlReader;
  /** Quiet this long while the table's entry count changed: check with a dump; default 30 000 ms. */
  quietMs?: number;
  /** The quiet time doubles after each check that found nothing missed, up to this; default 300 000 ms. */
  maxQuietMs?: number;
  /** Told when events are switched off or on again (log it). */
  onEventsSwitch?: (on: boolean) => void;
}

/**
 * The events source's watch over its own stream.
 *
 * - **Events off.** `nf_conntrack_events` is read each poll (a 2-byte file);
 *   while it is `0` the kernel sends no events, so every poll reads the whole
 *   table (`events_off`), and the first poll that finds it on again reads it
 *   once more (what was created before the switch was never announced).
 * - **A quiet stream.** Every new TCP connection's entry is created in
 *   `SYN_SENT` and passes the kernel filter, so on a node making TCP
 *   connections events keep coming. When none came for `quietMs` while the
 *   kernel's entry count (`nf_conntrack_count`, one read) changed, the
 *   source checks with a dump (`stalled`). The dump tells whether events
 *   were really missed (see {@linkcode judged}): a check that found nothing
 *   missed doubles the quiet time (a node with only UDP traffic pays one
 *   dump per `maxQuietMs` at most); a heard event resets it.
 *
 * The per-cpu `insert` counter of `/proc/net/stat/nf_conntrack` would count
 * creations, but kernels since 5.x no longer count entries confirmed by
 * packets there (only those inserted through ctnetlink), so the count is
 * the signal: cheap, always there, and any change means entries came or
 * went. An unchanged count over a quiet spell is no proof of a healthy
 * stream (as many created as expired): the periodic dump stays the safety
 * net, and it is judged the same way.
 *
 * @example
 * ```ts
 * import { EventsHealth } from "./events_health.ts";
 * const values = { nf_conntrack_events: "0", nf_conntrack_count: "10" };
 * const h = new EventsHealth({ clock: () => 0, read: (n) => Promise.resolve(values[n]) });
 * await h.check(); // => "events_off"
 * ```
 */
export class EventsHealth {
  #o: EventsHealthOptions;
  #read: SysctlReader;
  #base: number;
  #quiet: number;
  #off = false;
  /** Since when no event was heard and no dump ran. */
  #quietFrom: number;
  /** The entry count at the first check of the quiet spell. */
  #countAt: string | undefined;

  constructor(o: EventsHealthOptions) {
    this.#o = o;
    this.#read = o.read ?? readNetfilterSysctl;
    this.#base = this.#quiet = o.quietMs ?? 30_000;
    this.#quietFrom = o.clock();
  }

  /** Whether the last check found events switched off. */
  get eventsOff(): boolean {
    return this.#off;
  }

  /** The quiet time the next stall check waits for. */
  get quietMs(): number {
    return this.#quiet;
  }

  /** An event was received: the stream works. */
  heard(): void {
    this.#quietFrom = this.#o.clock();
    this.#countAt = undefined;
    this.#quiet = this.#base;
  }

  /** A full read ran: the quiet spell starts again. */
  resynced(): void {
    this.#quietFrom = this.#o.clock();
    this.#countAt = undefined;
  }

  /**
   * A dump that could tell found `missed` candidates no event announced:
   * any is a stall (the quiet time goes back to its base); none after a
   * stall check (`afterCheck`) doubles the quiet time.
   */
  judged(missed: number, afterCheck: boolean): void {
    if (missed > 0) this.#quiet = this.#base;
    else if (afterCheck) this.#quiet = Math.min(this.#quiet * 2, this.#o.maxQuietMs ?? 300_000);
  }

  /** One poll's look: whether a full read is needed, and why. */
  async check(): Promise<HealthVerdict> {
    const off = (await this.#read("nf_conntrack_events")) === "0";
    if (off !== this.#off) {
      this.#off = off;
      this.#o.onEventsSwitch?.(!off);
      return "events_off"; // switched either way: what was created meanwhile was not announced
    }
    if (off) return "events_off";
    const count = await this.#read("nf_conntrack_count");
    if (count === undefined) return undefined;
    if (this.#countAt === undefined) {
      this.#countAt = count;
      return undefined;
    }
    const quietFor = this.#o.clock() - this.#quietFrom;
    return quietFor >= this.#quiet && count !== this.#countAt ? "stalled" : undefined;
  }
}
