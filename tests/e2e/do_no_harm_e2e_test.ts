/**
 * Issue 13, first do no harm, with real sockets (see testbed/slow_net.ts):
 * clients in two subnets, a node with kube-proxy-like iptables rules
 * (INVALID drop, MASQUERADE toward the server) and a real server at the VIP
 * whose frames come back 3 s late. Each node set-up runs with and without
 * `main.ts` (default settings); every connection must get its answer, and no
 * entry of those clients may be deleted: the conntrack id a client's first
 * SYN made is still there at the end, and the agent logs no deletion.
 *
 * Deleting an un-NATed `SYN_SENT` entry whose SYN-ACK is still on its way
 * makes the late SYN-ACK INVALID on the node (dropped) and the server's
 * half-open connection is lost: the client's data is reset. Each set-up
 * holds translated entries to VIP:80 that are NOT this client's own newer
 * connection (another subnet's, older ones, the node's own), so an agent
 * that takes them as evidence breaks the clients.
 *
 * The benefit story runs in the same topology: a client whose first SYN
 * went out before the DNAT rule is freed once its own newer connection is
 * NATed (zero config), or by `--destinations` alone.
 *
 * All set-ups run at once, each in its own namespaces; each test awaits its
 * own. They start when the first test of this file runs.
 *
 * @module
 */
import assert from "node:assert/strict";
import { kernelTest } from "../support/machine.ts";
import type { SessionRequest } from "../../testbed/tcp_session.ts";
import {
  type AgentRun,
  type CtEntry,
  isTranslated,
  listEntries,
  startAgent,
} from "../../testbed/stuck_client.ts";
import {
  type SessionResult,
  SLOW_ADDRESSES,
  type SlowNet,
  VIP_PORT,
  withSlowNet,
} from "../../testbed/slow_net.ts";

/** How late the server's frames reach the node. */
const DELAY_MS = 3000;
const FAMILIES = ["ipv4", "ipv6"] as const;
type Family = typeof FAMILIES[number];

/** A client connection whose node entry must survive: its fixed source port(s). */
interface Watched {
  id: string;
  family: Family;
  src: string;
  /** The source port whose entry is checked (the attempt expected to connect). */
  sport: number;
  /** When that attempt's first SYN leaves, ms after the session's start. */
  synAtMs: number;
}

/** What one run of a set-up saw. */
interface Outcome {
  label: string;
  withAgent: boolean;
  results: Map<string, SessionResult>;
  /** Session ids that must get their answer through the slow server. */
  slow: string[];
  /** Every other session must get its answer too. */
  watched: Watched[];
  /**
   * The node's table 1.5 s and 4.5 s after the watched clients start: after
   * each watched attempt's first SYN and before its SYN-ACK (at 3 s and 6 s).
   */
  early: CtEntry[][];
  /** The node's table at the end. */
  last: CtEntry[];
  logs: Record<string, unknown>[];
  exit: number | undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sleepUntil = (at: number) => sleep(Math.max(0, at - Date.now()));

/** Starts the agent (default settings unless `args`) in the node, or not; runs `body`. */
async function withMaybeAgent<T>(
  net: SlowNet,
  withAgent: boolean,
  args: string[],
  body: (agent: AgentRun | undefined) => Promise<T>,
): Promise<{ value: T; logs: Record<string, unknown>[]; exit: number | undefined }> {
  if (!withAgent) return { value: await body(undefined), logs: [], exit: undefined };
  const agent = startAgent(net.node, args);
  try {
    await agent.ready;
    const value = await body(agent);
    return { value, logs: agent.logs, exit: await agent.stop() };
  } finally {
    await agent.stop();
  }
}

/** The slow clients of subnet B (or A) for one family: three fixed ports and a backoff client. */
function slowClients(family: Family, src: string, at: number, prefix: string): SessionRequest[] {
  const vip = SLOW_ADDRESSES[family].vip;
  const base = { host: vip, port: VIP_PORT, localAddress: src, at, deadlineMs: 15_000 };
  return [
    ...[41001, 41002, 41003].map((p) => ({ ...base, id: `${prefix}${family}-${p}`, localPort: p })),
    // Connect timeout 1 s, doubled: attempts from 42001 (0–1 s), 42002 (1–3 s), 42003 (3–7 s).
    { ...base, id: `${prefix}${family}-backoff`, localPort: 42001, retries: 3, attemptMs: 1000 },
  ];
}

function watchedOf(reqs: SessionRequest[], family: Family, src: string): Watched[] {
  return reqs.map((r) => ({
    id: r.id,
    family,
    src,
    // The backoff client's third attempt is the one whose SYN-ACK arrives in time.
    sport: r.retries ? r.localPort! + 2 : r.localPort!,
    synAtMs: r.retries ? 3000 : 0,
  }));
}

/** The node's table at `t0` + 1.5 s and + 4.5 s (see {@linkcode Outcome.early}). */
async function earlyTables(net: SlowNet, t0: number): Promise<CtEntry[][]> {
  await sleepUntil(t0 + 1500);
  const first = await listEntries(net.node);
  await sleepUntil(t0 + 4500);
  return [first, await listEntries(net.node)];
}

/**
 * Source-restricted DNAT: VIP:80 is DNATed to the backend (or, with
 * `redirect`, REDIRECTed to a transparent proxy on the node) only for subnet
 * A; subnet B reaches the real server at VIP:80 through MASQUERADE. Subnet A
 * connects before, with and after subnet B (one held open, the others closed).
 */
async function restricted(withAgent: boolean, redirect = false): Promise<Outcome> {
  const label = `source-restricted ${redirect ? "REDIRECT" : "DNAT"} ` +
    `${withAgent ? "with" : "without"} the agent`;
  const name = `dnh-${redirect ? "x" : "r"}-${withAgent ? "a" : "n"}`;
  const options = { delayMs: DELAY_MS, nodeServer: redirect };
  return await withSlowNet(name, options, async (net) => {
    for (const f of FAMILIES) {
      const subnetA = SLOW_ADDRESSES[f].subnetA;
      await (redirect ? net.redirect(f, subnetA) : net.dnat(f, { from: subnetA }));
    }
    const r = await withMaybeAgent(net, withAgent, [], async () => {
      const t0 = Date.now() + 1000;
      const reqs: SessionRequest[] = [], watched: Watched[] = [];
      for (const f of FAMILIES) {
        const a = SLOW_ADDRESSES[f];
        const b = slowClients(f, a.clientB, t0, "b-");
        reqs.push(...b);
        watched.push(...watchedOf(b, f, a.clientB));
        const base = { host: a.vip, port: VIP_PORT, localAddress: a.clientA, deadlineMs: 5000 };
        reqs.push(
          { ...base, id: `a-${f}-before`, at: t0 - 500 },
          { ...base, id: `a-${f}-held`, at: t0, holdMs: 12_000 },
          { ...base, id: `a-${f}-after`, at: t0 + 500 },
        );
      }
      const run = net.sessions(net.clients, reqs);
      const early = await earlyTables(net, t0);
      const results = await run.results;
      return { results, early, watched, slow: watched.map((w) => w.id) };
    });
    return { label, withAgent, ...r.value, last: await listEntries(net.node), ...rest(r) };
  });
}

/**
 * The removed rule: VIP:80 was DNATed for everyone, client A made a
 * connection it keeps open (ESTABLISHED) and one it closed (TIME_WAIT), then
 * the rule went away; VIP:80 is now the real slow server, and client A
 * connects again from fixed ports.
 */
async function removedRule(withAgent: boolean): Promise<Outcome> {
  const label = `removed DNAT rule ${withAgent ? "with" : "without"} the agent`;
  return await withSlowNet(`dnh-g-${withAgent ? "a" : "n"}`, { delayMs: DELAY_MS }, async (net) => {
    for (const f of FAMILIES) await net.dnat(f);
    const r = await withMaybeAgent(net, withAgent, [], async () => {
      const t1 = Date.now() + 300;
      const old: SessionRequest[] = FAMILIES.flatMap((f) => {
        const a = SLOW_ADDRESSES[f];
        const base = { host: a.vip, port: VIP_PORT, localAddress: a.clientA, deadlineMs: 5000 };
        return [
          { ...base, id: `old-${f}-held`, at: t1, holdMs: 30_000 },
          { ...base, id: `old-${f}-closed`, at: t1 },
        ];
      });
      const first = await net.sessions(net.clients, old).results;
      // Wait for the closed ones to reach TIME_WAIT, then remove the rule.
      for (let i = 0; i < 20; i++) {
        const t = await listEntries(net.node);
        if (t.filter((e) => isTranslated(e) && e.state === "TIME_WAIT").length === 2) break;
        await sleep(100);
      }
      for (const f of FAMILIES) await net.flush(f, "CCT-SERVICES");
      const t0 = Date.now() + 1000;
      const reqs = FAMILIES.flatMap((f) => slowClients(f, SLOW_ADDRESSES[f].clientA, t0, "new-"));
      const watched = FAMILIES.flatMap((f) =>
        watchedOf(reqs.filter((q) => q.id.includes(f)), f, SLOW_ADDRESSES[f].clientA)
      );
      const run = net.sessions(net.clients, reqs);
      const early = await earlyTables(net, t0);
      const results = new Map([...first, ...await run.results]);
      return { results, early, watched, slow: watched.map((w) => w.id) };
    });
    return { label, withAgent, ...r.value, last: await listEntries(net.node), ...rest(r) };
  });
}

/**
 * DNAT only in nat OUTPUT: the node's own processes reach VIP:80 at the
 * backend; forwarded clients of subnet B reach the real slow server.
 */
async function outputOnly(withAgent: boolean): Promise<Outcome> {
  const label = `OUTPUT-only DNAT ${withAgent ? "with" : "without"} the agent`;
  return await withSlowNet(`dnh-o-${withAgent ? "a" : "n"}`, { delayMs: DELAY_MS }, async (net) => {
    for (const f of FAMILIES) await net.dnat(f, { chain: "CCT-OUTPUT" });
    const r = await withMaybeAgent(net, withAgent, [], async () => {
      const t0 = Date.now() + 1000;
      const reqs = FAMILIES.flatMap((f) => slowClients(f, SLOW_ADDRESSES[f].clientB, t0, "b-"));
      const watched = FAMILIES.flatMap((f) =>
        watchedOf(reqs.filter((q) => q.id.includes(f)), f, SLOW_ADDRESSES[f].clientB)
      );
      const local: SessionRequest[] = FAMILIES.flatMap((f) => {
        const base = { host: SLOW_ADDRESSES[f].vip, port: VIP_PORT, deadlineMs: 5000 };
        return [
          { ...base, id: `node-${f}-before`, at: t0 - 500 },
          { ...base, id: `node-${f}-held`, at: t0, holdMs: 12_000 },
          { ...base, id: `node-${f}-after`, at: t0 + 500 },
        ];
      });
      const run = net.sessions(net.clients, reqs), own = net.sessions(net.node, local);
      const early = await earlyTables(net, t0);
      const results = new Map([...await run.results, ...await own.results]);
      return { results, early, watched, slow: watched.map((w) => w.id) };
    });
    return { label, withAgent, ...r.value, last: await listEntries(net.node), ...rest(r) };
  });
}

function rest(r: { logs: Record<string, unknown>[]; exit: number | undefined }) {
  return { logs: r.logs, exit: r.exit };
}

const entryOf = (t: CtEntry[], w: Watched) =>
  t.find((e) =>
    e.proto === "tcp" && e.src === w.src && e.sport === w.sport &&
    e.dst === SLOW_ADDRESSES[w.family].vip && e.dport === VIP_PORT
  );

function summary(o: Outcome): string {
  const slow = o.slow.map((id) => o.results.get(id));
  const ok = slow.filter((s) => s?.event === "answered").length;
  const bad = slow.filter((s) => s?.event !== "answered")
    .map((s) => `${s?.id}: ${s?.event}${s?.code ? ` ${s.code}` : ""} at ${s?.ms} ms`);
  const deleted = o.logs.filter((l) => l.msg === "deleted stale entry").length;
  return `${o.label}: ${ok}/${slow.length} slow clients answered, ${deleted} deletions` +
    (bad.length ? ` (${bad.join("; ")})` : "");
}

/** Every connection answered, through the slow server where expected, and no entry deleted. */
function checkNoHarm(o: Outcome): void {
  const ctx = `${o.label}: ${JSON.stringify([...o.results.values()])}\n` +
    o.logs.map((l) => JSON.stringify(l)).join("\n");
  // The premise: translated entries to VIP:80 that are not the slow clients' own were there.
  const evidence = o.early[0]!.filter((e) =>
    isTranslated(e) && e.dport === VIP_PORT && FAMILIES.some((f) => e.dst === SLOW_ADDRESSES[f].vip)
  );
  for (const f of FAMILIES) {
    assert.ok(evidence.some((e) => e.family === f), `${o.label}: no ${f} translated entry: ${ctx}`);
  }
  for (const [id, s] of o.results) {
    assert.equal(s.event, "answered", `${o.label}: ${id} must get its answer: ${ctx}`);
  }
  for (const id of o.slow) {
    const s = o.results.get(id)!;
    assert.ok(s.connectedMs! >= DELAY_MS - 100, `${id} went through the slow server: ${ctx}`);
  }
  for (const w of o.watched) {
    const e = entryOf(o.early[w.synAtMs === 0 ? 0 : 1]!, w), l = entryOf(o.last, w);
    assert.ok(
      e && e.state === "SYN_SENT" && e.unreplied && !isTranslated(e),
      `${w.id}: un-NATed SYN_SENT entry from port ${w.sport} early on: ${ctx}`,
    );
    assert.equal(l?.id, e.id, `${w.id}: the entry from port ${w.sport} must be the same: ${ctx}`);
  }
  if (o.withAgent) {
    assert.equal(o.exit, 0, ctx);
    assert.deepEqual(o.logs.filter((l) => l.level === "error" || l.stderr || l.unparsed), [], ctx);
    assert.deepEqual(o.logs.filter((l) => l.msg === "deleted stale entry"), [], ctx);
  }
}

/** The stuck-client story in this topology (nobody answers at the VIP until the DNAT rule). */
interface Benefit {
  label: string;
  withAgent: boolean;
  stuck: SessionResult;
  newer?: SessionResult;
  logs: Record<string, unknown>[];
  exit: number | undefined;
}

async function benefit(
  family: Family,
  withAgent: boolean,
  args: string[],
  newer: boolean,
): Promise<Benefit> {
  const label = `stuck client ${family} ${args.join(" ") || "zero config"} ` +
    `${withAgent ? "with" : "without"} the agent`;
  const a = SLOW_ADDRESSES[family];
  const name = `dnh-s-${family.slice(-1)}${newer ? "n" : "d"}${withAgent ? "a" : "n"}`;
  return await withSlowNet(name, { delayMs: DELAY_MS, deadVip: true }, async (net) => {
    const r = await withMaybeAgent(net, withAgent, args, async () => {
      const t0 = Date.now() + 1000;
      const base = { host: a.vip, port: VIP_PORT, localAddress: a.clientA };
      const run = net.sessions(net.clients, [
        { ...base, id: "stuck", localPort: 40000, at: t0, deadlineMs: 12_000 },
        // The same client, later, from an ephemeral port: NATed, since the rule is there.
        ...(newer ? [{ ...base, id: "newer", at: t0 + 3000, deadlineMs: 5000 }] : []),
      ]);
      await sleepUntil(t0 + 2000);
      await net.dnat(family);
      return await run.results;
    });
    return {
      label,
      withAgent,
      stuck: r.value.get("stuck")!,
      ...(newer ? { newer: r.value.get("newer")! } : {}),
      logs: r.logs,
      exit: r.exit,
    };
  });
}

function checkFreed(b: Benefit, limitMs: number, reason: RegExp): void {
  const ctx = `${b.label}: ${JSON.stringify(b)}`;
  const s = b.stuck;
  console.log(`${b.label}: stuck client ${s.event}, connected at ${s.connectedMs} ms`);
  assert.equal(b.exit, 0, ctx);
  assert.equal(s.event, "answered", ctx);
  assert.ok(s.connectedMs! <= limitMs, `connected within ${limitMs} ms: ${ctx}`);
  if (b.newer) assert.equal(b.newer.event, "answered", ctx);
  const deleted = b.logs.filter((l) => l.msg === "deleted stale entry");
  assert.equal(deleted.length, 1, ctx);
  assert.equal(deleted[0]!.sport, 40000, ctx);
  assert.equal(deleted[0]!.rule, "unnated", ctx);
  assert.match(String(deleted[0]!.reason), reason, ctx);
}

const DESTINATIONS = "[2001:db8:cafe::10/128]:80";

/** Every run of this file, started together the first time a test asks. */
let all:
  | {
    restricted: Promise<Outcome[]>;
    redirect: Promise<Outcome[]>;
    removed: Promise<Outcome[]>;
    output: Promise<Outcome[]>;
    benefit: Promise<Benefit[]>;
  }
  | undefined;

function runs() {
  if (all === undefined) {
    const both = (f: (withAgent: boolean) => Promise<Outcome>) => Promise.all([f(false), f(true)]);
    all = {
      restricted: both((withAgent) => restricted(withAgent)),
      redirect: both((withAgent) => restricted(withAgent, true)),
      removed: both(removedRule),
      output: both(outputOnly),
      benefit: Promise.all([
        benefit("ipv4", false, [], true),
        benefit("ipv4", true, [], true),
        benefit("ipv6", true, [`--destinations=${DESTINATIONS}`], false),
      ]),
    };
    // Each test awaits its own; keep the others from being unhandled meanwhile.
    for (const p of Object.values(all)) p.catch(() => {});
  }
  return all;
}

kernelTest(
  "source-restricted DNAT (subnet A) + MASQUERADE for subnet B + INVALID drop, server 3 s late: every subnet-B client (fixed ports, exponential backoff) connects and keeps its entry, with and without the agent (IPv4, IPv6)",
  async () => {
    const outcomes = await runs().restricted;
    for (const o of outcomes) console.log(summary(o));
    for (const o of outcomes) checkNoHarm(o);
  },
);

kernelTest(
  "source-restricted REDIRECT (subnet A to a transparent proxy on the node) + MASQUERADE for subnet B, server 3 s late: every subnet-B client connects and keeps its entry, with and without the agent (IPv4, IPv6)",
  async () => {
    const outcomes = await runs().redirect;
    for (const o of outcomes) console.log(summary(o));
    for (const o of outcomes) checkNoHarm(o);
  },
);

kernelTest(
  "DNAT rule removed while its connections stay (ESTABLISHED, TIME_WAIT), VIP now a slow real host: the same client's new connections connect and keep their entries, with and without the agent (IPv4, IPv6)",
  async () => {
    const outcomes = await runs().removed;
    for (const o of outcomes) console.log(summary(o));
    for (const o of outcomes) {
      // The premise: the old DNATed connections were in the table, held open and closed.
      const old = o.early[0]!.filter((e) => isTranslated(e));
      assert.ok(old.some((e) => e.state === "ESTABLISHED"), `${o.label}: ${JSON.stringify(old)}`);
      assert.ok(old.some((e) => e.state === "TIME_WAIT"), `${o.label}: ${JSON.stringify(old)}`);
    }
    for (const o of outcomes) checkNoHarm(o);
  },
);

kernelTest(
  "DNAT only in nat OUTPUT (node processes), forwarded subnet-B clients go to the slow server through MASQUERADE: all connect and keep their entries, with and without the agent (IPv4, IPv6)",
  async () => {
    const outcomes = await runs().output;
    for (const o of outcomes) console.log(summary(o));
    for (const o of outcomes) checkNoHarm(o);
  },
);

kernelTest(
  "the benefit stays: a client stuck before the DNAT rule is freed within 7 s of its first SYN once its own newer connection is NATed (zero config, IPv4), and within 6 s by --destinations alone (IPv6)",
  async () => {
    assert.equal(SLOW_ADDRESSES.ipv6.vip, "2001:db8:cafe::10"); // the item of DESTINATIONS
    const [none, zero, dest] = await runs().benefit;
    const ctx = JSON.stringify(none);
    console.log(`${none!.label}: stuck client ${none!.stuck.event} after ${none!.stuck.ms} ms`);
    assert.equal(none!.stuck.event, "deadline", `without the agent it stays stuck: ${ctx}`);
    assert.equal(none!.newer?.event, "answered", ctx);
    checkFreed(zero!, 7000, /NATed/);
    checkFreed(dest!, 6000, /--destinations/);
  },
);
