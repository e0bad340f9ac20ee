/**
 * What every benchmark measures with: one median, one resident-set reading.
 *
 * @module
 */

/**
 * The median of `xs` (the mean of the two middle values for an even count);
 * NaN for none.
 */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Resident memory (`VmRSS` in /proc/PID/status) of `pid`, in MB. */
export async function rssMB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}
