/**
 * The repository's Dockerfile read as text, for the deploy tests (no Docker
 * engine needed): its instructions with continuation lines joined, its stages,
 * and the build-context sources of its `COPY`/`ADD` instructions.
 *
 * @module
 */
import assert from "node:assert/strict";

/** One instruction: its keyword (upper case) and the rest of the line. */
export interface Instruction {
  keyword: string;
  args: string;
}

/** One `FROM` and the instructions up to the next. */
export interface Stage {
  image: string;
  name?: string | undefined;
  instructions: Instruction[];
}

/** The repository root, as a URL. */
export const ROOT = new URL("../../", import.meta.url);

/** The Dockerfile's text. */
export function dockerfileText(): string {
  return Deno.readTextFileSync(new URL("Dockerfile", ROOT));
}

/** Instructions with continuation lines joined and comment lines dropped. */
export function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    // A comment line, also in the middle of a continued instruction.
    if (line.startsWith("#")) continue;
    if (line === "" && current === "") continue;
    current += (current ? " " : "") + line.replace(/\\$/, "").trim();
    if (line.endsWith("\\")) continue;
    const m = /^(\S+)\s*(.*)$/.exec(current);
    if (m) out.push({ keyword: m[1]!.toUpperCase(), args: m[2]! });
    current = "";
  }
  return out;
}

/** The stages of `text` (default: the repository's Dockerfile), in order. */
export function stages(text: string = dockerfileText()): Stage[] {
  const out: Stage[] = [];
  for (const ins of instructions(text)) {
    if (ins.keyword === "FROM") {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(m, `FROM ${ins.args}`);
      out.push({ image: m[1]!, name: m[2], instructions: [] });
    } else if (out.length > 0) {
      out.at(-1)!.instructions.push(ins);
    } else {
      assert.ok(["ARG"].includes(ins.keyword), `${ins.keyword} before the first FROM`);
    }
  }
  return out;
}

/** The `RUN` commands of a stage. */
export function runs(stage: Stage): string[] {
  return stage.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
}

/**
 * The build-context sources of every `COPY` and `ADD` in `text`, as written
 * (a file, a directory such as `.`, or a wildcard pattern). Instructions with
 * `--from=` copy from a stage or an image, not from the context, and are left
 * out; so are the other `--flag`s and the destination.
 *
 * @example
 * ```ts
 * contextSources("FROM x\nCOPY --chmod=0755 a b ./\nCOPY --from=y /o /o\n");
 * // => ["a", "b"]
 * ```
 */
export function contextSources(text: string = dockerfileText()): string[] {
  const out: string[] = [];
  for (const ins of instructions(text)) {
    if (ins.keyword !== "COPY" && ins.keyword !== "ADD") continue;
    let words: string[];
    const rest = ins.args.replace(/^(?:--\S+\s+)*/, "");
    const flags = ins.args.slice(0, ins.args.length - rest.length).trim().split(/\s+/);
    if (flags.some((f) => f.startsWith("--from="))) continue;
    if (rest.startsWith("[")) words = JSON.parse(rest) as string[];
    else words = rest.split(/\s+/).filter((w) => w !== "");
    assert.ok(words.length >= 2, `${ins.keyword} ${ins.args}: a source and a destination`);
    out.push(...words.slice(0, -1));
  }
  return out;
}
