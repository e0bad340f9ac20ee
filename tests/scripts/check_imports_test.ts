/**
 * scripts/check_imports.ts, run as `deno task test` runs it (a subprocess;
 * tests never import scripts), on small module graphs planted in a temp
 * directory.
 */
import assert from "node:assert/strict";

const SCRIPT = new URL("../../scripts/check_imports.ts", import.meta.url).pathname;

/** Writes `files` (path → source) under a new temp directory; returns it. */
async function plant(files: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "cct-planted-" });
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(`${root}/${path.split("/").slice(0, -1).join("/")}`, { recursive: true });
    await Deno.writeTextFile(`${root}/${path}`, text);
  }
  return root;
}

async function check(root: string): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, "--root", root],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: r.code, out: d.decode(r.stdout) + d.decode(r.stderr) };
}

/** A clean graph, one module per layer plus the areas around them. */
const CLEAN: Record<string, string> = {
  "main.ts": 'import { loop } from "./lib/agent/agent.ts";\nloop();\n',
  "lib/agent/agent.ts":
    'import { poll } from "../sources/procfs.ts";\nexport const loop = () => poll();\n',
  "lib/sources/procfs.ts":
    'import { parse } from "../text/parse.ts";\nexport const poll = () => parse();\n',
  "lib/text/parse.ts":
    'import { canon } from "../model/addr.ts";\nexport const parse = () => canon();\n',
  "lib/model/addr.ts": "export const canon = () => 1;\n",
  "testbed/netns.ts": 'import { canon } from "../lib/model/addr.ts";\nexport const ns = canon;\n',
  "tests/parse_test.ts":
    'import { parse } from "../lib/text/parse.ts";\nimport { ns } from "../testbed/netns.ts";\nparse(); ns();\n',
  "scripts/demo.ts": 'import { ns } from "../testbed/netns.ts";\nns();\n',
};

Deno.test("check_imports passes a clean layered graph (exit 0)", async () => {
  const root = await plant(CLEAN);
  try {
    const r = await check(root);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /check_imports: 8 modules, 8 imports, 0 problem\(s\)/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("check_imports fails on a planted cycle, an upward import and tests/scripts importing each other, naming each", async () => {
  const root = await plant({
    ...CLEAN,
    // a cycle inside one folder (same layer: only the cycle is wrong)
    "lib/model/addr.ts": 'import { parse } from "./tuple.ts";\nexport const canon = () => parse;\n',
    "lib/model/tuple.ts": 'import { canon } from "./addr.ts";\nexport const parse = canon;\n',
    // a floor reaching up into the loop
    "lib/os/duration.ts":
      'import type { loop } from "../agent/agent.ts";\nexport type L = typeof loop;\n',
    // lib reaching into the testbed, tests into scripts, scripts into tests
    "lib/sources/procfs.ts":
      'import { parse } from "../text/parse.ts";\nimport "../../testbed/netns.ts";\n' +
      "export const poll = () => parse();\n",
    "tests/demo_test.ts": 'import "../scripts/demo.ts";\n',
    "scripts/bench.ts": 'import "../tests/parse_test.ts";\n',
  });
  try {
    const r = await check(root);
    assert.equal(r.code, 1, r.out);
    assert.match(
      r.out,
      /^import cycle: lib\/model\/addr\.ts → lib\/model\/tuple\.ts → lib\/model\/addr\.ts$/m,
    );
    assert.match(
      r.out,
      /^upward import: lib\/os\/duration\.ts \(os\) imports lib\/agent\/agent\.ts \(agent\)$/m,
    );
    assert.match(r.out, /^forbidden import: lib\/sources\/procfs\.ts imports testbed\/netns\.ts/m);
    assert.match(r.out, /^forbidden import: tests\/demo_test\.ts imports scripts\/demo\.ts/m);
    assert.match(r.out, /^forbidden import: scripts\/bench\.ts imports tests\/parse_test\.ts/m);
    assert.match(r.out, /5 problem\(s\)/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("check_imports names a longer cycle through layers in import order", async () => {
  const root = await plant({
    ...CLEAN,
    // agent → sources → text → agent: a cycle that is also an upward import
    "lib/text/parse.ts":
      'import { canon } from "../model/addr.ts";\nimport "../agent/agent.ts";\n' +
      "export const parse = () => canon();\n",
  });
  try {
    const r = await check(root);
    assert.equal(r.code, 1, r.out);
    assert.match(
      r.out,
      /^import cycle: lib\/agent\/agent\.ts → lib\/sources\/procfs\.ts → lib\/text\/parse\.ts → lib\/agent\/agent\.ts$/m,
    );
    assert.match(
      r.out,
      /^upward import: lib\/text\/parse\.ts \(text\) imports lib\/agent\/agent\.ts \(agent\)$/m,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("check_imports fails on a lib/ module outside every layer's folder", async () => {
  const root = await plant({ ...CLEAN, "lib/stray.ts": "export const stray = 1;\n" });
  try {
    const r = await check(root);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /^no layer: lib\/stray\.ts is in no folder/m);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
