/**
 * docs/architecture.md's module map names every file in lib/ and no other:
 * a table that restates the tree is checked against it.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

function libFiles(dir = "lib"): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(new URL(`${dir}/`, ROOT))) {
    if (e.isDirectory) out.push(...libFiles(`${dir}/${e.name}`));
    else if (e.name.endsWith(".ts")) out.push(`${dir}/${e.name}`);
  }
  return out.sort();
}

Deno.test("docs/architecture.md: the module map lists exactly the files in lib/ and main.ts", () => {
  const text = Deno.readTextFileSync(new URL("docs/architecture.md", ROOT));
  const mapped = [...text.matchAll(/^\| `([^`]+\.ts)`/gm)].map((m) => m[1]!);
  assert.equal(new Set(mapped).size, mapped.length, "each file once");
  assert.deepEqual(
    mapped.filter((f) => f !== "main.ts").sort(),
    libFiles(),
    "map rows vs files in lib/",
  );
  assert.ok(mapped.includes("main.ts"));
});
