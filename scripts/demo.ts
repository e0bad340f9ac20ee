/**
 * `deno task demo`: the story that happens on this kernel, with real clients
 * and real DNAT rules, then the renewal story of older kernels.
 *
 * Part 1 builds two identical little networks (client → node → backend,
 * each in network namespaces of its own; see testbed/stuck_client.ts).
 * On each node the service address is routed nowhere, as before the node
 * has a rule for it. A client connects from a fixed source port; 2 s later
 * the node gets its DNAT rule; 3 s after the start the same client host
 * connects again (ephemeral port).
 * Node A has no agent: its client stays stuck behind the un-NATed SYN_SENT
 * entry. Node B runs conntrack-cleaner with default settings: it reads the
 * node's own NAT rules, finds that the client's next SYN would be translated
 * now, deletes the stuck entry, and the client's next retransmitted SYN
 * connects. Other stuck clients (no rule
 * for them) and background entries stay.
 *
 * Part 2 is the renewal story for kernels before 5.14 (and before the
 * stable backports), where each retransmitted SYN renews the entry; this
 * kernel does not, so those retries are emulated over ctnetlink.
 *
 * Exits 0 when both stories held, 1 otherwise. Always removes its
 * namespaces, also on Ctrl-C or error. Needs root, iproute2, iptables and
 * conntrack-tools.
 *
 * @module
 */
import {
  canRunKernelTests,
  type EntrySpec,
  type Netns,
  startRenewer,
  withNetns,
} from "../testbed/netns.ts";
import {
  abortable,
  ADDRESSES,
  BACKEND_PORT,
  type CtEntry,
  findEntry,
  isTranslated,
  listEntries,
  runStory,
  SERVICE_PORT,
  startAgent,
  type StoryResult,
  STUCK_SPORT,
  withStuckNet,
} from "../testbed/stuck_client.ts";

const say = (s = "") => console.log(s);
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const A = ADDRESSES.ipv4;
/** How long the clients of part 1 wait for their connection. */
const DEADLINE_MS = 10_000;

/** Background entries every node has (inserted with `conntrack -I`). */
function background(): EntrySpec[] {
  const out: EntrySpec[] = [];
  for (let i = 1; i <= 500; i++) {
    const src = `10.244.${i >> 8}.${i & 255}`;
    out.push({
      src,
      dst: "10.96.0.10",
      sport: 30000 + i,
      dport: 443,
      state: "ESTABLISHED",
      timeout: 432000,
    });
    out.push({
      src,
      dst: "10.96.0.11",
      sport: 31000 + i,
      dport: 80,
      state: "TIME_WAIT",
      timeout: 120,
    });
    out.push({ proto: "udp", src, dst: "10.96.0.53", sport: 32000 + i, dport: 53, timeout: 30 });
  }
  return out;
}

/** Clients that start with the stuck one and never get a rule (they must keep their entries). */
const BYSTANDERS = [
  {
    label: `client stuck on ${A.service}:8443 (no rule)`,
    dst: A.service,
    dport: 8443,
    sport: 40001,
  },
  {
    label: `client stuck on ${A.otherService}:80 (no rule)`,
    dst: A.otherService,
    dport: 80,
    sport: 40002,
  },
];

interface NodeOutcome {
  story: StoryResult;
  /** The stuck client's entry just after its first SYN, and at the end. */
  stuckFirst?: CtEntry | undefined;
  stuckLast?: CtEntry | undefined;
  /** Bystander entries just after the first SYN, and at the end (by label). */
  kept: { label: string; before: number; after: number; expected: number }[];
  /** The second client's entry at the end (NATed, replied). */
  secondEntry?: CtEntry | undefined;
  deletions: number;
  agentExit?: number | undefined;
}

async function runNode(withAgent: boolean, stop: AbortSignal): Promise<NodeOutcome> {
  const name = withAgent ? "B" : "A";
  return await withStuckNet(`demo-${name.toLowerCase()}`, { zone: 0 }, async (net) => {
    const bg = background();
    await net.node.insertMany(bg);
    let deletions = 0;
    const agent = withAgent
      ? startAgent(net.node, [], {
        logFormat: "text",
        onLine: (line) => {
          if (line.includes("deleted stale entry")) deletions++;
          say(`  agent(${name}) | ${line}`);
        },
      })
      : undefined;
    try {
      if (agent) await abortable(agent.ready, stop);
      let first: CtEntry[] = [];
      const story = await runStory(net, {
        family: "ipv4",
        deadlineMs: DEADLINE_MS,
        others: BYSTANDERS.map(({ dst, dport, sport }) => ({ dst, dport, sport })),
        signal: stop,
        afterFirstSyn: async () => {
          await new Promise((r) => setTimeout(r, 300));
          first = await net.table();
        },
      });
      const last = await net.table();
      const stuckSpec = (): EntrySpec => ({
        src: A.client,
        dst: A.service,
        sport: STUCK_SPORT,
        dport: SERVICE_PORT,
        state: "SYN_SENT",
        timeout: 120,
      });
      const bystanderSpecs = BYSTANDERS.map((b) => ({
        label: b.label,
        spec: { ...stuckSpec(), dst: b.dst, dport: b.dport, sport: b.sport },
      }));
      const sameId = (spec: EntrySpec) => {
        const f = findEntry(first, spec), l = findEntry(last, spec);
        return f !== undefined && l !== undefined && f.id === l.id ? 1 : 0;
      };
      const kept = [
        ...bystanderSpecs.map(({ label, spec }) => ({
          label,
          before: findEntry(first, spec) ? 1 : 0,
          after: sameId(spec),
          expected: 1,
        })),
        {
          label: "background (ESTABLISHED, TIME_WAIT, UDP)",
          before: bg.filter((s) => findEntry(first, s)).length,
          after: bg.filter((s) => findEntry(last, s)).length,
          expected: bg.length,
        },
      ];
      const secondEntry = last.find((e) =>
        e.src === A.client && e.dst === A.service && e.dport === SERVICE_PORT &&
        e.sport === story.second?.localPort
      );
      return {
        story,
        stuckFirst: findEntry(first, stuckSpec()),
        stuckLast: findEntry(last, stuckSpec()),
        kept,
        secondEntry,
        deletions,
        agentExit: await agent?.stop(),
      };
    } finally {
      await agent?.stop();
    }
  });
}

/** Runs the promises to the end (every namespace removed), then rethrows the first failure. */
async function settleAll<T>(ps: Promise<T>[]): Promise<T[]> {
  const rs = await Promise.allSettled(ps);
  for (const r of rs) if (r.status === "rejected") throw r.reason;
  return rs.map((r) => (r as PromiseFulfilledResult<T>).value);
}

async function partOne(stop: AbortSignal): Promise<boolean> {
  say(`Part 1 — what happens on this kernel (Linux ${Deno.osRelease()}), with real sockets.`);
  say();
  say("Two identical nodes, A and B: client → node → backend, each a network namespace.");
  say(`On each node the service address ${A.service}:${SERVICE_PORT} has no rule yet and goes`);
  say("nowhere, as on a node before kube-proxy synced the Service.");
  say(`  0 s  a client connects from fixed source port ${STUCK_SPORT}: its first SYN makes an`);
  say("       un-NATed SYN_SENT [UNREPLIED] entry on the node; no answer.");
  say(
    `  2 s  the node gets its DNAT rule ${A.service}:${SERVICE_PORT} → ${A.backend}:${BACKEND_PORT}.`,
  );
  say("  3 s  the same client connects again (ephemeral port): NATed now.");
  say("Since Linux 5.14 a retransmitted SYN no longer renews the stuck entry, and it still");
  say("matches every retransmission: nothing is NATed until the entry goes (120 s).");
  say("Node A runs no agent. Node B runs `conntrack-cleaner` with default settings: it asks");
  say("the node's own NAT rules whether each stuck client's next SYN would be translated now.");
  say(`Also on both nodes: ${BYSTANDERS.map((b) => b.label).join(", ")}, and`);
  say("1500 background entries.");
  say();
  const [a, b] = await settleAll([runNode(false, stop), runNode(true, stop)]) as [
    NodeOutcome,
    NodeOutcome,
  ];
  const client = (r: StoryResult["stuck"] | undefined) =>
    r === undefined
      ? "-"
      : r.connected
      ? `connected after ${secs(r.ms)}`
      : `${r.outcome === "deadline" ? "not connected" : r.code} after ${secs(r.ms)}`;
  say();
  say(`${"".padEnd(44)}${"node A: no agent".padEnd(34)}node B: conntrack-cleaner`);
  say(
    `${`client from port ${STUCK_SPORT}, first SYN at 0 s`.padEnd(44)}${
      client(a.story.stuck).padEnd(34)
    }${client(b.story.stuck)}`,
  );
  say(
    `${"client at 3 s".padEnd(44)}${client(a.story.second).padEnd(34)}${client(b.story.second)}`,
  );
  const describe = (e: CtEntry | undefined) =>
    e === undefined
      ? "gone"
      : `${e.state}${e.unreplied ? " [UNREPLIED]" : ""}, ${
        isTranslated(e) ? `NATed to ${e.replySrc}:${e.replySport}` : "un-NATed"
      }`;
  say(
    `${`its entry on the node at the end`.padEnd(44)}${describe(a.stuckLast).padEnd(34)}${
      describe(b.stuckLast)
    }`,
  );
  say();
  let ok = true;
  const check = (good: boolean, what: string) => {
    if (!good) say(`  WRONG: ${what}`);
    ok &&= good;
  };
  // Node A: the stuck client never connected; its entry is the very same un-NATed one.
  check(!a.story.stuck.connected, "node A's stuck client connected without the agent");
  check(
    a.stuckFirst !== undefined && a.stuckLast?.id === a.stuckFirst.id &&
      !isTranslated(a.stuckLast),
    "node A's stuck entry changed",
  );
  // Node B: connected within 7 s of the first SYN, through the NAT.
  check(
    b.story.stuck.connected && b.story.stuck.ms <= 7000,
    "node B's stuck client did not connect within 7 s",
  );
  check(b.stuckLast !== undefined && isTranslated(b.stuckLast), "node B's client is not NATed");
  check(b.deletions === 1, `the agent deleted ${b.deletions} entries, expected 1`);
  check(b.agentExit === 0, `the agent exited ${b.agentExit}`);
  for (const [n, r] of [["A", a], ["B", b]] as const) {
    check(r.story.second?.connected === true, `node ${n}'s client at 3 s did not connect`);
    check(
      r.secondEntry !== undefined && isTranslated(r.secondEntry),
      `node ${n}'s client at 3 s has no NATed entry`,
    );
  }
  say(`Node B, entries that must stay${"".padEnd(20)} before  after  expected`);
  for (const k of b.kept) {
    const good = k.before === k.expected && k.after === k.expected;
    check(good, `${k.label}: ${k.after} of ${k.expected} left`);
    say(
      `${k.label.padEnd(50)} ${String(k.before).padStart(6)} ${String(k.after).padStart(6)} ${
        String(k.expected).padStart(9)
      }  ${good ? "ok" : "WRONG"}`,
    );
  }
  say(
    `(a stuck client's entry counts as kept when it is still the same entry, by conntrack id)`,
  );
  say(`the client at 3 s keeps its NATed entry on node B: ${describe(b.secondEntry)}`);
  say();
  say(
    ok
      ? `Part 1 held: without the agent the client stayed stuck for ${
        secs(a.story.stuck.ms)
      }; with it, it connected ${
        secs(b.story.stuck.ms)
      } after its first SYN. Everything else stayed.`
      : "Part 1 did NOT hold.",
  );
  return ok;
}

/** Part 2: the renewal story of older kernels, retries emulated. */
function renewalTable() {
  const CLIENT = "203.0.113.10", SERVICE = "198.51.100.80";
  const stuck: EntrySpec[] = [40001, 40002, 40003, 40004].map((sport) => ({
    src: CLIENT,
    dst: SERVICE,
    sport,
    dport: 443,
    state: "SYN_SENT",
    timeout: 120,
  }));
  const decaying: EntrySpec[] = [41001, 41002, 41003].map((sport, i) => ({
    src: "203.0.113.20",
    dst: SERVICE,
    sport,
    dport: 443,
    state: "SYN_SENT",
    timeout: 110 - 20 * i,
  }));
  const healthy: EntrySpec[] = [{
    src: CLIENT,
    dst: SERVICE,
    sport: 40100,
    dport: 443,
    state: "ESTABLISHED",
    timeout: 432000,
  }];
  return { CLIENT, SERVICE, stuck, decaying, healthy, background: background() };
}

async function partTwo(stop: AbortSignal): Promise<boolean> {
  say();
  say("Part 2 — older kernels (before 5.14 and its stable backports), retries emulated.");
  say();
  return await withNetns("demo-renewals", async (ns: Netns) => {
    const t = renewalTable();
    const groups: [string, EntrySpec[], boolean][] = [
      ["stuck clients (SYN_SENT, retried every second)", t.stuck, false],
      ["decaying SYN_SENT (no retries)", t.decaying, true],
      ["healthy connection, same two hosts", t.healthy, true],
      ["background (ESTABLISHED, TIME_WAIT, UDP)", t.background, true],
    ];
    await ns.insertMany(groups.flatMap(([, specs]) => specs));
    say(`Namespace ${ns.name}: ${await ns.count()} conntrack entries.`);
    say(`Clients ${t.CLIENT} keep sending SYNs from fixed source ports to ${t.SERVICE}:443.`);
    say("There each retransmitted SYN renews the un-NATed SYN_SENT entry; this kernel does not,");
    say("so the demo renews them itself, once a second, over ctnetlink — the same timeout");
    say("refresh `conntrack -U -t 120` does. No destination is NATed here, so only the renewal");
    say("rule can act.");
    say();
    const counts = (entries: CtEntry[]) =>
      groups.map(([, specs]) => specs.filter((s) => findEntry(entries, s)).length);
    const beforeCounts = counts(await listEntries(ns));
    const renewer = await startRenewer(ns, t.stuck, 1000, { timeoutSec: 120 });
    const agent = startAgent(ns, [], {
      logFormat: "text",
      env: { CONNTRACK_TABLE_DUMP_FREQUENCY: "1s", CONNECTION_RENEWAL_THRESHOLD: "3" },
      onLine: (line) => say(`  agent | ${line}`),
    });
    say(
      "Running: conntrack-cleaner --interval=1s --threshold=3 (deletes after more than 3 renewals)",
    );
    let goneAt: number | undefined;
    let after: CtEntry[] = [];
    try {
      await abortable(agent.ready, stop);
      const t0 = performance.now();
      while (performance.now() - t0 < 30_000) {
        stop.throwIfAborted();
        const now = await listEntries(ns);
        if (t.stuck.every((s) => !findEntry(now, s))) {
          goneAt = performance.now() - t0;
          break;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      if (goneAt !== undefined) await abortable(new Promise((r) => setTimeout(r, 2000)), stop);
      after = await listEntries(ns);
    } finally {
      await renewer.stop();
    }
    const code = await agent.stop();
    const afterCounts = counts(after);
    say();
    say(`${"".padEnd(50)} before  after  expected`);
    let ok = code === 0;
    groups.forEach(([label, specs, keep], i) => {
      const want = keep ? specs.length : 0;
      const good = afterCounts[i] === want && beforeCounts[i] === specs.length;
      ok &&= good;
      say(
        `${label.padEnd(50)} ${String(beforeCounts[i]).padStart(6)} ${
          String(afterCounts[i]).padStart(6)
        } ${String(want).padStart(9)}  ${good ? "ok" : "WRONG"}`,
      );
    });
    say();
    say(
      ok
        ? `Part 2 held: the renewed entries were deleted after ${
          secs(goneAt!)
        }; their next SYN would get a fresh, NATed entry. Everything else stayed.`
        : `Part 2 did NOT hold (agent exit code ${code}).`,
    );
    return ok;
  });
}

async function demo(stop: AbortSignal): Promise<boolean> {
  const skip = await canRunKernelTests();
  if (skip !== undefined) {
    console.error(
      `demo: cannot run here: ${skip}. It needs root, iproute2, iptables and conntrack-tools.`,
    );
    return false;
  }
  const one = await partOne(stop);
  const two = await partTwo(stop);
  say();
  say(one && two ? "The story held." : "The story did NOT hold.");
  return one && two;
}

if (import.meta.main) {
  const stop = new AbortController();
  const onInt = () => {
    if (!stop.signal.aborted) say("Interrupted; removing the namespaces.");
    stop.abort();
  };
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onInt);
  let ok = false;
  try {
    ok = await demo(stop.signal);
  } catch (e) {
    if (!stop.signal.aborted) console.error(`demo failed: ${e instanceof Error ? e.stack : e}`);
  }
  Deno.exit(ok ? 0 : 1);
}
