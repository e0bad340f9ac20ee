/**
 * Command-line flags and environment → validated settings. Pure: the
 * arguments and an environment lookup come in, settings or one error message
 * come out. Nothing here exits or prints.
 *
 * @module
 */
import { parseBoolean, parseFlags } from "./args.ts";
import { DEFAULT_LISTEN, formatListen, parseListen } from "../serve/listen.ts";
import { DESTINATIONS_FORM, parseDestinations } from "../model/destination_set.ts";
import { formatDuration, parseGoDuration } from "./duration.ts";
import { PROC_CONNTRACK_FILE } from "../os/kernel.ts";
import { RULES } from "./rules.ts";
import { SOURCES } from "./sources.ts";
import { DELETERS, KUBERNETES, NAT_RULES, type Settings } from "./settings.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../log/logger.ts";

export { DELETERS, KUBERNETES, NAT_RULES } from "./settings.ts";
export type {
  DeleterChoice,
  KubernetesChoice,
  NatRulesChoice,
  Settings,
  SourceChoice,
} from "./settings.ts";

/** `--source`: `auto`, or a source of the registry (lib/run/sources.ts), by name. */
export const SOURCE_CHOICES: readonly string[] = ["auto", ...SOURCES.map((e) => e.name)];

/** The result of {@linkcode loadConfig}: run, print help or version, or refuse. */
export type ConfigResult =
  | { kind: "run"; settings: Settings }
  | { kind: "help" }
  | { kind: "version" }
  | { kind: "error"; message: string };

/** Minimum and maximum poll interval. */
export const MIN_INTERVAL_MS = 100;
export const MAX_INTERVAL_MS = 3_600_000;
export const MAX_THRESHOLD = 1_000_000;
export const MAX_CANDIDATES = 10_000_000;
export const MAX_UNNATED_AFTER_MS = 3_600_000;
export const MIN_RESYNC_MS = 10_000;
export const MAX_RESYNC_MS = 86_400_000;

interface Option {
  flag: string;
  env: string;
  default: string;
  /**
   * A boolean: the flag alone means `true`; the flag (`--dry-run=false`) and
   * its variable take `true` or `false` (lib/args.ts's `parseBoolean`).
   */
  boolean?: true;
  /** Accepted form, for help and error messages. */
  form: string;
  help: string;
}

/** Every setting: flag, env var, default, form, meaning. The README's table says the same. */
export const OPTIONS: readonly Option[] = [
  {
    flag: "interval",
    env: "CONNTRACK_TABLE_DUMP_FREQUENCY",
    default: "1s",
    form: "a Go duration such as 1s, 500ms, 1m30s, from 100ms to 1h",
    help: "how often the table is read",
  },
  {
    flag: "threshold",
    env: "CONNECTION_RENEWAL_THRESHOLD",
    default: "3",
    form: `a whole number from 0 to ${MAX_THRESHOLD}`,
    help: "an entry is deleted after MORE than this many observed renewals",
  },
  {
    flag: "destinations",
    env: "CONNTRACK_CLEANER_DESTINATIONS",
    default: "all",
    form: `all, or ${DESTINATIONS_FORM}`,
    help:
      "original destinations every rule may act on; given, it also marks them NATed for the un-NATed rule",
  },
  {
    flag: "unnated-after",
    env: "CONNTRACK_CLEANER_UNNATED_AFTER",
    default: "2s",
    form: "a Go duration from 0s to 1h, or off",
    help:
      "un-NATed SYN_SENT [UNREPLIED] entries at least this old are deleted when their destination is NATed now",
  },
  {
    flag: "max-candidates",
    env: "CONNTRACK_CLEANER_MAX_CANDIDATES",
    default: "20000",
    form: `a whole number from 1 to ${MAX_CANDIDATES}`,
    help: "SYN_SENT [UNREPLIED] entries tracked at most (bounds memory when the table is flooded)",
  },
  {
    flag: "listen",
    env: "CONNTRACK_CLEANER_LISTEN",
    default: DEFAULT_LISTEN,
    form: "HOST:PORT (IPv6 as [ADDR]:PORT; [IPv4]:PORT works too), :PORT for all IPv4 and " +
      "IPv6 addresses (bound as [::], dual-stack; 0.0.0.0 where the kernel has no IPv6), or off",
    help: "address of /metrics, /healthz and /readyz",
  },
  {
    flag: "source",
    env: "CONNTRACK_CLEANER_SOURCE",
    default: "auto",
    form: SOURCE_CHOICES.join("|"),
    help: "how the table is read",
  },
  {
    flag: "resync-interval",
    env: "CONNTRACK_CLEANER_RESYNC_INTERVAL",
    default: "5m",
    form: "a Go duration from 10s to 24h",
    help:
      "events source: how often the whole table is read anyway, as a safety net (lost events are signalled and read at once)",
  },
  {
    flag: "nat-rules",
    env: "CONNTRACK_CLEANER_NAT_RULES",
    default: "auto",
    form: NAT_RULES.join("|"),
    help:
      "auto: read the node's nf_tables NAT rules and let them decide the unnated and stale_translation rules (the providers decide only where the rules are unreadable); off: never read them, the providers decide",
  },
  {
    flag: "kubernetes",
    env: "CONNTRACK_CLEANER_KUBERNETES",
    default: "auto",
    form: KUBERNETES.join("|"),
    help:
      "Kubernetes Services as trusted destinations and the stale_endpoint rule: auto uses --kubeconfig, else in-cluster credentials, else KUBECONFIG, else none",
  },
  {
    flag: "kubeconfig",
    env: "CONNTRACK_CLEANER_KUBECONFIG",
    default: "none",
    form: "a kubeconfig file path, or none",
    help: "kubeconfig whose current context reaches the API (token, client certificate, CA)",
  },
  {
    flag: "delete-via",
    env: "CONNTRACK_CLEANER_DELETE_VIA",
    default: "auto",
    form: DELETERS.join("|"),
    help: "how stale entries are deleted",
  },
  {
    flag: "proc-file",
    env: "CONNTRACK_CLEANER_PROC_FILE",
    default: PROC_CONNTRACK_FILE,
    form: "a file path",
    help: "the procfs table (for --source=procfs)",
  },
  {
    flag: "conntrack-bin",
    env: "CONNTRACK_CLEANER_CONNTRACK_BIN",
    default: "conntrack",
    form: "a command name or path",
    help: "conntrack-tools binary (for --delete-via=conntrack and --source=conntrack)",
  },
  {
    flag: "log-format",
    env: "CONNTRACK_CLEANER_LOG_FORMAT",
    default: "json",
    form: LOG_FORMATS.join("|"),
    help: "JSON lines or text lines on stdout",
  },
  {
    flag: "log-level",
    env: "CONNTRACK_CLEANER_LOG_LEVEL",
    default: "info",
    form: LOG_LEVELS.join("|"),
    help: "least severe level that is written; debug adds a line per candidate kept, with each " +
      "rule's reason (the first 20 a poll, then a count)",
  },
  {
    flag: "dry-run",
    env: "CONNTRACK_CLEANER_DRY_RUN",
    boolean: true,
    default: "false",
    form: "true or false (the flag alone means true)",
    help: "decide and log what would be deleted; delete nothing",
  },
];

/** The `--help` text. */
export function helpText(): string {
  const rows = OPTIONS.map((o) =>
    `  --${o.flag}${o.boolean ? "[=true|false]" : "=VALUE"} (env ${o.env})\n` +
    `      ${o.help}; default ${o.default}; ${o.form}`
  );
  return [
    "conntrack-cleaner: deletes TCP conntrack entries stuck in SYN_SENT [UNREPLIED], so the",
    "client's next SYN gets a fresh entry that meets the current NAT rules. The rules:",
    ...RULES.flatMap(({ name, summary }) => wrap(`${name.padEnd(9)} ${summary};`, 86, 12)),
    "",
    "Usage: conntrack-cleaner [flags]",
    "",
    ...rows,
    "  --help, --version",
    "",
    "A flag wins over its environment variable. Invalid values exit with code 2.",
  ].join("\n");
}

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

/** `text` in lines of at most `width` characters, indented 2, continuation lines `indent`. */
function wrap(text: string, width: number, indent: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = " ".repeat(indent - 2) + word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  lines.push(line);
  return lines.map((l) => `  ${l}`);
}
