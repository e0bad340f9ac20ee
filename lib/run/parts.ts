/**
 * The shape of the registries (lib/run/rules.ts, providers.ts, sources.ts,
 * feeds.ts): each lists its parts once, as {@linkcode Entry}s, and the start
 * (lib/run/start.ts) builds the enabled ones with a context. An entry's
 * `create` may `import()` its module, so an agent loads only what it runs.
 *
 * @module
 */
import type { Settings } from "./settings.ts";
import type { Logger } from "../log/logger.ts";
import type { Registry } from "../serve/prom.ts";
import type { ProbeAnswer } from "../serve/server.ts";
import type { Details, Rule } from "../rules/rule.ts";
import type { NatProvider } from "../rules/providers/provider.ts";
import type { RenewalTracker } from "../rules/tracker.ts";

/** One part the agent can run, listed once in its registry. */
export interface Entry<C, T> {
  /** Its name, as logs, metrics and `--help` say it. */
  readonly name: string;
  /** One line: what it does, for `--help` and docs. */
  readonly summary: string;
  /** Whether these settings ask for it. */
  enabled(settings: Settings): boolean;
  /** Builds it; `undefined` when it turns out to have nothing to work with (a feed is off). */
  create(context: C): Promise<T | undefined>;
}

/** What every part is given when the agent builds it. */
export interface PartContext {
  settings: Settings;
  log: Logger;
  /** Aborts when the agent stops, or when start-up fails after the part started. */
  stop: AbortSignal;
  /** A feed's value, started on first use and shared by every part that asks. */
  use<T>(feed: Feed<T>): Promise<T | undefined>;
}

/** A NAT provider's entry (lib/run/providers.ts). */
export type ProviderEntry = Entry<PartContext, NatProvider>;

/** What a rule is given besides the {@linkcode PartContext}. */
export interface RuleContext extends PartContext {
  tracker: RenewalTracker;
  /** The kernel's `SYN_SENT` timeout in seconds; `undefined` when unknown or not read. */
  synSentTimeoutS: number | undefined;
  /** The enabled NAT providers, built on first call (in registry order). */
  providers(): Promise<readonly NatProvider[]>;
}

/** A rule's entry (lib/run/rules.ts); `D` is the rule's decision details. */
export type RuleEntry<D extends Details = Details> = Entry<RuleContext, Rule<D>>;

/** A rule entry's decision details. */
export type DetailsOf<E> = E extends RuleEntry<infer D> ? D : never;

/** Something running beside the loop that parts share (the Kubernetes view). */
export interface Feed<T> {
  readonly name: string;
  /**
   * Starts it, or `undefined` when it is off or has nothing to read from.
   * Throws `SetupError` when it cannot start as configured (exit 1).
   */
  start(context: PartContext): Promise<RunningFeed<T> | undefined>;
  /** Its metrics, registered whether it runs or not (`read` is `undefined` while it does not). */
  metrics?(registry: Registry, read: () => T | undefined): void;
}

/** A started feed. */
export interface RunningFeed<T> {
  value: T;
  /** Its word for /readyz. */
  ready?(): ProbeAnswer;
  /** Stops it and resolves when it stopped (after `stop` aborted). */
  close(): Promise<void>;
}
