/**
 * Timeouts hold against process trees: a stand-in `conntrack` whose work
 * hangs in a grandchild (a background `sleep` that keeps the pipes open)
 * is killed with its whole process group by denoRunner, and each user of it
 * (the start-up check, the CLI source, the CLI deleter) returns within its
 * limit and leaves no process behind. The JSDoc examples of the files in
 * ISOLATED_EXAMPLES run here too.
 *
 * This file runs in a `deno test` process of its own (deno.json, test:unit;
 * only tests/serve/process_metrics_test.ts runs there too, one file at a time):
 * its helpers leave marked orphans, which the reaper of any test file running
 * beside it in one process (`--parallel`) would count and kill; see
 * ISOLATED_EXAMPLES for the examples.
 */
import assert from "node:assert/strict";
import { ConntrackCliDeleter } from "../../lib/deleters/conntrack_cli.ts";
import { denoRunner } from "../../lib/os/process.ts";
import { CHECK_TIMEOUT_MS, checkConntrack } from "../../lib/run/checks.ts";
import { ConntrackCliSource } from "../../lib/sources/conntrack_cli.ts";
import { examplesOf, ISOLATED_EXAMPLES, runExample } from "../support/doc_results.ts";
import { sampleTuple } from "../support/sample_tuple.ts";

let serial = 0;

/** A stand-in conntrack that starts `sleep <marker>` and waits for it; the marker finds orphans. */
async function hangingConntrack(style: "background" | "subshell" | "setsid") {
  const dir = await Deno.makeTempDir({ prefix: "hang-" });
  const marker = `${900 + (Deno.pid % 1000)}.${++serial}${Date.now() % 100000}`;
  const bin = `${dir}/conntrack`;
  const body = style === "background"
    // The script is killed at the timeout; the sleep keeps stdout and stderr open.
    ? `sleep ${marker} &\nwait\n`
    // A child shell (not exec'd) whose own child hangs.
    : style === "subshell"
    ? `sh -c 'sleep ${marker}; echo done'\n`
    // A grandchild that leaves the process group: a session of its own.
    : `setsid sh -c 'sleep ${marker}; echo done' &\nwait\n`;
  await Deno.writeTextFile(bin, `#!/bin/sh\n${body}`);
  await Deno.chmod(bin, 0o755);
  return {
    bin,
    marker,
    async orphans(): Promise<string[]> {
      await new Promise((r) => setTimeout(r, 100));
      const out = await new Deno.Command("pgrep", { args: ["-af", `sleep ${marker}`] }).output();
      return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean);
    },
    async cleanup() {
      // Only if a test failed: the sleeps this test started, by their pid.
      const out = await new Deno.Command("pgrep", { args: ["-f", `sleep ${marker}`] }).output();
      for (const pid of new TextDecoder().decode(out.stdout).split("\n").filter(Boolean)) {
        try {
          Deno.kill(Number(pid), "SIGKILL");
        } catch { /* gone */ }
      }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

for (const style of ["background", "subshell", "setsid"] as const) {
  Deno.test(`denoRunner kills the whole process group at the timeout (${style} grandchild)`, async () => {
    const fake = await hangingConntrack(style);
    try {
      const t0 = performance.now();
      const r = await denoRunner.run(fake.bin, ["-L"], { timeoutMs: 300 });
      const ms = performance.now() - t0;
      assert.ok(r.timedOut, "timed out");
      assert.ok(ms < 1500, `returned after ${Math.round(ms)} ms (limit 300 ms + pipe grace)`);
      assert.deepEqual(await fake.orphans(), [], "no process left");
    } finally {
      await fake.cleanup();
    }
  });
}

Deno.test("denoRunner kills the group when aborted, and what a finished program left behind", async () => {
  const fake = await hangingConntrack("background");
  try {
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 200);
    const t0 = performance.now();
    const r = await denoRunner.run(fake.bin, [], { timeoutMs: 60_000, signal: stop.signal });
    assert.ok(performance.now() - t0 < 1500, "returned soon after the abort");
    assert.notEqual(r.code, 0);
    assert.deepEqual(await fake.orphans(), []);
    // A program that exits at once but leaves a background child holding the pipes.
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/p`, `#!/bin/sh\nsleep ${fake.marker} &\necho out\nexit 0\n`);
      await Deno.chmod(`${dir}/p`, 0o755);
      const t1 = performance.now();
      const q = await denoRunner.run(`${dir}/p`, [], { timeoutMs: 60_000 });
      assert.ok(performance.now() - t1 < 1500, "returned when the program exited");
      assert.deepEqual([q.code, q.stdout, q.timedOut], [0, "out\n", false]);
      assert.deepEqual(await fake.orphans(), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  } finally {
    await fake.cleanup();
  }
});

// The real limit is CHECK_TIMEOUT_MS (5 s, asserted in setup_test.ts with a fake runner); the
// same path with a 300 ms limit keeps this test short.
Deno.test("checkConntrack: a --version that hangs in a grandchild ends at its limit, says it timed out, leaves no orphan", async () => {
  const fake = await hangingConntrack("background");
  try {
    const limitMs = 300;
    assert.ok(limitMs < CHECK_TIMEOUT_MS);
    const t0 = performance.now();
    await assert.rejects(
      checkConntrack(fake.bin, denoRunner, limitMs),
      /did not answer --version within 0\.3 s/,
    );
    const ms = performance.now() - t0;
    assert.ok(ms >= limitMs - 5, `took ${Math.round(ms)} ms: before its limit`);
    assert.ok(ms < limitMs + 1000, `took ${Math.round(ms)} ms`);
    assert.deepEqual(await fake.orphans(), []);
  } finally {
    await fake.cleanup();
  }
});

Deno.test("ConntrackCliSource: a listing that hangs in a grandchild fails the snapshot at its limit, leaves no orphan", async () => {
  const fake = await hangingConntrack("background");
  try {
    const t0 = performance.now();
    await assert.rejects(
      new ConntrackCliSource({ bin: fake.bin, timeoutMs: 400 }).snapshot(),
      /-L did not finish in 400 ms and was killed/,
    );
    const ms = performance.now() - t0;
    assert.ok(ms < 1400, `took ${Math.round(ms)} ms`);
    assert.deepEqual(await fake.orphans(), []);
  } finally {
    await fake.cleanup();
  }
});

Deno.test("ConntrackCliDeleter: a delete that hangs in a grandchild fails at its limit, leaves no orphan", async () => {
  const fake = await hangingConntrack("subshell");
  try {
    const d = new ConntrackCliDeleter({
      bin: fake.bin,
      baseTimeoutMs: 300,
      perTupleTimeoutMs: 100,
    });
    const t0 = performance.now();
    const [o] = await d.delete([sampleTuple()]);
    const ms = performance.now() - t0;
    assert.ok(o);
    assert.equal(o.result, "failed");
    assert.match(o.error ?? "", /did not finish in time and was killed/);
    assert.ok(ms < 1400, `took ${Math.round(ms)} ms (limit 400 ms)`);
    assert.deepEqual(await fake.orphans(), []);
  } finally {
    await fake.cleanup();
  }
});

Deno.test("denoRunner kills what a finished program left in a session of its own (setsid)", async () => {
  const fake = await hangingConntrack("background");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/p`,
      `#!/bin/sh\nsetsid sh -c 'sleep ${fake.marker}' >/dev/null 2>&1 &\nsleep 0.3\necho out\nexit 0\n`,
    );
    await Deno.chmod(`${dir}/p`, 0o755);
    for (let i = 0; i < 3; i++) {
      const q = await denoRunner.run(`${dir}/p`, [], { timeoutMs: 60_000 });
      assert.deepEqual([q.code, q.stdout], [0, "out\n"]);
      assert.deepEqual(await fake.orphans(), [], `no orphan after run ${i + 1}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
    await fake.cleanup();
  }
});

Deno.test("denoRunner's reaper leaves alone what other code of the process started, and orphans without its mark", async () => {
  const theirs = await hangingConntrack("background");
  const helpers = await hangingConntrack("background");
  const dir = await Deno.makeTempDir();
  const other = new Deno.Command("sleep", { args: [theirs.marker], stdout: "null", stderr: "null" })
    .spawn();
  try {
    // Another part of the process leaves an orphan of its own (reparented here, unmarked).
    await new Deno.Command("sh", {
      args: ["-c", `setsid sleep ${theirs.marker} >/dev/null 2>&1 &`],
    }).output();
    await Deno.writeTextFile(
      `${dir}/p`,
      `#!/bin/sh\nsetsid sh -c 'sleep ${helpers.marker}' >/dev/null 2>&1 &\nsleep 0.3\necho out\nexit 0\n`,
    );
    await Deno.chmod(`${dir}/p`, 0o755);
    const q = await denoRunner.run(`${dir}/p`, [], { timeoutMs: 60_000 });
    assert.deepEqual([q.code, q.stdout], [0, "out\n"]);
    assert.deepEqual(await helpers.orphans(), [], "the helper's setsid orphan is killed");
    assert.equal((await theirs.orphans()).length, 2, "the other child and its orphan live on");
  } finally {
    other.kill("SIGKILL");
    await other.status;
    await Deno.remove(dir, { recursive: true });
    await theirs.cleanup();
    await helpers.cleanup();
  }
});

for (const file of ISOLATED_EXAMPLES) {
  const examples = await examplesOf(new URL("../../", import.meta.url), file);
  Deno.test(`the examples of ${file} run and their // => results hold`, async () => {
    assert.ok(examples.length > 0, `${file} has no example`);
    for (const r of examples) await runExample(r);
  });
}
