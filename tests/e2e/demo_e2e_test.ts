import assert from "node:assert/strict";
import { kernelTest } from "../support/machine.ts";

const DEMO = new URL("../../scripts/demo.ts", import.meta.url).pathname;

async function namespaces(): Promise<string[]> {
  const out = await new Deno.Command("ip", { args: ["netns", "list"] }).output();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0] ?? "").filter(
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

/** The namespaces a demo process made (they are named cct-demo-…-PID-N). */
async function demoNamespaces(pid: number): Promise<string[]> {
  const mine = new RegExp(`^cct-demo-[a-z0-9-]*-${pid}-\\d+$`);
  return (await namespaces()).filter((n) => mine.test(n));
}

kernelTest("deno task demo shows the story, exits 0 and leaves no namespace behind", async () => {
  const t0 = performance.now();
  const child = startDemo();
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  assert.ok(performance.now() - t0 < 60_000);
  // Part 1, real clients: stuck without the agent, connected with it within 7 s.
  const m = text.match(
    /client from port 40000, first SYN at 0 s\s+not connected after 10\.\d s\s+connected after (\d+\.\d) s/,
  );
  assert.ok(m, text);
  assert.ok(Number(m[1]) <= 7, `connected after ${m[1]} s`);
  assert.match(text, /client at 3 s\s+connected after 0\.\d s\s+connected after 0\.\d s/);
  assert.match(text, /client stuck on 198\.19\.0\.10:8443 \(no rule\)\s+1\s+1\s+1\s+ok/);
  assert.match(text, /client stuck on 198\.19\.0\.11:80 \(no rule\)\s+1\s+1\s+1\s+ok/);
  assert.match(text, /agent\(B\) \| .*msg="deleted stale entry" .*sport=40000 .*rule=unnated/);
  assert.equal(text.match(/agent\(B\) \| .*deleted stale entry/g)?.length, 1, "one deletion");
  assert.match(text, /Part 1 held/);
  // Part 2, older kernels: emulated renewals.
  assert.match(text, /stuck clients \(SYN_SENT, retried every second\)\s+4\s+0\s+0\s+ok/);
  assert.match(text, /healthy connection, same two hosts\s+1\s+1\s+1\s+ok/);
  assert.equal(
    text.match(/background \(ESTABLISHED, TIME_WAIT, UDP\)\s+1500\s+1500\s+1500\s+ok/g)?.length,
    2,
    "the background stays in both parts",
  );
  assert.equal(
    text.match(/agent \| .*msg="deleted stale entry" .*rule=renewals/g)?.length,
    4,
    "the four renewed entries, by the renewal rule",
  );
  assert.match(text, /Part 2 held/);
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
  assert.ok((await demoNamespaces(child.pid)).length > 0, "the demo made its namespaces");
  await new Promise((r) => setTimeout(r, 2500));
  child.kill("SIGINT");
  const { code, stdout } = await out;
  assert.notEqual(code, 0);
  assert.match(new TextDecoder().decode(stdout), /Interrupted; removing the namespace/);
  assert.deepEqual(await demoNamespaces(child.pid), []);
});
