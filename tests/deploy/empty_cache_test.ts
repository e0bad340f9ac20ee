/**
 * From a clean clone with an empty Deno cache (a fresh `DENO_DIR`), as a new
 * user or a build machine starts: running the agent from source fetches only
 * the runtime's npm packages, and `deno task compile`'s commands (read from
 * deno.json) get through without running out of memory and embed main.ts's
 * module graph and no test-only package. Both fetch from the npm registry.
 *
 * `deno compile` downloads Deno's `denort` runtime unless `DENORT_BIN` names
 * one; here a stand-in is named, a small ELF executable (`true`), because
 * compile only needs an ELF file to add its section to (a non-ELF file is
 * refused). The output is therefore the stand-in plus the embedded program:
 * these tests read what it embeds and never run it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { ROOT } from "../support/dockerfile.ts";

const ROOT_PATH = ROOT.pathname.replace(/\/$/, "");
const decoder = new TextDecoder();

interface Lock {
  specifiers: Record<string, string>;
  npm: Record<string, { dependencies?: string[]; optionalDependencies?: string[] }>;
  workspace: { dependencies?: string[]; members?: Record<string, { dependencies?: string[] }> };
}

const LOCK: Lock = JSON.parse(Deno.readTextFileSync(`${ROOT_PATH}/deno.lock`));

/** `name@version` of a deno.lock npm key (which may carry a `_peer@x` suffix). */
function packageOf(key: string): { name: string; version: string } {
  const at = key.indexOf("@", 1);
  return { name: key.slice(0, at), version: key.slice(at + 1).replace(/_.*$/, "") };
}

/** The deno.lock npm keys `roots` (`npm:name@range` specifiers) need, with their dependencies. */
function closure(roots: string[]): Set<string> {
  const keys = Object.keys(LOCK.npm);
  const out = new Set<string>();
  const visit = (key: string) => {
    if (out.has(key)) return;
    assert.ok(LOCK.npm[key], `deno.lock has no npm entry ${key}`);
    out.add(key);
    const entry = LOCK.npm[key];
    for (const dep of [...(entry.dependencies ?? []), ...(entry.optionalDependencies ?? [])]) {
      // A dependency is `name`, or `name@version…` where several versions are locked.
      const found = dep.indexOf("@", 1) > 0 ? [dep] : keys.filter((k) => packageOf(k).name === dep);
      assert.equal(found.length, 1, `${key}: dependency ${dep} is locked once`);
      visit(found[0]!);
    }
  };
  for (const spec of roots) {
    const version = LOCK.specifiers[spec];
    assert.ok(version, `deno.lock resolves ${spec}`);
    const name = spec.replace(/^npm:/, "").replace(/@[^@]*$/, "");
    visit(`${name}@${version}`);
  }
  return out;
}

/** The runtime's packages: what deno.json's own imports need. */
const RUNTIME = closure(LOCK.workspace.dependencies ?? []);
/** What only the workspace members (the tests) need. */
const TEST_ONLY = new Set(
  [...closure(Object.values(LOCK.workspace.members ?? {}).flatMap((m) => m.dependencies ?? []))]
    .filter((k) => !RUNTIME.has(k)),
);

/** The npm packages in a Deno cache, as `name@version`. */
async function cachedPackages(denoDir: string): Promise<Set<string>> {
  const out = new Set<string>();
  const dirs = async (path: string) => {
    const names: string[] = [];
    try {
      for await (const e of Deno.readDir(path)) if (e.isDirectory) names.push(e.name);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return names;
  };
  for (const registry of await dirs(`${denoDir}/npm`)) {
    for (const first of await dirs(`${denoDir}/npm/${registry}`)) {
      const names = first.startsWith("@")
        ? (await dirs(`${denoDir}/npm/${registry}/${first}`)).map((n) => `${first}/${n}`)
        : [first];
      for (const name of names) {
        for (const version of await dirs(`${denoDir}/npm/${registry}/${name}`)) {
          out.add(`${name}@${version}`);
        }
      }
    }
  }
  return out;
}

/** Calls `fn` with the environment of a fresh, empty Deno cache, removed afterwards. */
async function withEmptyCache<T>(
  fn: (env: Record<string, string>, denoDir: string) => Promise<T>,
): Promise<T> {
  const denoDir = await Deno.makeTempDir({ prefix: "cct-empty-deno-dir-" });
  try {
    return await fn({
      DENO_DIR: denoDir,
      NO_COLOR: "1",
      // `deno` in a deno.json command is the Deno running these tests.
      PATH: `${dirname(Deno.execPath())}:${Deno.env.get("PATH") ?? ""}`,
    }, denoDir);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
}

/**
 * The local modules main.ts's code loads: its graph (`deno info`) walked along
 * code imports, static and dynamic, leaving out modules only `import type`
 * reaches (they have no code to embed).
 */
async function codeModules(): Promise<string[]> {
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: ROOT_PATH,
  }).output();
  assert.equal(info.code, 0, decoder.decode(info.stderr));
  const graph = JSON.parse(decoder.decode(info.stdout)) as {
    roots: string[];
    modules: { specifier: string; dependencies?: { code?: { specifier: string } }[] }[];
  };
  const bySpecifier = new Map(graph.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const visit = (s: string) => {
    if (seen.has(s) || !s.startsWith("file:")) return;
    seen.add(s);
    for (const d of bySpecifier.get(s)?.dependencies ?? []) if (d.code) visit(d.code.specifier);
  };
  for (const r of graph.roots) visit(r);
  return [...seen];
}

Deno.test("deno.lock: the runtime needs yaml only; the tests' packages are apart from it", () => {
  // The closures the tests below compare a cache with: a broken reader of deno.lock that
  // found nothing would let them pass.
  assert.deepEqual([...RUNTIME].map((k) => packageOf(k).name), ["yaml"]);
  const testNames = [...TEST_ONLY].map((k) => packageOf(k).name);
  for (const n of ["fast-check", "pure-rand", "kubernetes-models", "@balena/dockerignore"]) {
    assert.ok(testNames.includes(n), `${n} is test-only`);
  }
});

Deno.test("deno run main.ts --help on an empty cache fetches the runtime's npm packages and no test-only one", async () => {
  await withEmptyCache(async (env, denoDir) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "main.ts", "--help"],
      cwd: ROOT_PATH,
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, decoder.decode(out.stderr));
    assert.match(decoder.decode(out.stdout), /^conntrack-cleaner: /);
    // `deno run` builds the whole graph, lazily loaded modules (yaml) included.
    assert.deepEqual([...await cachedPackages(denoDir)].sort(), [...RUNTIME].sort());
  });
});

Deno.test("deno task compile's commands on an empty cache, with a stand-in runtime: no out-of-memory, main.ts's graph and yaml embedded, no test-only package", async () => {
  const tasks = JSON.parse(await Deno.readTextFile(`${ROOT_PATH}/deno.json`)).tasks;
  const command: string = tasks.compile;
  assert.match(command, / --output dist\/conntrack-cleaner /);
  const standIn = ["/usr/bin/true", "/bin/true"].find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  assert.ok(standIn, "a `true` executable (coreutils) as the stand-in runtime");
  const standInBytes = await Deno.readFile(standIn);
  assert.deepEqual([...standInBytes.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], "an ELF file");
  const outDir = await Deno.makeTempDir({ prefix: "cct-compile-" });
  try {
    const output = `${outDir}/conntrack-cleaner`;
    const result = await withEmptyCache(async (env, denoDir) => {
      const run = await new Deno.Command("sh", {
        // The task's own command line, only its output moved out of the working tree.
        args: ["-c", command.replace(" --output dist/conntrack-cleaner ", ` --output ${output} `)],
        cwd: ROOT_PATH,
        env: { ...env, DENORT_BIN: standIn },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { run, cached: await cachedPackages(denoDir) };
    });
    const log = decoder.decode(result.run.stdout) + decoder.decode(result.run.stderr);
    assert.doesNotMatch(log, /out of memory/i);
    assert.equal(result.run.code, 0, log);
    assert.match(log, /^Check main\.ts$/m, "the type check ran");
    const bytes = await Deno.readFile(output);
    assert.ok(bytes.length > standInBytes.length, "the output is the stand-in and more");
    assert.deepEqual(bytes.subarray(0, 4), standInBytes.subarray(0, 4));
    // One character per byte on both sides, so a byte string is a substring.
    const latin = (b: Uint8Array) => new TextDecoder("latin1").decode(b);
    const embedded = latin(bytes);
    // Every module main.ts's code imports (dynamic imports included), verbatim.
    const local = await codeModules();
    assert.ok(local.length > 20, `main.ts's graph: ${local.length} modules`);
    for (const s of local) {
      const source = latin(await Deno.readFile(new URL(s)));
      assert.ok(embedded.includes(source), `${s} is embedded`);
    }
    assert.ok(!embedded.includes('_test.ts"'), "no test module is embedded");
    // The npm packages: the runtime's are package directories of the embedded file
    // system, no test-only one is; and no test-only one was even fetched.
    const packageDir = (key: string) => {
      const { name, version } = packageOf(key);
      return `{"Dir":{"n":"${name.split("/").at(-1)}","e":[{"Dir":{"n":"${version}"`;
    };
    for (const key of RUNTIME) {
      assert.ok(embedded.includes(packageDir(key)), `${key} is embedded`);
    }
    for (const key of TEST_ONLY) {
      assert.ok(!embedded.includes(packageDir(key)), `${key} (test-only) is not embedded`);
    }
    const fetched = [...result.cached].sort();
    assert.deepEqual(fetched, [...RUNTIME].sort(), "the packages fetched into the empty cache");
  } finally {
    await Deno.remove(outDir, { recursive: true });
  }
});
