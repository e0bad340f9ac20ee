/**
 * Idle footprint, side by side (issue 14): a bare `deno run` of a script that
 * does nothing but keep a timer, and the agent idling as `deno task start`
 * runs it (its V8 flags, `--dry-run`), all started together and sampled
 * together, so that whatever else loads the machine loads them alike.
 * Shown per process: resident memory (`VmRSS`) and its two parts from
 * `/proc/PID/status`, anonymous (`RssAnon`: heaps, stacks) and file pages
 * (`RssFile`: mostly the `deno` executable's own code). Target: the agent at
 * most 15 MB over the bare process.
 *
 *     deno run -A scripts/bench/idle.ts [--seconds=20]
 *
 * The agent runs twice: on a `--proc-file` of 1,000 ESTABLISHED lines (no
 * candidate, so nothing to decide: idle), and, as root, in a network
 * namespace of its own with a 1,000-entry table, 1 % of it SYN_SENT (source
 * auto: netlink). Without root only the first runs.
 *
 * @module
 */
import { canRunKernelTests, type EntrySpec, type Netns, withNetns } from "../../testbed/netns.ts";
import { median } from "./measure.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const V8_FLAGS: string[] = (() => {
  const cfg = JSON.parse(Deno.readTextFileSync(new URL("../../deno.json", import.meta.url)));
  return String(cfg.tasks.start).split(/\s+/).filter((a) => a.startsWith("--v8-flags="));
})();
const LIMIT_MB = 15;
const WARM_UP_S = 5;

interface Memory {
  rss: number;
  anon: number;
  file: number;
}

/** VmRSS, RssAnon and RssFile of `pid`, in MB. */
async function memory(pid: number): Promise<Memory> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(status)![1]) / 1024;
  return { rss: kb("VmRSS"), anon: kb("RssAnon"), file: kb("RssFile") };
}

/** A 1,000-entry table, 1 % SYN_SENT (what bench.ts calls idle). */
function idleTable(): EntrySpec[] {
  const specs: EntrySpec[] = [];
  for (let i = 0; i < 1000; i++) {
    const base = {
      src: `10.0.${i >> 8}.${i & 255}`,
      dst: "10.255.0.1",
      sport: 1024 + i,
      dport: 443,
    };
    specs.push(
      i % 100 === 0
        ? { ...base, state: "SYN_SENT", timeout: 120 }
        : { ...base, state: "ESTABLISHED", timeout: 300 },
    );
  }
  return specs;
}

/** 1,000 ESTABLISHED lines in the procfs format. */
function idleProcFile(): string {
  const lines = [];
  for (let i = 0; i < 1000; i++) {
    const sport = 20000 + i;
    lines.push(
      `ipv4     2 tcp      6 297 ESTABLISHED src=10.0.${i >> 8}.${i & 255} dst=10.255.0.1 ` +
        `sport=${sport} dport=443 src=10.255.0.1 dst=10.0.${i >> 8}.${i & 255} sport=443 ` +
        `dport=${sport} [ASSURED] mark=0 zone=0 use=2`,
    );
  }
  return lines.join("\n") + "\n";
}

async function main(): Promise<void> {
  const seconds = Number(
    Deno.args.find((a) => a.startsWith("--seconds="))?.slice("--seconds=".length) ?? 20,
  );
  const idle = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(idle, "setInterval(() => {}, 1000);\n");
  const table = await Deno.makeTempFile({ suffix: ".nf_conntrack" });
  await Deno.writeTextFile(table, idleProcFile());
  const skip = await canRunKernelTests();
  const run = async (ns: Netns | undefined) => {
    if (ns) await ns.insertMany(idleTable());
    const quiet = { stdout: "null", stderr: "null" } as const;
    const agentArgs = ["run", "-A", ...V8_FLAGS, MAIN, "--dry-run", "--listen=127.0.0.1:0"];
    const procs: [string, Deno.ChildProcess][] = [
      [
        "bare deno run (idle script)",
        new Deno.Command(Deno.execPath(), { args: ["run", idle], ...quiet }).spawn(),
      ],
      [
        "bare deno run, agent's V8 flags",
        new Deno.Command(Deno.execPath(), { args: ["run", ...V8_FLAGS, idle], ...quiet }).spawn(),
      ],
      [
        "agent, --proc-file (1,000 lines)",
        new Deno.Command(Deno.execPath(), {
          args: [...agentArgs, `--proc-file=${table}`],
          ...quiet,
        }).spawn(),
      ],
    ];
    if (ns) {
      procs.push([
        "agent, 1,000-entry table (auto)",
        ns.spawn([Deno.execPath(), ...agentArgs], quiet),
      ]);
    }
    const samples = procs.map(() => [] as Memory[]);
    try {
      for (let t = 1; t <= seconds; t++) {
        await new Promise((r) => setTimeout(r, 1000));
        if (t <= WARM_UP_S) continue;
        for (let i = 0; i < procs.length; i++) samples[i]!.push(await memory(procs[i]![1].pid));
      }
    } finally {
      for (const [, p] of procs) {
        try {
          p.kill("SIGTERM");
        } catch { /* already gone */ }
        await p.status;
      }
    }
    return procs.map(([label], i) => {
      const s = samples[i]!;
      return {
        label,
        rss: median(s.map((m) => m.rss)),
        anon: median(s.map((m) => m.anon)),
        file: median(s.map((m) => m.file)),
      };
    });
  };
  const rows = skip === undefined
    ? await withNetns("bench-idle", (ns) => run(ns))
    : await run(undefined);
  await Deno.remove(idle);
  await Deno.remove(table);

  console.log(
    `## Idle footprint, side by side: median of ${
      seconds - WARM_UP_S
    } samples after ${WARM_UP_S} s ` +
      `(agent: ${V8_FLAGS.join(" ")}, --dry-run)${skip ? `; no namespace case (${skip})` : ""}\n`,
  );
  const w = [36, 10, 12, 14, 16];
  const row = (cells: string[]) =>
    console.log(cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(" "));
  row(["process", "RSS MB", "anon MB", "file MB", "over bare MB"]);
  const bare = rows[0]!;
  for (const r of rows) {
    row([
      r.label,
      r.rss.toFixed(1),
      r.anon.toFixed(1),
      r.file.toFixed(1),
      (r.rss - bare.rss).toFixed(1),
    ]);
  }
  for (const r of rows.filter((r) => r.label.startsWith("agent"))) {
    const over = r.rss - bare.rss;
    console.log(
      `  target ${r.label}: ≤ bare + ${LIMIT_MB} MB: ${over <= LIMIT_MB ? "meets" : "MISSES"} (+${
        over.toFixed(1)
      } MB)`,
    );
  }
}

if (import.meta.main) await main();
