/**
 * Turns settings into the running parts: which source reads the table (from
 * the registry, lib/run/sources.ts) and which deleter deletes, each checked
 * first (lib/run/checks.ts).
 *
 * @module
 */
import type { Settings } from "./settings.ts";
import type { Deleter } from "../deleters/deleter.ts";
import type { Logger } from "../log/logger.ts";
import { denoRunner, type ProcessRunner } from "../os/process.ts";
import { checkEvents, checkNetlink, type NetlinkCheck } from "../netlink/capability.ts";
import type { Source } from "../sources/source.ts";
import {
  checkConntrack,
  checkNetAdmin,
  effectiveCapabilities,
  SetupError,
  SOURCE_TIMEOUT_MS,
} from "./checks.ts";
import { type SourceContext, type SourceEntry, SOURCES } from "./sources.ts";

// The sources and the deleters are imported when chosen (`import()`), not up
// front: an agent loads only what it runs (procfs.ts only when the procfs
// table is considered, the events source only when chosen). See
// docs/benchmarks.md, idle footprint.

export { SetupError };

/** The chosen parts and why they were chosen (for the start-up log). */
export interface Parts {
  /** Reads the table (and the un-NATed rule's evidence with it). */
  source: Source;
  sourceReason: string;
  deleter: Deleter;
  deleterReason: string;
  /** The longest one snapshot may take before the source gives up (its timeout), in ms. */
  sourceTimeoutMs: number;
  /** The registry entry of the chosen source. */
  sourceEntry: SourceEntry;
  /** The chosen source's counters, when it counts things (its entry's metrics read them). */
  sourceStats?: () => unknown;
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
  /** This process's effective capabilities; default `effectiveCapabilities` (lib/run/checks.ts). */
  capabilities?: () => bigint | undefined;
  /** The sources to choose from, in `auto` order; default the registry's. */
  sources?: readonly SourceEntry[];
}

/**
 * Chooses and checks the source and the deleter. `--source=auto` takes the
 * first source of the registry (lib/run/sources.ts) whose check passes: events
 * (when a dump works and events can be received), then netlink (when a dump
 * works), then procfs (when the file is readable), then the conntrack CLI. Throws {@linkcode SetupError} with one clear message when
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
  const context: SourceContext = {
    settings,
    runner,
    netlink,
    events: () => (options.checkEvents ?? checkEvents)(),
    ...(options.log ? { log: options.log } : {}),
  };
  const { entry, reason } = await chooseSource(context, options.sources ?? SOURCES);
  const built = await entry.create(context);
  if (!settings.dryRun) {
    checkNetAdmin((options.capabilities ?? effectiveCapabilities)(), settings.deleteVia);
  }
  const { deleter, deleterReason } = await chooseDeleter(settings, runner, netlink);
  const parts: Parts = {
    source: built.source,
    sourceReason: reason,
    sourceEntry: entry,
    deleter,
    deleterReason,
    sourceTimeoutMs: SOURCE_TIMEOUT_MS,
  };
  if (built.stats) parts.sourceStats = built.stats;
  return parts;
}

/** The source `--source` names (checked), or `auto`'s first that works, and why. */
async function chooseSource(
  c: SourceContext,
  sources: readonly SourceEntry[],
): Promise<{ entry: SourceEntry; reason: string }> {
  const s = c.settings;
  if (s.source !== "auto") {
    const entry = sources.find((e) => e.name === s.source);
    if (entry === undefined) throw new SetupError(`--source=${s.source}: no such source`);
    const r = await entry.check(c);
    if (!r.ok) throw new SetupError(`--source=${s.source}: ${r.why}`);
    return { entry, reason: `--source=${s.source}` };
  }
  for (const entry of sources) {
    const why = entry.preferred?.(s);
    if (why === undefined) continue;
    const r = await entry.check(c);
    if (!r.ok) throw new SetupError(r.why);
    return { entry, reason: `auto: ${why}` };
  }
  const why: string[] = [];
  for (const entry of sources) {
    const r = await entry.check(c);
    if (r.ok) return { entry, reason: `auto: ${[...why, r.works].join("; ")}` };
    if (!r.quiet) why.push(`${entry.name}: ${r.brief ?? r.why}`);
  }
  throw new SetupError(`no way to read the conntrack table: ${why.join("; ")}`);
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
