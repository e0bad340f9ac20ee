/**
 * `deno task bench`: the figures behind the defaults, printed in one run.
 *
 * 1. Parser: generated 1M-line tables (1% and 100% candidates) streamed
 *    through the procfs source: lines/s and the process's peak RSS.
 * 2. Snapshot, in a namespace filled with 100k entries (1% candidates): each
 *    source next to `cat /proc/net/nf_conntrack` and next to the old agent's
 *    `conntrack -L -p tcp | grep UNREPLIED`, as ratios.
 * 3. Deletes on that 100k-entry table: 1,000 stale tuples by netlink, and by
 *    the conntrack CLI per tuple and batched with `-R` (measured on a sample
 *    and extrapolated, unless `--full`: 1,000 CLI deletes take minutes).
 * 4. The agent's footprint (`deno task start`'s V8 flags, RSS sampled each
 *    second): idle on a small table, on a 100k-entry table, in a flood.
 * 5. A scrape storm: detection time of renewed entries while `ab -n 20000
 *    -c 50` hammers /metrics, next to the same without it.
 * 6. With `--soak`: the churn soak (50k background entries, 200 new renewed
 *    SYN_SENT entries a second) for `--soak-seconds` (default 180): the RSS
 *    plateau.
 *
 * Needs root, iproute2 and conntrack for parts 2 to 6 (else they are
 * skipped with the reason), and ab (apache2-utils) for part 5. Targets are
 * checked by the printed figures and ratios.
 *
 *     deno task bench [--full] [--soak] [--soak-seconds=180] [--entries=100000]
 *                     [--lines=1000000] [--only=parser|snapshot|deletes|memory|storm|soak]
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Tuple } from "../../lib/model/tuple.ts";
import { ConntrackCliDeleter } from "../../lib/deleters/conntrack_cli.ts";
import type { Deleter } from "../../lib/deleters/deleter.ts";
import { NetlinkDeleter } from "../../lib/deleters/netlink.ts";
import { ConntrackCliSource } from "../../lib/sources/conntrack_cli.ts";
import { NetlinkSource } from "../../lib/sources/netlink.ts";
import { ProcfsSource } from "../../lib/sources/procfs.ts";
import type { Source } from "../../lib/sources/source.ts";
import {
  canRunKernelTests,
  type EntrySpec,
  type Netns,
  startRenewer,
  withNetns,
} from "../../testbed/netns.ts";
import { median, rssMB } from "./measure.ts";

const SELF = new URL(import.meta.url).pathname;
const RUNS = 15;

// ---------------------------------------------------------------- table text

/** One kernel-format line: candidate (SYN_SENT [UNREPLIED]) or one of the usual others. */
function line(i: number, candidate: boolean): string {
  const v6 = i % 10 === 9;
  const a = (n: number) =>
    v6
      ? `2001:0db8:0000:0000:0000:0000:${((n >> 16) & 0xffff).toString(16).padStart(4, "0")}:${
        (n & 0xffff).toString(16).padStart(4, "0")
      }`
      : `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  const head = v6 ? "ipv6     10 " : "ipv4     2 ";
  const src = a(i), dst = a(0x7f0001), sp = 1024 + (i % 60000), dp = 443;
  const tuple = (s: string, d: string, p: number, q: number) =>
    `src=${s} dst=${d} sport=${p} dport=${q} `;
  if (candidate) {
    return `${head}tcp      6 117 SYN_SENT ${tuple(src, dst, sp, dp)}[UNREPLIED] ${
      tuple(dst, src, dp, sp)
    }mark=0 zone=0 use=2`;
  }
  const k = i % 100;
  if (k < 56) {
    return `${head}tcp      6 431999 ESTABLISHED ${tuple(src, dst, sp, dp)}${
      tuple(dst, src, dp, sp)
    }[ASSURED] mark=0 zone=0 use=2`;
  }
  if (k < 76) {
    return `${head}tcp      6 98 TIME_WAIT ${tuple(src, dst, sp, dp)}${
      tuple(dst, src, dp, sp)
    }[ASSURED] mark=0 zone=0 use=2`;
  }
  return `${head}udp      17 27 ${tuple(src, dst, sp, 53)}${
    tuple(dst, src, 53, sp)
  }[ASSURED] mark=0 zone=0 use=2`;
}

async function writeTable(path: string, lines: number, candidateEvery: number): Promise<number> {
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  const enc = new TextEncoder();
  let buf: string[] = [], bytes = 0;
  for (let i = 0; i < lines; i++) {
    buf.push(line(i, i % candidateEvery === 0));
    if (buf.length === 10_000 || i === lines - 1) {
      const chunk = enc.encode(buf.join("\n") + "\n");
      bytes += chunk.length;
      for (let off = 0; off < chunk.length;) off += await f.write(chunk.subarray(off));
      buf = [];
    }
  }
  return bytes;
}

// ------------------------------------------------------------------ children

/** Child: stream a file through the procfs source; print lines/s and peak RSS. */
async function childParse(path: string, max: number): Promise<void> {
  const source = new ProcfsSource({ path, maxCandidates: max });
  let best = Infinity, scanned = 0, candidates = 0;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    const s = await source.snapshot();
    best = Math.min(best, performance.now() - t);
    scanned = s.scanned;
    candidates = s.candidates.length;
  }
  console.log(JSON.stringify({ ms: best, scanned, candidates, peakRssMB: await peakRssMB() }));
}

async function peakRssMB(): Promise<number> {
  const status = await Deno.readTextFile("/proc/self/status");
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** Child, inside the namespace: time every source and the reference commands. */
async function childSnapshot(): Promise<void> {
  const sources: [string, Source][] = [
    ["procfs", new ProcfsSource()],
    ["netlink", new NetlinkSource()],
    ["conntrack", new ConntrackCliSource()],
  ];
  const commands: [string, string][] = [
    ["cat", "cat /proc/net/nf_conntrack > /dev/null"],
    ["old agent pipeline", "conntrack -L -p tcp 2>/dev/null | grep UNREPLIED > /dev/null"],
  ];
  type Reader = [string, () => Promise<number | undefined>];
  const readers: Reader[] = [
    ...sources.map((
      [name, s],
    ): Reader => [name, async () => (await s.snapshot()).candidates.length]),
    ...commands.map(([name, cmd]): Reader => [name, async () => {
      await new Deno.Command("sh", { args: ["-c", cmd] }).output();
      return undefined;
    }]),
  ];
  // Rounds interleave the readers, so a slow moment of the machine hits all of them alike.
  const times = new Map<string, number[]>(readers.map(([n]) => [n, []]));
  const candidates = new Map<string, number | undefined>();
  for (let round = 0; round <= RUNS; round++) {
    for (const [name, read] of readers) {
      const t = performance.now();
      candidates.set(name, await read());
      if (round > 0) times.get(name)!.push(performance.now() - t); // round 0 warms up
    }
  }
  for (const [, s] of sources) s.close?.();
  const out = Object.fromEntries(
    readers.map(([n]) => [n, { ms: median(times.get(n)!), candidates: candidates.get(n) }]),
  );
  console.log(JSON.stringify(out));
}

/** Child, inside the namespace: delete the given tuples with one deleter; print the time. */
async function childDelete(via: string, file: string): Promise<void> {
  const tuples: Tuple[] = JSON.parse(await Deno.readTextFile(file));
  const deleter: Deleter = via === "netlink"
    ? new NetlinkDeleter()
    : new ConntrackCliDeleter({ mode: via === "cli-each" ? "each" : "batch", batchSize: 1000 });
  const t = performance.now();
  const out = await deleter.delete(tuples);
  const ms = performance.now() - t;
  deleter.close?.();
  const deleted = out.filter((o) => o.result === "deleted").length;
  console.log(
    JSON.stringify({
      ms,
      deleted,
      failed: out.filter((o) => o.result === "failed").map((o) => o.error),
    }),
  );
}

// ------------------------------------------------------------------- parent

async function child(args: string[], ns?: string): Promise<Record<string, unknown>> {
  const argv = [Deno.execPath(), "run", "-A", SELF, ...args];
  const cmd = ns
    ? new Deno.Command("ip", { args: ["netns", "exec", ns, ...argv] })
    : new Deno.Command(argv[0]!, { args: argv.slice(1) });
  const r = await cmd.output();
  const text = new TextDecoder().decode(r.stdout).trim();
  if (r.code !== 0) throw new Error(`${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`);
  return JSON.parse(text.split("\n").at(-1)!);
}

const fmt = (x: number, d = 1) => x.toFixed(d);
const row = (cells: (string | number)[], widths: number[]) =>
  console.log(
    cells.map((c, i) => String(c)[i === 0 ? "padEnd" : "padStart"](widths[i]!)).join("  "),
  );
const verdict = (ok: boolean) => (ok ? "meets target" : "MISSES target");

async function benchParser(lines: number): Promise<void> {
  console.log(
    `\n## Parser: ${
      lines.toLocaleString("en")
    } generated lines, streamed through the procfs source (best of 3)\n`,
  );
  const dir = await Deno.makeTempDir({ prefix: "cc-bench-" });
  try {
    const W = [44, 6, 7, 9, 10, 11];
    row(["table (--max-candidates)", "MB", "ms", "lines/s", "kept", "peak RSS MB"], W);
    const cases: [string, number, number][] = [
      ["1% candidates (default 20000)", 100, 20_000],
      ["100% candidates (default 20000)", 1, 20_000],
      ["100% candidates (no limit: 10000000)", 1, 10_000_000],
    ];
    const path = `${dir}/table.txt`;
    let written = 0, bytes = 0;
    for (const [label, every, max] of cases) {
      if (written !== every) bytes = await writeTable(path, lines, written = every);
      const r = await child(["--child-parse", path, String(max)]) as {
        ms: number;
        scanned: number;
        candidates: number;
        peakRssMB: number;
      };
      const rate = r.scanned / (r.ms / 1000);
      row([
        label,
        fmt(bytes / 1e6, 0),
        fmt(r.ms, 0),
        fmt(rate / 1e6, 2) + "M",
        r.candidates,
        fmt(r.peakRssMB),
      ], W);
      if (every === 100) {
        console.log(
          `  target ≥ 2M lines/s at 1%: ${verdict(rate >= 2e6)}; peak RSS ≤ 80 MB: ${
            verdict(r.peakRssMB <= 80)
          }`,
        );
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function tableSpecs(n: number): { specs: EntrySpec[]; stale: EntrySpec[] } {
  const specs: EntrySpec[] = [], stale: EntrySpec[] = [];
  for (let i = 0; i < n; i++) {
    const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const base = { src, dst: "10.255.0.1", sport: 1024 + (i % 60000), timeout: 300 };
    const k = i % 100;
    if (k === 0) {
      const s: EntrySpec = { ...base, dport: 443, state: "SYN_SENT", timeout: 120 };
      specs.push(s);
      stale.push(s);
    } else if (k < 56) specs.push({ ...base, dport: 443, state: "ESTABLISHED" });
    else if (k < 76) specs.push({ ...base, dport: 443, state: "TIME_WAIT", timeout: 100 });
    else specs.push({ ...base, proto: "udp", dport: 53, timeout: 30 });
  }
  return { specs, stale };
}

const toTuple = (s: EntrySpec): Tuple => ({
  family: "ipv4",
  src: s.src,
  dst: s.dst,
  sport: s.sport,
  dport: s.dport,
  zone: 0,
});

async function benchKernel(entries: number, full: boolean, only?: string): Promise<void> {
  const skip = await canRunKernelTests();
  if (skip !== undefined) {
    console.log(`\n## Snapshot and deletes: skipped (${skip})`);
    return;
  }
  await withNetns("bench", async (ns) => {
    const { specs, stale } = tableSpecs(entries);
    const t = performance.now();
    await ns.insertMany(specs);
    console.log(
      `\n(namespace filled with ${
        (await ns.count()).toLocaleString("en")
      } entries, ${stale.length} SYN_SENT/UNREPLIED, in ${fmt(performance.now() - t, 0)} ms)`,
    );

    if (only === undefined || only === "snapshot") await benchSnapshot(ns, entries);
    if (only === undefined || only === "deletes") await benchDeletes(ns, entries, stale, full);
  });
}

async function benchSnapshot(ns: Netns, entries: number): Promise<void> {
  console.log(
    `\n## Snapshot of a ${
      entries.toLocaleString("en")
    }-entry table, 1% candidates (median of ${RUNS})\n`,
  );
  const r = await child(["--child-snapshot"], ns.name) as Record<
    string,
    { ms: number; candidates?: number }
  >;
  const cat = r.cat!.ms, old = r["old agent pipeline"]!.ms;
  row(["reader", "ms", "× cat", "× old pipeline", "candidates"], [34, 7, 6, 14, 10]);
  for (const name of ["cat", "old agent pipeline", "procfs", "netlink", "conntrack"]) {
    const label = {
      cat: "cat /proc/net/nf_conntrack",
      "old agent pipeline": "conntrack -L -p tcp | grep UNREPLIED",
      procfs: "source procfs",
      netlink: "source netlink",
      conntrack: "source conntrack (-L -u UNREPLIED)",
    }[name]!;
    row([
      label,
      fmt(r[name]!.ms),
      fmt(r[name]!.ms / cat, 2),
      fmt(r[name]!.ms / old, 2),
      r[name]!.candidates ?? "",
    ], [34, 7, 6, 14, 10]);
  }
  console.log(
    `  target procfs ≤ 1.15 × cat: ${fmt(r.procfs!.ms / cat, 2)} ${
      verdict(r.procfs!.ms <= 1.15 * cat)
    }`,
  );
  console.log(
    `  target netlink ≤ 0.25 × procfs: ${fmt(r.netlink!.ms / r.procfs!.ms, 2)} ${
      verdict(r.netlink!.ms <= 0.25 * r.procfs!.ms)
    }`,
  );
  console.log(
    `  target netlink ≤ 0.2 × old pipeline: ${fmt(r.netlink!.ms / old, 2)} ${
      verdict(r.netlink!.ms <= 0.2 * old)
    }`,
  );
}

async function benchDeletes(
  ns: Netns,
  entries: number,
  stale: EntrySpec[],
  full: boolean,
): Promise<void> {
  console.log(
    `\n## Deleting ${stale.length} stale tuples from the ${
      entries.toLocaleString("en")
    }-entry table\n`,
  );
  const sample = full ? stale.length : 20;
  const file = await Deno.makeTempFile({ suffix: ".json" });
  try {
    row(["deleter", "tuples", "ms", "ms/tuple", `ms for ${stale.length}`], [30, 6, 9, 9, 12]);
    const results: Record<string, number> = {};
    for (
      const [via, label] of [["netlink", "netlink"], ["cli-batch", "conntrack -R - (batch)"], [
        "cli-each",
        "conntrack -D (per tuple)",
      ]] as const
    ) {
      const n = via === "netlink" ? stale.length : Math.min(sample, stale.length);
      const tuples = stale.slice(0, n);
      await Deno.writeTextFile(file, JSON.stringify(tuples.map(toTuple)));
      const d = await child(["--child-delete", via, file], ns.name) as {
        ms: number;
        deleted: number;
        failed: string[];
      };
      if (d.deleted !== n) {
        throw new Error(
          `${label}: deleted ${d.deleted} of ${n}: ${d.failed.slice(0, 3).join("; ")}`,
        );
      }
      const total = (d.ms / n) * stale.length;
      results[via] = total;
      row([
        label,
        n,
        fmt(d.ms),
        fmt(d.ms / n, 2),
        fmt(total, 0) + (n < stale.length ? " (extrap.)" : ""),
      ], [30, 6, 9, 9, 12]);
      await ns.insertMany(tuples); // put them back for the next deleter
    }
    console.log(
      `  target 1,000 deletes via netlink < 0.2 s: ${fmt(results.netlink! / 1000, 3)} s ${
        verdict(results.netlink! < 200)
      }`,
    );
    console.log(
      `  conntrack CLI: -R batch ${
        results["cli-batch"]! < results["cli-each"]! ? "faster" : "slower"
      } than one -D per tuple (${fmt(results["cli-each"]! / results["cli-batch"]!, 2)}×)`,
    );
  } finally {
    await Deno.remove(file);
  }
}

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** The V8 flags `deno task start` runs the agent with (deno.json), so the bench measures those. */
const V8_FLAGS: string[] = (() => {
  const cfg = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
  return String(cfg.tasks.start).split(/\s+/).filter((a) => a.startsWith("--v8-flags="));
})();

/** The agent's argv, as `deno task start` runs it. */
function agentArgv(args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", ...V8_FLAGS, MAIN, ...args];
}

/** Runs the agent (dry run) in `ns` for `ms`; returns its peak RSS and CPU seconds. */
/**
 * Runs the agent (dry run) in `ns`: its peak RSS over `ms`, and its CPU per
 * second measured after a 5 s warm-up (start-up excluded).
 */
async function agentFootprint(ns: Netns, ms: number, args: string[] = []) {
  const child = ns.spawn(
    agentArgv(["--dry-run", "--listen=127.0.0.1:10395", ...args]),
    { stdout: "null", stderr: "null" },
  );
  const cpu = async () => {
    const stat = (await Deno.readTextFile(`/proc/${child.pid}/stat`)).split(") ")[1]!.split(" ");
    return (Number(stat[11]) + Number(stat[12])) / 100; // utime + stime, USER_HZ 100
  };
  const warmUp = 5000;
  const samples: number[] = [];
  for (let t = 0; t < warmUp; t += 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    samples.push(await rssMB(child.pid));
  }
  const cpu0 = await cpu();
  for (let t = warmUp; t < ms; t += 1000) {
    await new Promise((r) => setTimeout(r, 1000));
    samples.push(await rssMB(child.pid));
  }
  const cpuS = await cpu() - cpu0;
  const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
  child.kill("SIGTERM");
  await child.status;
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(status)![1]) / 1024;
  // The settled figure: the median of the samples after the warm-up.
  const settled = median(samples.slice(warmUp / 1000));
  return { peakMB: kb("VmHWM"), rssMB: settled, cpuPerSecond: cpuS / ((ms - warmUp) / 1000) };
}

async function benchMemory(entries: number): Promise<void> {
  const skip = await canRunKernelTests();
  if (skip !== undefined) {
    console.log(`\n## Agent footprint: skipped (${skip})`);
    return;
  }
  const seconds = 20;
  console.log(
    `\n## Agent footprint: main.ts --dry-run at 1s for ${seconds} s (source auto, ` +
      `${V8_FLAGS.join(" ") || "no V8 flags"}), RSS sampled each second\n`,
  );
  const W = [44, 12, 16, 26, 16];
  row(["table", "peak RSS MB", "settled RSS MB", "CPU s / poll (after 5 s)", "target"], W);
  const cases: [string, number, number, number | undefined][] = [
    ["1,000 entries, 1% candidates", 1000, 100, 45],
    [`${entries.toLocaleString("en")} entries, 1% candidates`, entries, 100, 60],
    [`${entries.toLocaleString("en")} entries, all candidates (flood)`, entries, 1, undefined],
  ];
  for (const [label, n, every, target] of cases) {
    await withNetns("bench-mem", async (ns) => {
      const specs: EntrySpec[] = [];
      for (let i = 0; i < n; i++) {
        const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
        const base = { src, dst: "10.255.0.1", sport: 1024 + (i % 60000), dport: 443 };
        specs.push(
          i % every === 0
            ? { ...base, state: "SYN_SENT", timeout: 120 }
            : { ...base, state: "ESTABLISHED", timeout: 300 },
        );
      }
      await ns.insertMany(specs);
      const f = await agentFootprint(ns, seconds * 1000);
      const t = target === undefined ? "" : `≤ ${target}: ${verdict(f.rssMB <= target)}`;
      row([label, fmt(f.peakMB), fmt(f.rssMB), fmt(f.cpuPerSecond, 3), t], W);
    });
  }
}

/** `count` SYN_SENT specs with tuples no other call of this process used. */
let nextTuple = 0;
function freshSynSent(count: number): EntrySpec[] {
  const out: EntrySpec[] = [];
  for (let k = 0; k < count; k++) {
    const i = nextTuple++;
    out.push({
      src: `10.${100 + ((i >> 16) & 127)}.${(i >> 8) & 255}.${i & 255}`,
      dst: "10.254.0.1",
      sport: 1024 + (i % 60000),
      dport: 8080,
      state: "SYN_SENT",
      timeout: 120,
    });
  }
  return out;
}

/** Seconds until every spec is gone from the table, checked every 100 ms (limit 60 s). */
async function secondsUntilGone(ns: Netns, specs: EntrySpec[]): Promise<number> {
  await ns.insertMany(specs);
  const t0 = performance.now();
  const renewer = await startRenewer(ns, specs, 1000, { timeoutSec: 120 });
  try {
    while (performance.now() - t0 < 60_000) {
      await new Promise((r) => setTimeout(r, 100));
      if (renewer.rounds > 0 && renewer.absent.length === specs.length) break;
    }
    return (performance.now() - t0) / 1000;
  } finally {
    await renewer.stop();
  }
}

async function benchScrapeStorm(): Promise<void> {
  const skip = await canRunKernelTests() ??
    (new Deno.Command("sh", { args: ["-c", "command -v ab"] }).outputSync().success
      ? undefined
      : "ab (apache2-utils) is not installed");
  if (skip !== undefined) {
    console.log(`\n## Scrape storm: skipped (${skip})`);
    return;
  }
  console.log(
    "\n## Scrape storm: detection of 20 renewed entries (1s/3, 5,000-entry table), idle and " +
      "under `ab -n 20000 -c 50 /metrics` (median of 3 each)\n",
  );
  await withNetns("bench-storm", async (ns) => {
    await ns.insertMany(tableSpecs(5000).specs);
    const agent = ns.spawn(agentArgv(["--listen=127.0.0.1:10395"]), {
      stdout: "null",
      stderr: "null",
    });
    try {
      await new Promise((r) => setTimeout(r, 3000));
      const idle: number[] = [], storm: number[] = [];
      let abOut = "";
      for (let run = 0; run < 3; run++) {
        idle.push(await secondsUntilGone(ns, freshSynSent(20)));
        // Keep ab running for the whole detection window.
        let detecting = true;
        const hammer = (async () => {
          while (detecting) {
            const r = await ns.exec(
              ["ab", "-q", "-n", "20000", "-c", "50", "http://127.0.0.1:10395/metrics"],
            );
            abOut = r.stdout;
          }
        })();
        await new Promise((r) => setTimeout(r, 500)); // the storm is on
        storm.push(await secondsUntilGone(ns, freshSynSent(20)));
        detecting = false;
        await hammer;
      }
      const a = median(idle), b = median(storm);
      const W = [34, 12];
      row(["", "detection s"], W);
      row(["idle", fmt(a, 2)], W);
      row(["under ab -n 20000 -c 50 /metrics", fmt(b, 2)], W);
      const rps = /Requests per second:\s+([\d.]+)/.exec(abOut)?.[1] ?? "?";
      const p50 = /^\s+50%\s+(\d+)/m.exec(abOut)?.[1] ?? "?";
      // ab counts a body whose length differs from the first one's as "failed" (Length):
      // the exposition changes between renderings, so only the other kinds are failures.
      const kinds = /\(Connect: (\d+), Receive: (\d+), Length: \d+, Exceptions: (\d+)\)/
        .exec(abOut)?.slice(1).map(Number) ?? [0, 0, 0];
      const non2xx = Number(/Non-2xx responses:\s+(\d+)/.exec(abOut)?.[1] ?? 0);
      console.log(
        `  ab (last run): ${rps} req/s, p50 ${p50} ms, ` +
          `${kinds.reduce((a, b) => a + b, 0)} failed connections, ${non2xx} non-2xx`,
      );
      console.log(
        `  target storm ≤ 1.10 × idle: ${fmt(b / a, 2)} ${verdict(b <= 1.1 * a)}`,
      );
    } finally {
      agent.kill("SIGTERM");
      await agent.status;
    }
  });
}

async function benchSoak(seconds: number): Promise<void> {
  const skip = await canRunKernelTests();
  if (skip !== undefined) {
    console.log(`\n## Churn soak: skipped (${skip})`);
    return;
  }
  console.log(
    `\n## Churn soak: 50,000 background entries, 200 new SYN_SENT entries a second renewed ` +
      `each second until deleted, agent at 1s/3 (not a dry run), ${seconds} s\n`,
  );
  await withNetns("bench-soak", async (ns) => {
    const background: EntrySpec[] = [];
    for (let i = 0; i < 50_000; i++) {
      const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      background.push({
        src,
        dst: "10.255.0.1",
        sport: 1024 + (i % 60000),
        dport: 443,
        state: "ESTABLISHED",
        timeout: 3600,
      });
    }
    await ns.insertMany(background);
    const agent = ns.spawn(agentArgv(["--listen=127.0.0.1:10395"]), {
      stdout: "null",
      stderr: "null",
    });
    let live: EntrySpec[] = [];
    const samples: number[] = [];
    let deleted = 0, maxLive = 0;
    try {
      const t0 = performance.now();
      for (let s = 1; s <= seconds; s++) {
        const fresh = freshSynSent(200);
        await ns.insertMany(fresh);
        // Renew what is still there (a retransmitted SYN); what the agent deleted drops out.
        const still: EntrySpec[] = [];
        for (const spec of live) {
          if (await ns.renew(spec, 120)) still.push(spec);
          else deleted++;
        }
        live = [...still, ...fresh];
        maxLive = Math.max(maxLive, live.length);
        samples.push(await rssMB(agent.pid));
        const wait = t0 + s * 1000 - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      const last = samples.slice(-Math.max(1, Math.floor(samples.length / 3)));
      const plateau = median(last);
      const W = [44, 10];
      row(["", "MB"], W);
      row(["RSS after 30 s", fmt(samples[Math.min(29, samples.length - 1)]!)], W);
      row(["RSS plateau (median of the last third)", fmt(plateau)], W);
      row(["RSS max", fmt(Math.max(...samples))], W);
      console.log(
        `  entries created ${(seconds * 200).toLocaleString("en")}, seen deleted ${deleted}, ` +
          `renewed at most ${maxLive} at once`,
      );
      console.log(`  target plateau ≤ 90 MB: ${verdict(plateau <= 90)}`);
    } finally {
      agent.kill("SIGTERM");
      await agent.status;
    }
  });
}

async function machine(): Promise<string> {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
  const mem = Number((await Deno.readTextFile("/proc/meminfo")).match(/MemTotal:\s+(\d+)/)![1]) /
    1024 / 1024;
  return `${navigator.hardwareConcurrency} × ${cpu}, ${
    fmt(mem, 0)
  } GiB, Linux ${Deno.osRelease()}, deno ${Deno.version.deno}`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      full: { type: "boolean" },
      entries: { type: "string", default: "100000" },
      lines: { type: "string", default: "1000000" },
      only: { type: "string" }, // parser | snapshot | deletes | memory | storm | soak
      soak: { type: "boolean" },
      "soak-seconds": { type: "string", default: "180" },
      "child-parse": { type: "string" },
      "child-snapshot": { type: "boolean" },
      "child-delete": { type: "string" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values["child-parse"]) await childParse(values["child-parse"], Number(Deno.args.at(-1)));
  else if (values["child-snapshot"]) await childSnapshot();
  else if (values["child-delete"]) await childDelete(values["child-delete"], Deno.args.at(-1)!);
  else {
    console.log(`# conntrack-cleaner benchmark\n\n${await machine()}`);
    const only = values.only;
    if (!only || only === "parser") await benchParser(Number(values.lines));
    if (!only || ["snapshot", "deletes"].includes(only)) {
      await benchKernel(Number(values.entries), values.full === true, only);
    }
    if (!only || only === "memory") await benchMemory(Number(values.entries));
    if (!only || only === "storm") await benchScrapeStorm();
    if (values.soak || only === "soak") await benchSoak(Number(values["soak-seconds"]));
  }
}
