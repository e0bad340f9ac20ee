/**
 * Turns settings into the running parts: which source reads the table, which
 * deleter deletes, and the start-up checks that fail early and clearly.
 *
 * @module
 */
import type { Settings } from "./config.ts";
import { ConntrackCliDeleter } from "./deleters/conntrack_cli.ts";
import type { Deleter } from "./deleters/deleter.ts";
import type { Logger } from "./log.ts";
import { denoRunner, type ProcessRunner } from "./process.ts";
import { NetlinkDeleter } from "./deleters/netlink.ts";
import { ConntrackCliSource } from "./sources/conntrack_cli.ts";
import { NetlinkSource, probeNetlink, type ProbeResult } from "./sources/netlink.ts";
import { ProcfsSource } from "./sources/procfs.ts";
import type { Source } from "./sources/source.ts";
import type { EvidenceFinder } from "./unnated.ts";

/** A setup step that cannot go on: exit code 1 with this message. */
export class SetupError extends Error {
  override name = "SetupError";
}

/** The chosen parts and why they were chosen (for the start-up log). */
export interface Parts {
  /** Reads the table, and looks up evidence for the un-NATed rule. */
  source: Source & EvidenceFinder;
  sourceReason: string;
  deleter: Deleter;
  deleterReason: string;
  /** How many deletions one poll may do with this deleter. */
  maxDeletesPerPoll: number;
}

/** Options for {@linkcode setUp}. */
export interface SetupOptions {
  runner?: ProcessRunner;
  log?: Logger;
  /** Whether a ctnetlink dump works here; default {@linkcode probeNetlink}. */
  probe?: () => Promise<ProbeResult>;
}

/**
 * conntrack-tools dumps the whole table for each delete (0.33 s at 100k
 * entries): cap one poll's CLI deletes so a poll stays bounded.
 */
export const CLI_DELETES_PER_POLL = 100;
/** A netlink delete is a hash lookup: 1,000 took 40-75 ms here (deno task bench). */
export const NETLINK_DELETES_PER_POLL = 10_000;

/**
 * Chooses and checks the source and the deleter. `auto` prefers netlink
 * (when a dump works), then procfs (when the file is readable), then the
 * conntrack CLI. Throws {@linkcode SetupError} with one clear message when
 * the table cannot be read or the chosen tool is missing.
 *
 * @example
 * ```ts
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
  const runner = options.runner ?? denoRunner;
  let probed: Promise<ProbeResult> | undefined;
  const netlink = () => probed ??= (options.probe ?? probeNetlink)();
  const { source, sourceReason } = await chooseSource(settings, runner, netlink, options.log);
  const { deleter, deleterReason } = await chooseDeleter(settings, runner, netlink);
  return {
    source,
    sourceReason,
    deleter,
    deleterReason,
    maxDeletesPerPoll: deleter.name === "netlink" ? NETLINK_DELETES_PER_POLL : CLI_DELETES_PER_POLL,
  };
}

async function chooseSource(
  s: Settings,
  runner: ProcessRunner,
  netlink: () => Promise<ProbeResult>,
  log?: Logger,
): Promise<{ source: Source & EvidenceFinder; sourceReason: string }> {
  const nl = () =>
    new NetlinkSource({
      maxCandidates: s.maxCandidates,
      onFilterModeChange: (mode, reason) =>
        log?.warn("netlink dump filter changed", { filter: mode, reason }),
      // Interrupted dumps are normal on a busy table; only a run of them fails the snapshot.
      onRetry: (reason) => log?.debug("netlink dump started again", { reason }),
    });
  const max = s.maxCandidates;
  const procfs = () => new ProcfsSource({ path: s.procFile, maxCandidates: max });
  const cli = () => new ConntrackCliSource({ bin: s.conntrackBin, maxCandidates: max });
  switch (s.source) {
    case "netlink": {
      const p = await netlink();
      if (!p.ok) {
        throw new SetupError(`--source=netlink: a ctnetlink dump does not work: ${p.reason}`);
      }
      return { source: nl(), sourceReason: "--source=netlink" };
    }
    case "procfs":
      await checkReadable(s.procFile);
      return { source: procfs(), sourceReason: "--source=procfs" };
    case "conntrack":
      await checkConntrack(s.conntrackBin, runner);
      return { source: cli(), sourceReason: "--source=conntrack" };
    case "auto": {
      const why: string[] = [];
      const p = await netlink();
      if (p.ok) return { source: nl(), sourceReason: "auto: a ctnetlink dump works" };
      why.push(`netlink: ${p.reason}`);
      try {
        await checkReadable(s.procFile);
        return { source: procfs(), sourceReason: `auto: ${why[0]}; ${s.procFile} is readable` };
      } catch (e) {
        why.push(`procfs: ${(e as Error).message}`);
      }
      try {
        await checkConntrack(s.conntrackBin, runner);
        return { source: cli(), sourceReason: `auto: ${why.join("; ")}; using conntrack -L` };
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
  netlink: () => Promise<ProbeResult>,
): Promise<{ deleter: Deleter; deleterReason: string }> {
  const cli = async (reason: string) => {
    // A dry run deletes nothing, so it does not need the binary.
    if (!s.dryRun) await checkConntrack(s.conntrackBin, runner);
    return {
      deleter: new ConntrackCliDeleter({ bin: s.conntrackBin, runner }),
      deleterReason: reason,
    };
  };
  switch (s.deleteVia) {
    case "netlink": {
      const p = await netlink();
      if (!p.ok) throw new SetupError(`--delete-via=netlink: ctnetlink does not work: ${p.reason}`);
      return { deleter: new NetlinkDeleter(), deleterReason: "--delete-via=netlink" };
    }
    case "conntrack":
      return await cli("--delete-via=conntrack");
    case "auto": {
      const p = await netlink();
      if (p.ok) return { deleter: new NetlinkDeleter(), deleterReason: "auto: ctnetlink works" };
      return await cli(`auto: netlink: ${p.reason}; using the conntrack CLI`);
    }
  }
}

/** Opens and reads a byte of the table file, or explains why it cannot. */
export async function checkReadable(path: string): Promise<void> {
  try {
    using f = await Deno.open(path, { read: true });
    await f.read(new Uint8Array(1));
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
    throw new SetupError(`cannot read ${path}: ${e instanceof Error ? e.message : e}`);
  }
}

/** Runs `conntrack --version`, or explains why it cannot. */
export async function checkConntrack(bin: string, runner: ProcessRunner): Promise<string> {
  const r = await runner.run(bin, ["--version"], { timeoutMs: 5000 });
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
