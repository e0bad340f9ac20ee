/**
 * setUp and main.ts's capability check on the real kernel, as root, each in a
 * namespace of its own (kernel stage: `deno task test:kernel`).
 */
import assert from "node:assert/strict";
import { kernelTest, machineTest } from "../support/machine.ts";
import { type Netns, withNetns } from "../../testbed/netns.ts";

const table = new URL("../fixtures/procfs_plain.txt", import.meta.url).pathname;

/** `setUp(loadConfig([]))` run inside `ns` (under `prefix`), as the agent would start. */
async function setUpInside(
  ns: Netns,
  prefix: string[],
  args: string[] = [],
): Promise<Record<string, string | undefined>> {
  const url = (p: string) => new URL(p, import.meta.url).href;
  const code = `
    import { loadConfig } from ${JSON.stringify(url("../../lib/run/config.ts"))};
    import { setUp } from ${JSON.stringify(url("../../lib/run/setup.ts"))};
    const r = loadConfig(${JSON.stringify(args)}, () => undefined);
    if (r.kind !== "run") throw new Error(r.kind);
    let p;
    try {
      p = await setUp(r.settings);
    } catch (e) {
      console.log(JSON.stringify({ error: String(e) }));
      Deno.exit(0);
    }
    console.log(JSON.stringify({ source: p.source.name, sourceReason: p.sourceReason,
      deleter: p.deleter.name, deleterReason: p.deleterReason }));
    p.source.close?.();
    p.deleter.close?.();`;
  const r = await ns.exec([...prefix, Deno.execPath(), "eval", code]);
  if (r.code !== 0) throw new Error(`setUp in ${ns.name} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

kernelTest(
  "setUp auto on the real kernel uses events as root (netlink where the namespace turned events off); without CAP_NET_ADMIN it refuses, and a dry run falls back to procfs and the conntrack CLI with EPERM",
  () =>
    withNetns("setup-eperm", async (ns) => {
      const root = await setUpInside(ns, []);
      assert.equal(root.source, "events");
      assert.equal(root.sourceReason, "auto: conntrack events and a ctnetlink dump work");
      assert.equal(root.deleter, "netlink");
      await ns.sysctl("net.netfilter.nf_conntrack_events", "0");
      const off = await setUpInside(ns, []);
      assert.equal(off.source, "netlink", JSON.stringify(off));
      assert.match(
        off.sourceReason ?? "",
        /^auto: events: conntrack events are off.*; a ctnetlink dump works$/,
      );
      await ns.sysctl("net.netfilter.nf_conntrack_events", "2");
      const drop = ["setpriv", "--bounding-set=-net_admin"];
      const refused = await setUpInside(ns, drop);
      assert.match(String(refused.error), /CAP_NET_ADMIN/, JSON.stringify(refused));
      const dropped = await setUpInside(ns, drop, ["--dry-run"]);
      assert.equal(dropped.source, "procfs", JSON.stringify(dropped));
      assert.match(
        dropped.sourceReason ?? "",
        /^auto: netlink: .*EPERM.*; \/proc\/net\/nf_conntrack is readable$/,
      );
      assert.equal(dropped.deleter, "conntrack");
      assert.match(
        dropped.deleterReason ?? "",
        /^auto: netlink: .*EPERM.*; using the conntrack CLI$/,
      );
    }),
  { needs: ["setpriv"] },
);

machineTest(
  "main.ts under capsh --drop=cap_net_admin exits 1 saying CAP_NET_ADMIN is missing; --dry-run runs",
  async () => {
    const main = new URL("../../main.ts", import.meta.url).pathname;
    const run = (extra: string[]) =>
      new Deno.Command("capsh", {
        args: [
          "--drop=cap_net_admin",
          "--",
          "-c",
          'exec "$0" "$@"',
          Deno.execPath(),
          "run",
          "-A",
          main,
          "--source=procfs",
          `--proc-file=${table}`,
          "--conntrack-bin=/bin/true",
          "--listen=off",
          ...extra,
        ],
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      });
    const refused = await run([]).output();
    const out = new TextDecoder().decode(refused.stdout);
    assert.equal(refused.code, 1, out);
    assert.match(
      out,
      /deleting conntrack entries needs CAP_NET_ADMIN, which this process does not have/,
    );
    assert.ok(!out.includes("conntrack-cleaner starting"), "it never started");
    // A dry run deletes nothing: it starts and polls.
    const dry = run(["--dry-run", "--interval=100ms"]).spawn();
    try {
      const reader = dry.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      while (!seen.includes("conntrack-cleaner starting")) {
        const { done, value } = await reader.read();
        assert.ok(!done, seen);
        seen += value;
      }
      await reader.cancel();
    } finally {
      dry.kill("SIGTERM");
      await dry.status;
      await dry.stderr.cancel();
    }
  },
  { needs: ["capsh"], skip: Deno.uid() === 0 ? undefined : "needs root (to drop CAP_NET_ADMIN)" },
);
