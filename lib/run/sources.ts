/**
 * The source registry: every way to read the table, once, in the order
 * `--source=auto` tries them. Adding a source is its file in lib/sources/ and
 * one entry here; `--source` accepts its name (lib/run/config.ts).
 *
 * @module
 */
import type { Settings } from "./settings.ts";
import type { Logger } from "../log/logger.ts";
import type { ProcessRunner } from "../os/process.ts";
import type { NetlinkCheck } from "../netlink/capability.ts";
import type { Registry } from "../serve/prom.ts";
import type { Source } from "../sources/source.ts";
import type { EventsStats } from "../sources/netlink_events.ts";
import type { NetlinkSource } from "../sources/netlink.ts";
import { checkConntrack, checkReadable, SOURCE_TIMEOUT_MS } from "./checks.ts";
// Types and one list only: the events source itself still loads when chosen.
import { RESYNC_REASONS } from "../sources/events_options.ts";

/** What a source is given to check and build itself. */
export interface SourceContext {
  settings: Settings;
  log?: Logger;
  /** Runs helpers (the conntrack CLI); killed with everything it started on shutdown. */
  runner: ProcessRunner;
  /** Whether a ctnetlink dump works here (asked once, shared). */
  netlink(): Promise<NetlinkCheck>;
  /** Whether conntrack events can be received here. */
  events(): Promise<NetlinkCheck>;
}

/** Whether a source can read here: what works, or why not. */
export type SourceCheck =
  | { ok: true; works: string }
  /**
   * `brief`: the reason as `auto` lists it, when shorter than `why`; `quiet`:
   * `auto` leaves it out, a later source saying the same.
   */
  | { ok: false; why: string; brief?: string; quiet?: boolean };

/** A built source and, when it counts things, its counters. */
export interface BuiltSource {
  source: Source;
  stats?: () => unknown;
}

/** One source of the registry. */
export interface SourceEntry {
  readonly name: string;
  readonly summary: string;
  /** Whether `auto` takes it before trying the others, and why (`undefined`: it does not). */
  preferred?(settings: Settings): string | undefined;
  check(context: SourceContext): Promise<SourceCheck>;
  create(context: SourceContext): Promise<BuiltSource>;
  /** Its metrics, registered whichever source runs (`read` is `undefined` when another does). */
  metrics?(registry: Registry, read: () => unknown): void;
}

const netlinkSource = async (c: SourceContext): Promise<NetlinkSource> =>
  new (await import("../sources/netlink.ts")).NetlinkSource({
    maxCandidates: c.settings.maxCandidates,
    timeoutMs: SOURCE_TIMEOUT_MS,
    onFilterModeChange: (mode, reason) =>
      c.log?.warn("netlink dump filter changed", { filter: mode, reason }),
    // Interrupted dumps are normal on a busy table; only a run of them fails the snapshot.
    onRetry: (reason) => c.log?.debug("netlink dump started again", { reason }),
  });

const dumpWorks = async (c: SourceContext): Promise<SourceCheck> => {
  const p = await c.netlink();
  return p.ok
    ? { ok: true, works: "a ctnetlink dump works" }
    : { ok: false, why: `a ctnetlink dump does not work: ${p.reason}`, brief: p.reason };
};

const readable = async (c: SourceContext): Promise<SourceCheck> => {
  try {
    await checkReadable(c.settings.procFile);
    return { ok: true, works: `${c.settings.procFile} is readable` };
  } catch (e) {
    return { ok: false, why: (e as Error).message };
  }
};

/**
 * The sources, in the order `--source=auto` tries them.
 *
 * @example
 * ```ts
 * import { SOURCES } from "./sources.ts";
 * SOURCES.map((s) => s.name); // => ["events", "netlink", "procfs", "conntrack"]
 * ```
 */
export const SOURCES: readonly SourceEntry[] = [
  {
    name: "events",
    summary: "conntrack events for new entries, a filtered ctnetlink dump at start and as a " +
      "safety net",
    async check(c) {
      const p = await c.netlink();
      if (!p.ok) {
        return { ok: false, why: `a ctnetlink dump does not work: ${p.reason}`, quiet: true };
      }
      const e = await c.events();
      return e.ok
        ? { ok: true, works: "conntrack events and a ctnetlink dump work" }
        : { ok: false, why: `conntrack events do not work: ${e.reason}`, brief: e.reason };
    },
    async create(c) {
      const s = c.settings;
      const source = new (await import("../sources/netlink_events.ts")).NetlinkEventsSource({
        dump: await netlinkSource(c),
        maxCandidates: s.maxCandidates,
        resyncIntervalMs: s.resyncIntervalMs,
        heardFirst: true, // the agent's rules never act on a heard candidate
        ended: true,
        evidence: s.unnatedAfterMs !== undefined && s.destinations === undefined,
        onResync: (reason) => {
          // Lost events or a failing socket are worth a warning; the rest is routine or told
          // apart (a stall check that finds events missed, events switched off).
          const level = reason === "overflow" || reason === "error" || reason === "malformed" ||
              reason === "limit"
            ? "warn"
            : "debug";
          c.log?.[level]("events source: reading the whole table", { reason });
        },
        onMissed: (missed) =>
          c.log?.warn(
            "events source: the table had candidates no event announced; subscribing again",
            {
              missed,
            },
          ),
        onEventsSwitch: (on) =>
          on
            ? c.log?.info(
              "events source: conntrack events are on again; reading the whole table once more",
            )
            : c.log?.warn(
              "events source: conntrack events are off (nf_conntrack_events is 0); reading the whole table every poll until they are on",
            ),
      });
      return { source, stats: () => source.stats };
    },
    metrics: (r, read) => eventMetrics(r, read as () => EventsStats | undefined),
  },
  {
    name: "netlink",
    summary: "ctnetlink dumps filtered to unreplied TCP, both families at once",
    check: dumpWorks,
    create: async (c) => ({ source: await netlinkSource(c) }),
  },
  {
    name: "procfs",
    summary: "/proc/net/nf_conntrack (or --proc-file), streamed through the line scanner",
    preferred: (s) =>
      s.origin["proc-file"] === "flag" || s.origin["proc-file"] === "env"
        ? "--proc-file was given" // The user named the file to read: read that one.
        : undefined,
    check: readable,
    create: async (c) => ({
      source: new (await import("../sources/procfs.ts")).ProcfsSource({
        path: c.settings.procFile,
        maxCandidates: c.settings.maxCandidates,
      }),
    }),
  },
  {
    name: "conntrack",
    summary: "conntrack -L per family, through the line scanner",
    async check(c) {
      try {
        await checkConntrack(c.settings.conntrackBin, c.runner);
        return { ok: true, works: "using conntrack -L" };
      } catch (e) {
        return { ok: false, why: (e as Error).message };
      }
    },
    create: async (c) => ({
      source: new (await import("../sources/conntrack_cli.ts")).ConntrackCliSource({
        bin: c.settings.conntrackBin,
        maxCandidates: c.settings.maxCandidates,
        timeoutMs: SOURCE_TIMEOUT_MS,
      }),
    }),
  },
];

/** What the events source counts (`EventsStats` in lib/sources/netlink_events.ts). */
export interface EventCounters {
  received: number;
  overflows: number;
  missed: number;
  resyncs: Readonly<Record<string, number>>;
}

/** Counters that follow the events source's own counts, read at each scrape (0 for others). */
export function eventMetrics(r: Registry, stats: () => EventCounters | undefined): void {
  const read = (): EventCounters =>
    stats() ?? { received: 0, overflows: 0, missed: 0, resyncs: {} };
  const seen = { received: 0, overflows: 0, missed: 0, resyncs: {} as Record<string, number> };
  const follow = (name: string, help: string, key: "received" | "overflows" | "missed") =>
    r.counter(name, help, [], (c) => {
      const n = read()[key];
      if (n > seen[key]) c.inc({}, n - seen[key]);
      seen[key] = Math.max(n, seen[key]);
    });
  follow(
    "conntrack_cleaner_events_received_total",
    "Conntrack event messages received (events source; after the kernel's filter).",
    "received",
  );
  follow(
    "conntrack_cleaner_events_overflows_total",
    "Times the event socket overflowed (ENOBUFS): events were dropped, the table is read.",
    "overflows",
  );
  follow(
    "conntrack_cleaner_events_missed_total",
    "Candidates a periodic or stall-check read of the table found that no event had announced.",
    "missed",
  );
  const resyncs = r.counter(
    "conntrack_cleaner_resyncs_total",
    "Full reads of the table by the events source, by reason (start, overflow, error, periodic, limit, malformed, stalled, events_off).",
    ["reason"],
    (c) => {
      const now = read().resyncs;
      for (const reason of RESYNC_REASONS) {
        const n = now[reason] ?? 0, was = seen.resyncs[reason] ?? 0;
        if (n > was) c.inc({ reason }, n - was);
        seen.resyncs[reason] = Math.max(n, was);
      }
    },
  );
  for (const reason of RESYNC_REASONS) resyncs.inc({ reason }, 0);
}
