/**
 * Cost of reading the NAT rules at kube-proxy scale: CPU, wall time and
 * memory of `NftRules.answer` for 100 questions per poll, the generation
 * changed before every poll (kube-proxy re-syncing), with rule sets shaped
 * like kube-proxy's at N Services (default 10,000):
 *
 * - iptables mode (`iptables-restore`): KUBE-SERVICES with two rules per
 *   Service (cluster IP, external IP), KUBE-SVC-* with a statistic match per
 *   endpoint, two KUBE-SEP-* with DNAT each, KUBE-MARK-MASQ;
 * - nftables mode (`nft -f`): a `service-ips` verdict map of N elements
 *   (`ip daddr . meta l4proto . th dport`), per Service a chain with
 *   `numgen random mod 2 vmap`, per endpoint a chain with DNAT.
 *
 *     deno task bench nat [-- --services N --polls P --stand-in]
 *
 * Needs root, `nft` and `iptables-restore`. Each mode runs in a namespace of
 * its own (removed afterwards); the reader runs inside it in a child process
 * with the agent's V8 flags (`--max-old-space-size=64`), which prints one
 * JSON line of figures. The evaluator is the agent's (`lib/nat/evaluate.ts`);
 * with `--stand-in`, a stand-in that reads what a real one must (every base
 * chain at the hook, all of KUBE-SERVICES or the map, and the chains of the
 * asked Service) and costs little itself.
 *
 * Figures, method and the profile are in docs/benchmarks.md ("Reading the
 * NAT rules"). In short (2 cores shared, Linux 6.18, 10,000 Services, 10
 * polls, medians of two runs, the agent's evaluator, all 100 answers
 * "translated"):
 *
 * | mode     | main: CPU/poll (user + sys)    | this reader: CPU/poll (user + sys) | peak RSS |
 * | -------- | ------------------------------ | ---------------------------------- | -------- |
 * | iptables | 493–530 ms (264–292 + 229–251) | 325–329 ms (120–123 + 211)         | 102 MB   |
 * | nftables | 277–303 ms (177–195 + 100–112) | 126–132 ms (77–84 + 58)            | 84 MB    |
 *
 * The goal of 50 ms is not met. The kernel alone spends ~170–250 ms (sys)
 * producing the 20,000-rule `KUBE-SERVICES` dump of iptables mode (it walks
 * the chain from its first rule again for each 32 KiB part: 478 parts), and
 * in nftables mode ~14–20 ms on the dump of every chain (30,000, the only way
 * to find the base chains) plus ~0.12 ms per anonymous map `GETSET` (a walk
 * of the table's 10,000 sets by name).
 *
 * @module
 */
import process from "node:process";
import { withNetns } from "../../testbed/netns.ts";
import { type Evaluate, NftRules } from "../../lib/nat/nft_reader.ts";
import { evaluate } from "../../lib/nat/evaluate.ts";
import type {
  NatAnswer,
  NatQuestion,
  NftChain,
  NftExpr,
  NftRule,
  NftSet,
  RulesetView,
  SetElement,
} from "../../lib/nat/ruleset.ts";

const arg = (name: string, fallback: number) => {
  const i = Deno.args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(Deno.args[i + 1]);
};

const vip = (i: number) => `10.96.${(i >> 8) & 255}.${i & 255}`;
const ext = (i: number) => `172.20.${(i >> 8) & 255}.${i & 255}`;
const ep = (i: number, k: number) => `10.${244 + k}.${(i >> 8) & 255}.${i & 255}`;

/** kube-proxy iptables-mode rules for `n` Services, for `iptables-restore`. */
export function iptablesRules(n: number): string {
  const out = [
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":POSTROUTING ACCEPT [0:0]",
  ];
  out.push(":KUBE-SERVICES - [0:0]", ":KUBE-MARK-MASQ - [0:0]");
  for (let i = 0; i < n; i++) {
    out.push(`:KUBE-SVC-${i} - [0:0]`, `:KUBE-SEP-${i}-0 - [0:0]`, `:KUBE-SEP-${i}-1 - [0:0]`);
  }
  out.push(
    `-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
    `-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
    "-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000",
  );
  for (let i = 0; i < n; i++) {
    const c = `"ns/svc-${i}:http cluster IP"`;
    out.push(
      `-A KUBE-SERVICES -d ${
        vip(i)
      }/32 -p tcp -m comment --comment ${c} -m tcp --dport 80 -j KUBE-SVC-${i}`,
    );
    out.push(
      `-A KUBE-SERVICES -d ${
        ext(i)
      }/32 -p tcp -m comment --comment "ns/svc-${i}:http external IP" -m tcp --dport 80 -j KUBE-SVC-${i}`,
    );
    out.push(
      `-A KUBE-SVC-${i} ! -s 10.244.0.0/16 -d ${
        vip(i)
      }/32 -p tcp -m comment --comment ${c} -m tcp --dport 80 -j KUBE-MARK-MASQ`,
    );
    out.push(
      `-A KUBE-SVC-${i} -m comment --comment "ns/svc-${i}:http -> ${
        ep(i, 0)
      }:8080" -m statistic --mode random --probability 0.50000000000 -j KUBE-SEP-${i}-0`,
    );
    out.push(
      `-A KUBE-SVC-${i} -m comment --comment "ns/svc-${i}:http -> ${
        ep(i, 1)
      }:8080" -j KUBE-SEP-${i}-1`,
    );
    for (const k of [0, 1]) {
      out.push(
        `-A KUBE-SEP-${i}-${k} -s ${
          ep(i, k)
        }/32 -m comment --comment "ns/svc-${i}:http" -j KUBE-MARK-MASQ`,
      );
      out.push(
        `-A KUBE-SEP-${i}-${k} -p tcp -m comment --comment "ns/svc-${i}:http" -m tcp -j DNAT --to-destination ${
          ep(i, k)
        }:8080`,
      );
    }
  }
  out.push("COMMIT", "");
  return out.join("\n");
}

/** kube-proxy nftables-mode rules for `n` Services, for `nft -f`. */
export function nftRules(n: number): string {
  const out = ["table ip kube-proxy {"];
  out.push(
    "  map service-ips {",
    "    type ipv4_addr . inet_proto . inet_service : verdict",
    "    elements = {",
  );
  for (let i = 0; i < n; i++) out.push(`      ${vip(i)} . tcp . 80 : goto service-${i},`);
  out.push("    }", "  }");
  for (let i = 0; i < n; i++) {
    for (const k of [0, 1]) {
      out.push(
        `  chain endpoint-${i}-${k} {`,
        `    ip saddr ${ep(i, k)} jump mark-for-masquerade`,
        `    meta l4proto tcp dnat to ${ep(i, k)}:8080`,
        "  }",
      );
    }
    out.push(
      `  chain service-${i} {`,
      `    ip daddr ${vip(i)} tcp dport 80 ip saddr != 10.244.0.0/16 jump mark-for-masquerade`,
      `    numgen random mod 2 vmap { 0 : goto endpoint-${i}-0, 1 : goto endpoint-${i}-1 }`,
      "  }",
    );
  }
  out.push("  chain mark-for-masquerade {", "    meta mark set meta mark | 0x4000", "  }");
  out.push("  chain services {", "    ip daddr . meta l4proto . th dport vmap @service-ips", "  }");
  out.push(
    "  chain nat-prerouting {",
    "    type nat hook prerouting priority dstnat; policy accept;",
    "    jump services",
    "  }",
  );
  out.push(
    "  chain nat-output {",
    "    type nat hook output priority -100; policy accept;",
    "    jump services",
    "  }",
  );
  out.push("}", "");
  return out.join("\n");
}

/** The IPv4 destination an expression list compares with `ip daddr`, if any. */
function daddrOf(exprs: readonly NftExpr[]): string | undefined {
  const i = exprs.findIndex((e) =>
    e.op === "payload" && e.base === "network" && e.offset === 16 && e.len === 4
  );
  const cmp = exprs[i + 1];
  return i >= 0 && cmp?.op === "cmp" && cmp.cmp === "eq" ? cmp.data.join(".") : undefined;
}

/**
 * A chain's rules by the destination they compare with (`""`: no `ip
 * daddr ==`, taken by every question), built once per chain object so the
 * stand-in costs little next to the reader.
 */
const byDst = new WeakMap<NftChain, Map<string, NftRule[]>>();
function rulesFor(c: NftChain, dst: string): NftRule[] {
  let m = byDst.get(c);
  if (m === undefined) {
    m = new Map();
    for (const r of c.rules) {
      const d = daddrOf(r.exprs) ?? "";
      m.set(d, [...(m.get(d) ?? []), r]);
    }
    byDst.set(c, m);
  }
  return [...(m.get("") ?? []), ...(m.get(dst) ?? [])];
}

/** A set's elements by the IPv4 address their key starts with, built once per set object. */
const byKey = new WeakMap<NftSet, Map<string, SetElement[]>>();
function elementsFor(s: NftSet, dst: string): readonly SetElement[] {
  if (s.keyLen !== 12) return s.elements;
  let m = byKey.get(s);
  if (m === undefined) {
    m = new Map();
    for (const el of s.elements) {
      const k = el.key.subarray(0, 4).join(".");
      m.set(k, [...(m.get(k) ?? []), el]);
    }
    byKey.set(s, m);
  }
  return m.get(dst) ?? [];
}

/**
 * A stand-in evaluator: follows jumps of rules that may match the
 * destination (every rule without an `ip daddr ==`, and those with the
 * question's), and the verdicts of map elements for the destination.
 */
const reach: Evaluate = (q: NatQuestion, view: RulesetView): NatAnswer => {
  const base = view.baseChains(q.family, q.hook);
  if (base === undefined) return { kind: "not_proven", reason: "no base chains" };
  const dst = q.dst.join(".");
  const need = { chains: [] as NftChain[], sets: [] as NftChain[] };
  const stack = [...base];
  const seen = new Set<string>();
  let dnat = 0;
  const go = (from: NftChain, name: string) => {
    const c = view.chain(from, name);
    if (c === undefined) need.chains.push({ ...from, name, rules: [] });
    else if (!seen.has(c.name)) stack.push(c);
  };
  while (stack.length > 0) {
    const c = stack.pop()!;
    seen.add(c.name);
    for (const r of rulesFor(c, dst)) {
      for (const e of r.exprs) {
        if (e.op === "nat" || (e.op === "target" && e.name === "DNAT")) dnat++;
        if (e.op === "verdict" && (e.verdict.kind === "jump" || e.verdict.kind === "goto")) {
          go(c, e.verdict.chain);
        }
        if (e.op !== "lookup") continue;
        const s = view.set(c, e.set);
        if (s === undefined) need.sets.push({ ...c, name: e.set, rules: [] });
        for (const el of s === undefined ? [] : elementsFor(s, dst)) {
          const v = el.verdict;
          if (v?.kind === "jump" || v?.kind === "goto") go(c, v.chain);
        }
      }
    }
  }
  if (need.chains.length + need.sets.length > 0) return { kind: "need", ...need };
  return { kind: "not_proven", reason: `${seen.size} chains, ${dnat} dnat` };
};

function vmHwmMb(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function inner(n: number, polls: number): Promise<void> {
  let evalMs = 0;
  const chosen: Evaluate = Deno.args.includes("--stand-in") ? reach : evaluate;
  const timed: Evaluate = (q, view) => {
    const t = performance.now();
    try {
      return chosen(q, view);
    } finally {
      evalMs += performance.now() - t;
    }
  };
  const rules = new NftRules({ evaluate: timed });
  const questions: NatQuestion[] = [];
  for (let k = 0; k < 100; k++) {
    const i = Math.floor((k * n) / 100);
    questions.push({
      family: "ipv4",
      src: new Uint8Array([10, 9, 0, 1]),
      dst: new Uint8Array(vip(i).split(".").map(Number)),
      sport: 40000 + k,
      dport: 80,
      zone: 0,
      hook: "prerouting",
    });
  }
  const cpu: number[] = [];
  const user: number[] = [];
  const sys: number[] = [];
  const wall: number[] = [];
  const evals: number[] = [];
  let last: unknown;
  for (let p = 0; p < polls; p++) {
    // kube-proxy re-syncs: a new generation before every poll.
    await new Deno.Command("nft", { args: ["add table ip bump; delete table ip bump"] }).output();
    evalMs = 0;
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const answers = await rules.answer(questions);
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
    user.push(c.user / 1000);
    sys.push(c.system / 1000);
    evals.push(evalMs);
    last = {
      first: answers[0]?.kind === "translated" ? "translated" : answers[0],
      kinds: Object.fromEntries(
        ["translated", "not_proven", "unreadable"].map((k) => [
          k,
          answers.filter((a) => a.kind === k).length,
        ]),
      ),
      read: rules.lastRead,
    };
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  console.log(JSON.stringify({
    polls,
    cpuMsMedian: +med(cpu).toFixed(1),
    cpuMsMax: +Math.max(...cpu).toFixed(1),
    userMsMedian: +med(user).toFixed(1),
    sysMsMedian: +med(sys).toFixed(1),
    wallMsMedian: +med(wall).toFixed(1),
    evaluatorMsMedian: +med(evals).toFixed(1),
    peakRssMb: +vmHwmMb().toFixed(1),
    heapUsedMb: +(Deno.memoryUsage().heapUsed / 1048576).toFixed(1),
    last,
  }));
  rules.close();
}

async function outer(n: number, polls: number): Promise<void> {
  for (const mode of ["iptables", "nftables"] as const) {
    await withNetns(`bench-nat-${mode}`, async (ns) => {
      const t0 = performance.now();
      const text = mode === "iptables" ? iptablesRules(n) : nftRules(n);
      const cmd = mode === "iptables" ? ["iptables-restore"] : ["nft", "-f", "-"];
      const r = await ns.exec(cmd, { stdin: text });
      if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.slice(0, 500)}`);
      const loadMs = performance.now() - t0;
      const run = await ns.exec([
        Deno.execPath(),
        "run",
        "-A",
        "--v8-flags=--max-semi-space-size=1,--max-old-space-size=64",
        new URL(import.meta.url).pathname,
        "--inner",
        "--services",
        String(n),
        "--polls",
        String(polls),
        ...(Deno.args.includes("--stand-in") ? ["--stand-in"] : []),
      ]);
      if (run.code !== 0) throw new Error(`reader exited ${run.code}: ${run.stderr}`);
      console.log(
        `${mode} mode, ${n} Services (loaded in ${
          (loadMs / 1000).toFixed(1)
        } s): ${run.stdout.trim()}`,
      );
    });
  }
}

if (import.meta.main) {
  const n = arg("services", 10_000);
  const polls = arg("polls", 10);
  if (Deno.args.includes("--inner")) await inner(n, polls);
  else await outer(n, polls);
}
