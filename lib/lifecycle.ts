/**
 * Shutdown on SIGTERM/SIGINT: stop scheduling polls at once, give work in
 * flight a grace period, then kill it, and leave for certain a moment later.
 *
 * @module
 */
import type { Logger } from "./log.ts";

/** Options for {@linkcode handleShutdown}. */
export interface ShutdownOptions {
  /** After the signal, in-flight work (a running `conntrack`) gets this long; default 1000 ms. */
  graceMs?: number;
  /** After the signal, the process exits (code 1, with an error line) if still alive; default 1800 ms. */
  hardExitMs?: number;
  /** Default `Deno.exit`. */
  exit?: (code: number) => void;
}

/** The signals the rest of the program watches; `dispose()` removes the handlers. */
export interface Shutdown {
  /** Aborts at the first SIGTERM/SIGINT: start no new work. */
  stop: AbortSignal;
  /** Aborts `graceMs` later: kill what is still running. */
  kill: AbortSignal;
  dispose(): void;
}

/**
 * Installs the SIGTERM and SIGINT handlers. Call it first thing, so a signal
 * during start-up is handled too.
 *
 * @example
 * ```ts
 * import { handleShutdown } from "./lifecycle.ts";
 * import { createLogger } from "./log.ts";
 * const shutdown = handleShutdown(createLogger());
 * // … await agent.run(shutdown.stop, shutdown.kill);
 * shutdown.dispose();
 * ```
 */
export function handleShutdown(log: Logger, options: ShutdownOptions = {}): Shutdown {
  const graceMs = options.graceMs ?? 1000;
  const hardExitMs = options.hardExitMs ?? 1800;
  const exit = options.exit ?? Deno.exit;
  const stop = new AbortController();
  const kill = new AbortController();
  const timers: ReturnType<typeof setTimeout>[] = [];
  const handler = (signal: Deno.Signal) => () => {
    if (stop.signal.aborted) return;
    log.info("shutting down", { signal });
    stop.abort(new Error(`${signal} received`));
    timers.push(setTimeout(() => kill.abort(new Error("shutdown grace period over")), graceMs));
    timers.push(setTimeout(() => {
      log.error("shutdown did not finish in time; exiting", { after_ms: hardExitMs });
      exit(1);
    }, hardExitMs));
  };
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGTERM", handler("SIGTERM")],
    ["SIGINT", handler("SIGINT")],
  ];
  for (const [sig, fn] of handlers) Deno.addSignalListener(sig, fn);
  return {
    stop: stop.signal,
    kill: kill.signal,
    dispose() {
      for (const [sig, fn] of handlers) Deno.removeSignalListener(sig, fn);
      for (const t of timers) clearTimeout(t);
    },
  };
}
