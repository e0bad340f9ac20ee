/**
 * Go's `time.ParseDuration` syntax, so that values written for the old Go
 * agent (`CONNTRACK_TABLE_DUMP_FREQUENCY=1s`) mean the same here.
 *
 * @module
 */

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3, // U+00B5 micro sign
  "μs": 1e-3, // U+03BC Greek mu
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * Parses a Go duration (`300ms`, `1.5h`, `2h45m`, `-1m`, `0`) into
 * milliseconds, or returns `undefined` when Go would reject it.
 *
 * @example
 * ```ts
 * import { parseGoDuration } from "./duration.ts";
 * parseGoDuration("1m30s"); // => 90000
 * parseGoDuration("500ms"); // => 500
 * parseGoDuration("1"); // => undefined (Go wants a unit)
 * ```
 */
export function parseGoDuration(s: string): number | undefined {
  let i = 0;
  let sign = 1;
  if (s[i] === "-" || s[i] === "+") {
    if (s[i] === "-") sign = -1;
    i++;
  }
  if (s.slice(i) === "0") return 0;
  if (i === s.length) return undefined;
  let total = 0;
  while (i < s.length) {
    const m = /^([0-9]*)(?:\.([0-9]*))?/.exec(s.slice(i))!;
    const [whole, int, frac] = m;
    if (int === "" && (frac === undefined || frac === "")) return undefined; // "." or nothing
    i += whole.length;
    let j = i;
    while (j < s.length && !/[0-9.]/.test(s[j]!)) j++;
    const unit = UNIT_MS[s.slice(i, j)];
    if (unit === undefined) return undefined;
    i = j;
    total += Number(`${int || "0"}.${frac || "0"}`) * unit;
  }
  return sign * total;
}

/**
 * Milliseconds as a short Go-style duration, for logs: `1s`, `1.5s`, `250ms`, `1m30s`.
 *
 * @example
 * ```ts
 * import { formatDuration } from "./duration.ts";
 * formatDuration(90000); // => "1m30s"
 * ```
 */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${+ms.toFixed(3)}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = +((ms % 60_000) / 1000).toFixed(3);
  return `${h ? `${h}h` : ""}${h || m ? `${m}m` : ""}${s}s`;
}
