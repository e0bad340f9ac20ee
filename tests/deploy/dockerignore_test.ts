/**
 * `.dockerignore` against the Dockerfile: Docker's own ignore rules (applied
 * by `@balena/dockerignore`, a port of Docker's matcher, not a hand-written
 * one) run over the files of a clean clone, and every build-context source a
 * `COPY`/`ADD` names, and every module the build stage type-checks, must
 * still be in the context `docker build` sends.
 *
 * @module
 */
import assert from "node:assert/strict";
import dockerignore from "@balena/dockerignore";
import { contextSources, ROOT } from "../support/dockerfile.ts";

const ROOT_PATH = ROOT.pathname.replace(/\/$/, "");
// A CommonJS package: its module object is the factory, also exported as `default`.
const ignore = dockerignore.default;

/**
 * The files a clean clone has: `git ls-files`, or, outside a git checkout
 * (a copy of the tree, as scripts/mutants.ts makes), every file but .git's.
 */
async function cloneFiles(): Promise<string[]> {
  const git = await new Deno.Command("git", {
    args: ["ls-files", "-z"],
    cwd: ROOT_PATH,
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  if (git?.success) return new TextDecoder().decode(git.stdout).split("\0").filter((f) => f);
  const out: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${ROOT_PATH}/${dir}`)) {
      const rel = `${dir}${e.name}`;
      if (e.isDirectory) {
        if (rel !== ".git") await walk(`${rel}/`);
      } else out.push(rel);
    }
  };
  await walk("");
  return out;
}

/** The files `docker build .` sends: the clone less what `.dockerignore` excludes. */
async function buildContext(): Promise<{ files: string[]; sent: Set<string> }> {
  const rules = await Deno.readTextFile(`${ROOT_PATH}/.dockerignore`);
  const files = await cloneFiles();
  return { files, sent: new Set(ignore().add(rules.split("\n")).filter(files)) };
}

/**
 * The files of the clone that `source` (a file, a directory or a wildcard)
 * names. Docker matches COPY sources with the same rules as .dockerignore
 * patterns (Go's filepath.Match, a directory standing for what is under it),
 * so the library's matcher is used for both.
 */
function named(source: string, files: string[]): string[] {
  const clean = source.replace(/^\.\//, "").replace(/\/$/, "");
  if (clean === "." || clean === "") return files;
  const matcher = ignore().add(clean);
  return files.filter((f) => matcher.ignores(f));
}

Deno.test(".dockerignore: every COPY/ADD source of the Dockerfile reaches the build context", async () => {
  const { files, sent } = await buildContext();
  const sources = contextSources();
  // The Dockerfile copies the manifests first, then the whole context.
  for (const s of ["deno.json", "tests/deno.json", "scripts/assemble_rootfs.sh", "."]) {
    assert.ok(sources.includes(s), `the Dockerfile copies ${s}`);
  }
  for (const source of sources) {
    const all = named(source, files);
    assert.ok(all.length > 0, `${source}: names no file of a clean clone`);
    const kept = all.filter((f) => sent.has(f));
    if (/[*?[]/.test(source) || all.length > 1) {
      assert.ok(kept.length > 0, `${source}: .dockerignore leaves out all of ${all.join(", ")}`);
    } else {
      assert.deepEqual(kept, all, `${source}: .dockerignore leaves it out of the build context`);
    }
  }
});

Deno.test(".dockerignore: main.ts's module graph, deno.json, deno.lock and the workspace member reach the build context", async () => {
  const { sent } = await buildContext();
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: ROOT_PATH,
  }).output();
  assert.equal(info.code, 0, new TextDecoder().decode(info.stderr));
  const local =
    (JSON.parse(new TextDecoder().decode(info.stdout)).modules as { specifier: string }[])
      .map((m) => m.specifier).filter((s) => s.startsWith("file:"))
      .map((s) => new URL(s).pathname.slice(ROOT_PATH.length + 1));
  assert.ok(local.includes("main.ts") && local.some((f) => f.startsWith("lib/")), "the graph");
  const root = JSON.parse(await Deno.readTextFile(`${ROOT_PATH}/deno.json`));
  const members = (root.workspace as string[]).map((m) => `${m.replace(/^\.\//, "")}/deno.json`);
  // `deno check main.ts` in the build stage reads all of these.
  const needed = [...local, "deno.json", "deno.lock", ...members];
  const missing = needed.filter((f) => !sent.has(f));
  assert.deepEqual(missing, [], "left out of the build context by .dockerignore");
});

Deno.test(".dockerignore: leaves out .git, dist, node_modules and the test suite", async () => {
  const { files, sent } = await buildContext();
  const rules = ignore().add(
    (await Deno.readTextFile(`${ROOT_PATH}/.dockerignore`)).split("\n"),
  );
  for (const p of [".git/HEAD", "dist/conntrack-cleaner", "node_modules/x/index.js"]) {
    assert.ok(rules.ignores(p), p);
  }
  const tests = files.filter((f) => f.startsWith("tests/") && f.endsWith("_test.ts"));
  assert.ok(tests.length > 0, "the clone has tests");
  assert.deepEqual(tests.filter((f) => sent.has(f)), [], "no test file is sent");
});
