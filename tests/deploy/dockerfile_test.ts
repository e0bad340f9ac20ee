/**
 * The Dockerfile, read as text (no Docker engine here): the stages, what each
 * one runs, and that the final image is scratch plus the tree
 * scripts/assemble_rootfs.sh builds. (.dockerignore against the Dockerfile:
 * dockerignore_test.ts.)
 */
import assert from "node:assert/strict";
import { ROOT, runs, type Stage, stages } from "../support/dockerfile.ts";

const AGENT_TARGET_RE = /(\S+):(\/\S*conntrack-cleaner)\b/;
const TASKS: { start: string; compile: string; [task: string]: string } =
  JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT))).tasks;
/** The V8 flags `deno task compile` embeds in the binary. */
const V8_FLAGS = /(--v8-flags=\S+)/.exec(TASKS.compile)?.[1] ?? "(none)";
/** The commands of `deno task compile`, in order. */
const COMPILE_STEPS = TASKS.compile.split(" && ");

/** The stage that runs scripts/assemble_rootfs.sh, and that command. */
function assembly(): { stage: Stage; command: string } {
  for (const stage of stages()) {
    const command = runs(stage).find((r) => /scripts\/assemble_rootfs\.sh\s/.test(r));
    if (command) return { stage, command };
  }
  assert.fail("no stage runs scripts/assemble_rootfs.sh");
}

Deno.test("Dockerfile: the build stage is denoland/deno pinned to 2.9.6, the project's Deno", () => {
  const [build] = stages();
  assert.ok(build);
  assert.equal(build.image, "denoland/deno:2.9.6");
  assert.equal(
    Deno.version.deno,
    "2.9.6",
    "the Deno running these tests is the one the image pins",
  );
});

Deno.test("Dockerfile: the build stage installs from deno.lock, then runs deno task compile's steps with /out as output", () => {
  const [build] = stages();
  assert.ok(build);
  const commands = runs(build);
  const install = commands.findIndex((r) => /\bdeno install\b/.test(r));
  assert.ok(install >= 0, "deno install runs");
  assert.match(commands[install]!, /--frozen/, "the lock file is honoured when present");
  // The task's commands, word for word but for the output path, in one RUN after the install.
  const steps = COMPILE_STEPS.map((c) =>
    c.replace("dist/conntrack-cleaner", "/out/conntrack-cleaner")
  );
  const compile = commands.findIndex((r) => r.includes(steps.join(" && ")));
  assert.ok(compile > install, `a RUN after deno install runs ${steps.join(" && ")}`);
  const copies = build.instructions.filter((i) => i.keyword === "COPY").map((i) => i.args);
  assert.match(
    copies[0]!,
    /\bdeno\.json\b.*\bdeno\.lock/,
    "deno.json and deno.lock are copied first",
  );
});

Deno.test("deno.json: start and compile run the agent with the same V8 flags, bounding both heap generations", () => {
  assert.match(
    V8_FLAGS,
    /^--v8-flags=(?=.*--max-semi-space-size=\d+)(?=.*--max-old-space-size=\d+)/,
  );
  assert.ok(TASKS.start.split(" ").includes(V8_FLAGS), `start: ${TASKS.start}`);
});

Deno.test("deno.json: compile type-checks with the default heap, then compiles unchecked with the agent's V8 flags", () => {
  // The embedded flags also bound the compiling process; with them the type check of an
  // empty cache dies "out of memory" (issue 22), so it runs first, on its own.
  assert.deepEqual(COMPILE_STEPS.length, 2, TASKS.compile);
  assert.equal(COMPILE_STEPS[0], "deno check main.ts");
  assert.match(
    COMPILE_STEPS[1]!,
    /^deno compile --no-check -A --exclude-unused-npm --v8-flags=\S+ --output dist\/conntrack-cleaner main\.ts$/,
  );
  assert.doesNotMatch(COMPILE_STEPS[0]!, /v8-flags/);
});

Deno.test("Dockerfile: every base image is pinned to a tag (no latest, no bare name)", () => {
  for (const s of stages()) {
    if (s.image === "scratch") continue;
    if (stages().some((o) => o.name === s.image)) continue;
    assert.match(s.image, /:[\w.-]+$|@sha256:/, `${s.image} has a tag`);
    assert.doesNotMatch(s.image, /:latest$/, `${s.image} is not :latest`);
  }
});

Deno.test("Dockerfile: a debian:bookworm-slim stage installs conntrack and runs scripts/assemble_rootfs.sh", () => {
  const { stage, command } = assembly();
  assert.equal(stage.image, "debian:bookworm-slim");
  const apt = runs(stage).find((r) => /apt-get install/.test(r));
  assert.ok(apt, "apt-get install runs");
  assert.match(apt, /--no-install-recommends/);
  assert.match(apt, /\bconntrack\b/);
  assert.match(apt, /\bbinutils\b/, "readelf for the script");
  const copy = stage.instructions.find((i) =>
    i.keyword === "COPY" && /^(--chmod=\S+\s+)?scripts\/assemble_rootfs\.sh\s/.test(i.args)
  );
  assert.ok(copy, "the script is copied from the build context");
  assert.match(command, /\s\/usr\/sbin\/conntrack(\s|$)/, "conntrack goes in");
  const agent = AGENT_TARGET_RE.exec(command);
  assert.ok(agent, "the compiled agent goes in at an absolute path");
  const fromBuild = stage.instructions.find((i) =>
    i.keyword === "COPY" && /^--from=\S+\s/.test(i.args) && i.args.includes(agent[1]!)
  );
  assert.ok(fromBuild, `${agent[1]} is copied from the build stage`);
});

Deno.test("Dockerfile: the final stage is FROM scratch with the assembled /rootfs and nothing run", () => {
  const all = stages();
  const final = all.at(-1)!;
  assert.equal(final.image, "scratch");
  const { stage } = assembly();
  const copies = final.instructions.filter((i) => i.keyword === "COPY").map((i) => i.args);
  assert.deepEqual(copies, [`--from=${stage.name} /rootfs/ /`]);
  const kinds = final.instructions.map((i) => i.keyword);
  assert.ok(!kinds.includes("RUN"), "no RUN: scratch has no shell");
  assert.ok(!kinds.includes("SHELL"), "no SHELL");
  assert.ok(!kinds.includes("ADD"), "no ADD");
});

Deno.test("Dockerfile: ENTRYPOINT is the exec form of the agent's path in the rootfs", () => {
  const final = stages().at(-1)!;
  const entry = final.instructions.filter((i) => i.keyword === "ENTRYPOINT");
  assert.equal(entry.length, 1);
  const argv = JSON.parse(entry[0]!.args) as string[];
  const agent = AGENT_TARGET_RE.exec(assembly().command);
  assert.deepEqual(argv, [agent![2]]);
  assert.ok(!final.instructions.some((i) => i.keyword === "CMD"), "no CMD: flags come from args");
});

Deno.test("Dockerfile: exposes the default listen port 10395", () => {
  const final = stages().at(-1)!;
  const expose = final.instructions.filter((i) => i.keyword === "EXPOSE").map((i) => i.args);
  assert.deepEqual(expose, ["10395/tcp"]);
});

Deno.test("deno compile embeds no test package: main.ts's graph and deno.json's import map hold only yaml", async () => {
  const root = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
  // The runtime's one package (a kubeconfig's YAML); test packages belong in tests/deno.json.
  assert.deepEqual(Object.keys(root.imports ?? {}), ["yaml"]);
  assert.deepEqual(root.workspace, ["./tests"]);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: new URL("../../", import.meta.url),
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout));
  // (info.npmPackages lists the whole workspace's resolution, test packages included.
  // node: built-ins are part of Deno, not packages compile would embed.)
  const foreign = (info.modules as { specifier: string }[])
    .map((m) => m.specifier).filter((s) => !s.startsWith("file:") && !s.startsWith("node:"));
  assert.deepEqual([...new Set(foreign.map((s) => s.replace(/^npm:\/?([^@/]+)@.*$/, "$1")))], [
    "yaml",
  ]);
  const [build] = stages();
  const copies = build!.instructions.filter((i) => i.keyword === "COPY").map((i) => i.args);
  assert.ok(copies.includes("tests/deno.json tests/deno.json"), "the workspace member is copied");
});
