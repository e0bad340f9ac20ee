/**
 * .github/workflows: actionlint finds nothing (and does find a planted
 * error), CI runs the README's test command as root the way .ci/run does,
 * and a version tag builds what deno.json's compile task builds, for two
 * architectures, with sums, a multi-arch image with provenance and an SBOM,
 * and a release whose notes come from CHANGELOG.md.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";

const ROOT = new URL("../../", import.meta.url);
const LINT = new URL("scripts/lint_workflows.ts", ROOT).pathname;

interface Step {
  name?: string;
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Job {
  needs?: string | string[];
  permissions?: Record<string, string> | string;
  "timeout-minutes"?: number;
  steps: Step[];
}
interface Workflow {
  on: Record<string, unknown>;
  permissions?: Record<string, string> | string;
  jobs: Record<string, Job>;
}

const load = (name: string): Workflow =>
  parse(Deno.readTextFileSync(new URL(`.github/workflows/${name}`, ROOT))) as Workflow;
const steps = (w: Workflow) => Object.values(w.jobs).flatMap((j) => j.steps);
const runs = (w: Workflow) => steps(w).map((s) => s.run ?? "").join("\n");

async function lint(dir: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", LINT, dir],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

Deno.test("lint_workflows.ts: actionlint passes the workflows, and fails a planted error in one", async () => {
  const ok = await lint(new URL(".github/workflows", ROOT).pathname);
  assert.equal(ok.code, 0, ok.text);
  assert.match(ok.text, /2 workflow\(s\), 0 finding\(s\)/);

  const dir = await Deno.makeTempDir();
  try {
    const release = Deno.readTextFileSync(new URL(".github/workflows/release.yml", ROOT));
    const planted = release.replace("provenance: mode=max", "provenence: mode=max")
      .replace("needs: [notes, binaries, image]", "needs: [notes, binaries, images]");
    assert.notEqual(planted, release);
    await Deno.writeTextFile(`${dir}/release.yml`, planted);
    const bad = await lint(dir);
    assert.equal(bad.code, 1, bad.text);
    assert.match(
      bad.text,
      /input "provenence" is not defined in action "docker\/build-push-action/,
    );
    assert.match(bad.text, /needs job "images" which does not exist/);
    await Deno.remove(`${dir}/release.yml`);
    const none = await lint(dir);
    assert.equal(none.code, 1, "an empty folder is a failure, not a pass");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("workflows: every action is pinned to a version, and permissions start read-only", () => {
  for (const name of ["ci.yml", "release.yml"]) {
    const w = load(name);
    assert.deepEqual(w.permissions, { contents: "read" }, `${name}: top-level permissions`);
    for (const s of steps(w)) {
      if (s.uses === undefined) continue;
      assert.match(
        s.uses,
        /^[\w.-]+\/[\w.-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$/,
        `${name}: ${s.uses}`,
      );
    }
    for (const [id, job] of Object.entries(w.jobs)) {
      assert.ok((job["timeout-minutes"] ?? 0) > 0, `${name}: job ${id} has a timeout`);
      assert.notEqual(job.permissions, "write-all", `${name}: job ${id}`);
    }
  }
});

Deno.test("ci.yml runs .ci/run as root on push and pull request, and .ci/run runs the mutants too", () => {
  const w = load("ci.yml");
  assert.ok("push" in w.on && "pull_request" in w.on);
  assert.match(runs(w), /^sudo bash \.ci\/run$/m);
  const ci = Deno.readTextFileSync(new URL(".ci/run", ROOT));
  assert.match(ci, /^deno task test 2>&1/m);
  assert.match(ci, /^deno task test:mutants$/m);
});

Deno.test("release.yml compiles as deno.json's compile task does, for x86_64 and aarch64 Linux, with SHA-256 sums", () => {
  const w = load("release.yml");
  assert.deepEqual(w.on, { push: { tags: ["v*"] } });
  const task: string = JSON.parse(Deno.readTextFileSync(new URL("deno.json", ROOT))).tasks.compile;
  const v8 = /--v8-flags=(\S+)/.exec(task)?.[1];
  assert.ok(v8, `deno.json's compile task embeds V8 flags: ${task}`);
  const job = w.jobs.binaries!;
  const text = job.steps.map((s) => s.run ?? "").join("\n");
  const check = job.steps.findIndex((s) => /^deno check main\.ts$/m.test(s.run ?? ""));
  const compile = job.steps.findIndex((s) => /deno compile/.test(s.run ?? ""));
  assert.ok(check >= 0 && check < compile, "type checked (default heap) before compiling");
  const cmd = job.steps[compile]!.run!.replace(/\\\n\s*/g, "");
  assert.match(cmd, /--no-check/);
  assert.ok(cmd.includes(`--v8-flags=${v8}`), `the runtime V8 flags ${v8}: ${cmd}`);
  for (const flag of task.split(/\s+/).filter((t) => t === "--exclude-unused-npm" || t === "-A")) {
    assert.ok(cmd.split(/\s+/).includes(flag), `${flag} as in the task`);
  }
  assert.match(cmd, /for target in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu;/);
  assert.match(cmd, /--target "\$target"/);
  assert.match(text, /sha256sum conntrack-cleaner-\* \| tee SHA256SUMS/);
});

Deno.test("release.yml pushes a multi-arch image with provenance and an SBOM, and publishes CHANGELOG.md's notes", () => {
  const w = load("release.yml");
  const build = steps(w).find((s) => s.uses?.startsWith("docker/build-push-action@"));
  assert.ok(build?.with);
  assert.equal(build.with.platforms, "linux/amd64,linux/arm64");
  assert.equal(build.with.provenance, "mode=max");
  assert.equal(build.with.sbom, true);
  assert.equal(build.with.push, true);
  assert.ok(
    steps(w).some((s) => s.uses?.startsWith("docker/setup-qemu-action@")),
    "QEMU for arm64",
  );
  const login = steps(w).find((s) => s.uses?.startsWith("docker/login-action@"));
  assert.equal(login?.with?.registry, "ghcr.io");
  assert.deepEqual(w.jobs.image!.permissions, { contents: "read", packages: "write" });
  assert.deepEqual(w.jobs.release!.permissions, { contents: "write" });
  assert.deepEqual(w.jobs.release!.needs, ["notes", "binaries", "image"]);
  // The notes come first: a tag without a CHANGELOG.md section builds nothing.
  assert.equal(w.jobs.binaries!.needs, "notes");
  assert.equal(w.jobs.image!.needs, "notes");
  assert.match(runs(w), /scripts\/release_notes\.ts "\$GITHUB_REF_NAME" > release-notes\.md/);
  assert.match(runs(w), /--notes-file artifacts\/release-notes\/release-notes\.md/);
  assert.match(runs(w), /jq -r \.version deno\.json/);
});
