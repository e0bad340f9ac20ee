/**
 * Shutdown on SIGTERM/SIGINT: stop scheduling polls at once, give work in
 * flight a grace period, then kill it, and leave for certain a moment later.
 * SIGHUP and SIGUSR2 are logged and ignored (there is nothing to reload);
 * SIGUSR1 is ignored outright, because Deno (since 2.9.2) opens an
 * unauthenticated V8 inspector on 127.0.0.1:9229 when it gets one.
 *
 * @module
 */
import { type EarlySignals, ignoreSigusr1 } from "./early_signals.ts";
import type { Logger } from "../log/logger.ts";

/** Options for {@linkcode handleShutdown}. */
export interface ShutdownOptions {
  /** After the signal, in-flight work (a running `conntrack`) gets this long; default 1000 ms. */
  graceMs?: number;
  /** After the signal, the process exits (code 1, with an error line) if still alive; default 1800 ms. */
  hardExitMs?: number;
  /** Default `Deno.exit`. */
  exit?: (code: number) => void;
  /** Sets SIGUSR1 to SIG_IGN; returns why not, if it cannot. Default {@linkcode ignoreSigusr1}. */
  ignoreSigusr1?: () => string | undefined;
  /** Signals caught before this took over (main.ts's first step): a SIGTERM there stops at once. */
  early?: EarlySignals;
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
 * Installs the SIGTERM and SIGINT handlers (and ignores SIGHUP, SIGUSR1, SIGUSR2). Call it first thing, so a signal
 * during start-up is handled too.
 *
 * @example
 * ```ts
 * import { handleShutdown } from "./lifecycle.ts";
 * import { createLogger } from "../log/logger.ts";
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
  const ignored = (signal: Deno.Signal) => () =>
    log.warn("signal ignored: there is nothing to reload; SIGTERM stops the agent", { signal });
  const handlers: [Deno.Signal, () => void][] = [
    ["SIGTERM", handler("SIGTERM")],
    ["SIGINT", handler("SIGINT")],
    ["SIGHUP", ignored("SIGHUP")],
    ["SIGUSR2", ignored("SIGUSR2")],
    // Registered before Deno registers its inspector trigger, so the disposition
    // set to SIG_IGN below is the one that stays (see ignoreSigusr1).
    ["SIGUSR1", ignored("SIGUSR1")],
  ];
  for (const [sig, fn] of handlers) Deno.addSignalListener(sig, fn);
  const early = options.early;
  early?.dispose();
  if (early?.sigusr1Error !== undefined) {
    log.warn("cannot set SIGUSR1 to ignored", { reason: early.sigusr1Error });
  }
  if (early?.stop !== undefined) handler(early.stop)();
  const usr1 = options.ignoreSigusr1 ?? ignoreSigusr1;
  const noInspector = () => {
    const why = usr1();
    if (why !== undefined) log.warn("cannot set SIGUSR1 to ignored", { reason: why });
  };
  noInspector();
  // Deno arms its SIGUSR1 inspector 500 ms after start: say SIG_IGN again after that.
  const again = setTimeout(noInspector, 1000);
  Deno.unrefTimer(again);
  timers.push(again);
  return {
    stop: stop.signal,
    kill: kill.signal,
    dispose() {
      for (const [sig, fn] of handlers) Deno.removeSignalListener(sig, fn);
      for (const t of timers) clearTimeout(t);
    },
  };
}
