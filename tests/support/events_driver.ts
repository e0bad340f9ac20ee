/**
 * Test driver for the events source: runs inside a network namespace (as
 * `ip netns exec NS deno run -A tests/support/events_driver.ts SCENARIO`,
 * which {@linkcode runEventsDriver} does), and prints one JSON result.
 *
 * - `filter`: two event sockets, one with the kernel filter and one
 *   without (same groups), then a set of entries created with `conntrack -R`;
 *   reports what each socket received.
 * - `ended`: an event socket with the `ended` filter next to an unfiltered
 *   one in the new, update and destroy groups; a SYN_SENT and an
 *   ESTABLISHED entry created and deleted, and one real TCP connection over
 *   loopback; reports each socket's events as `kind state src`.
 * - `steady`: the source's first poll (a dump), then candidates created,
 *   renewed and deleted between polls; reports each poll.
 * - `overflow`: the source with a tiny event receive buffer; a burst of
 *   SYN_SENT entries between two polls; reports the second poll and counters.
 * - `off`: `nf_conntrack_events` switched to 0 and back between polls, with
 *   new candidates each time; reports each poll and the counters.
 * - `stall`: the source given an event socket in no group (a stream that
 *   hears nothing), the real dump and the namespace's real entry count;
 *   candidates created, then a poll after the quiet time; reports it.
 *
 * @module
 */
import { tupleKey } from "../../lib/model/tuple.ts";
import { entryTuple } from "../../lib/netlink/conntrack_entry.ts";
import { classifyEvent, openEventSocket } from "../../lib/netlink/events.ts";
import { parseMessages } from "../../lib/netlink/message.ts";
import { NetlinkSocket, type NetlinkTransport } from "../../lib/netlink/socket.ts";
import {
  IPCTNL_MSG_CT_DELETE,
  NFNLGRP_CONNTRACK_DESTROY,
  NFNLGRP_CONNTRACK_NEW,
  NFNLGRP_CONNTRACK_UPDATE,
} from "../../lib/netlink/ctnetlink.ts";
import { NLM_F_CREATE } from "../../lib/netlink/message.ts";
import { NetlinkSource } from "../../lib/sources/netlink.ts";
import { NetlinkEventsSource } from "../../lib/sources/netlink_events.ts";
import { type EntrySpec, insertArgs, type Netns, tupleArgs } from "../../testbed/netns.ts";

/** Entries of the `filter` scenario, and which the filter must pass. */
export const FILTER_ENTRIES: { spec: EntrySpec; passes: boolean }[] = [
  {
    spec: {
      src: "10.20.0.1",
      dst: "10.20.0.2",
      sport: 41001,
      dport: 80,
      state: "SYN_SENT",
      timeout: 120,
    },
    passes: true,
  },
  {
    spec: {
      src: "2001:db8::1",
      dst: "2001:db8::2",
      sport: 41002,
      dport: 443,
      state: "SYN_SENT",
      timeout: 120,
    },
    passes: true,
  },
  {
    spec: {
      src: "10.20.0.1",
      dst: "10.20.0.2",
      sport: 41003,
      dport: 80,
      state: "SYN_SENT",
      zone: 5,
      timeout: 120,
    },
    passes: true,
  },
  {
    spec: {
      src: "10.20.0.1",
      dst: "10.20.0.2",
      sport: 41004,
      dport: 80,
      state: "ESTABLISHED",
      timeout: 300,
    },
    passes: false,
  },
  {
    spec: {
      src: "10.20.0.1",
      dst: "10.20.0.2",
      sport: 41005,
      dport: 80,
      state: "TIME_WAIT",
      timeout: 100,
    },
    passes: false,
  },
  {
    spec: {
      proto: "udp",
      src: "10.20.0.1",
      dst: "10.20.0.2",
      sport: 41006,
      dport: 53,
      timeout: 30,
    },
    passes: false,
  },
  // A translated TCP entry: evidence.
  {
    spec: {
      src: "10.20.0.3",
      dst: "10.96.0.10",
      sport: 41007,
      dport: 80,
      state: "ESTABLISHED",
      timeout: 300,
      dnat: "10.244.0.5:8080",
    },
    passes: true,
  },
  // A translated UDP entry: not TCP evidence.
  {
    spec: {
      proto: "udp",
      src: "10.20.0.3",
      dst: "10.96.0.10",
      sport: 41008,
      dport: 53,
      timeout: 30,
      dnat: "10.244.0.5:53",
    },
    passes: false,
  },
];

/** `count` SYN_SENT specs. */
export function burst(count: number, base = 0): EntrySpec[] {
  return Array.from({ length: count }, (_, k) => {
    const i = base + k;
    return {
      src: `10.30.${(i >> 8) & 255}.${i & 255}`,
      dst: "10.31.0.1",
      sport: 20000 + (i % 40000),
      dport: 443,
      state: "SYN_SENT" as const,
      timeout: 120,
    };
  });
}

async function conntrack(args: string[], stdin?: string): Promise<void> {
  const p = new Deno.Command("conntrack", {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await p.output();
  if (!out.success) {
    throw new Error(`conntrack ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

const insert = (specs: EntrySpec[]) =>
  conntrack(["-R", "-"], specs.map((s) => insertArgs(s).join(" ")).join("\n") + "\n");

function drainKeys(t: NetlinkTransport): string[] {
  const buf = new Uint8Array(1 << 16);
  const keys: string[] = [];
  for (let n = t.tryRecv(buf); n !== null; n = t.tryRecv(buf)) {
    for (const m of parseMessages(buf.subarray(0, n)).messages) {
      const ev = classifyEvent(m);
      keys.push(ev === undefined ? `type ${m.type}` : tupleKey(entryTuple(ev.entry)));
    }
  }
  return keys;
}

async function filterScenario() {
  const filtered = openEventSocket();
  const all = NetlinkSocket.open({ groups: [NFNLGRP_CONNTRACK_NEW] });
  await insert(FILTER_ENTRIES.map((e) => e.spec));
  await new Promise((r) => setTimeout(r, 200));
  const out = { filtered: drainKeys(filtered), all: drainKeys(all) };
  filtered.close();
  all.close();
  return out;
}

function drainEvents(t: NetlinkTransport): string[] {
  const buf = new Uint8Array(1 << 16);
  const out: string[] = [];
  for (let n = t.tryRecv(buf); n !== null; n = t.tryRecv(buf)) {
    for (const m of parseMessages(buf.subarray(0, n)).messages) {
      const ev = classifyEvent(m);
      if (ev === undefined) continue;
      const kind = (m.type & 0xff) === IPCTNL_MSG_CT_DELETE
        ? "destroy"
        : (m.flags & NLM_F_CREATE) !== 0
        ? "new"
        : "update";
      const src = entryTuple(ev.entry).src;
      out.push(`${kind} ${kind === "destroy" ? "-" : ev.entry.tcpState} ${src}`);
    }
  }
  return out;
}

async function endedScenario() {
  const filtered = openEventSocket({ ended: true, evidence: false });
  const all = NetlinkSocket.open({
    groups: [NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_UPDATE, NFNLGRP_CONNTRACK_DESTROY],
  });
  const syn = burst(1, 100)[0]!, est = FILTER_ENTRIES[3]!.spec;
  await insert([syn, est]);
  for (const s of [syn, est]) await conntrack(["-D", ...tupleArgs(s)]);
  // Conntrack tracks traffic only where a rule needs it (kernels register its hooks on demand).
  const nft = new Deno.Command("nft", {
    args: [
      "add table ip ev; add chain ip ev out { type filter hook output priority 0; ct state new counter; }",
    ],
  });
  const made = await nft.output();
  if (!made.success) throw new Error(`nft: ${new TextDecoder().decode(made.stderr)}`);
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = server.accept();
  const client = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  (await accepted).close();
  client.close();
  server.close();
  await new Promise((r) => setTimeout(r, 200));
  const out = { filtered: drainEvents(filtered), all: drainEvents(all) };
  filtered.close();
  all.close();
  return out;
}

function summary(s: Awaited<ReturnType<NetlinkEventsSource["snapshot"]>>) {
  return {
    candidates: s.candidates.map((c) => ({ key: tupleKey(c), timeout: c.timeout, id: c.id })),
    scanned: s.scanned,
  };
}

async function steadyScenario() {
  const source = new NetlinkEventsSource({ dump: new NetlinkSource() });
  const polls = [];
  await insert(burst(3, 0));
  polls.push(summary(await source.snapshot())); // the start dump
  await insert(burst(2, 3)); // heard as events
  polls.push(summary(await source.snapshot()));
  // Renew one (a retransmitted SYN on an old kernel), delete another.
  const [a, b] = burst(2, 3);
  await conntrack([
    "-U",
    "-p",
    "tcp",
    "-s",
    a!.src,
    "-d",
    a!.dst,
    "--sport",
    `${a!.sport}`,
    "--dport",
    "443",
    "-t",
    "60",
  ]);
  await conntrack([
    "-D",
    "-p",
    "tcp",
    "-s",
    b!.src,
    "-d",
    b!.dst,
    "--sport",
    `${b!.sport}`,
    "--dport",
    "443",
  ]);
  polls.push(summary(await source.snapshot()));
  const stats = structuredClone(source.stats);
  source.close();
  return { polls, stats };
}

async function overflowScenario(count: number) {
  const source = new NetlinkEventsSource({ dump: new NetlinkSource(), recvBufferBytes: 4096 });
  const first = summary(await source.snapshot());
  await insert(burst(count));
  const second = summary(await source.snapshot());
  const afterSecond = structuredClone(source.stats);
  const third = summary(await source.snapshot());
  const stats = structuredClone(source.stats);
  source.close();
  return { first, second, afterSecond, third, stats };
}

const EVENTS_SYSCTL = "/proc/sys/net/netfilter/nf_conntrack_events";

async function offScenario() {
  const was = (await Deno.readTextFile(EVENTS_SYSCTL)).trim();
  const switches: boolean[] = [];
  const source = new NetlinkEventsSource({
    dump: new NetlinkSource(),
    onEventsSwitch: (on) => switches.push(on),
  });
  const polls = [];
  polls.push(summary(await source.snapshot())); // the start dump
  await Deno.writeTextFile(EVENTS_SYSCTL, "0");
  await insert(burst(2, 0)); // no event: the kernel sends none
  polls.push(summary(await source.snapshot()));
  await Deno.writeTextFile(EVENTS_SYSCTL, was);
  await insert(burst(1, 2)); // made before the source saw events on again
  polls.push(summary(await source.snapshot()));
  await insert(burst(1, 3)); // heard
  polls.push(summary(await source.snapshot()));
  const stats = structuredClone(source.stats);
  source.close();
  return { polls, stats, switches };
}

async function stallScenario() {
  const missed: number[] = [];
  const source = new NetlinkEventsSource({
    dump: new NetlinkSource(),
    openEvents: () => NetlinkSocket.open(), // in no group: hears nothing
    quietMs: 200,
    onMissed: (n) => missed.push(n),
  });
  await source.snapshot(); // the start dump
  await source.snapshot(); // the entry count at the start of the quiet spell
  await insert(burst(3));
  await new Promise((r) => setTimeout(r, 300));
  const poll = summary(await source.snapshot());
  const stats = structuredClone(source.stats);
  source.close();
  return { poll, stats, missed };
}

/** Runs `scenario` inside `ns` and resolves with its JSON result. */
export async function runEventsDriver(ns: Netns, scenario: string): Promise<unknown> {
  const r = await ns.exec([Deno.execPath(), "run", "-A", import.meta.filename!, scenario]);
  if (r.code !== 0) throw new Error(`events driver in ${ns.name} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

if (import.meta.main) {
  const [scenario, arg] = Deno.args;
  const result = scenario === "filter"
    ? await filterScenario()
    : scenario === "ended"
    ? await endedScenario()
    : scenario === "steady"
    ? await steadyScenario()
    : scenario === "off"
    ? await offScenario()
    : scenario === "stall"
    ? await stallScenario()
    : await overflowScenario(Number(arg ?? 2000));
  console.log(JSON.stringify(result));
}
