/**
 * Every JSDoc example of main.ts and lib/ runs, and every `// =>` result in
 * them holds (`deno test --doc` would run each in a worker of its own, which
 * costs ~0.3 s apiece, and read `// =>` as a comment; `deno task test:unit`
 * type-checks the examples with `deno check --doc`). The checker itself
 * fails on a wrong result, on a check that never runs and on a form it does
 * not understand. The examples of ISOLATED_EXAMPLES run in
 * tests/os/process_test.ts instead (see there).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  examplesOf,
  exampleSources,
  ISOLATED_EXAMPLES,
  resultValue,
  rewriteExample,
  runExample,
} from "./support/doc_results.ts";

const ROOT = new URL("../", import.meta.url);

const files = await exampleSources(ROOT);
let total = 0;
let examples = 0;
for (const file of files) {
  const rewritten = await examplesOf(ROOT, file);
  total += rewritten.reduce((n, r) => n + r.checks.length, 0);
  examples += rewritten.length;
  if (rewritten.length === 0 || ISOLATED_EXAMPLES.includes(file)) continue;
  Deno.test(`the examples of ${file} run and their // => results hold`, async () => {
    for (const r of rewritten) await runExample(r);
  });
}

Deno.test("the examples of main.ts and lib/ hold at least 70 `// =>` results", () => {
  // Found by this file's own extraction: a broken extractor that finds none would pass above.
  assert.ok(total >= 70, `only ${total} found`);
  assert.ok(examples >= 100, `only ${examples} examples found`);
});

Deno.test("the examples run elsewhere (ISOLATED_EXAMPLES) are files of lib/ with examples", async () => {
  for (const file of ISOLATED_EXAMPLES) {
    assert.ok(files.includes(file), `${file} is not a source file`);
    assert.ok((await examplesOf(ROOT, file)).length > 0, `${file} has no example`);
  }
});

const example = (code: string) => ({ file: "/x/example.ts", line: 1, code: code.split("\n") });

Deno.test("a wrong // => result fails: f(); // => 3 when f() returns 2", async () => {
  const r = rewriteExample(example("const f = () => 2;\nf(); // => 3"));
  assert.equal(r.checks.length, 1);
  await assert.rejects(runExample(r), /example\.ts:2: the example's `\/\/ =>` result/);
  await runExample(rewriteExample(example("const f = () => 2;\nf(); // => 2")));
});

Deno.test("results are compared deeply and strictly, on the next line and across lines", async () => {
  const ok = [
    'const o = { a: [1, "2"] };\no;\n// => { a: [1, "2"] }',
    "const f = (x: { n: number }) => x.n;\nf({\n  n: 1,\n}); // => 1",
    "const a = [1, 2];\na;\n// => [1,\n//    2]",
    "const p = Promise.resolve(4);\nawait p; // => 4 (resolved)",
    "const n = 0;\nn; // => 0: an ACK",
    "const s = '// => not a marker';\ns.length; // => 18",
  ];
  for (const code of ok) await runExample(rewriteExample(example(code)));
  const bad = [
    'const o = { a: [1, "2"] };\no;\n// => { a: [1, 2] }',
    "const f = (x: { n: number }) => x.n;\nf({\n  n: 1,\n}); // => 2",
    "const a = [1, 2];\na;\n// => [1,\n//    3]",
    "const p = Promise.resolve(4);\nawait p; // => 5 (resolved)",
    "const u = new Uint8Array([1]);\nu; // => [1]",
  ];
  for (const code of bad) await assert.rejects(runExample(rewriteExample(example(code))), code);
});

Deno.test("a // => check that never runs fails", async () => {
  const r = rewriteExample(example("const x = 1 as number;\nif (x === 2) x; // => 2"));
  await assert.rejects(runExample(r), /never ran: \/x\/example\.ts:2/);
});

Deno.test("a // => after anything but an expression statement is an error naming the line", () => {
  assert.throws(
    () => rewriteExample(example("const x = 1; // => 1")),
    /example\.ts:1:.*expression/,
  );
  assert.throws(() => rewriteExample(example("// => 1")), /example\.ts:1: .*no statement/);
  assert.throws(() => rewriteExample(example("f(); // => 1 2 3")), /cannot read the result/);
});

Deno.test("the value ends where a note begins, but never inside a value", () => {
  assert.equal(resultValue("undefined (Go wants a unit)"), "undefined");
  assert.equal(resultValue('"status"'), '"status"');
  assert.equal(resultValue("true: throw it away"), "true");
  assert.equal(resultValue('{ ok: false, reason: "a: b" }'), '{ ok: false, reason: "a: b" }');
  assert.equal(resultValue("1 2"), undefined);
});
