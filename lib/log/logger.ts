/**
 * Structured logs: one JSON object per line (default) or logfmt text,
 * queued for stdout without ever blocking (lib/log/log_writer.ts); `flush` before
 * exit. A line that cannot be written (stdout closed, the reader gone, the
 * reader stalled and the queue full) is dropped and counted: logging never
 * stops the agent.
 *
 * @module
 */
import { QueuedWriter } from "./log_writer.ts";

/** Log verbosity, most verbose first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = typeof LOG_LEVELS[number];
/** JSON lines or logfmt (`time=… level=info msg="…" key=value`) lines. */
export const LOG_FORMATS = ["json", "text"] as const;
export type LogFormat = typeof LOG_FORMATS[number];

/** Fields attached to a log line. */
export type Fields = Record<string, unknown>;

/** What the agent logs through. */
export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  /** Lines that could not be written and were dropped, so far. */
  dropped?(): number;
  /** Waits until the queued lines are written, at most `timeoutMs`. */
  flush?(timeoutMs: number): Promise<void>;
}

/** Options for {@linkcode createLogger}. */
export interface LoggerOptions {
  format?: LogFormat;
  level?: LogLevel;
  /**
   * Where lines go, synchronously; a throw drops (and counts) the line.
   * Default: a {@linkcode QueuedWriter} on stdout.
   */
  write?: (line: string) => void;
  /** Wall clock for the `time` field; default `new Date()`. */
  now?: () => Date;
}

/**
 * Makes a {@linkcode Logger}.
 *
 * @example
 * ```ts
 * import { createLogger } from "./logger.ts";
 * const log = createLogger({ format: "json", level: "info" });
 * log.info("deleted stale entry", { src: "10.0.0.1", renewals: 4 });
 * // {"time":"…","level":"info","msg":"deleted stale entry","src":"10.0.0.1","renewals":4}
 * ```
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const format = options.format ?? "json";
  const min = LOG_LEVELS.indexOf(options.level ?? "info");
  const queue = options.write ? undefined : new QueuedWriter();
  const write = options.write ?? ((line: string) => queue!.write(line));
  const now = options.now ?? (() => new Date());
  const enabled = (level: LogLevel) => LOG_LEVELS.indexOf(level) >= min;
  let dropped = 0;
  const emit = (level: LogLevel) => (msg: string, fields: Fields = {}) => {
    if (!enabled(level)) return;
    const time = now().toISOString();
    try {
      if (format === "json") {
        write(JSON.stringify({ time, level, msg, ...fields }, jsonValue));
      } else {
        write(logfmt({ time, level, msg, ...fields }));
      }
    } catch {
      // BrokenPipe, a closed descriptor, a full non-blocking pipe: nowhere to say it.
      dropped++;
    }
  };
  return {
    debug: emit("debug"),
    info: emit("info"),
    warn: emit("warn"),
    error: emit("error"),
    dropped: () => dropped + (queue?.dropped() ?? 0),
    flush: (timeoutMs) => queue?.flush(timeoutMs) ?? Promise.resolve(),
  };
}

function jsonValue(_key: string, v: unknown): unknown {
  if (v instanceof Error) return v.message;
  if (typeof v === "bigint") return v.toString();
  return v;
}

/**
 * One logfmt line: `key=value` pairs separated by spaces; a value with a
 * space, `=`, `"`, a control character or nothing at all is quoted, with
 * `\\`, `"` and control characters escaped. Lists are joined with commas,
 * objects written as JSON; keys keep only characters logfmt allows.
 *
 * @example
 * ```ts
 * import { logfmt } from "./logger.ts";
 * logfmt({ level: "info", msg: "deleted stale entry", dst: "[2001:db8::1]:443", ok: true });
 * // => 'level=info msg="deleted stale entry" dst=[2001:db8::1]:443 ok=true'
 * logfmt({ reason: 'said "no"\n', empty: "", rules: ["renewals", "unnated"] });
 * // => 'reason="said \\"no\\"\\n" empty="" rules=renewals,unnated'
 * ```
 */
export function logfmt(fields: Fields): string {
  return Object.entries(fields).map(([k, v]) => {
    const key = k.replace(/[^\x21-\x7e]|[="]/g, "_") || "_";
    return `${key}=${logfmtValue(v)}`;
  }).join(" ");
}

function logfmtValue(v: unknown): string {
  if (v instanceof Error) v = v.message;
  if (Array.isArray(v)) {
    v = v.map((x) => (typeof x === "object" ? JSON.stringify(x) : String(x))).join(",");
  } else if (typeof v === "object" && v !== null) v = JSON.stringify(v, jsonValue);
  const s = String(v);
  // deno-lint-ignore no-control-regex -- control characters are what must be quoted
  if (s !== "" && !/[\s="\\\x00-\x1f\x7f]/.test(s)) return s;
  const escape = (c: string) => ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  // deno-lint-ignore no-control-regex -- and escaped
  return `"${s.replace(/[\\"\x00-\x1f\x7f]/g, escape)}"`;
}

const ESCAPES: Record<string, string> = {
  "\\": "\\\\",
  '"': '\\"',
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};
