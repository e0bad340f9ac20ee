/**
 * What the Kubernetes client tests share: a logger that keeps its lines and
 * a wait for a condition.
 *
 * @module
 */
import type { Logger } from "../../lib/log/logger.ts";

/** A logger that keeps each line as `LEVEL message`. */
export function memoryLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (msg: string) => void lines.push(`${level} ${msg}`);
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

/** Resolves once `cond` holds (checked every 5 ms), or fails after 5 s naming `what`. */
export async function until(cond: () => boolean, what: string): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > 5000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
