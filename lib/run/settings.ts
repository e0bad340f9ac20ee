/**
 * The validated settings (`Settings`), what lib/run/config.ts makes of flags
 * and environment, and what every registry entry (lib/run/parts.ts) is
 * enabled by. Types and the closed choices only.
 *
 * @module
 */
import type { ListenAddress } from "../serve/listen.ts";
import type { DestinationSet } from "../model/destination_set.ts";
import type { LogFormat, LogLevel } from "../log/logger.ts";

/** `--source`: `auto` or a source's name (lib/run/sources.ts). */
export type SourceChoice = string;
export const DELETERS = ["auto", "netlink", "conntrack"] as const;
export const KUBERNETES = ["auto", "off"] as const;
export type KubernetesChoice = typeof KUBERNETES[number];
export const NAT_RULES = ["auto", "off"] as const;
export type NatRulesChoice = typeof NAT_RULES[number];
export type DeleterChoice = typeof DELETERS[number];

/** Everything the agent needs to know, validated. */
export interface Settings {
  intervalMs: number;
  threshold: number;
  /** `--destinations`; `undefined` for every destination (the default, `all`). */
  destinations: DestinationSet | undefined;
  /** `--unnated-after` in ms; `undefined` when `off`. */
  unnatedAfterMs: number | undefined;
  maxCandidates: number;
  dryRun: boolean;
  procFile: string;
  conntrackBin: string;
  logFormat: LogFormat;
  logLevel: LogLevel;
  /** `--kubernetes`: `auto` uses the API when credentials are found (lib/kube/access.ts). */
  kubernetes: KubernetesChoice;
  /** `--nat-rules`: `auto` reads the node's nf_tables NAT rules and lets them decide (lib/nat/). */
  natRules: NatRulesChoice;
  /** `--kubeconfig`; `undefined` for `none` (in-cluster, then `KUBECONFIG`). */
  kubeconfig: string | undefined;
  /** `undefined` when `--listen=off`. */
  listen: ListenAddress | undefined;
  source: SourceChoice;
  /** `--resync-interval` in ms: the events source's safety-net full read. */
  resyncIntervalMs: number;
  deleteVia: DeleterChoice;
  /** For each setting, where its value came from: shown in the start-up log. */
  origin: Record<string, "flag" | "env" | "default">;
}
