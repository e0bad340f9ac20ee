/**
 * Turns settings into the running parts: which source reads the table, which
 * deleter deletes, and the start-up checks that fail early and clearly.
 *
 * @module
 */
import type { Settings } from "./config.ts";
import type { Deleter } from "../deleters/deleter.ts";
import type { Logger } from "../log/logger.ts";
import { denoRunner, type ProcessRunner } from "../os/process.ts";
import { checkEvents, checkNetlink, type NetlinkCheck } from "../netlink/capability.ts";
import type { NetlinkSource } from "../sources/netlink.ts";
import type { EventsStats } from "../sources/netlink_events.ts";
import type { Source } from "../sources/source.ts";

// The sources and the deleters are imported when chosen (`import()`), not up
// front: an agent loads only what it runs (procfs.ts only when the procfs
// table is considered, the events source only when chosen). See
// docs/benchmarks.md, idle footprint.

/** A setup step that cannot go on: exit code 1 with this message. */
export class SetupError extends Error {
  override name = "SetupError";
}

/** The chosen parts and why they were chosen (for the start-up log). */
export interface Parts {
  /** Reads the table (and the un-NATed rule's evidence with it). */
  source: Source;
  sourceReason: string;
  deleter: Deleter;
  deleterReason: string;
  /** The longest one snapshot may take before the source gives up (its timeout), in ms. */
  sourceTimeoutMs: number;
  /** The events source's counters, when that source was chosen (for metrics). */
  eventStats?: () => EventsStats;
}

/** Options for {@linkcode setUp}. */
export interface SetupOptions {
  runner?: ProcessRunner;
  log?: Logger;
  /** Whether a ctnetlink dump works here; default {@linkcode checkNetlink}. */
  checkNetlink?: () => Promise<NetlinkCheck>;
  /** Whether conntrack events can be received here; default {@linkcode checkEvents}. */
  checkEvents?: () => Promise<NetlinkCheck>;
  /** Aborts a start-up check in progress (its process group is killed): shutting down. */
  signal?: AbortSignal;
  /** This process's effective capabilities; default {@linkcode effectiveCapabilities}. */
  capabilities?: () => bigint | undefined;
}

/** CAP_NET_ADMIN's bit number (linux/capability.h): conntrack deletes need it. */
export const CAP_NET_ADMIN = 12;

/**
 * Time one snapshot may take, retries included, for the sources that can
 * time out (netlink, the conntrack CLI); a procfs read is given the same
 * allowance in {@linkcode Parts.sourceTimeoutMs}.
 */
export const SOURCE_TIMEOUT_MS = 30_000;

/**
 * Chooses and checks the source and the deleter. `auto` prefers events
 * (when a dump works and events can be received), then netlink (when a
 * dump works), then procfs (when the file is readable), then the
 * conntrack CLI. Throws {@linkcode SetupError} with one clear message when
 * the table cannot be read or the chosen tool is missing.
 *
 * @example
 * ```ts ignore
 * // ignore: needs root; probes netlink and conntrack on this host.
 * import { loadConfig } from "./config.ts";
 * import { setUp } from "./setup.ts";
 * const cfg = loadConfig([], () => undefined);
 * if (cfg.kind === "run") {
 *   const parts = await setUp(cfg.settings);
 *   console.log(parts.source.name, parts.sourceReason, parts.deleter.name);
 * }
 * ```
 */
export async function setUp(settings: Settings, options: SetupOptions = {}): Promise<Parts> {
  const base = options.runner ?? denoRunner;
  const runner: ProcessRunner = {
    run: (cmd, args, o) => base.run(cmd, args, { ...o, signal: o.signal ?? options.signal }),
  };
  try {
    return await choose(settings, options, runner);
  } catch (e) {
    if (options.signal?.aborted) throw new SetupError("start-up interrupted: shutting down");
    throw e;
  }
}

async function choose(
  settings: Settings,
  options: SetupOptions,
  runner: ProcessRunner,
): Promise<Parts> {
  let checked: Promise<NetlinkCheck> | undefined;
  const netlink = () => checked ??= (options.checkNetlink ?? checkNetlink)();
  const events = () => (options.checkEvents ?? checkEvents)();
  const { source, sourceReason, eventStats } = await chooseSource(
    settings,
    runner,
    netlink,
    events,
    options.log,
  );
  if (!settings.dryRun) {
    checkNetAdmin((options.capabilities ?? effectiveCapabilities)(), settings.deleteVia);
  }
  const { deleter, deleterReason } = await chooseDeleter(settings, runner, netlink);
  const parts: Parts = {
    source,
    sourceReason,
    deleter,
    deleterReason,
    sourceTimeoutMs: SOURCE_TIMEOUT_MS,
  };
  if (eventStats) parts.eventStats = eventStats;
  return parts;
}

async function chooseSource(
  s: Settings,
  runner: ProcessRunner,
  netlink: () => Promise<NetlinkCheck>,
  events: () => Promise<NetlinkCheck>,
  log?: Logger,
): Promise<{ source: Source; sourceReason: string; eventStats?: () => EventsStats }> {
  const nl = async (): Promise<NetlinkSource> =>
    new (await import("../sources/netlink.ts")).NetlinkSource({
      maxCandidates: s.maxCandidates,
      timeoutMs: SOURCE_TIMEOUT_MS,
      onFilterModeChange: (mode, reason) =>
        log?.warn("netlink dump filter changed", { filter: mode, reason }),
      // Interrupted dumps are normal on a busy table; only a run of them fails the snapshot.
      onRetry: (reason) => log?.debug("netlink dump started again", { reason }),
    });
  const ev = async () => {
    const source = new (await import("../sources/netlink_events.ts")).NetlinkEventsSource({
      dump: await nl(),
      maxCandidates: s.maxCandidates,
      resyncIntervalMs: s.resyncIntervalMs,
      evidence: s.unnatedAfterMs !== undefined && s.destinations === undefined,
      onResync: (reason) => {
        // Start and safety net are routine; lost events or a failing socket are worth a warning.
        const level = reason === "start" || reason === "periodic" ? "debug" : "warn";
        log?.[level]("events source: reading the whole table", { reason });
      },
    });
    return { source, eventStats: () => source.stats };
  };
  const max = s.maxCandidates;
  const procfs = async () =>
    new (await import("../sources/procfs.ts")).ProcfsSource({
      path: s.procFile,
      maxCandidates: max,
    });
  const cli = async () =>
    new (await import("../sources/conntrack_cli.ts")).ConntrackCliSource({
      bin: s.conntrackBin,
      maxCandidates: max,
      timeoutMs: SOURCE_TIMEOUT_MS,
    });
  switch (s.source) {
    case "events": {
      const p = await netlink();
      if (!p.ok) {
        throw new SetupError(`--source=events: a ctnetlink dump does not work: ${p.reason}`);
      }
      const e = await events();
      if (!e.ok) throw new SetupError(`--source=events: conntrack events do not work: ${e.reason}`);
      return { ...await ev(), sourceReason: "--source=events" };
    }
    case "netlink": {
      const p = await netlink();
      if (!p.ok) {
        throw new SetupError(`--source=netlink: a ctnetlink dump does not work: ${p.reason}`);
      }
      return { source: await nl(), sourceReason: "--source=netlink" };
    }
    case "procfs":
      await checkReadable(s.procFile);
      return { source: await procfs(), sourceReason: "--source=procfs" };
    case "conntrack":
      await checkConntrack(s.conntrackBin, runner);
      return { source: await cli(), sourceReason: "--source=conntrack" };
    case "auto": {
      if (s.origin["proc-file"] === "flag" || s.origin["proc-file"] === "env") {
        // The user named the file to read: read that one.
        await checkReadable(s.procFile);
        return { source: await procfs(), sourceReason: "auto: --proc-file was given" };
      }
      const why: string[] = [];
      const p = await netlink();
      if (p.ok) {
        const e = await events();
        if (e.ok) {
          return {
            ...await ev(),
            sourceReason: "auto: conntrack events and a ctnetlink dump work",
          };
        }
        return {
          source: await nl(),
          sourceReason: `auto: a ctnetlink dump works; events: ${e.reason}`,
        };
      }
      why.push(`netlink: ${p.reason}`);
      try {
        await checkReadable(s.procFile);
        return {
          source: await procfs(),
          sourceReason: `auto: ${why[0]}; ${s.procFile} is readable`,
        };
      } catch (e) {
        why.push(`procfs: ${(e as Error).message}`);
      }
      try {
        await checkConntrack(s.conntrackBin, runner);
        return { source: await cli(), sourceReason: `auto: ${why.join("; ")}; using conntrack -L` };
      } catch (e) {
        why.push(`conntrack: ${(e as Error).message}`);
      }
      throw new SetupError(`no way to read the conntrack table: ${why.join("; ")}`);
    }
  }
}

async function chooseDeleter(
  s: Settings,
  runner: ProcessRunner,
  netlink: () => Promise<NetlinkCheck>,
): Promise<{ deleter: Deleter; deleterReason: string }> {
  const cli = async (reason: string) => {
    // A dry run deletes nothing, so it does not need the binary.
    if (!s.dryRun) await checkConntrack(s.conntrackBin, runner);
    return {
      deleter: new (await import("../deleters/conntrack_cli.ts")).ConntrackCliDeleter({
        bin: s.conntrackBin,
        runner,
      }),
      deleterReason: reason,
    };
  };
  switch (s.deleteVia) {
    case "netlink": {
      const p = await netlink();
      if (!p.ok) throw new SetupError(`--delete-via=netlink: ctnetlink does not work: ${p.reason}`);
      return { deleter: await netlinkDeleter(), deleterReason: "--delete-via=netlink" };
    }
    case "conntrack":
      return await cli("--delete-via=conntrack");
    case "auto": {
      const p = await netlink();
      if (p.ok) return { deleter: await netlinkDeleter(), deleterReason: "auto: ctnetlink works" };
      return await cli(`auto: netlink: ${p.reason}; using the conntrack CLI`);
    }
  }
}

async function netlinkDeleter(): Promise<Deleter> {
  return new (await import("../deleters/netlink.ts")).NetlinkDeleter();
}

/**
 * Every deleter (netlink, conntrack CLI) needs CAP_NET_ADMIN: without it the
 * agent would report ready and fail every delete. Throws a
 * {@linkcode SetupError} saying so; `caps` undefined (unknown) passes.
 */
export function checkNetAdmin(caps: bigint | undefined, deleteVia: string): void {
  if (caps === undefined || (caps >> BigInt(CAP_NET_ADMIN)) & 1n) return;
  throw new SetupError(
    `deleting conntrack entries needs CAP_NET_ADMIN, which this process does not have ` +
      `(CapEff ${
        caps.toString(16).padStart(16, "0")
      } in /proc/self/status; --delete-via=${deleteVia}): ` +
      `run it as root with NET_ADMIN (the DaemonSet and the systemd unit grant it), ` +
      `or pass --dry-run to only log what would be deleted`,
  );
}

/**
 * The effective capability set (`CapEff:` in /proc/self/status), or
 * `undefined` when it cannot be read.
 *
 * @example
 * ```ts
 * import { CAP_NET_ADMIN, effectiveCapabilities } from "./setup.ts";
 * const caps = effectiveCapabilities();
 * console.log(caps !== undefined && ((caps >> BigInt(CAP_NET_ADMIN)) & 1n) === 1n);
 * ```
 */
export function effectiveCapabilities(statusFile = "/proc/self/status"): bigint | undefined {
  try {
    const m = /^CapEff:\s*([0-9a-fA-F]+)$/m.exec(Deno.readTextFileSync(statusFile));
    return m ? BigInt("0x" + m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens and reads a byte of the table file, or explains why it cannot. Only
 * a regular file (procfs files are) is opened: a FIFO or a device could block
 * the whole process in open(2) or read(2).
 */
export async function checkReadable(path: string): Promise<void> {
  // Imported here, like the sources: an agent reading the table through netlink never
  // needs it.
  const { openTable } = await import("../sources/procfs.ts");
  try {
    // Opened without blocking and checked by its descriptor (see openTable).
    using f = openTable(path);
    f.readSync(new Uint8Array(1));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new SetupError(
        `the conntrack table ${path} does not exist: the kernel needs CONFIG_NF_CONNTRACK_PROCFS ` +
          `and the nf_conntrack module loaded (or choose another --source)`,
      );
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new SetupError(`cannot read ${path}: permission denied (it is root-only; run as root)`);
    }
    if (e instanceof TypeError) throw new SetupError(`--proc-file: ${e.message}`);
    throw new SetupError(`cannot read ${path}: ${e instanceof Error ? e.message : e}`);
  }
}

/** How long `conntrack --version` may take at start-up. */
export const CHECK_TIMEOUT_MS = 5000;

/**
 * Runs `conntrack --version` (allowed `timeoutMs`, default
 * {@linkcode CHECK_TIMEOUT_MS}), or explains why it cannot.
 */
export async function checkConntrack(
  bin: string,
  runner: ProcessRunner,
  timeoutMs: number = CHECK_TIMEOUT_MS,
): Promise<string> {
  const r = await runner.run(bin, ["--version"], { timeoutMs });
  if (r.timedOut) {
    throw new SetupError(
      `the conntrack binary ${JSON.stringify(bin)} did not answer --version within ` +
        `${timeoutMs / 1000} s and was killed (with everything it started); ` +
        `point --conntrack-bin at conntrack-tools' conntrack`,
    );
  }
  if (r.spawnError !== undefined || r.code !== 0) {
    const why = r.spawnError ?? `exit code ${r.code}: ${r.stderr.trim()}`;
    throw new SetupError(
      `the conntrack binary ${JSON.stringify(bin)} cannot run (${why}); install conntrack-tools ` +
        `(Debian/Ubuntu: apt-get install conntrack; RHEL/Fedora: dnf install conntrack-tools) ` +
        `or point --conntrack-bin at it`,
    );
  }
  return (r.stdout + r.stderr).trim();
}
