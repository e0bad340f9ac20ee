/**
 * The standard `process_*` metrics (the names node-exporter's and the Go
 * client's users know), read from `/proc/self` at each scrape: CPU seconds,
 * resident and virtual memory, start time, open and maximum file descriptors.
 * No heap figure: V8's reserved heap is address space, not memory, and
 * alarmed people when shown beside the RSS.
 *
 * @module
 */
import type { Registry } from "./prom.ts";

/** Clock ticks per second of `/proc/PID/stat` times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

/** What one read of `/proc/self` gave; a field is `undefined` when it could not be read. */
export interface ProcessSample {
  cpuSeconds?: number;
  residentBytes?: number;
  virtualBytes?: number;
  openFds?: number;
  maxFds?: number;
}

/**
 * Parses `/proc/PID/stat`, `status` and `limits` text into a sample.
 *
 * @example
 * ```ts
 * import { parseProcess } from "./process_metrics.ts";
 * const stat = "42 (deno) S 1 42 42 0 -1 4194560 0 0 0 0 250 50 0 0 20 0 9 0 100 0 0";
 * const status = "VmSize:\t  2048 kB\nVmRSS:\t  1024 kB\n";
 * const limits = "Max open files            1024                 524288               files\n";
 * parseProcess({ stat, status, limits });
 * // => { cpuSeconds: 3, residentBytes: 1048576, virtualBytes: 2097152, maxFds: 1024 }
 * ```
 */
export function parseProcess(
  text: { stat?: string | undefined; status?: string | undefined; limits?: string | undefined },
): ProcessSample {
  const out: ProcessSample = {};
  const fields = text.stat?.slice(text.stat.lastIndexOf(")") + 2).split(" ");
  if (fields && fields.length > 12) {
    const ticks = Number(fields[11]) + Number(fields[12]);
    if (Number.isFinite(ticks)) out.cpuSeconds = ticks / USER_HZ;
  }
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, "m").exec(text.status ?? "");
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const rss = kb("VmRSS"), size = kb("VmSize");
  if (rss !== undefined) out.residentBytes = rss;
  if (size !== undefined) out.virtualBytes = size;
  const max = /^Max open files\s+(\d+|unlimited)/m.exec(text.limits ?? "");
  if (max) out.maxFds = max[1] === "unlimited" ? Infinity : Number(max[1]);
  return out;
}

/** Reads `/proc/self` (or `dir`): never throws, a file it cannot read leaves its fields out. */
export function readProcess(dir = "/proc/self"): ProcessSample {
  const read = (name: string) => {
    try {
      return Deno.readTextFileSync(`${dir}/${name}`);
    } catch {
      return undefined;
    }
  };
  const sample = parseProcess({
    stat: read("stat"),
    status: read("status"),
    limits: read("limits"),
  });
  try {
    let n = 0;
    for (const _ of Deno.readDirSync(`${dir}/fd`)) n++;
    // The directory's own descriptor, open while it was listed, is not counted.
    sample.openFds = Math.max(0, n - (dir === "/proc/self" ? 1 : 0));
  } catch {
    // Not Linux, or no permission: leave it out.
  }
  return sample;
}

/** Options for {@linkcode registerProcessMetrics}. */
export interface ProcessMetricsOptions {
  /** Reads the process; default {@linkcode readProcess}. */
  read?: () => ProcessSample;
  /** Unix seconds the process started; default `performance.timeOrigin`. */
  startSeconds?: number;
}

/**
 * Adds `process_cpu_seconds_total`, `process_resident_memory_bytes`,
 * `process_virtual_memory_bytes`, `process_start_time_seconds`,
 * `process_open_fds` and `process_max_fds` to `registry`, read once per
 * rendering.
 */
export function registerProcessMetrics(registry: Registry, o: ProcessMetricsOptions = {}): void {
  const read = o.read ?? (() => readProcess());
  // One read per rendering: the first collector of a rendering reads, the others reuse it.
  let sample: ProcessSample = {};
  let cpuSeen = 0;
  registry.counter(
    "process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds.",
    [],
    (c) => {
      sample = read();
      const cpu = sample.cpuSeconds ?? cpuSeen;
      if (cpu > cpuSeen) c.inc({}, cpu - cpuSeen);
      cpuSeen = Math.max(cpu, cpuSeen);
    },
  );
  const gauge = (name: string, help: string, value: () => number | undefined) =>
    registry.gauge(name, help, [], (g) => {
      const v = value();
      if (v !== undefined) g.set(v);
    });
  gauge(
    "process_resident_memory_bytes",
    "Resident memory size in bytes.",
    () => sample.residentBytes,
  );
  gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.", () => sample.virtualBytes);
  const start = o.startSeconds ?? performance.timeOrigin / 1000;
  gauge(
    "process_start_time_seconds",
    "Start time of the process since unix epoch in seconds.",
    () => start,
  );
  gauge("process_open_fds", "Number of open file descriptors.", () => sample.openFds);
  gauge("process_max_fds", "Maximum number of open file descriptors.", () => sample.maxFds);
}
