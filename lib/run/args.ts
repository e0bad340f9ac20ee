/**
 * Command-line flags → values: `--name=VALUE`, `--name VALUE`, boolean
 * `--name` or `--name=true|false`, and short aliases (`-h`). Strict: an
 * unknown flag, a boolean's value other than those ({@linkcode parseBoolean},
 * which the environment variables use too), a missing value or a stray
 * argument is an error message. Written
 * instead of `node:util`'s `parseArgs`, whose import cost about 2.5 MB of
 * resident memory (docs/benchmarks.md, issue 14).
 *
 * @module
 */

/** One flag: whether it takes a value, and its one-letter alias. */
export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
}

/** The values given (last one wins), or one error message. */
export type ParsedArgs =
  | { ok: true; values: Record<string, string | boolean> }
  | { ok: false; message: string };

/**
 * A boolean setting's value, `true` or `false` exactly; `undefined` for
 * anything else. The one parser for `--flag=VALUE` and environment variables.
 *
 * @example
 * ```ts
 * import { parseBoolean } from "./args.ts";
 * parseBoolean("false"); // => false
 * parseBoolean("yes"); // => undefined
 * ```
 */
export function parseBoolean(s: string): boolean | undefined {
  return s === "true" ? true : s === "false" ? false : undefined;
}

/**
 * Parses `args` against `flags`.
 *
 * @example
 * ```ts
 * import { parseFlags } from "./args.ts";
 * const flags = { interval: { type: "string" as const }, help: { type: "boolean" as const, short: "h" } };
 * parseFlags(["--interval", "2s", "-h"], flags);
 * // => { ok: true, values: { interval: "2s", help: true } }
 * parseFlags(["--help=false"], flags); // => { ok: true, values: { help: false } }
 * parseFlags(["--intervall=2s"], flags);
 * // => { ok: false, message: "unknown flag --intervall: see --help for the flags there are" }
 * ```
 */
export function parseFlags(
  args: readonly string[],
  flags: Readonly<Record<string, FlagSpec>>,
): ParsedArgs {
  const values: Record<string, string | boolean> = {};
  const byShort = new Map(
    Object.entries(flags).flatMap(([name, f]) => (f.short ? [[f.short, name] as const] : [])),
  );
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    let name: string | undefined;
    let inline: string | undefined;
    if (arg.startsWith("--") && arg.length > 2) {
      const eq = arg.indexOf("=");
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
    } else if (/^-[^-]$/.test(arg)) {
      name = byShort.get(arg[1]!);
      if (name === undefined) return unknown(arg);
    } else {
      return {
        ok: false,
        message: `unexpected argument ${JSON.stringify(arg)}: every setting is a --flag=VALUE`,
      };
    }
    const spec = Object.hasOwn(flags, name) ? flags[name] : undefined;
    if (spec === undefined) return unknown(`--${name}`);
    if (spec.type === "boolean") {
      const value = inline === undefined ? true : parseBoolean(inline);
      if (value === undefined) {
        return {
          ok: false,
          message: `--${name} takes no value, =true or =false (got ${JSON.stringify(inline)}): ` +
            "see --help",
        };
      }
      values[name] = value;
      continue;
    }
    if (inline === undefined) {
      const next = args[i + 1];
      if (next === undefined || next.startsWith("-")) {
        return { ok: false, message: `--${name} needs a value: --${name}=VALUE; see --help` };
      }
      inline = next;
      i++;
    }
    values[name] = inline;
  }
  return { ok: true, values };
}

function unknown(flag: string): ParsedArgs {
  return { ok: false, message: `unknown flag ${flag}: see --help for the flags there are` };
}
