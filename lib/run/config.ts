/**
 * Command-line flags and environment → validated settings. Pure: the
 * arguments and an environment lookup come in, settings or one error message
 * come out. Nothing here exits or prints.
 *
 * @module
 */
import { parseBoolean, parseFlags } from "./args.ts";
import { formatListen, parseListen } from "../serve/listen.ts";
import { parseDestinations } from "../model/destination_set.ts";
import { formatDuration, parseGoDuration } from "./duration.ts";
import { DELETERS, KUBERNETES, NAT_RULES, type Settings } from "./settings.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../log/logger.ts";
import { parseNodePortAddresses } from "../kube/node_addresses.ts";

export { DELETERS, KUBERNETES, NAT_RULES } from "./settings.ts";
export type {
  DeleterChoice,
  KubernetesChoice,
  NatRulesChoice,
  Settings,
  SourceChoice,
} from "./settings.ts";

import {
  MAX_CANDIDATES,
  MAX_INTERVAL_MS,
  MAX_RESYNC_MS,
  MAX_SETTLE_MS,
  MAX_THRESHOLD,
  MAX_UNNATED_AFTER_MS,
  MIN_INTERVAL_MS,
  MIN_RESYNC_MS,
  type Option,
  OPTIONS,
  SOURCE_CHOICES,
} from "./options.ts";

export * from "./options.ts";

/** The result of {@linkcode loadConfig}: run, print help or version, or refuse. */
export type ConfigResult =
  | { kind: "run"; settings: Settings }
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "error"; message: string };

/**
 * Reads flags and environment into {@linkcode Settings}.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./config.ts";
 * const r = loadConfig(["--threshold", "5"], (name) => ({ CONNTRACK_TABLE_DUMP_FREQUENCY: "2s" })[name]);
 * if (r.kind === "run") r.settings.intervalMs; // => 2000
 * ```
 */
export function loadConfig(
  args: readonly string[],
  env: (name: string) => string | undefined,
): ConfigResult {
  const parsed = parseFlags(args, {
    ...Object.fromEntries(
      OPTIONS.map((o) => [o.flag, { type: o.boolean ? "boolean" as const : "string" as const }]),
    ),
    help: { type: "boolean", short: "h" },
    version: { type: "boolean" },
  });
  if (!parsed.ok) return { kind: "error", message: parsed.message };
  const v: Record<string, string | boolean | undefined> = parsed.values;
  if (v.help) return { kind: "help" };
  if (v.version) return { kind: "version" };

  const origin: Settings["origin"] = {};
  const raw = (o: Option): { value: string; name: string } => {
    const flag = v[o.flag];
    if (flag !== undefined) {
      origin[o.flag] = "flag";
      return { value: String(flag), name: `--${o.flag}` };
    }
    const e = env(o.env);
    // An empty variable counts as unset, as it did for the old agent.
    if (e !== undefined && e !== "") {
      origin[o.flag] = "env";
      return { value: e, name: o.env };
    }
    origin[o.flag] = "default";
    return { value: o.default, name: `--${o.flag}` };
  };
  const errors: string[] = [];
  /** Said before the accepted form when a value is refused (the bad item of a list). */
  let destinationsProblem: string | undefined;
  const get = <T>(flag: string, check: (s: string) => T | undefined): T => {
    const o = OPTIONS.find((x) => x.flag === flag)!;
    const { value, name } = raw(o);
    destinationsProblem = undefined;
    const out = check(value);
    if (out === undefined) {
      const why = destinationsProblem ? `${destinationsProblem}; ` : "";
      errors.push(`invalid ${name} ${JSON.stringify(value)}: ${why}expected ${o.form}`);
    }
    return out as T;
  };

  const settings: Settings = {
    intervalMs: get("interval", (s) => {
      const ms = parseGoDuration(s);
      return ms !== undefined && ms >= MIN_INTERVAL_MS && ms <= MAX_INTERVAL_MS ? ms : undefined;
    }),
    threshold: get("threshold", (s) => {
      if (!/^(0|[1-9][0-9]{0,6})$/.test(s)) return undefined;
      const n = Number(s);
      return n <= MAX_THRESHOLD ? n : undefined;
    }),
    destinations: get("destinations", (s) => {
      if (s === "all") return null;
      const set = parseDestinations(s);
      if (typeof set === "string") {
        destinationsProblem = set;
        return undefined;
      }
      return set;
    }) ?? undefined,
    unnatedAfterMs: get("unnated-after", (s) => {
      if (s === "off") return null;
      const ms = parseGoDuration(s);
      return ms !== undefined && ms >= 0 && ms <= MAX_UNNATED_AFTER_MS ? ms : undefined;
    }) ?? undefined,
    maxCandidates: get("max-candidates", (s) => {
      if (!/^[1-9][0-9]{0,7}$/.test(s)) return undefined;
      const n = Number(s);
      return n <= MAX_CANDIDATES ? n : undefined;
    }),
    listen: get("listen", (s) => (s === "off" ? null : parseListen(s))) ?? undefined,
    source: get("source", (s) => oneOf(SOURCE_CHOICES, s)),
    resyncIntervalMs: get("resync-interval", (s) => {
      const ms = parseGoDuration(s);
      return ms !== undefined && ms >= MIN_RESYNC_MS && ms <= MAX_RESYNC_MS ? ms : undefined;
    }),
    deleteVia: get("delete-via", (s) => oneOf(DELETERS, s)),
    procFile: get("proc-file", nonEmpty),
    conntrackBin: get("conntrack-bin", nonEmpty),
    logFormat: get("log-format", (s) => oneOf(LOG_FORMATS, s)),
    logLevel: get("log-level", (s) => oneOf(LOG_LEVELS, s)),
    kubernetes: get("kubernetes", (s) => oneOf(KUBERNETES, s)),
    natRules: get("nat-rules", (s) => oneOf(NAT_RULES, s)),
    kubeconfig: get("kubeconfig", (s) => (s === "none" ? null : nonEmpty(s))) ?? undefined,
    nodePortAddresses: get("nodeport-addresses", parseNodePortAddresses),
    kubernetesZone: get("kubernetes-zone", (s) => {
      if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) return undefined;
      const n = Number(s);
      return n <= 65535 ? n : undefined;
    }),
    staleEndpointSettleMs: get("stale-endpoint-settle", (s) => {
      const ms = parseGoDuration(s);
      return ms !== undefined && ms >= 0 && ms <= MAX_SETTLE_MS ? ms : undefined;
    }),
    dryRun: get("dry-run", parseBoolean),
    origin,
  };
  if (errors.length > 0) return { kind: "error", message: errors.join("\n") };
  return { kind: "run", settings };
}

/** Settings as log fields: every value, plus where it came from. */
export function describeSettings(s: Settings): Record<string, unknown> {
  return {
    interval: formatDuration(s.intervalMs),
    threshold: s.threshold,
    destinations: s.destinations?.toString() ?? "all",
    unnated_after: s.unnatedAfterMs === undefined ? "off" : formatDuration(s.unnatedAfterMs),
    max_candidates: s.maxCandidates,
    dry_run: s.dryRun,
    listen: s.listen ? formatListen(s.listen) : "off",
    source: s.source,
    resync_interval: formatDuration(s.resyncIntervalMs),
    delete_via: s.deleteVia,
    proc_file: s.procFile,
    conntrack_bin: s.conntrackBin,
    log_format: s.logFormat,
    log_level: s.logLevel,
    kubernetes: s.kubernetes,
    nat_rules: s.natRules,
    kubeconfig: s.kubeconfig ?? "none",
    nodeport_addresses: s.nodePortAddresses.kind === "primary"
      ? "primary"
      : s.nodePortAddresses.cidrs.map((c) => c.text).join(","),
    kubernetes_zone: s.kubernetesZone,
    stale_endpoint_settle: formatDuration(s.staleEndpointSettleMs),
    from_env: Object.keys(s.origin).filter((k) => s.origin[k] === "env"),
    from_flags: Object.keys(s.origin).filter((k) => s.origin[k] === "flag"),
  };
}

function oneOf<T extends string>(values: readonly T[], s: string): T | undefined {
  return (values as readonly string[]).includes(s) ? s as T : undefined;
}

function nonEmpty(s: string): string | undefined {
  return s !== "" && !s.includes("\0") ? s : undefined;
}
