import assert from "node:assert/strict";
import { kernelTest } from "./support/kernel_test.ts";

const DEMO = new URL("../scripts/demo.ts", import.meta.url).pathname;

async function namespaces(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"] }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0]).filter(
    Boolean,
  );
}

function startDemo() {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", DEMO],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** The namespaces a demo process made (they are named cct-demo-PID-N). */
async function demoNamespaces(pid: number): Promise<string[]> {
  return (await namespaces()).filter((n) => n.startsWith(`cct-demo-${pid}-`));
}

kernelTest("deno task demo shows the story, exits 0 and leaves no namespace behind", async () => {
  const t0 = performance.now();
  const child = startDemo();
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  assert.ok(performance.now() - t0 < 60_000);
  assert.match(text, /stuck clients \(SYN_SENT, retried every second\)\s+4\s+0\s+0\s+ok/);
  assert.match(text, /healthy connection, same two hosts\s+1\s+1\s+1\s+ok/);
  assert.match(text, /background \(ESTABLISHED, TIME_WAIT, UDP\)\s+1500\s+1500\s+1500\s+ok/);
  assert.match(text, /agent \| .*deleted stale entry/);
  assert.match(text, /The story held/);
  assert.deepEqual(await demoNamespaces(child.pid), []);
});

kernelTest("deno task demo removes its namespace when interrupted with Ctrl-C", async () => {
  const child = startDemo();
  const out = child.output();
  // interrupt once the namespace exists and the agent runs
  for (let i = 0; i < 100 && (await demoNamespaces(child.pid)).length === 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal((await demoNamespaces(child.pid)).length, 1, "the demo made its namespace");
  await new Promise((r) => setTimeout(r, 2500));
  child.kill("SIGINT");
  const { code, stdout } = await out;
  assert.notEqual(code, 0);
  assert.match(new TextDecoder().decode(stdout), /Interrupted; removing the namespace/);
  assert.deepEqual(await demoNamespaces(child.pid), []);
});
