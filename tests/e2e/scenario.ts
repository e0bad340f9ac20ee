/**
 * The end-to-end story, in a namespace of its own: clients stuck retrying
 * from fixed source ports (renewed every second), entries left to decay, a
 * healthy connection between the same two hosts, and background traffic.
 * Runs the real agent (`deno run -A main.ts`) inside the namespace and
 * reports what it did.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseIPv6 } from "../../lib/model/addr.ts";
import { type EntrySpec, type Netns, startRenewer, withNetns } from "../../testbed/netns.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** What a scenario is made of. */
export interface ScenarioOptions {
  family: "ipv4" | "ipv6";
  zone: number;
  /** More (family, zone) stories in the same table. */
  also?: { family: "ipv4" | "ipv6"; zone: number }[];
  /** Extra agent flags (`--source=…`, `--delete-via=…`). */
  args?: string[];
  /** Give up after this long; default 12 s. */
  deadlineMs?: number;
  /** Called once the renewed entries are gone, while the agent still runs. */
  probe?: (ns: Netns) => Promise<void>;
}

/** What happened. */
export interface ScenarioResult {
  /** Milliseconds from the agent's start until the last renewed entry was gone; undefined if never. */
  allGoneMs: number | undefined;
  /** Renewed entries still present at the end. */
  renewedLeft: EntrySpec[];
  /** Entries that must stay and were missing at the end. */
  keptMissing: EntrySpec[];
  /** The agent's log lines, parsed. */
  logs: Record<string, unknown>[];
  exitCode: number;
  /** How long the agent took to exit after SIGTERM, ms. */
  exitMs: number;
  renewed: EntrySpec[];
  /** Real loopback connections made while the agent ran (see traffic.ts). */
  traffic?: { ok: number; failed: number; tracked: number };
}

function hosts(family: "ipv4" | "ipv6") {
  return family === "ipv4"
    ? {
      client: "203.0.113.10",
      service: "198.51.100.80",
      other: (i: number) => `10.1.${i >> 8}.${i & 255}`,
      peer: "10.2.0.1",
    }
    : {
      client: "2001:db8:c::10",
      service: "2001:db8:5::80",
      other: (i: number) => `2001:db8:1::${i.toString(16)}`,
      peer: "2001:db8:2::1",
    };
}

/** The table of the story: who is renewed, who must stay. */
export function storyTable(family: "ipv4" | "ipv6", zone: number) {
  const h = hosts(family);
  const syn = (sport: number, z = zone): EntrySpec => ({
    src: h.client,
    dst: h.service,
    sport,
    dport: 443,
    zone: z,
    state: "SYN_SENT",
    timeout: 120,
  });
  const renewed = [syn(40001), syn(40002), syn(40003)];
  const decaying = [
    { ...syn(41001), timeout: 90 },
    { ...syn(41002), timeout: 60 },
    { ...syn(41003), timeout: 119 },
  ];
  const healthy: EntrySpec = {
    src: h.client,
    dst: h.service,
    sport: 40100,
    dport: 443,
    zone,
    state: "ESTABLISHED",
    timeout: 432000,
  };
  const background: EntrySpec[] = [];
  for (let i = 1; i <= 60; i++) {
    background.push({
      src: h.other(i),
      dst: h.peer,
      sport: 50000 + i,
      dport: 80,
      zone,
      state: "ESTABLISHED",
      timeout: 300,
    });
    background.push({
      src: h.other(i),
      dst: h.peer,
      sport: 51000 + i,
      dport: 80,
      zone,
      state: "TIME_WAIT",
      timeout: 100,
    });
    background.push({
      proto: "udp",
      src: h.other(i),
      dst: h.peer,
      sport: 52000 + i,
      dport: 53,
      zone,
      timeout: 30,
    });
  }
  // The same tuple as a renewed entry, in another zone: a different entry, never renewed.
  const otherZone = syn(40001, zone === 0 ? 9 : 0);
  return { renewed, kept: [...decaying, healthy, ...background, otherZone] };
}

/** Whether `spec`'s entry is in a /proc/net/nf_conntrack text. */
export function present(table: string, spec: EntrySpec): boolean {
  const wantZone = `zone=${spec.zone ?? 0} `;
  const proto = spec.proto ?? "tcp";
  return table.split("\n").some((l) => {
    if (!l.includes(` ${proto} `) || !l.includes(wantZone)) return false;
    const first = l.indexOf("src=");
    const t = l.slice(first).split(" ");
    const addr = (s: string) => expand(s.split("=")[1]!);
    return addr(t[0]!) === expand(spec.src) && addr(t[1]!) === expand(spec.dst) &&
      t[2] === `sport=${spec.sport}` && t[3] === `dport=${spec.dport}`;
  });
}

/** An address in the kernel's procfs spelling (IPv6 uncompressed). */
function expand(a: string): string {
  const groups = a.includes(":") ? parseIPv6(a) : undefined;
  return groups ? groups.map((g) => g.toString(16).padStart(4, "0")).join(":") : a;
}

/** Runs the whole story once and reports. */
export function runScenario(o: ScenarioOptions): Promise<ScenarioResult> {
  return withNetns(`e2e-${o.family}-z${o.zone}`, async (ns) => {
    const stories = [o, ...(o.also ?? [])].map((v) => storyTable(v.family, v.zone));
    const renewed = stories.flatMap((t) => t.renewed);
    const kept = stories.flatMap((t) => t.kept);
    await ns.insertMany([...renewed, ...kept]);
    const traffic = await startTraffic(ns);
    // `conntrack -U -t 120` in zone 0; in other zones over ctnetlink (-U rejects --zone).
    const renewer = await startRenewer(ns, renewed, 1000, { timeoutSec: 120, via: "conntrack" });
    try {
      const r = await runAgent(ns, renewed, kept, o);
      return { ...r, traffic: await traffic.stop() };
    } finally {
      await renewer.stop();
      await traffic.stop();
    }
  });
}

async function runAgent(
  ns: Netns,
  renewed: EntrySpec[],
  kept: EntrySpec[],
  o: ScenarioOptions,
): Promise<ScenarioResult> {
  const args = o.args ?? [];
  const listen = args.some((a) => a.startsWith("--listen")) ? [] : ["--listen=off"];
  const child = ns.spawn([Deno.execPath(), "run", "-A", MAIN, ...listen, ...args], {
    env: { CONNTRACK_TABLE_DUMP_FREQUENCY: "1s", CONNECTION_RENEWAL_THRESHOLD: "3", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  });
  const out = new Response(child.stdout).text();
  const err = new Response(child.stderr).text();
  const t0 = performance.now();
  const deadline = t0 + (o.deadlineMs ?? 12_000);
  let allGoneMs: number | undefined;
  let table = "";
  while (performance.now() < deadline) {
    table = await ns.list();
    if (renewed.every((s) => !present(table, s))) {
      allGoneMs = performance.now() - t0;
      break;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  // Let it run two more polls: nothing else may go.
  await new Promise((r) => setTimeout(r, 2000));
  if (allGoneMs !== undefined) await o.probe?.(ns);
  table = await ns.list();
  const t1 = performance.now();
  child.kill("SIGTERM");
  const status = await child.status;
  const exitMs = performance.now() - t1;
  const logs = (await out).split("\n").filter((l) => l.trim()).map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      return { unparsed: l };
    }
  });
  const stderr = (await err).trim();
  if (stderr) logs.push({ stderr });
  return {
    allGoneMs,
    renewedLeft: renewed.filter((s) => present(table, s)),
    keptMissing: kept.filter((s) => !present(table, s)),
    logs,
    exitCode: status.code,
    exitMs,
    renewed,
  };
}

/** `GET url` from inside the namespace (its loopback is not the test's): status and body. */
export async function httpGet(ns: Netns, url: string): Promise<{ status: number; body: string }> {
  const code = `const r = await fetch(${JSON.stringify(url)}); ` +
    `console.log(JSON.stringify({ status: r.status, body: await r.text() }));`;
  const r = await ns.exec([Deno.execPath(), "eval", code], { env: { NO_COLOR: "1" } });
  if (r.code !== 0) throw new Error(`fetch ${url} in ${ns.name}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** The outcome every configuration must show. */
export function assertStory(r: ScenarioResult, label: string): void {
  const ctx = `${label}\n${r.logs.map((l) => JSON.stringify(l)).join("\n")}`;
  assert.deepEqual(r.renewedLeft, [], `renewed entries left after 12 s: ${ctx}`);
  // The tracker's model (tests/rules/tracker_test.ts) gives 8 polls from first sight for 1 s
  // polls, threshold 3 and a renewal each second. Here the renewals come from a
  // `conntrack -U` process a second, whose start slips on a busy CPU: a renewal seen a
  // poll late or early shifts the count. Quiet runs give the 8th or 9th poll (README:
  // 7–9 s); with the whole suite and other work on 2 cores the 10th was seen once. So
  // each deletion must come at the 7th to 10th poll (checked below), never later. Counted
  // from the agent's spawn, Deno's own start-up comes on top: 8.2–11.5 s seen on a shared
  // CPU, so that end-to-end figure only has the scenario's 12 s deadline.
  assert.ok(r.allGoneMs !== undefined && r.allGoneMs <= 12_000, `gone after ${r.allGoneMs} ms`);
  assert.deepEqual(r.keptMissing, [], `entries that had to stay are gone: ${ctx}`);
  const deleted = r.logs.filter((l) => l.msg === "deleted stale entry");
  assert.equal(deleted.length, r.renewed.length, `one log line per deletion: ${ctx}`);
  for (const d of deleted) {
    assert.equal(d.renewals, 4, `exactly threshold + 1 renewals: ${ctx}`);
    const tracked = d.tracked_s as number;
    // poll starts keep to the 1 s grid within well under half a second
    assert.ok(tracked > 6.5 && tracked < 10.5, `deleted ${tracked} s after first sight: ${ctx}`);
    assert.ok(r.renewed.some((s) => s.sport === d.sport && (s.zone ?? 0) === d.zone), ctx);
  }
  assert.deepEqual(r.logs.filter((l) => l.level === "error" || l.stderr), [], ctx);
  assert.equal(r.exitCode, 0, ctx);
  assert.ok(r.exitMs < 2000, `exit took ${r.exitMs} ms`);
  if (r.traffic) {
    assert.ok(
      r.traffic.ok > 50 && r.traffic.failed === 0,
      `real traffic: ${JSON.stringify(r.traffic)}`,
    );
    assert.ok(r.traffic.tracked > 0, "the kernel tracked the real connections");
  }
}

const TRAFFIC = new URL("./traffic.ts", import.meta.url).pathname;

/**
 * Starts real TCP traffic on the namespace's loopback. A fresh namespace
 * tracks no packets until a rule asks for conntrack, so one (iptables) does.
 */
async function startTraffic(ns: Netns) {
  for (const cmd of ["iptables", "ip6tables"]) {
    const r = await ns.exec([
      cmd,
      "-A",
      "OUTPUT",
      "-m",
      "conntrack",
      "--ctstate",
      "NEW,ESTABLISHED",
      "-j",
      "ACCEPT",
    ])
      .catch((e) => ({ code: -1, stderr: String(e), stdout: "" }));
    if (r.code !== 0) {
      throw new Error(`${cmd} (package iptables) is needed for real traffic: ${r.stderr.trim()}`);
    }
  }
  const child = ns.spawn([Deno.execPath(), "run", "-A", TRAFFIC, "60"], {
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  });
  const out = new Response(child.stdout).text();
  const err = new Response(child.stderr).text();
  let result: Promise<{ ok: number; failed: number; tracked: number }> | undefined;
  return {
    /** Stops the traffic (once) and reports it, with how many of its entries the table held. */
    stop() {
      return result ??= (async () => {
        const table = await ns.list();
        const tracked = table.split("\n").filter((l) => l.includes("dport=8080 ")).length;
        try {
          child.kill("SIGTERM");
        } catch { /* already gone */ }
        await child.status;
        const text = (await out).trim();
        if (!text) throw new Error(`traffic generator: ${await err}`);
        return { ...JSON.parse(text.split("\n").at(-1)!), tracked };
      })();
    },
  };
}
