/**
 * The first thing the agent does, before the rest of its code is even
 * loaded: SIGUSR1 set to ignored (Deno opens an unauthenticated V8 inspector
 * on 127.0.0.1:9229 at SIGUSR1, and before any handler exists the signal
 * kills the process with code 138), and SIGTERM/SIGINT caught and kept for
 * lib/run/lifecycle.ts, which takes over once loaded. Imports only
 * lib/os/libc.ts (which imports nothing), so main.ts can run it while its
 * other modules load.
 *
 * @module
 */
import { libc } from "../os/libc.ts";

const SIGUSR1 = 10;
const SIG_IGN = 1n;

/**
 * Sets SIGUSR1's disposition to SIG_IGN through libc's `signal(2)` (FFI).
 * A signal listener does not stop Deno's inspector trigger; an ignored
 * signal is never delivered. Returns why it could not, or `undefined` on
 * success. Linux only (the signal number is Linux's).
 *
 * @example
 * ```ts
 * import { ignoreSigusr1 } from "./early_signals.ts";
 * ignoreSigusr1(); // => undefined
 * ```
 */
export function ignoreSigusr1(): string | undefined {
  try {
    const prev = BigInt(libc().signal(SIGUSR1, SIG_IGN));
    return prev === 2n ** 64n - 1n ? "signal(2) returned SIG_ERR" : undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** What arrived before lib/run/lifecycle.ts took over. */
export interface EarlySignals {
  /** Why SIGUSR1 could not be ignored, if it could not. */
  readonly sigusr1Error: string | undefined;
  /** The first SIGTERM or SIGINT received so far, if any. */
  readonly stop: Deno.Signal | undefined;
  /** Removes the early listeners (call once the real ones are in place). */
  dispose(): void;
}

/**
 * Ignores SIGUSR1 and catches SIGTERM, SIGINT, SIGHUP and SIGUSR2 until
 * `dispose()`, remembering the first SIGTERM/SIGINT.
 *
 * @example
 * ```ts
 * import { catchEarlySignals } from "./early_signals.ts";
 * const early = catchEarlySignals();
 * // … load and set up; then hand over:
 * early.dispose();
 * early.stop; // => undefined
 * ```
 */
export function catchEarlySignals(): EarlySignals {
  let stop: Deno.Signal | undefined;
  const listeners: [Deno.Signal, () => void][] = (
    ["SIGTERM", "SIGINT", "SIGHUP", "SIGUSR2"] as const
  ).map((sig) => [sig, () => {
    if (sig === "SIGTERM" || sig === "SIGINT") stop ??= sig;
  }]);
  for (const [sig, fn] of listeners) Deno.addSignalListener(sig, fn);
  // Last, so that once SIGUSR1 shows as ignored the other listeners are in place too.
  const sigusr1Error = ignoreSigusr1();
  return {
    sigusr1Error,
    get stop() {
      return stop;
    },
    dispose() {
      for (const [sig, fn] of listeners) Deno.removeSignalListener(sig, fn);
    },
  };
}
