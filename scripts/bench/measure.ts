/**
 * What every benchmark measures with: one median, one resident-set reading,
 * the load average to print beside a figure, and `sysctl` to read or set
 * (and restore) a kernel setting.
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

/** The 1, 5 and 15 minute load averages, as /proc/loadavg prints them. */
export async function loadavg(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
}

/** `sysctl -n KEY` (read), or `sysctl -q -w KEY=VALUE` (set); throws with its stderr. */
export async function sysctl(key: string, value?: string): Promise<string> {
  const args = value === undefined ? ["-n", key] : ["-q", "-w", `${key}=${value}`];
  const out = await new Deno.Command("sysctl", { args }).output();
  if (!out.success) {
    throw new Error(`sysctl ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return new TextDecoder().decode(out.stdout).trim();
}
