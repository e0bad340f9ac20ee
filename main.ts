/**
 * conntrack-cleaner: the entry point. Catches SIGTERM and SIGINT first
 * (lib/run/early_signals.ts), then loads the one start module
 * (lib/run/start.ts), which reads the settings, builds the agent from the
 * registries and runs the poll loop (lib/agent/agent.ts) until a signal.
 *
 * @module
 */
import { catchEarlySignals, type EarlySignals } from "./lib/run/early_signals.ts";
import type { StartOptions } from "./lib/run/start.ts";

/**
 * Runs the agent; resolves to the process exit code. The rest of the agent is
 * loaded by dynamic import, so signals are handled while it loads; what only
 * some agents need is loaded when chosen (see docs/benchmarks.md, idle
 * footprint).
 */
export async function main(
  args: readonly string[],
  env: (name: string) => string | undefined,
  early?: EarlySignals,
  options: Omit<StartOptions, "early"> = {},
): Promise<number> {
  const { start } = await import("./lib/run/start.ts");
  return await start(args, env, { ...options, ...(early ? { early } : {}) });
}

if (import.meta.main) {
  // Before anything else loads: see lib/run/early_signals.ts.
  const early = catchEarlySignals();
  Deno.exit(await main(Deno.args, (name) => Deno.env.get(name), early));
}
