/**
 * `deno task bench churn`: the agent's CPU per second and peak RSS under
 * connection churn — new TCP connections per second that appear as
 * `SYN_SENT [UNREPLIED]` entries — for each source, on a background table.
 *
 * In a namespace of its own: a veth pair whose far end drops every frame
 * (sent to a MAC no one has: no SYN is ever answered), `nf_conntrack_tcp_timeout_syn_sent`
 * set to 2 s there (each connection's entry is gone about 2 s after its
 * SYN), and an nftables nat OUTPUT rule that DNATs every other connection
 * (destination 10.96.0.0/16 → 10.99.200.1). SYNs are built here and sent
 * through a raw socket (testbed/nat_lab/raw_syn.ts): conntrack tracks them
 * in LOCAL_OUT as it does a TCP socket's, with no process or socket per
 * connection. The background table (`--table`, ESTABLISHED entries, 1 h
 * timeouts) is inserted first; a table above `nf_conntrack_max` raises that
 * global sysctl for the run and restores it after.
 *
 * For each rate and source: `main.ts --dry-run --source=S` with the
 * DaemonSet's V8 flags starts with the churn running, CPU is measured for
 * `--seconds` (default 20) after a 5 s warm-up (which holds the start-up
 * dump), and the peak RSS (VmHWM) read at the end. Prints the rate reached,
 * the table's size, the load average (the machine is shared). Needs root,
 * iproute2, nft and conntrack.
 *
 *     deno run -A scripts/bench/churn.ts [--rates=0,1000,5000,10000] [--answered=0]
 *       [--sources=auto,netlink] [--table=10000] [--seconds=20] [--cpu-prof=DIR]
 *
 * `--cpu-prof=DIR` runs the agent with `--cpu-prof` (profiles in DIR);
 * `--answered=F` answers that fraction of the connections with a SYN/ACK
 * at once (SYN_RECV for 2 s); `--main=PATH` runs another checkout's
 * main.ts (a before/after comparison).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { canRunKernelTests, type EntrySpec, type Netns, withNetns } from "../../testbed/netns.ts";
import { RawSynSender } from "../../testbed/nat_lab/raw_syn.ts";
import { loadavg, rssMB, sysctl } from "./measure.ts";

let agentMain = new URL("../../main.ts", import.meta.url).pathname;
const V8_FLAGS = ["--v8-flags=--max-semi-space-size=1,--max-old-space-size=64"];
const WARM_UP_MS = 5_000;

/** utime + stime of `pid` in seconds (USER_HZ 100). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = (await Deno.readTextFile(`/proc/${pid}/stat`)).split(") ")[1]!.split(" ");
  return (Number(stat[11]) + Number(stat[12])) / 100;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Sends `rate` SYNs per second until `stop` aborts, in 10 ms ticks; every
 * other one to a DNATed address. `answered` (0..1) of them get a SYN/ACK
 * from where they went (the DNAT target for the translated ones) at the
 * next tick. Resolves the number of SYNs sent.
 */
async function churn(
  ns: Netns,
  rate: number,
  answered: number,
  stop: AbortSignal,
): Promise<number> {
  if (rate === 0) return 0;
  const sender = new RawSynSender(ns.name);
  const plain = new Uint8Array([10, 99, 1, 1]), nated = new Uint8Array([10, 96, 0, 10]);
  const backend = new Uint8Array([10, 99, 200, 1]);
  let sent = 0, pending: { src: Uint8Array; sport: number; from: Uint8Array }[] = [];
  const t0 = performance.now();
  try {
    while (!stop.aborted) {
      for (const p of pending) {
        sender.send({ src: p.from, dst: p.src, sport: 80, dport: p.sport, flags: 0x12, ack: 1 });
      }
      pending = [];
      const due = Math.floor((performance.now() - t0) / 1000 * rate);
      for (; sent < due; sent++) {
        // 60,000 ports per source address: unique within far more than 2 s at 10k/s.
        const i = sent % 600_000;
        const src = new Uint8Array([10, 98, Math.floor(i / 60_000), 1 + (sent & 1)]);
        const sport = 1024 + (i % 60_000);
        sender.send({ src, dst: sent & 1 ? nated : plain, sport, dport: 80 });
        if ((sent % 100) < answered * 100) {
          pending.push({ src, sport, from: sent & 1 ? backend : plain });
        }
      }
      await sleep(10);
    }
  } finally {
    sender.close();
  }
  return sent;
}

async function setUp(ns: Netns, table: number): Promise<void> {
  const ip = async (args: string[]) => {
    const r = await ns.exec(["ip", ...args]);
    if (r.code !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr}`);
  };
  await ip(["link", "add", "v0", "type", "veth", "peer", "name", "v1"]);
  await ip(["addr", "add", "10.99.0.1/16", "dev", "v0"]);
  await ip(["link", "set", "v0", "up"]);
  await ip(["link", "set", "v1", "up"]);
  await ip(["route", "add", "10.96.0.0/16", "dev", "v0"]);
  await ip(["route", "add", "10.98.0.0/16", "via", "10.99.1.1", "dev", "v0"]);
  // Frames for a MAC no one has: v1 drops them before IP, nothing answers.
  for (const to of ["10.99.1.1", "10.99.200.1"]) {
    await ip(["neigh", "add", to, "lladdr", "02:00:00:00:00:01", "dev", "v0", "nud", "permanent"]);
  }
  const nft = await ns.exec(["nft", "-f", "-"], {
    stdin: [
      "table ip churn {",
      "  chain out {",
      "    type nat hook output priority -100;",
      "    ip daddr 10.96.0.0/16 tcp dport 80 dnat to 10.99.200.1",
      "  }",
      "}",
      "",
    ].join("\n"),
  });
  if (nft.code !== 0) throw new Error(`nft: ${nft.stderr}`);
  await ns.sysctl("net.netfilter.nf_conntrack_tcp_timeout_syn_sent", 2);
  // Answered ones: SYN_RECV for 2 s; the SYN/ACKs carry no real sequence numbers.
  await ns.sysctl("net.netfilter.nf_conntrack_tcp_timeout_syn_recv", 2);
  await ns.sysctl("net.netfilter.nf_conntrack_tcp_be_liberal", 1);
  const specs: EntrySpec[] = [];
  for (let i = 0; i < table; i++) {
    const s = `10.${100 + ((i >> 16) & 127)}.${(i >> 8) & 255}.${i & 255}`;
    specs.push({
      src: s,
      dst: "10.255.0.1",
      sport: 1024 + (i % 60000),
      dport: 443,
      state: "ESTABLISHED",
      timeout: 3600,
    });
  }
  for (let i = 0; i < specs.length; i += 100_000) await ns.insertMany(specs.slice(i, i + 100_000));
}

/** One run: the agent with `source` while `rate` connections/s churn. */
async function run(
  ns: Netns,
  source: string,
  rate: number,
  o: { ms: number; answered: number; prof: string | undefined },
) {
  const { ms, prof } = o;
  const stop = new AbortController();
  const began = performance.now();
  const generated = churn(ns, rate, o.answered, stop.signal);
  const child = ns.spawn(
    [
      Deno.execPath(),
      "run",
      "-A",
      ...V8_FLAGS,
      ...(prof !== undefined ? [`--cpu-prof`, `--cpu-prof-dir=${prof}`] : []),
      agentMain,
      "--dry-run",
      "--listen=127.0.0.1:10396",
      `--source=${source}`,
    ],
    { stdout: "null", stderr: "null" },
  );
  try {
    await sleep(WARM_UP_MS);
    const c0 = await cpuSeconds(child.pid), t0 = performance.now();
    const n0 = await ns.count();
    await sleep(ms);
    const cpu = (await cpuSeconds(child.pid) - c0) / ((performance.now() - t0) / 1000);
    const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
    const peak = Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
    const rss = await rssMB(child.pid);
    const entries = Math.round((n0 + (await ns.count())) / 2);
    // Entries the SYN/ACKs answered (the check that they did).
    const states = await ns.exec(["conntrack", "-L", "-p", "tcp", "--state", "SYN_RECV"]);
    const synRecv = states.stdout.split("\n").filter((l) => l.includes("SYN_RECV")).length;
    stop.abort();
    const reached = await generated / ((performance.now() - began) / 1000);
    return { cpu, peak, rss, entries, reached, synRecv };
  } finally {
    stop.abort();
    await generated;
    // SIGINT: a --cpu-prof run writes its profile on a clean exit.
    child.kill(prof !== undefined ? "SIGINT" : "SIGTERM");
    await child.status;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rates: { type: "string", default: "0,1000,5000,10000" },
      sources: { type: "string", default: "auto,netlink" },
      table: { type: "string", default: "10000" },
      seconds: { type: "string", default: "20" },
      "cpu-prof": { type: "string" },
      answered: { type: "string", default: "0" },
      main: { type: "string" },
    },
  });
  const skip = await canRunKernelTests();
  if (skip !== undefined) {
    console.log(`\n## Cost under connection churn: skipped (${skip})`);
    return;
  }
  const rates = values.rates.split(",").map(Number);
  const sources = values.sources.split(",");
  const table = Number(values.table), ms = Number(values.seconds) * 1000;
  const prof = values["cpu-prof"], answered = Number(values.answered);
  if (values.main !== undefined) agentMain = values.main;
  if (prof !== undefined) await Deno.mkdir(prof, { recursive: true });
  console.log(
    `\n## Cost under connection churn: main.ts --dry-run, default settings, ${
      table.toLocaleString("en")
    } ` +
      `background entries, half DNATed, ${answered * 100}% answered at once, the rest gone ` +
      `after 2 s ` +
      `(${new Date().toISOString().slice(0, 10)}, load average before: ${await loadavg()})\n`,
  );
  console.log(
    "| new connections/s (reached) | source | entries (mean) | SYN_RECV at end | CPU-s/s | µs/connection | RSS MB (peak) |",
  );
  console.log("|---|---|---|---|---|---|---|");
  const saved = await sysctl("net.netfilter.nf_conntrack_max");
  try {
    const need = table + 50_000;
    if (Number(saved) < need) await sysctl("net.netfilter.nf_conntrack_max", String(need));
    await withNetns("bench-churn", async (ns) => {
      await setUp(ns, table);
      for (const rate of rates) {
        for (const source of sources) {
          const r = await run(ns, source, rate, { ms, answered, prof });
          const per = rate > 0 ? (r.cpu / rate * 1e6).toFixed(1) : "–";
          console.log(
            `| ${rate.toLocaleString("en")} (${
              Math.round(r.reached).toLocaleString("en")
            }) | ${source} | ${r.entries.toLocaleString("en")} | ${
              r.synRecv.toLocaleString("en")
            } | ${r.cpu.toFixed(4)} | ${per} | ${r.rss.toFixed(1)} (${r.peak.toFixed(1)}) |`,
          );
          await sleep(2500); // the churn's entries expire before the next run
        }
      }
    });
  } finally {
    if ((await sysctl("net.netfilter.nf_conntrack_max")) !== saved) {
      await sysctl("net.netfilter.nf_conntrack_max", saved);
    }
  }
  console.log(`\nload average after: ${await loadavg()}`);
}

if (import.meta.main) await main();
