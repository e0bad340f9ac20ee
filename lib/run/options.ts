/**
 * Every setting of the agent, once: its flag, environment variable, default,
 * accepted form and meaning (`OPTIONS`), the bounds the parser checks, and the
 * `--help` text made from them. Data and text only; lib/run/config.ts parses.
 *
 * @example
 * ```ts
 * import { OPTIONS } from "./options.ts";
 * OPTIONS.find((o) => o.flag === "interval")?.env; // => "CONNTRACK_TABLE_DUMP_FREQUENCY"
 * ```
 *
 * @module
 */
import { DEFAULT_LISTEN } from "../serve/listen.ts";
import { DESTINATIONS_FORM } from "../model/destination_set.ts";
import { PROC_CONNTRACK_FILE } from "../os/kernel.ts";
import { RULES } from "./rules.ts";
import { SOURCES } from "./sources.ts";
import { DELETERS, KUBERNETES, NAT_RULES } from "./settings.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../log/logger.ts";
import { NODEPORT_ADDRESSES_FORM } from "../kube/node_addresses.ts";

/** `--source`: `auto`, or a source of the registry (lib/run/sources.ts), by name. */
export const SOURCE_CHOICES: readonly string[] = ["auto", ...SOURCES.map((e) => e.name)];

/** Minimum and maximum poll interval. */
export const MIN_INTERVAL_MS = 100;
export const MAX_INTERVAL_MS = 3_600_000;
export const MAX_THRESHOLD = 1_000_000;
export const MAX_CANDIDATES = 10_000_000;
export const MAX_UNNATED_AFTER_MS = 3_600_000;
export const MIN_RESYNC_MS = 10_000;
export const MAX_RESYNC_MS = 86_400_000;
export const MAX_SETTLE_MS = 600_000;

/** One setting. */
export interface Option {
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

/** Every setting: flag, env var, default, form, meaning (docs/reference.md's table says the same). */
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
    help:
      "kubeconfig whose current context reaches the API (token, client certificate, CA; only that CA is trusted); HTTP(S)_PROXY, ALL_PROXY and NO_PROXY are ignored: the API is reached directly, as the node reaches it (a proxy in the middle of the watches would make the view lag)",
  },
  {
    flag: "nodeport-addresses",
    env: "CONNTRACK_CLEANER_NODEPORT_ADDRESSES",
    default: "primary",
    form: NODEPORT_ADDRESSES_FORM,
    help:
      "node addresses on which NodePorts count as NATed, set as kube-proxy's; primary: the address of each family's default-route interface",
  },
  {
    flag: "kubernetes-zone",
    env: "CONNTRACK_CLEANER_KUBERNETES_ZONE",
    default: "0",
    form: "a conntrack zone from 0 to 65535",
    help:
      "the Kubernetes provider and stale_endpoint act only on entries of this zone (kube-proxy's traffic)",
  },
  {
    flag: "stale-endpoint-settle",
    env: "CONNTRACK_CLEANER_STALE_ENDPOINT_SETTLE",
    default: "5s",
    form: "a Go duration from 0s to 10m",
    help:
      "stale_endpoint acts only on an endpoint removal this old, confirmed since by both watches",
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
