/**
 * The composition root: settings → setup (source, deleter) → the enabled
 * rules and providers of the registries → metrics, agent, HTTP server → the
 * loop until SIGTERM or SIGINT. Names no optional part: each registry entry
 * builds its own, feeds (lib/run/feeds.ts) bring their readiness and metrics.
 *
 * @module
 */
import type { EarlySignals } from "./early_signals.ts";
import { describeSettings, helpText, loadConfig, type Settings } from "./config.ts";
import { handleShutdown, type Shutdown } from "./lifecycle.ts";
import { type Parts, setUp } from "./setup.ts";
import { SetupError } from "./checks.ts";
import { VERSION } from "./version.ts";
import { RULES } from "./rules.ts";
import { describeRules } from "./rules_report.ts";
import { PROVIDERS } from "./providers.ts";
import { FEEDS } from "./feeds.ts";
import { NAT_RULES_FEED } from "./nat_rules.ts";
import type { Feed, PartContext, ProviderEntry, RuleContext, RuleEntry } from "./parts.ts";
import { type SourceEntry, SOURCES } from "./sources.ts";
import { createLogger, type Logger } from "../log/logger.ts";
import { Metrics } from "../serve/metrics.ts";
import type { Registry } from "../serve/prom.ts";
import { type ProbeAnswer, type RunningServer, startServer } from "../serve/server.ts";
import { boundAddresses, formatListen } from "../serve/listen.ts";
import { Agent } from "../agent/agent.ts";
import { RenewalTracker } from "../rules/tracker.ts";
import type { Rule } from "../rules/rule.ts";
import type { NatProvider } from "../rules/providers/provider.ts";
import { readSynSentTimeout } from "../os/kernel.ts";
import { errorText } from "../basics.ts";

/** What {@linkcode start} may be given instead of the registries (tests add parts). */
export interface StartOptions {
  early?: EarlySignals;
  rules?: readonly RuleEntry[];
  providers?: readonly ProviderEntry[];
  sources?: readonly SourceEntry[];
  feeds?: readonly Feed<unknown>[];
}

/** Runs the agent; resolves to the process exit code (0, 1 on failure, 2 on bad settings). */
export async function start(
  args: readonly string[],
  env: (name: string) => string | undefined,
  options: StartOptions = {},
): Promise<number> {
  const cfg = loadConfig(args, env);
  if (cfg.kind === "help") {
    console.log(helpText());
    return 0;
  }
  if (cfg.kind === "version") {
    console.log(`conntrack-cleaner ${VERSION} (deno ${Deno.version.deno})`);
    return 0;
  }
  if (cfg.kind === "error") {
    console.error(`conntrack-cleaner: ${cfg.message.replaceAll("\n", "\nconntrack-cleaner: ")}`);
    console.error("Try 'conntrack-cleaner --help'.");
    return 2;
  }
  const settings = cfg.settings;
  const log = createLogger({ format: settings.logFormat, level: settings.logLevel });
  const shutdown = handleShutdown(log, options.early ? { early: options.early } : {});
  try {
    return await run(settings, log, shutdown, options);
  } finally {
    shutdown.dispose();
    await log.flush?.(LOG_FLUSH_MS);
  }
}

/** At exit, queued log lines get this long to be written (a stalled reader gets no more). */
const LOG_FLUSH_MS = 1000;

/** The feeds started so far, shared by the parts that use them; stopped with the agent. */
class Feeds {
  readonly stop = new AbortController();
  readonly running = new Map<Feed<unknown>, { value: unknown; ready?: () => ProbeAnswer }>();
  #starting = new Map<Feed<unknown>, Promise<unknown>>();
  #closers: (() => Promise<void>)[] = [];

  use<T>(feed: Feed<T>, context: PartContext): Promise<T | undefined> {
    const f = feed as Feed<unknown>;
    let p = this.#starting.get(f);
    if (p === undefined) {
      p = f.start(context).then((r) => {
        if (r === undefined) return undefined;
        this.running.set(f, { value: r.value, ...(r.ready ? { ready: r.ready } : {}) });
        this.#closers.push(() => r.close());
        return r.value;
      });
      this.#starting.set(f, p);
    }
    return p as Promise<T | undefined>;
  }

  /** Stops every feed and waits for each. */
  async close(): Promise<void> {
    this.stop.abort();
    for (const close of this.#closers.splice(0)) await close();
  }
}

/** Builds the enabled entries of a registry, in order; an entry with nothing to work with is left out. */
async function build<C, T>(
  entries: readonly { enabled(s: Settings): boolean; create(c: C): Promise<T | undefined> }[],
  settings: Settings,
  context: C,
): Promise<T[]> {
  const out: T[] = [];
  for (const e of entries) {
    if (!e.enabled(settings)) continue;
    const part = await e.create(context);
    if (part !== undefined) out.push(part);
  }
  return out;
}

/** Sets up the parts and runs the loop until `shutdown.stop`. */
async function run(
  settings: Settings,
  log: Logger,
  shutdown: Shutdown,
  o: StartOptions,
): Promise<number> {
  let parts: Parts;
  try {
    parts = await setUp(settings, {
      log,
      signal: shutdown.kill,
      ...(o.sources ? { sources: o.sources } : {}),
    });
  } catch (e) {
    if (!(e instanceof SetupError)) throw e;
    if (shutdown.stop.aborted) {
      log.info("stopped during start-up", { reason: e.message });
      return 0;
    }
    log.error(e.message);
    return 1;
  }
  const { source, deleter } = parts;
  log.info("conntrack-cleaner starting", {
    version: VERSION,
    ...describeSettings(settings),
    source: source.name,
    source_reason: parts.sourceReason,
    deleter: deleter.name,
    deleter_reason: parts.deleterReason,
  });

  const synSentTimeout = settings.unnatedAfterMs === undefined
    ? undefined
    : await readSynSentTimeout();
  // The feeds stop with the loop, or at once when start-up fails after them.
  const feeds = new Feeds();
  shutdown.stop.addEventListener("abort", () => feeds.stop.abort(), { once: true });
  const tracker = new RenewalTracker({ threshold: settings.threshold });
  const base: PartContext = {
    settings,
    log,
    stop: feeds.stop.signal,
    use: (feed) => feeds.use(feed, base),
  };
  let providers: Promise<NatProvider[]> | undefined;
  const context: RuleContext = {
    ...base,
    tracker,
    synSentTimeoutS: typeof synSentTimeout === "number" ? synSentTimeout : undefined,
    providers: () => providers ??= build(o.providers ?? PROVIDERS, settings, base),
  };
  const closeParts = async () => {
    await feeds.close();
    source.close?.();
    deleter.close?.();
  };
  let rules: Rule[];
  try {
    rules = await build(o.rules ?? RULES, settings, context);
  } catch (e) {
    if (!(e instanceof SetupError)) throw e;
    log.error(e.message);
    await closeParts();
    return 1;
  }
  // The node's NAT rules, where they may be read: the decision step asks them (lib/agent/decide.ts),
  // and they come before every provider.
  const nat = await base.use(NAT_RULES_FEED);
  const report = describeRules({
    rules: rules.map((r) => r.name),
    providers: [
      ...(nat ? [NAT_RULES_FEED.name] : []),
      ...(providers ? (await providers).map((p) => p.name) : []),
    ],
    release: Deno.osRelease(),
    threshold: settings.threshold,
    unnatedAfter: describeSettings(settings).unnated_after as string,
    destinations: settings.destinations?.toString() ?? "all",
    synSentTimeout,
  });
  log.info("rules", report.fields);
  for (const w of report.warnings) log.warn(w);

  const metrics = new Metrics({
    version: VERSION,
    deno: Deno.version.deno,
    source: source.name,
    deleter: deleter.name,
    logLinesDropped: () => log.dropped?.() ?? 0,
    rules: rules.map((r) => r.name),
    parts: (r) =>
      partMetrics(r, {
        ...o,
        chosen: { entry: parts.sourceEntry, stats: parts.sourceStats },
        running: (f) => feeds.running.get(f)?.value,
      }),
  });
  const agent = new Agent({
    source,
    deleter,
    tracker,
    ...(nat ? { nat } : {}),
    ...(settings.destinations ? { destinations: settings.destinations } : {}),
    rules,
    log,
    intervalMs: settings.intervalMs,
    dryRun: settings.dryRun,
    logKept: settings.logLevel === "debug",
    observer: metrics,
    maxDeletesPerPoll: deleter.maxPerPoll,
  });

  let server: RunningServer | undefined;
  if (settings.listen) {
    try {
      server = startServer({
        listen: settings.listen,
        status: agent.status,
        metrics: () =>
          Promise.resolve({
            body: metrics.registry.metrics(),
            contentType: metrics.registry.contentType,
          }),
        liveness: livenessLimits(settings.intervalMs, parts),
        readyChecks: [...feeds.running.values()].flatMap((f) => f.ready ? [f.ready] : []),
        onError: (e) => log.error("HTTP handler failed", { error: errorText(e) }),
      });
      const all = boundAddresses(server.addr);
      log.info("serving /metrics, /healthz, /readyz", {
        listen: formatListen(server.addr),
        ...(all ? { addresses: all } : {}),
      });
    } catch (e) {
      log.error(`cannot listen on ${formatListen(settings.listen)}: ${errorText(e)}`);
      await feeds.close();
      return 1;
    }
  }

  let code = 0;
  try {
    await agent.run(shutdown.stop, shutdown.kill);
  } catch (e) {
    log.error("poll loop failed", { error: errorText(e) });
    code = 1;
  } finally {
    await server?.shutdown();
    await closeParts();
  }
  log.info("stopped", { exit_code: code });
  return code;
}

/**
 * Every source's and feed's metrics, on `registry`: each reads its part
 * while it runs, and says zero (or off) otherwise, so every family exists
 * from the start whichever parts run.
 */
export function partMetrics(
  registry: Registry,
  o: {
    sources?: readonly SourceEntry[];
    feeds?: readonly Feed<unknown>[];
    chosen?: { entry: SourceEntry; stats: (() => unknown) | undefined };
    running?: (feed: Feed<unknown>) => unknown;
  } = {},
): void {
  for (const e of o.sources ?? SOURCES) {
    e.metrics?.(registry, () => (o.chosen?.entry === e ? o.chosen.stats?.() : undefined));
  }
  for (const f of o.feeds ?? FEEDS) f.metrics?.(registry, () => o.running?.(f));
}

/** Slack on top of each /healthz limit, for a busy node's scheduling. */
const LIVENESS_GRACE_MS = 30_000;

/**
 * The /healthz limits: between polls, the interval plus grace; within a poll,
 * the source's timeout twice (the candidates' read, then, for the conntrack
 * CLI, the un-NATed rule's evidence listing) plus the deleter's worst case for
 * its per-poll limit (every step running into its timeout), plus grace.
 *
 * @example
 * ```ts
 * import { livenessLimits } from "./start.ts";
 * const deleter = { maxPerPoll: 100, worstCaseMs: (n: number) => 5000 + 1000 * n };
 * livenessLimits(10_000, { deleter, sourceTimeoutMs: 30_000 });
 * // => { idleMs: 40_000, pollMs: 60_000 + 105_000 + 30_000 }
 * ```
 */
export function livenessLimits(
  intervalMs: number,
  parts: {
    deleter: Pick<Parts["deleter"], "maxPerPoll" | "worstCaseMs">;
    sourceTimeoutMs: number;
  },
): { idleMs: number; pollMs: number } {
  const { deleter } = parts;
  return {
    idleMs: intervalMs + LIVENESS_GRACE_MS,
    pollMs: 2 * parts.sourceTimeoutMs + deleter.worstCaseMs(deleter.maxPerPoll) +
      LIVENESS_GRACE_MS,
  };
}
