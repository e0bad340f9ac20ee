/**
 * conntrack-cleaner: the entry point. Reads the settings, sets up the parts,
 * and runs the poll loop until SIGTERM or SIGINT. The loop itself is in
 * lib/agent.ts; the decisions in lib/tracker.ts.
 *
 * @module
 */
import { Agent, errorText } from "./lib/agent.ts";
import { describeSettings, helpText, loadConfig } from "./lib/config.ts";
import { createLogger } from "./lib/log.ts";
import { setUp, SetupError } from "./lib/setup.ts";
import { RenewalTracker } from "./lib/tracker.ts";
import { VERSION } from "./lib/version.ts";

/** Runs the agent; resolves to the process exit code. */
export async function main(
  args: readonly string[],
  env: (name: string) => string | undefined,
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

  let parts;
  try {
    parts = await setUp(settings);
  } catch (e) {
    if (!(e instanceof SetupError)) throw e;
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

  const stop = new AbortController();
  const onSignal = (sig: Deno.Signal) => () => {
    if (!stop.signal.aborted) log.info("shutting down", { signal: sig });
    stop.abort();
  };
  const signals: [Deno.Signal, () => void][] = [
    ["SIGTERM", onSignal("SIGTERM")],
    ["SIGINT", onSignal("SIGINT")],
  ];
  for (const [sig, fn] of signals) Deno.addSignalListener(sig, fn);

  const agent = new Agent({
    source,
    deleter,
    tracker: new RenewalTracker({ threshold: settings.threshold }),
    log,
    intervalMs: settings.intervalMs,
    dryRun: settings.dryRun,
  });
  try {
    await agent.run(stop.signal);
  } catch (e) {
    log.error("poll loop failed", { error: errorText(e) });
    return 1;
  } finally {
    for (const [sig, fn] of signals) Deno.removeSignalListener(sig, fn);
    source.close?.();
    deleter.close?.();
  }
  log.info("stopped");
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args, (name) => Deno.env.get(name)));
}
