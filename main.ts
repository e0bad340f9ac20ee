/**
 * conntrack-cleaner: the entry point. Reads the settings, sets up the parts,
 * serves /metrics, /healthz and /readyz, and runs the poll loop until SIGTERM
 * or SIGINT. The loop is in lib/agent.ts, the decisions in lib/tracker.ts.
 *
 * @module
 */
import { catchEarlySignals, type EarlySignals } from "./lib/early_signals.ts";
import type { Settings } from "./lib/config.ts";
import type { Shutdown } from "./lib/lifecycle.ts";
import type { Logger } from "./lib/log.ts";
import type { RunningServer } from "./lib/server.ts";
import type { Parts } from "./lib/setup.ts";
import type { Rule } from "./lib/rules/rule.ts";
import type { NatProvider } from "./lib/rules/providers/provider.ts";
import type { RunningKube } from "./lib/kube/start.ts";

/**
 * The agent's modules, loaded by dynamic import: only lib/early_signals.ts
 * is loaded before main.ts runs, so signals are handled while the rest
 * loads. What only some agents need is loaded when chosen: a source's and a
 * deleter's modules (lib/setup.ts), the Kubernetes ones (loadKube), `yaml`
 * (lib/kube/access.ts); see docs/benchmarks.md, idle footprint.
 */
async function load() {
  const [agent, basics, config, kernel, lifecycle, log, metrics, server, setup, tracker] =
    await Promise.all([
      import("./lib/agent.ts"),
      import("./lib/basics.ts"),
      import("./lib/config.ts"),
      import("./lib/kernel.ts"),
      import("./lib/lifecycle.ts"),
      import("./lib/log.ts"),
      import("./lib/metrics.ts"),
      import("./lib/server.ts"),
      import("./lib/setup.ts"),
      import("./lib/tracker.ts"),
    ]);
  const [{ UnnatedRule }, { RenewalRule }, { DestinationsProvider }, { TableEvidenceProvider }] =
    await Promise.all([
      import("./lib/rules/unnated.ts"),
      import("./lib/rules/renewals.ts"),
      import("./lib/rules/providers/destinations.ts"),
      import("./lib/rules/providers/table_evidence.ts"),
    ]);
  // lib/kube/start.ts decides whether Kubernetes is on, and loads the rest of
  // lib/kube/ only then; the rule and the provider over it are in loadKube.
  const [{ AccessError }, { startKubernetes }, { VERSION }, { formatListen }] = await Promise.all([
    import("./lib/kube/access.ts"),
    import("./lib/kube/start.ts"),
    import("./lib/version.ts"),
    import("./lib/listen.ts"),
  ]);
  return {
    ...agent,
    ...basics,
    ...config,
    ...kernel,
    ...lifecycle,
    ...log,
    ...metrics,
    ...server,
    ...setup,
    ...tracker,
    UnnatedRule,
    RenewalRule,
    DestinationsProvider,
    TableEvidenceProvider,
    AccessError,
    startKubernetes,
    VERSION,
    formatListen,
  };
}
type Modules = Awaited<ReturnType<typeof load>>;

/** What only a Kubernetes-aware agent loads (once credentials were found). */
async function loadKube() {
  const [{ KubernetesProvider }, { StaleEndpointRule }, { kubeReadiness }] = await Promise.all([
    import("./lib/rules/providers/kubernetes.ts"),
    import("./lib/rules/stale_endpoint.ts"),
    import("./lib/kube/services.ts"),
  ]);
  return { KubernetesProvider, StaleEndpointRule, kubeReadiness };
}

/** Runs the agent; resolves to the process exit code. */
export async function main(
  args: readonly string[],
  env: (name: string) => string | undefined,
  early?: EarlySignals,
): Promise<number> {
  const m = await load();
  const { loadConfig, helpText, VERSION, createLogger, handleShutdown } = m;
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
  const shutdown = handleShutdown(log, early ? { early } : {});
  try {
    return await run(m, settings, log, shutdown);
  } finally {
    shutdown.dispose();
    await log.flush?.(LOG_FLUSH_MS);
  }
}

/** At exit, queued log lines get this long to be written (a stalled reader gets no more). */
const LOG_FLUSH_MS = 1000;

/** Sets up the parts and runs the loop until `shutdown.stop`. */
async function run(
  m: Modules,
  settings: Settings,
  log: Logger,
  shutdown: Shutdown,
): Promise<number> {
  const {
    setUp,
    SetupError,
    VERSION,
    describeSettings,
    readSynSentTimeout,
    describeRules,
    Metrics,
    Agent,
    RenewalTracker,
    RenewalRule,
    UnnatedRule,
    DestinationsProvider,
    TableEvidenceProvider,
    AccessError,
    startKubernetes,
    startServer,
    formatListen,
    errorText,
  } = m;
  let parts;
  try {
    parts = await setUp(settings, { log, signal: shutdown.kill });
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
  let kube: RunningKube | undefined;
  // The watches stop with the loop, or at once when start-up fails after them.
  const kubeStop = new AbortController();
  shutdown.stop.addEventListener("abort", () => kubeStop.abort(), { once: true });
  try {
    kube = await startKubernetes(
      {
        // Both users of the view (the un-NATed rule's provider, stale_endpoint) need --unnated-after.
        kubernetes: settings.unnatedAfterMs === undefined ? "off" : settings.kubernetes,
        kubeconfig: settings.kubeconfig,
        userAgent: `conntrack-cleaner/${VERSION}`,
        nodePortAddresses: settings.nodePortAddresses,
        settleMs: settings.staleEndpointSettleMs,
      },
      log,
      kubeStop.signal,
    );
  } catch (e) {
    if (!(e instanceof AccessError)) throw e;
    log.error(`Kubernetes: ${e.message}`);
    source.close?.();
    deleter.close?.();
    return 1;
  }
  const k = kube ? await loadKube() : undefined;
  const tracker = new RenewalTracker({ threshold: settings.threshold });
  // Who may vouch that a destination is NATed now (the un-NATed rule's providers), one line each.
  const providers: NatProvider[] = settings.destinations
    ? [new DestinationsProvider(settings.destinations)]
    : [new TableEvidenceProvider()];
  if (kube && k) {
    providers.push(new k.KubernetesProvider(kube.services, { zone: settings.kubernetesZone }));
  }
  const rules: Rule[] = [new RenewalRule(tracker)];
  if (settings.unnatedAfterMs !== undefined) {
    rules.push(
      new UnnatedRule({
        afterMs: settings.unnatedAfterMs,
        synSentTimeoutS: typeof synSentTimeout === "number" ? synSentTimeout : undefined,
        providers,
      }),
    );
    if (kube && k) {
      rules.push(
        new k.StaleEndpointRule({
          afterMs: settings.unnatedAfterMs,
          synSentTimeoutS: typeof synSentTimeout === "number" ? synSentTimeout : undefined,
          endpoints: kube.services,
          zone: settings.kubernetesZone,
        }),
      );
    }
  }
  const report = describeRules({
    rules: rules.map((r) => r.name),
    providers: settings.unnatedAfterMs === undefined ? [] : providers.map((p) => p.name),
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
    ...(parts.eventStats ? { eventStats: parts.eventStats } : {}),
    rules: rules.map((r) => r.name),
    ...(kube ? { kubernetes: () => kube.services.status() } : {}),
  });
  const agent = new Agent({
    source,
    deleter,
    tracker,
    ...(settings.destinations ? { destinations: settings.destinations } : {}),
    rules,
    log,
    intervalMs: settings.intervalMs,
    dryRun: settings.dryRun,
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
        ...(kube && k ? { readyChecks: [() => k.kubeReadiness(kube.services.status())] } : {}),
        onError: (e) => log.error("HTTP handler failed", { error: errorText(e) }),
      });
      log.info("serving /metrics, /healthz, /readyz", { listen: formatListen(server.addr) });
    } catch (e) {
      log.error(`cannot listen on ${formatListen(settings.listen)}: ${errorText(e)}`);
      kubeStop.abort();
      await kube?.done;
      kube?.close();
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
    kubeStop.abort();
    await kube?.done;
    kube?.close();
    source.close?.();
    deleter.close?.();
  }
  log.info("stopped", { exit_code: code });
  return code;
}

/** Slack on top of each /healthz limit, for a busy node's scheduling. */
const LIVENESS_GRACE_MS = 30_000;

/**
 * The /healthz limits: between polls, the interval plus grace; within a poll,
 * the source's timeout twice (the candidates' read, then, for the conntrack
 * CLI, the un-NATed rule's evidence listing) plus the deleter's worst case for its per-poll limit (every
 * step running into its timeout), plus grace.
 *
 * @example
 * ```ts
 * import { livenessLimits } from "./main.ts";
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

if (import.meta.main) {
  // Before anything else loads: see lib/early_signals.ts.
  const early = catchEarlySignals();
  Deno.exit(await main(Deno.args, (name) => Deno.env.get(name), early));
}
