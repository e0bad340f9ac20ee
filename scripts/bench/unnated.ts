/**
 * `deno task bench unnated`: the per-poll cost of the un-NATed rule's
 * evidence (issue 7, "Evidence must not bring back the cost of the whole
 * table"), on a 100k-entry table in a namespace.
 *
 * A poll is what the agent does every interval: `Agent.pollOnce()` = one
 * snapshot (with the evidence of the keys of the last read's un-NATed
 * candidates, collected in the same read), the tracker, the rules. Each
 * agent polls once a second of real time, so the table-evidence provider
 * and the renewal tracker behave as in service.
 * Nothing is deleted: the deleter only records (and no decision is expected).
 *
 * Per source (netlink, procfs, conntrack CLI), the cases:
 * - a. today's agent, without the un-NATed rule, on table B;
 * - b. the rule on, no un-NATed candidates: table B, whose 1,000 SYN_SENT
 *   [UNREPLIED] candidates were all DNATed (target: mean within 10 % of a);
 * - c. the rule on, 50 distinct old un-NATed destinations (2 entries each,
 *   aged 9 s by the kernel's remaining timeout) with no evidence anywhere:
 *   table C, 900 DNATed candidates + those 100 (target: mean ≤ 1.5 × b).
 * The rest of both tables is like `bench.ts`: ESTABLISHED, TIME_WAIT, UDP.
 *
 * a and b run in one child process, their polls interleaved; b and c run in
 * two namespaces that exist at once, children alternating, so a slow moment
 * of the shared machine hits the compared cases alike.
 *
 *     deno task bench unnated [--entries=100000] [--polls=30] [--cli-polls=20] [--only=netlink]
 *
 * Needs root, iproute2 and conntrack (else it says why and stops).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Agent } from "../../lib/agent/agent.ts";
import type { DeleteOutcome, Deleter, DeleteTarget } from "../../lib/deleters/deleter.ts";
import type { Snapshot, SnapshotOptions } from "../../lib/model/snapshot.ts";
import { readSynSentTimeout } from "../../lib/os/kernel.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { ConntrackCliSource } from "../../lib/sources/conntrack_cli.ts";
import { NetlinkSource } from "../../lib/sources/netlink.ts";
import { ProcfsSource } from "../../lib/sources/procfs.ts";
import type { Source } from "../../lib/sources/source.ts";
import { RenewalTracker } from "../../lib/rules/tracker.ts";
import { UnnatedRule } from "../../lib/rules/unnated.ts";
import { RenewalRule } from "../../lib/rules/renewals.ts";
import { TableEvidenceProvider } from "../../lib/rules/providers/table_evidence.ts";
import { canRunKernelTests, type EntrySpec, withNetns } from "../../testbed/netns.ts";
import { median } from "./measure.ts";

const SELF = new URL(import.meta.url).pathname;
const INTERVAL_MS = 1000;
/** Where every DNATed candidate's destination was translated to. */
const BACKEND = "10.244.0.5:8443";
/** Un-NATed destinations in table C, and entries per destination. */
const UNNATED_DESTS = 50;
const PER_DEST = 2;

type SourceName = "netlink" | "procfs" | "conntrack";
type Case = "a" | "b" | "c";

// ---------------------------------------------------------------- the tables

/**
 * 1 % SYN_SENT [UNREPLIED] candidates, the rest ESTABLISHED / TIME_WAIT / UDP
 * (as `bench.ts`), with timeouts long enough that nothing expires during
 * the run. Every candidate is DNATed to {@linkcode BACKEND}, except, when
 * `unnated`, {@linkcode UNNATED_DESTS} × {@linkcode PER_DEST} of them: those
 * go to 10.254.0.1–50:443, which nothing translates, and have 110 s left of
 * 120, so the kernel says they are 9 s old.
 */
function tableSpecs(n: number, unnated: boolean): EntrySpec[] {
  const specs: EntrySpec[] = [];
  let unnatedLeft = unnated ? UNNATED_DESTS * PER_DEST : 0;
  for (let i = 0; i < n; i++) {
    const src = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    const base = { src, dst: "10.255.0.1", sport: 1024 + (i % 60000), timeout: 3600 };
    const k = i % 100;
    if (k === 0 && unnatedLeft > 0) {
      const d = (unnatedLeft-- % UNNATED_DESTS) + 1;
      specs.push({ ...base, dst: `10.254.0.${d}`, dport: 443, state: "SYN_SENT", timeout: 110 });
    } else if (k === 0) {
      specs.push({ ...base, dport: 443, state: "SYN_SENT", timeout: 600, dnat: BACKEND });
    } else if (k < 56) specs.push({ ...base, dport: 443, state: "ESTABLISHED" });
    else if (k < 76) specs.push({ ...base, dport: 443, state: "TIME_WAIT", timeout: 600 });
    else specs.push({ ...base, proto: "udp", dport: 53, timeout: 600 });
  }
  return specs;
}

// ------------------------------------------------------------------- child

/** A source that counts the reads asked for evidence (its time is inside the snapshot's). */
class CountingSource implements Source {
  readonly name: string;
  lookups = 0;
  asked = 0;
  found = 0;
  constructor(readonly inner: Source) {
    this.name = inner.name;
  }
  async snapshot(signal?: AbortSignal, options?: SnapshotOptions): Promise<Snapshot> {
    const snap = await this.inner.snapshot(signal, options);
    const n = options?.evidenceFor?.length ?? 0;
    if (n > 0 && snap.evidence !== undefined) {
      this.lookups++;
      this.asked += n;
      for (const list of snap.evidence.entries.values()) this.found += list.length;
    }
    return snap;
  }
  close(): void {
    this.inner.close?.();
  }
}

/** Deletes nothing: records what it was asked to delete. */
class RecordingDeleter implements Deleter {
  readonly name = "recording";
  readonly maxPerPoll = Infinity;
  worstCaseMs(): number {
    return 0;
  }
  readonly asked: DeleteTarget[] = [];
  // deno-lint-ignore require-await
  async delete(targets: readonly DeleteTarget[]): Promise<DeleteOutcome[]> {
    this.asked.push(...targets);
    return targets.map((tuple) => ({ tuple, result: "already_gone" }));
  }
}

/**
 * Paces polls at {@linkcode INTERVAL_MS}: `next()` waits until the next
 * whole interval since the start (at once when a poll ran late), as the
 * agent's own loop does. Real time, not a fake clock: the kernel counts
 * timeouts in real time, and a clock that jumped 1 s per poll would make the
 * renewal tracker see every entry renewed at every poll.
 */
class Cadence {
  #start = performance.now();
  #poll = 0;
  async next(): Promise<void> {
    const due = this.#start + ++this.#poll * INTERVAL_MS;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

function makeSource(name: SourceName): Source {
  if (name === "netlink") return new NetlinkSource();
  if (name === "procfs") return new ProcfsSource();
  return new ConntrackCliSource();
}

interface CaseResult {
  /** Wall ms of each measured poll. */
  ms: number[];
  /** Whether that poll's read collected evidence. */
  lookedUp: boolean[];
  lookups: number;
  asked: number;
  found: number;
  deletes: number;
  candidates: number;
  warnings: string[];
}

/** One agent as the case wants it, on its own source and caches. */
function makeRun(source: SourceName, c: Case, synSentTimeoutS: number) {
  const src = new CountingSource(makeSource(source));
  const deleter = new RecordingDeleter();
  const warnings: string[] = [];
  const tracker = new RenewalTracker({ threshold: 3 });
  const unnated = new UnnatedRule({
    afterMs: 2000,
    synSentTimeoutS,
    providers: [new TableEvidenceProvider()],
  });
  const agent = new Agent({
    source: src,
    deleter,
    tracker,
    rules: c === "a" ? [new RenewalRule(tracker)] : [new RenewalRule(tracker), unnated],
    log: createLogger({ level: "warn", write: (l) => warnings.push(l) }),
    intervalMs: INTERVAL_MS,
  });
  const r: CaseResult = {
    ms: [],
    lookedUp: [],
    lookups: 0,
    asked: 0,
    found: 0,
    deletes: 0,
    candidates: 0,
    warnings,
  };
  return {
    r,
    /** One poll; `measure` false for the warm-up. */
    async poll(measure: boolean): Promise<void> {
      const before = src.lookups;
      const t = performance.now();
      const report = await agent.pollOnce();
      const ms = performance.now() - t;
      if (!report.ok) throw new Error(`${source} case ${c}: poll failed: ${warnings.at(-1)}`);
      r.candidates = report.track?.tracked ?? 0;
      if (!measure) return;
      r.ms.push(ms);
      r.lookedUp.push(src.lookups > before);
    },
    finish(): CaseResult {
      // The warm-up poll's look-ups are not counted with the measured ones.
      r.deletes = deleter.asked.length;
      src.close();
      return r;
    },
    src,
  };
}

/**
 * Child, inside a namespace: `polls` measured polls of each case after one
 * warm-up poll, each agent once a second (the cases one after another in
 * each second, first one first, then the other).
 */
async function childPolls(source: SourceName, cases: Case[], polls: number): Promise<void> {
  const t = await readSynSentTimeout();
  const synSentTimeoutS = typeof t === "number" ? t : 120;
  const runs = cases.map((c) => makeRun(source, c, synSentTimeoutS));
  const cadence = new Cadence();
  for (const run of runs) await run.poll(false); // warm-up: sockets, JIT, first look-up
  const base = runs.map((run) => ({ ...run.src }));
  for (let i = 0; i < polls; i++) {
    await cadence.next();
    // Alternate which case polls first: the first poll after the idle wait runs slower.
    for (const run of i % 2 === 0 ? runs : [...runs].reverse()) await run.poll(true);
  }
  const out: Record<string, CaseResult> = {};
  runs.forEach((run, i) => {
    const r = run.finish();
    r.lookups = run.src.lookups - base[i]!.lookups;
    r.asked = run.src.asked - base[i]!.asked;
    r.found = run.src.found - base[i]!.found;
    out[cases[i]!] = r;
  });
  console.log(JSON.stringify({ synSentTimeoutS, ...out }));
}

// ------------------------------------------------------------------ parent

async function child(args: string[], ns: string): Promise<Record<string, unknown>> {
  const argv = [Deno.execPath(), "run", "-A", SELF, ...args];
  const r = await new Deno.Command("ip", { args: ["netns", "exec", ns, ...argv] }).output();
  const text = new TextDecoder().decode(r.stdout).trim();
  if (r.code !== 0) throw new Error(`${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`);
  return JSON.parse(text.split("\n").at(-1)!);
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "–");
const row = (cells: (string | number)[], widths: number[]) =>
  console.log(
    cells.map((c, i) => String(c)[i === 0 ? "padEnd" : "padStart"](widths[i]!)).join("  "),
  );
const verdict = (ok: boolean) => (ok ? "meets target" : "MISSES target");

/** Two children's results for one case, taken together. */
function merge(parts: CaseResult[]): CaseResult {
  const sum = (k: "lookups" | "asked" | "found" | "deletes") => parts.reduce((s, p) => s + p[k], 0);
  return {
    ms: parts.flatMap((p) => p.ms),
    lookedUp: parts.flatMap((p) => p.lookedUp),
    lookups: sum("lookups"),
    asked: sum("asked"),
    found: sum("found"),
    deletes: sum("deletes"),
    candidates: parts.at(-1)!.candidates,
    warnings: parts.flatMap((p) => p.warnings),
  };
}

async function benchSource(
  source: SourceName,
  polls: number,
  nsB: string,
  nsC: string,
): Promise<void> {
  // Two rounds, alternating namespaces, half the polls each.
  const half = Math.max(1, Math.ceil(polls / 2));
  const parts: Record<Case, CaseResult[]> = { a: [], b: [], c: [] };
  let synSentTimeoutS = 0;
  for (let round = 0; round < 2; round++) {
    const ab = await child(["--child", source, "--cases=a,b", `--polls=${half}`], nsB);
    const c = await child(["--child", source, "--cases=c", `--polls=${half}`], nsC);
    parts.a.push(ab.a as CaseResult);
    parts.b.push(ab.b as CaseResult);
    parts.c.push(c.c as CaseResult);
    synSentTimeoutS = c.synSentTimeoutS as number;
  }
  const r = { a: merge(parts.a), b: merge(parts.b), c: merge(parts.c) };
  console.log(
    `\n### source ${source}: ${r.a.ms.length} polls per case, each agent once a second\n`,
  );
  const W = [46, 8, 8, 11, 11, 9, 10];
  row([
    "case",
    "mean ms",
    "median",
    "w/ evidence",
    "w/o evid.",
    "ev. reads",
    "keys asked",
  ], W);
  const label: Record<Case, string> = {
    a: "a. no un-NATed rule (today)",
    b: "b. rule on, no un-NATed candidates",
    c: `c. rule on, ${UNNATED_DESTS} old un-NATed dests, no evidence`,
  };
  for (const k of ["a", "b", "c"] as const) {
    const x = r[k];
    const withL = x.ms.filter((_, i) => x.lookedUp[i]);
    const withoutL = x.ms.filter((_, i) => !x.lookedUp[i]);
    row([
      label[k],
      fmt(mean(x.ms)),
      fmt(median(x.ms)),
      withL.length ? fmt(mean(withL)) : "–",
      withoutL.length ? fmt(mean(withoutL)) : "–",
      x.lookups,
      x.asked,
    ], W);
  }
  const bA = mean(r.b.ms) / mean(r.a.ms), cB = mean(r.c.ms) / mean(r.b.ms);
  const mbA = median(r.b.ms) / median(r.a.ms), mcB = median(r.c.ms) / median(r.b.ms);
  console.log(
    `  candidates tracked: a ${r.a.candidates}, b ${r.b.candidates}, c ${r.c.candidates}; ` +
      `translated entries listed ${r.c.found}; deletions asked ${
        r.a.deletes + r.b.deletes + r.c.deletes
      }; nf_conntrack_tcp_timeout_syn_sent ${synSentTimeoutS}`,
  );
  console.log(
    `  target b ≤ 1.10 × a (mean): ${fmt(bA, 2)} ${verdict(bA <= 1.1)}   (median ${fmt(mbA, 2)})`,
  );
  console.log(
    `  target c ≤ 1.5 × b (mean): ${fmt(cB, 2)} ${verdict(cB <= 1.5)}   (median ${fmt(mcB, 2)})`,
  );
  const warnings = [...r.a.warnings, ...r.b.warnings, ...r.c.warnings];
  if (warnings.length > 0) console.log(`  agent warnings: ${warnings.slice(0, 3).join(" | ")}`);
  if (r.b.lookups > 0) {
    console.log(`  note: case b made ${r.b.lookups} evidence reads (expected none)`);
  }
}

async function machine(): Promise<string> {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
  return `${navigator.hardwareConcurrency} × ${cpu}, Linux ${Deno.osRelease()}, deno ${Deno.version.deno}`;
}

async function main(entries: number, polls: number, cliPolls: number, only?: string) {
  console.log(`# conntrack-cleaner benchmark: un-NATed rule\n\n${await machine()}`);
  console.log(
    `\n## Un-NATed rule: per-poll cost of evidence, ${
      entries.toLocaleString("en")
    }-entry table, 1% candidates`,
  );
  const skip = await canRunKernelTests();
  if (skip !== undefined) {
    console.log(`\n## Un-NATed rule: skipped (${skip})`);
    return;
  }
  await withNetns("bench-unnated-b", async (nsB) => {
    await withNetns("bench-unnated-c", async (nsC) => {
      const sources = (["netlink", "procfs", "conntrack"] as const).filter((s) =>
        only === undefined || only === s
      );
      for (const source of sources) {
        // Fresh tables for each source: the un-NATed entries have 110 s to live.
        const t = performance.now();
        for (const ns of [nsB, nsC]) {
          await ns.conntrack(["-F"], { check: false });
          await ns.insertMany(tableSpecs(entries, ns === nsC));
        }
        console.log(
          `\n(tables filled: B ${(await nsB.count()).toLocaleString("en")} entries, C ${
            (await nsC.count()).toLocaleString("en")
          } entries, in ${fmt(performance.now() - t, 0)} ms)`,
        );
        await benchSource(source, source === "conntrack" ? cliPolls : polls, nsB.name, nsC.name);
      }
    });
  });
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      entries: { type: "string", default: "100000" },
      polls: { type: "string", default: "30" },
      "cli-polls": { type: "string", default: "20" },
      only: { type: "string" }, // netlink | procfs | conntrack
      child: { type: "string" },
      cases: { type: "string" },
    },
    strict: true,
  });
  if (values.child !== undefined) {
    await childPolls(
      values.child as SourceName,
      (values.cases ?? "a,b,c").split(",") as Case[],
      Number(values.polls),
    );
  } else {
    await main(
      Number(values.entries),
      Number(values.polls),
      Number(values["cli-polls"]),
      values.only,
    );
  }
}
