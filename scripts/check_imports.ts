/**
 * Checks that imports point one way: no import cycle, no import that points
 * upward, and tests/, scripts/ and lib/ kept apart. `deno task test` runs it.
 *
 *     deno run -A scripts/check_imports.ts [--root DIR]
 *
 * It reads the module graph from `deno info --json` (every static, dynamic
 * and type-only import Deno resolves) of every module under DIR (default: this
 * repository): main.ts, lib/, testbed/, tests/ (fixtures aside) and scripts/.
 * Exit code 0 when the graph is clean, 1 with one line per problem otherwise,
 * 2 when the graph cannot be read.
 *
 * The layers of the agent, from the entry down (see {@linkcode LAYERS}), by
 * folder: a module may import its own folder or a deeper layer, never a
 * higher one. Every lib/ module belongs to a layer.
 *
 * | layer    | holds                                                          |
 * | -------- | -------------------------------------------------------------- |
 * | entry    | main.ts                                                        |
 * | run      | lib/run/: start, registries, settings, setup, lifecycle        |
 * | serve    | lib/serve/: HTTP, probes, metrics registry, process metrics    |
 * | agent    | lib/agent/: the poll loop and what it tells the metrics        |
 * | sources  | lib/sources/: reading the table                                |
 * | deleters | lib/deleters/: deleting entries                                |
 * | rules    | lib/rules/: the tracker, the rules and their NAT providers     |
 * | nat      | lib/nat/: nf_tables rules read and evaluated                   |
 * | kube     | lib/kube/: the Kubernetes client and Service view              |
 * | netlink  | lib/netlink/: ctnetlink framing, codec and sockets             |
 * | text     | lib/text/: table lines (procfs, conntrack -L) parsed, scanned  |
 * | log      | lib/log/: loggers                                              |
 * | os       | lib/os/: libc, processes, files, kernel facts                  |
 * | model    | lib/model/: tuples, addresses, snapshots, destination sets     |
 * | basics   | lib/basics.ts                                                  |
 *
 * Around the agent: lib/ imports only lib/ (and deno.json, for the version);
 * testbed/ (namespace tooling) imports lib/ and testbed/; tests/ imports
 * lib/, main.ts, testbed/ and tests/; scripts/ imports lib/, main.ts,
 * testbed/ and scripts/. tests/ and scripts/ never import each other.
 *
 * @module
 */

/** One layer of the agent: the modules it holds, by path prefix or exact path. */
export interface Layer {
  name: string;
  /** Paths relative to the root; one ending in `/` holds everything under it. */
  paths: string[];
}

/** The agent's layers, highest first: one folder each (the entry and the basics aside). */
export const LAYERS: Layer[] = [
  { name: "entry", paths: ["main.ts"] },
  { name: "run", paths: ["lib/run/"] },
  { name: "serve", paths: ["lib/serve/"] },
  { name: "agent", paths: ["lib/agent/"] },
  { name: "sources", paths: ["lib/sources/"] },
  { name: "deleters", paths: ["lib/deleters/"] },
  { name: "rules", paths: ["lib/rules/"] },
  { name: "nat", paths: ["lib/nat/"] },
  { name: "kube", paths: ["lib/kube/"] },
  { name: "netlink", paths: ["lib/netlink/"] },
  { name: "text", paths: ["lib/text/"] },
  { name: "log", paths: ["lib/log/"] },
  { name: "os", paths: ["lib/os/"] },
  { name: "model", paths: ["lib/model/"] },
  { name: "basics", paths: ["lib/basics.ts"] },
];

/** What each top-level area may import (path prefixes relative to the root). */
const AREAS: { area: string; may: string[] }[] = [
  { area: "main.ts", may: ["lib/"] },
  { area: "lib/", may: ["lib/", "deno.json"] },
  { area: "testbed/", may: ["lib/", "testbed/", "deno.json"] },
  { area: "tests/", may: ["lib/", "main.ts", "testbed/", "tests/", "deno.json"] },
  { area: "scripts/", may: ["lib/", "main.ts", "testbed/", "scripts/", "deno.json"] },
];

/**
 * Upward imports that exist today and have an owner fixing them.
 * Each is reported as known, not as a failure; an entry whose import is gone
 * fails the check, so that this list only ever shrinks.
 */
const KNOWN: { from: string; to: string; why: string }[] = [];

/** A module's imports of other modules under the root, as root-relative paths. */
export type Graph = Map<string, Set<string>>;

/** The layer of a root-relative path, or undefined outside main.ts and lib/. */
export function layerOf(path: string): number | undefined {
  const i = LAYERS.findIndex((l) =>
    l.paths.some((p) => p.endsWith("/") ? path.startsWith(p) : path === p)
  );
  return i < 0 ? undefined : i;
}

function areaOf(path: string): { area: string; may: string[] } | undefined {
  return AREAS.find((a) => a.area.endsWith("/") ? path.startsWith(a.area) : path === a.area);
}

/** Every import cycle of `graph` (one per strongly connected component), each closed. */
export function cycles(graph: Graph): string[][] {
  // Tarjan's strongly connected components, iterative over sorted nodes for stable output.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  const nodes = [...graph.keys()].sort();
  const strongConnect = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of [...(graph.get(v) ?? [])].sort()) {
      if (!index.has(w)) {
        strongConnect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1 || graph.get(v)?.has(v)) components.push(c);
    }
  };
  for (const v of nodes) if (!index.has(v)) strongConnect(v);
  // Name one concrete cycle per component: from its first module, the shortest way back.
  return components.map((c) => {
    const inside = new Set(c);
    const start = [...c].sort()[0]!;
    const prev = new Map<string, string>();
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const v = queue[i]!;
      for (const w of [...(graph.get(v) ?? [])].sort()) {
        if (!inside.has(w)) continue;
        if (w === start) {
          const path = [v];
          while (path[0] !== start) path.unshift(prev.get(path[0]!)!);
          return [...path, start];
        }
        if (!prev.has(w)) {
          prev.set(w, v);
          queue.push(w);
        }
      }
    }
    return [start, start];
  }).sort((a, b) => a[0]!.localeCompare(b[0]!));
}

/** The problems of `graph`: cycles, upward imports and imports across areas. */
export function problems(graph: Graph): { failures: string[]; known: string[] } {
  const failures: string[] = [];
  const known: string[] = [];
  for (const c of cycles(graph)) failures.push(`import cycle: ${c.join(" → ")}`);
  for (const m of [...graph.keys()].sort()) {
    if (m.startsWith("lib/") && layerOf(m) === undefined) {
      failures.push(`no layer: ${m} is in no folder of scripts/check_imports.ts LAYERS`);
    }
  }
  for (const [from, tos] of [...graph].sort(([a], [b]) => a.localeCompare(b))) {
    const area = areaOf(from);
    for (const to of [...tos].sort()) {
      if (
        area !== undefined && !area.may.some((p) => p.endsWith("/") ? to.startsWith(p) : to === p)
      ) {
        failures.push(
          `forbidden import: ${from} imports ${to} (${area.area} may import only ${
            area.may.join(", ")
          })`,
        );
        continue;
      }
      const a = layerOf(from);
      const b = layerOf(to);
      if (a === undefined || b === undefined || b >= a) continue;
      const line = `upward import: ${from} (${LAYERS[a]!.name}) imports ${to} (${LAYERS[b]!.name})`;
      const k = KNOWN.find((k) => k.from === from && k.to === to);
      if (k) known.push(`${line}: known, ${k.why}`);
      else failures.push(line);
    }
  }
  for (const k of KNOWN) {
    if (graph.has(k.from) && !graph.get(k.from)!.has(k.to)) {
      failures.push(
        `stale entry in scripts/check_imports.ts KNOWN: ${k.from} no longer imports ${k.to}; remove it`,
      );
    }
  }
  return { failures, known };
}

/** The .ts modules under `root` the check covers (root-relative, sorted). */
async function modulesUnder(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for await (const e of Deno.readDir(`${root}/${rel}`)) {
      const path = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory) {
        if (path === "tests/fixtures") continue;
        if (["lib", "tests", "scripts", "testbed"].includes(path.split("/")[0]!)) await walk(path);
      } else if (e.isFile && e.name.endsWith(".ts")) {
        if (rel !== "" || path === "main.ts") out.push(path);
      }
    }
  };
  await walk("");
  return out.sort();
}

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier?: string }; type?: { specifier?: string } }[];
}

/** The import graph of every module under `root`, from one `deno info --json` run. */
export async function readGraph(root: string): Promise<Graph> {
  const modules = await modulesUnder(root);
  const base = new URL(`file://${root.replace(/\/$/, "")}/`);
  const dir = await Deno.makeTempDir({ prefix: "cct-check-imports-" });
  try {
    // One entry that imports them all: one deno info run instead of one per module.
    const entry = `${dir}/all.ts`;
    await Deno.writeTextFile(
      entry,
      modules.map((m) => `import ${JSON.stringify(new URL(m, base).href)};\n`).join(""),
    );
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) {
      throw new Error(`deno info failed: ${new TextDecoder().decode(r.stderr).trim()}`);
    }
    const info = JSON.parse(new TextDecoder().decode(r.stdout)) as { modules: InfoModule[] };
    const rel = (specifier: string): string | undefined =>
      specifier.startsWith(base.href)
        ? decodeURIComponent(specifier.slice(base.href.length))
        : undefined;
    const graph: Graph = new Map(modules.map((m) => [m, new Set<string>()]));
    for (const m of info.modules) {
      const from = rel(m.specifier);
      if (from === undefined || !graph.has(from)) continue;
      for (const d of m.dependencies ?? []) {
        for (const s of [d.code?.specifier, d.type?.specifier]) {
          const to = s === undefined ? undefined : rel(s);
          if (to !== undefined) graph.get(from)!.add(to);
        }
      }
    }
    return graph;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function main(args: string[]): Promise<number> {
  let root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--root" && args[i + 1] !== undefined) root = args[++i]!.replace(/\/$/, "");
    else {
      console.error(`check_imports: unknown argument ${args[i]}; usage: [--root DIR]`);
      return 2;
    }
  }
  let graph: Graph;
  try {
    graph = await readGraph(root);
  } catch (e) {
    console.error(`check_imports: ${e instanceof Error ? e.message : e}`);
    return 2;
  }
  const { failures, known } = problems(graph);
  for (const k of known) console.log(k);
  for (const f of failures) console.error(f);
  const edges = [...graph.values()].reduce((n, s) => n + s.size, 0);
  console.log(
    `check_imports: ${graph.size} modules, ${edges} imports, ${failures.length} problem(s)` +
      (known.length > 0 ? `, ${known.length} known upward import(s) being fixed` : ""),
  );
  return failures.length === 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
