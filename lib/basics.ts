/**
 * The few small things every layer uses: a monotonic clock type, an
 * abortable sleep, and an error's text. No imports: anything may use it.
 *
 * @module
 */

/** Monotonic milliseconds; `performance.now()` in production, a fake in tests. */
export type Clock = () => number;

/**
 * Resolves after `ms`, or at once when `signal` aborts (never rejects).
 *
 * @example
 * ```ts
 * import { sleep } from "./basics.ts";
 * const stop = new AbortController();
 * setTimeout(() => stop.abort(), 10);
 * await sleep(60_000, stop.signal); // returns after about 10 ms
 * ```
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Lets the event loop run everything pending — socket I/O included — and
 * comes back at once. A timer, not a microtask or a message: Deno polls
 * sockets only when the loop turns, and a `MessageChannel` message resolves
 * without turning it (measured: probes starved).
 *
 * @example
 * ```ts
 * import { yieldToIo } from "./basics.ts";
 * for (let slice = 0; slice < 3; slice++) {
 *   // … up to 10 ms of synchronous work …
 *   await yieldToIo();
 * }
 * ```
 */
export function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * An error's message, whatever was thrown.
 *
 * @example
 * ```ts
 * import { errorText } from "./basics.ts";
 * errorText(new Error("EPERM")); // => "EPERM"
 * errorText("plain"); // => "plain"
 * ```
 */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
