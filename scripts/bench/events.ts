/**
 * `deno task bench events` (also part of `deno task bench`): the agent's CPU
 * per second and RSS with the events source next to the netlink dump source,
 * on tables of 10k, 100k and 1M entries (100 `SYN_SENT` candidates, the
 * rest `ESTABLISHED`), default settings but `--dry-run`.
 *
 * - events: `main.ts --source=events`, CPU measured for `--seconds` (default
 *   60) after a 10 s warm-up (which holds the start-up dump);
 * - its safety-net dump, measured apart (CPU of one filtered dump of that
 *   table, median of 3) and amortized over `--resync-interval` (default 5m);
 * - netlink: `main.ts --source=netlink`, CPU for `--dump-seconds` (default 20).
 *
 * A 1M-entry table needs `net.netfilter.nf_conntrack_max` above it: a global
 * sysctl, raised for the run and restored after. Prints the load average
 * (the machine is shared). Needs root, iproute2 and conntrack.
 *
 *     deno run -A scripts/bench/events.ts [--sizes=10000,100000,1000000]
 *                                          [--seconds=60] [--dump-seconds=20]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { NetlinkSource } from "../../lib/sources/netlink.ts";
import { canRunKernelTests, type EntrySpec, type Netns, withNetns } from "../../testbed/netns.ts";
import { loadavg, median, rssMB, sysctl } from "./measure.ts";

const SELF = new URL(import.meta.url).pathname;
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const V8_FLAGS = ["--v8-flags=--max-semi-space-size=1,--max-old-space-size=64"];
const CANDIDATES = 100;
const RESYNC_S = 300;

/** utime + stime of `pid` in seconds (USER_HZ 100). */
async function cpuSeconds(pid: number | "self"): Promise<number> {
  const stat = (await Deno.readTextFile(`/proc/${pid}/stat`)).split(") ")[1]!.split(" ");
  return (Number(stat[11]) + Number(stat[12])) / 100;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Child, inside the namespace: CPU seconds of one filtered dump (the resync's), median of 3. */
async function childDump(): Promise<void> {
  const source = new NetlinkSource();
  const cpu: number[] = [], ms: number[] = [];
  let candidates = 0;
  for (let i = 0; i < 3; i++) {
    const c0 = await cpuSeconds("self"), t0 = performance.now();
    candidates = (await source.snapshot()).candidates.length;
    ms.push(performance.now() - t0);
    cpu.push(await cpuSeconds("self") - c0);
  }
  source.close();
  console.log(JSON.stringify({ cpu: median(cpu), ms: median(ms), candidates }));
}

/** The agent (dry run) in `ns` with `args`: CPU per second after `warmUpMs`, settled and peak RSS. */
async function footprint(ns: Netns, args: string[], warmUpMs: number, ms: number) {
  const child = ns.spawn(
    [
      Deno.execPath(),
      "run",
      "-A",
      ...V8_FLAGS,
      MAIN,
      "--dry-run",
      "--listen=127.0.0.1:10395",
      ...args,
    ],
    { stdout: "null", stderr: "null" },
  );
  try {
    await sleep(warmUpMs);
    const rss: number[] = [];
    const c0 = await cpuSeconds(child.pid), t0 = performance.now();
    while (performance.now() - t0 < ms) {
      await sleep(1000);
      rss.push(await rssMB(child.pid));
    }
    const cpu = (await cpuSeconds(child.pid) - c0) / ((performance.now() - t0) / 1000);
    const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
    const peak = Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
    // What the agent tracks: every candidate, or the figures mean nothing.
    const m = await ns.exec([
      Deno.execPath(),
      "eval",
      "console.log(await (await fetch('http://127.0.0.1:10395/metrics')).text())",
    ]);
    const tracked = Number(/^conntrack_cleaner_candidates (\d+)$/m.exec(m.stdout)?.[1]);
    if (tracked !== CANDIDATES) throw new Error(`${args.join(" ")}: tracks ${tracked} candidates`);
    return { cpu, rss: median(rss), peak };
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

function specs(n: number): EntrySpec[] {
  const every = Math.floor(n / CANDIDATES);
  const out: EntrySpec[] = [];
  for (let i = 0; i < n; i++) {
    const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const base = { src, dst: "10.255.0.1", sport: 1024 + (i % 60000), dport: 443, timeout: 3600 };
    out.push(i % every === 0 ? { ...base, state: "SYN_SENT" } : { ...base, state: "ESTABLISHED" });
  }
  return out;
}

const fmt = (x: number, d = 3) => x.toFixed(d);

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      sizes: { type: "string", default: "10000,100000,1000000" },
      seconds: { type: "string", default: "60" },
      "dump-seconds": { type: "string", default: "20" },
      "child-dump": { type: "boolean" },
    },
  });
  if (values["child-dump"]) return await childDump();
  const skip = await canRunKernelTests();
  if (skip !== undefined) {
    console.log(`\n## Events source vs netlink dumps: skipped (${skip})`);
    return;
  }
  const sizes = values.sizes.split(",").map(Number);
  const seconds = Number(values.seconds), dumpSeconds = Number(values["dump-seconds"]);
  console.log(
    `\n## Events source vs netlink dumps: main.ts --dry-run, default settings, ${CANDIDATES} ` +
      `SYN_SENT candidates, the rest ESTABLISHED (${new Date().toISOString().slice(0, 10)}, ` +
      `load average before: ${await loadavg()})\n`,
  );
  console.log(
    "| entries | events CPU/s | resync dump CPU s | amortized /300 s | events total CPU/s | events RSS MB (peak) | netlink CPU/s | netlink RSS MB (peak) |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  const saved = await sysctl("net.netfilter.nf_conntrack_max");
  const totals = new Map<number, number>();
  try {
    const need = Math.max(...sizes) + 10_000;
    if (Number(saved) < need) await sysctl("net.netfilter.nf_conntrack_max", String(need));
    for (const n of sizes) {
      await withNetns("bench-ev", async (ns) => {
        const all = specs(n);
        for (let i = 0; i < all.length; i += 100_000) {
          await ns.insertMany(all.slice(i, i + 100_000));
        }
        const count = await ns.count();
        if (count < n) throw new Error(`table holds ${count} entries, wanted ${n}`);
        const events = await footprint(ns, ["--source=events"], 10_000, seconds * 1000);
        const r = await ns.exec([Deno.execPath(), "run", "-A", SELF, "--child-dump"]);
        if (r.code !== 0) throw new Error(`dump child: ${r.stderr}`);
        const dump = JSON.parse(r.stdout) as { cpu: number; ms: number; candidates: number };
        const netlink = await footprint(ns, ["--source=netlink"], 5_000, dumpSeconds * 1000);
        const amortized = dump.cpu / RESYNC_S;
        totals.set(n, events.cpu + amortized);
        console.log(
          `| ${n.toLocaleString("en")} | ${fmt(events.cpu)} | ${fmt(dump.cpu, 2)} (${
            fmt(dump.ms, 0)
          } ms) | ${fmt(amortized, 4)} | ${fmt(events.cpu + amortized)} | ${fmt(events.rss, 1)} (${
            fmt(events.peak, 1)
          }) | ${fmt(netlink.cpu)} | ${fmt(netlink.rss, 1)} (${fmt(netlink.peak, 1)}) |`,
        );
      });
    }
  } finally {
    if ((await sysctl("net.netfilter.nf_conntrack_max")) !== saved) {
      await sysctl("net.netfilter.nf_conntrack_max", saved);
    }
  }
  const lo = totals.get(Math.min(...sizes)), hi = totals.get(Math.max(...sizes));
  if (lo !== undefined && hi !== undefined) {
    console.log(
      `\nevents, largest vs smallest table: ${fmt(hi / lo, 2)}× (target ≤ 2×: ${
        hi <= 2 * lo ? "met" : "NOT met"
      }); load average after: ${await loadavg()}`,
    );
  }
}

if (import.meta.main) await main();
