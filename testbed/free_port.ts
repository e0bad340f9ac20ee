/**
 * A TCP port that nothing listens on right now, for a child to listen on
 * (tests and benchmarks that start the agent with `--listen`).
 *
 * @module
 */

/**
 * A port the kernel just handed out on `hostname` and that was released
 * again: free at the time of the call (another process could take it after).
 *
 * @example
 * ```ts
 * import { freePort } from "./free_port.ts";
 * const port = freePort();
 * port > 0 && port < 65536; // => true
 * ```
 */
export function freePort(hostname = "127.0.0.1"): number {
  const l = Deno.listen({ hostname, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
