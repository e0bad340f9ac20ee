/**
 * Makes the `// =>` results of JSDoc examples assertions. `deno test --doc`
 * type-checks and runs the examples but reads `f(); // => 3` as a comment;
 * this module turns each such line into `__check(where, f(), 3)` (a strict
 * deep equality) and counts that every check ran.
 *
 * The forms it understands (anything else is an error naming the line, never
 * a silent pass):
 *
 * - `EXPR; // => VALUE`, EXPR possibly spanning lines (`f({\n…\n}); // => 1`);
 * - `EXPR;` followed by a line `// => VALUE`, VALUE possibly continued on
 *   further `//` lines while its brackets are open;
 * - `if (COND) EXPR; // => VALUE`, and `await EXPR`.
 *
 * VALUE is a JavaScript expression; a note may follow it after `: ` or ` (`
 * outside strings and brackets (`// => 1 (an ACK)`, `// => true: dump again`).
 *
 * @module
 */

/** One fenced ```ts example of a JSDoc comment. */
export interface Example {
  /** Path the example came from (absolute), for messages and relative imports. */
  file: string;
  /** 1-based line in `file` of the example's first code line. */
  line: number;
  /** The code lines, without the comment's leading ` * `. */
  code: string[];
}

/** Examples of a TypeScript source: ```ts / ```typescript / ```js blocks, not `ignore`d ones. */
export function extractExamples(file: string, text: string): Example[] {
  const out: Example[] = [];
  const lines = text.split("\n");
  let open: Example | undefined;
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*\*\s?(.*)$/.exec(lines[i]!);
    if (m === null) {
      open = undefined;
      continue;
    }
    const body = m[1]!;
    const fence = /^```(\S*)(.*)$/.exec(body.trim());
    if (open !== undefined) {
      if (fence !== null && fence[1] === "" && fence[2]!.trim() === "") {
        out.push(open);
        open = undefined;
      } else open.code.push(body);
      continue;
    }
    if (
      fence !== null && /^(ts|typescript|js|javascript)$/.test(fence[1]!) &&
      !/\bignore\b/.test(fence[2]!)
    ) {
      open = { file, line: i + 2, code: [] };
    }
  }
  return out;
}

/** Code (strings blanked) and comment of one line. */
interface Split {
  code: string;
  /** Text after `//`, or undefined. */
  comment: string | undefined;
}

function splitLine(line: string): Split {
  let code = "";
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "/" && line[i + 1] === "/") return { code, comment: line.slice(i + 2) };
    if (c === '"' || c === "'" || c === "`") {
      let j = i + 1;
      while (j < line.length && line[j] !== c) j += line[j] === "\\" ? 2 : 1;
      code += c + " ".repeat(Math.max(0, Math.min(j, line.length) - i - 1)) + c;
      i = j;
      continue;
    }
    code += c;
  }
  return { code, comment: undefined };
}

/** Openers minus closers of `()[]{}` outside strings and comments. */
export function bracketDepth(text: string): number {
  let d = 0;
  for (const line of text.split("\n")) {
    for (const c of splitLine(line).code) {
      if (c === "(" || c === "[" || c === "{") d++;
      else if (c === ")" || c === "]" || c === "}") d--;
    }
  }
  return d;
}

function parses(expr: string): boolean {
  try {
    new Function(`return (${expr}\n);`);
    return true;
  } catch {
    return false;
  }
}

/**
 * The value of a `// =>` comment: the text up to the first `: ` or ` (` that
 * is outside strings and brackets (a note follows), or all of it; undefined
 * when that does not parse as an expression.
 *
 * @example
 * ```ts
 * import { resultValue } from "./doc_results.ts";
 * resultValue("0 (an ACK)"); // => "0"
 * resultValue("{ errno: 2 }"); // => "{ errno: 2 }"
 * ```
 */
export function resultValue(text: string): string | undefined {
  const t = text.trim();
  const code = splitLine(t).code;
  let depth = 0, end = t.length;
  for (let i = 0; i < code.length; i++) {
    const c = code[i]!;
    if (c === "(" || c === "[" || c === "{") {
      if (c === "(" && depth === 0 && code[i - 1] === " ") {
        end = i - 1;
        break;
      }
      depth++;
    } else if (c === ")" || c === "]" || c === "}") depth--;
    else if (c === ":" && depth === 0 && /\s/.test(code[i + 1] ?? "")) {
      end = i;
      break;
    }
  }
  const value = t.slice(0, end).trim();
  return value !== "" && parses(value) ? value : undefined;
}

/** An example rewritten into a module. */
export interface RewrittenExample {
  /** The module's source (imports made absolute). */
  source: string;
  /** `file:line` of every check, in order. */
  checks: string[];
}

function fail(ex: Example, i: number, why: string): never {
  throw new Error(`${ex.file}:${ex.line + i}: ${why}`);
}

/** Splits a leading `if (…)` off a statement. */
function splitIf(text: string): [string, string] {
  const m = /^if\s*\(/.exec(text);
  if (m === null) return ["", text];
  let d = 0;
  for (let i = m[0].length - 1; i < text.length; i++) {
    if (text[i] === "(") d++;
    else if (text[i] === ")" && --d === 0) return [text.slice(0, i + 1) + " ", text.slice(i + 1)];
  }
  return ["", text];
}

/**
 * Rewrites every `// =>` of `ex` into a check (see the module doc). Throws,
 * naming the line, on a form it does not understand.
 */
export function rewriteExample(ex: Example): RewrittenExample {
  const out = [...ex.code];
  const split = ex.code.map(splitLine);
  const checks: string[] = [];
  let done = -1; // last line already part of a check
  for (let i = 0; i < ex.code.length; i++) {
    const marker = /^\s*=>(.*)$/.exec(split[i]!.comment ?? "");
    if (marker === null) continue;
    let valueText = marker[1]!;
    for (let j = i + 1; bracketDepth(valueText) > 0 && j < ex.code.length; j++) {
      const s = split[j]!;
      if (s.code.trim() !== "" || s.comment === undefined || /^\s*=>/.test(s.comment)) break;
      valueText += " " + s.comment.trim();
    }
    const value = resultValue(valueText);
    if (value === undefined) fail(ex, i, `cannot read the result ${JSON.stringify(valueText)}`);
    let end = i;
    if (split[i]!.code.trim() === "") {
      end = i - 1;
      while (end > done && split[end]!.code.trim() === "") end--;
      if (end <= done) fail(ex, i, "a `// =>` line with no statement before it");
    }
    let start = end, text = split[end]!.code;
    while (bracketDepth(text) < 0) {
      if (--start <= done) fail(ex, i, "unbalanced brackets before `// =>`");
      text = split[start]!.code + "\n" + text;
    }
    if (bracketDepth(text) !== 0) fail(ex, i, "the statement before `// =>` is not complete");
    // The statement's own text (strings intact), from its first line to its end.
    const own = [
      ...ex.code.slice(start, end),
      split[end]!.code.length < ex.code[end]!.length
        ? ex.code[end]!.slice(0, split[end]!.code.length)
        : ex.code[end]!,
    ].join("\n").trim().replace(/;\s*$/, "");
    if (/^(const|let|var|return|import|export|throw|function|class)\b/.test(own)) {
      fail(ex, i, "`// =>` must follow an expression statement");
    }
    const [prefix, expr] = splitIf(own);
    const where = `${ex.file}:${ex.line + i}`;
    const indent = /^\s*/.exec(ex.code[start]!)![0];
    out[start] = `${indent}${prefix}__check(${JSON.stringify(where)}, ${expr}, ${value});`;
    for (let k = start + 1; k <= end; k++) out[k] = "";
    checks.push(where);
    done = Math.max(end, i);
  }
  const dir = new URL(".", `file://${ex.file}`);
  const absolute = (spec: string) => new URL(spec, dir).href;
  const body = out.join("\n").replace(
    /(\bfrom\s+|\bimport\s*\(?\s*)(["'])(\.\.?\/[^"']+)\2/g,
    (_, pre: string, q: string, spec: string) => `${pre}${q}${absolute(spec)}${q}`,
  );
  const source = [
    `import { deepStrictEqual as __equal } from "node:assert";`,
    `export const __ran: string[] = [];`,
    `function __check(where: string, actual: unknown, expected: unknown): void {`,
    `  __ran.push(where);`,
    "  __equal(actual, expected, `${where}: the example's \\`// =>\\` result`);",
    `}`,
    body,
  ].join("\n");
  return { source, checks };
}

/**
 * Runs a rewritten example as a module (a `data:` URL) and checks that every
 * check ran; rejects with the first failed check or a missing one.
 */
export async function runExample(r: RewrittenExample): Promise<void> {
  const url = `data:application/typescript;base64,${toBase64(r.source)}`;
  const mod = await import(url) as { __ran: string[] };
  const missing = r.checks.filter((w) => !mod.__ran.includes(w));
  if (missing.length > 0) {
    throw new Error(`these \`// =>\` checks never ran: ${missing.join(", ")}`);
  }
}

function toBase64(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/**
 * Files whose examples touch state the whole process shares, which
 * `deno test --parallel` test files share too (they run as threads of one
 * process): an ignored SIGUSR1 (early_signals, lifecycle's handleShutdown)
 * is inherited by every child a test then spawns, so a test that main.ts
 * ignores it would pass whatever main.ts did; the reaper's
 * `killOrphans() // => 0` counts every marked orphan of the process, and
 * denoRunner's examples make some. These examples run in
 * tests/os/process_test.ts, which `deno task test:unit` runs in a process of its
 * own.
 */
export const ISOLATED_EXAMPLES = [
  "lib/run/early_signals.ts",
  "lib/run/lifecycle.ts",
  "lib/os/process.ts",
  "lib/os/reaper.ts",
];

/** main.ts and every .ts file under lib/, as paths relative to `root`, sorted. */
export async function exampleSources(root: URL): Promise<string[]> {
  const out = ["main.ts"];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      if (e.isDirectory) await walk(`${dir}${e.name}/`);
      else if (e.name.endsWith(".ts")) out.push(`${dir}${e.name}`);
    }
  };
  await walk("lib/");
  return out.sort();
}

/** The examples of `file` (relative to `root`), each rewritten with its checks. */
export async function examplesOf(root: URL, file: string): Promise<RewrittenExample[]> {
  const path = new URL(file, root).pathname;
  return extractExamples(path, await Deno.readTextFile(path)).map(rewriteExample);
}
