/**
 * Issue 7 end to end, with real TCP sockets and real DNAT rules in three
 * namespaces (see testbed/stuck_client.ts): a client connects from a
 * fixed source port to a service address before the node has a rule for it,
 * the rule arrives 2 s later, and the client's retransmitted SYNs keep
 * matching the un-NATed SYN_SENT entry on the node.
 *
 * The agents here run with `--nat-rules=off`: these stories are about the
 * providers (table evidence, `--destinations`), which decide only where the
 * node's NAT rules are not read or unreadable. With the rules read, they
 * decide (tests/e2e/nat_rules_e2e_test.ts).
 *
 * @module
 */
import assert from "node:assert/strict";
import { kernelTest } from "../support/machine.ts";
import { type EntrySpec, startRenewer, withNetns } from "../../testbed/netns.ts";
import {
  ADDRESSES,
  BACKEND_PORT,
  type CtEntry,
  findEntry,
  isTranslated,
  listEntries,
  runStory,
  SERVICE_PORT,
  startAgent,
  STUCK_SPORT,
  type StuckNet,
  withStuckNet,
} from "../../testbed/stuck_client.ts";

/** The providers decide only where the NAT rules are not read. */
const NO_NAT_RULES = "--nat-rules=off";

/** The stuck client's tuple in zone 0. */
function stuckTuple(family: "ipv4" | "ipv6") {
  const a = ADDRESSES[family];
  return { src: a.client, sport: STUCK_SPORT, dst: a.service, dport: SERVICE_PORT, zone: 0 };
}

async function withoutAgent(family: "ipv4" | "ipv6", net: StuckNet) {
  let first: CtEntry | undefined;
  const r = await runStory(net, {
    family,
    deadlineMs: 12_000,
    afterFirstSyn: async () => {
      await new Promise((r) => setTimeout(r, 300));
      first = findEntry(await net.table(), stuckTuple(family));
    },
  });
  const last = findEntry(await net.table(), stuckTuple(family));
  return { r, first, last };
}

kernelTest(
  "without the agent, a client retrying from a fixed port stays stuck behind its un-NATed SYN_SENT entry for 12 s while a client at 3 s connects at once (IPv4, IPv6)",
  async () => {
    const results = await Promise.all(
      (["ipv4", "ipv6"] as const).map((family) =>
        withStuckNet(`u7-none-${family.slice(-1)}`, { zone: 0 }, async (net) => ({
          family,
          accepted: net.accepted,
          ...await withoutAgent(family, net),
        }))
      ),
    );
    for (const { family, r, first, last, accepted } of results) {
      const a = ADDRESSES[family];
      const ctx = `${family}: ${JSON.stringify({ r, first, last, accepted })}`;
      console.log(
        `${family} without the agent: stuck client ${r.stuck.outcome} after ${r.stuck.ms} ms; ` +
          `second client connected in ${r.second?.ms} ms`,
      );
      assert.equal(r.stuck.outcome, "deadline", `the stuck client must not connect: ${ctx}`);
      assert.ok(r.stuck.ms >= 12_000, ctx);
      assert.ok(r.second?.connected && r.second.ms < 1000, `the second client connects: ${ctx}`);
      assert.ok(r.dnatMs >= 2000 && r.dnatMs < 2500, ctx);
      // The first SYN made an un-NATed SYN_SENT entry, and it is the same
      // entry (id) 12 s later: retransmissions matched it and did not renew it.
      assert.ok(first && first.state === "SYN_SENT" && first.unreplied, ctx);
      assert.ok(!isTranslated(first), ctx);
      assert.ok(
        last && last.id === first.id && last.state === "SYN_SENT" && !isTranslated(last),
        ctx,
      );
      assert.ok(last.timeout <= 120 - 11, `not renewed by the retransmissions: ${ctx}`);
      // The backend only ever saw the second client, through the DNAT rule.
      assert.equal(accepted.length, 1, ctx);
      assert.equal(accepted[0]![0], a.client, ctx);
      assert.notEqual(accepted[0]![1], STUCK_SPORT, ctx);
    }
  },
);

/** A bystander made with `conntrack -I` on the node before the story starts. */
interface Inserted {
  label: string;
  spec: EntrySpec;
  /** `true`: must be the same entry (id) at the end; `false`: the agent must delete it. */
  kept: boolean;
  /** For a deleted one: the deletion's expected `reason`. */
  reason?: string;
}

interface AgentCase {
  family: "ipv4" | "ipv6";
  zone: number;
  args: string[];
  /** When the same client connects again (its newer connection: the evidence), or null for none. */
  secondClientAtMs: number | null;
  /** Real clients that start with the stuck one and never get a rule: they must keep their entry. */
  others: { label: string; dst: string; dport: number; sport: number }[];
  inserted: Inserted[];
  /** The stuck client connects at most this long after its first SYN. */
  limitMs: number;
  /** The `reason` of the stuck entry's deletion. */
  reason: string;
}

const old = (spec: Omit<EntrySpec, "state" | "timeout">): EntrySpec => ({
  ...spec,
  state: "SYN_SENT",
  // 20 s old by the kernel's clock (120 s SYN_SENT timeout minus what is left): old enough.
  timeout: 100,
});

async function runWithAgent(name: string, c: AgentCase) {
  return await withStuckNet(name, { zone: c.zone }, async (net) => {
    await net.node.insertMany(c.inserted.map((i) => i.spec));
    const inserted = await net.table();
    const agent = startAgent(net.node, [NO_NAT_RULES, ...c.args]);
    try {
      await agent.ready;
      let first: CtEntry[] = [];
      const story = await runStory(net, {
        family: c.family,
        deadlineMs: 9000,
        secondClientAtMs: c.secondClientAtMs,
        others: c.others.map(({ dst, dport, sport }) => ({ dst, dport, sport })),
        afterFirstSyn: async () => {
          await new Promise((r) => setTimeout(r, 300));
          first = await net.table();
        },
      });
      const last = await net.table();
      const exit = await agent.stop();
      return { story, inserted, first, last, exit, logs: agent.logs, accepted: net.accepted };
    } finally {
      await agent.stop();
    }
  });
}

function checkAgentCase(label: string, c: AgentCase, r: Awaited<ReturnType<typeof runWithAgent>>) {
  const a = ADDRESSES[c.family];
  const ctx = `${label}: ${JSON.stringify({ story: r.story, accepted: r.accepted })}\n` +
    r.logs.map((l) => JSON.stringify(l)).join("\n");
  const s = r.story.stuck;
  const stuckDeletion = r.logs.find((l) =>
    l.msg === "deleted stale entry" && l.sport === STUCK_SPORT && l.dport === SERVICE_PORT
  );
  const deletedAt = Date.parse(String(stuckDeletion?.time)) - s.startedAt;
  console.log(
    `${label}: the stuck client ${s.outcome} ${s.ms} ms after its first SYN` +
      ` (its entry deleted at ${deletedAt} ms)` +
      (r.story.second ? `; the client at 3 s connected in ${r.story.second.ms} ms` : ""),
  );
  assert.equal(r.exit, 0, ctx);
  assert.deepEqual(r.logs.filter((l) => l.level === "error" || l.stderr || l.unparsed), [], ctx);
  // Default settings: these stories run with the events source.
  const start = r.logs.find((l) => l.msg === "conntrack-cleaner starting");
  assert.equal(start?.source, "events", ctx);
  // The stuck client's first SYN made an un-NATed SYN_SENT entry, in the node's zone.
  const spec = (sport: number, dst = a.service, dport = SERVICE_PORT, zone = c.zone) => ({
    src: a.client,
    dst,
    sport,
    dport,
    zone,
  });
  const stuckFirst = findEntry(r.first, spec(STUCK_SPORT));
  assert.ok(stuckFirst && stuckFirst.state === "SYN_SENT" && !isTranslated(stuckFirst), ctx);
  assert.equal(stuckFirst.zone, c.zone, ctx);
  // It connected in time, through the NAT, from its fixed port.
  assert.ok(s.connected && s.ms <= c.limitMs, `connected within ${c.limitMs} ms: ${ctx}`);
  const stuckLast = findEntry(r.last, spec(STUCK_SPORT));
  assert.ok(stuckLast && isTranslated(stuckLast) && !stuckLast.unreplied, ctx);
  assert.equal(stuckLast.replySrc, a.backend, ctx);
  assert.ok(r.accepted.some(([h, p]) => h === a.client && p === STUCK_SPORT), ctx);
  if (c.secondClientAtMs !== null) {
    assert.ok(r.story.second?.connected && r.story.second.ms < 1000, ctx);
  }
  // Exactly the expected deletions, each logged with its rule and reason.
  const deleted = r.logs.filter((l) => l.msg === "deleted stale entry");
  const expected = [
    { ...spec(STUCK_SPORT), reason: c.reason },
    ...c.inserted.filter((i) => !i.kept).map((i) => ({
      src: i.spec.src,
      dst: i.spec.dst,
      sport: i.spec.sport,
      dport: i.spec.dport,
      zone: i.spec.zone ?? 0,
      reason: i.reason,
    })),
  ];
  const got = deleted.map((d) => ({
    src: d.src,
    dst: d.dst,
    sport: d.sport,
    dport: d.dport,
    zone: d.zone,
    // The newer connection's port is ephemeral.
    reason: String(d.reason).replace(/\(sport \d+\)/, "(sport N)"),
  }));
  const key = (x: { sport: unknown; zone: unknown }) => `${x.sport}/${x.zone}`;
  assert.deepEqual(
    got.sort((x, y) => key(x).localeCompare(key(y))),
    expected.sort((x, y) => key(x).localeCompare(key(y))),
    ctx,
  );
  for (const d of deleted) {
    assert.equal(d.rule, "unnated", ctx);
    assert.equal(d.family, c.family, ctx);
  }
  // Bystanders: the very same entries (conntrack id) at the end.
  for (const o of c.others) {
    const f = findEntry(r.first, spec(o.sport, o.dst, o.dport));
    const l = findEntry(r.last, spec(o.sport, o.dst, o.dport));
    assert.ok(f && !isTranslated(f) && f.state === "SYN_SENT", `${o.label} made its entry: ${ctx}`);
    assert.equal(l?.id, f.id, `${o.label} kept its entry: ${ctx}`);
  }
  const othersDone = r.story.others;
  assert.ok(othersDone.every((o) => o.outcome === "deadline"), `no rule, no answer: ${ctx}`);
  for (const i of c.inserted) {
    const f = findEntry(r.inserted, i.spec), l = findEntry(r.last, i.spec);
    assert.ok(f, `${i.label} was inserted: ${ctx}`);
    if (i.kept) assert.equal(l?.id, f.id, `${i.label} must stay: ${ctx}`);
    else assert.equal(l, undefined, `${i.label} must go: ${ctx}`);
  }
}

const V4 = ADDRESSES.ipv4, V6 = ADDRESSES.ipv6;

kernelTest(
  "main.ts with default settings frees the fixed-port client within 7 s of its first SYN once its own newer connection (at 3 s) is NATed, and keeps every bystander (IPv4)",
  async () => {
    const c: AgentCase = {
      family: "ipv4",
      zone: 0,
      args: [],
      secondClientAtMs: 3000,
      others: [
        { label: "same address, other port", dst: V4.service, dport: 8443, sport: 40001 },
        { label: "other address", dst: V4.otherService, dport: SERVICE_PORT, sport: 40002 },
      ],
      inserted: [
        {
          label: "un-NATed SYN_SENT to the same address and port in another zone",
          spec: old({
            src: V4.client,
            dst: V4.service,
            sport: 40003,
            dport: SERVICE_PORT,
            zone: 9,
          }),
          kept: true,
        },
        {
          label: "replied, un-NATed, to the same address and port",
          spec: {
            src: V4.client,
            dst: V4.service,
            sport: 40004,
            dport: SERVICE_PORT,
            state: "ESTABLISHED",
            timeout: 300,
          },
          kept: true,
        },
      ],
      limitMs: 7000,
      reason:
        `this client's newer connection (sport N) to it was translated to ${V4.backend}:${BACKEND_PORT}`,
    };
    checkAgentCase("zero-config IPv4", c, await runWithAgent("u7-zero-4", c));
  },
);

kernelTest(
  "main.ts --destinations '[2001:db8:cafe::10/128]:80' frees the fixed-port client within 6 s of its first SYN with no other client, and keeps port 8443 of the same address (IPv6)",
  async () => {
    const item = "[2001:db8:cafe::10/128]:80";
    assert.equal(V6.service, "2001:db8:cafe::10");
    const c: AgentCase = {
      family: "ipv6",
      zone: 0,
      args: [`--destinations=${item}`],
      secondClientAtMs: null,
      others: [
        { label: "same address, port 8443", dst: V6.service, dport: 8443, sport: 40001 },
        { label: "other address", dst: V6.otherService, dport: SERVICE_PORT, sport: 40002 },
      ],
      inserted: [
        {
          label: "replied, un-NATed, inside --destinations",
          spec: {
            src: V6.client,
            dst: V6.service,
            sport: 40004,
            dport: SERVICE_PORT,
            state: "ESTABLISHED",
            timeout: 300,
          },
          kept: true,
        },
        {
          label: "un-NATed SYN_SENT outside --destinations (other address, port 443)",
          spec: old({ src: V6.client, dst: V6.otherService, sport: 40005, dport: 443 }),
          kept: true,
        },
        {
          label:
            "un-NATed SYN_SENT inside --destinations, in zone 9: a configured item holds in every zone",
          spec: old({
            src: V6.client,
            dst: V6.service,
            sport: 40003,
            dport: SERVICE_PORT,
            zone: 9,
          }),
          kept: false,
          reason: `destination inside --destinations item ${item}`,
        },
      ],
      limitMs: 6000,
      reason: `destination inside --destinations item ${item}`,
    };
    checkAgentCase("--destinations IPv6", c, await runWithAgent("u7-dest-6", c));
  },
);

kernelTest(
  "main.ts with default settings frees the fixed-port client in zone 7 on its newer connection in zone 7, and keeps the same tuple in zones 0 and 9 (IPv6)",
  async () => {
    const c: AgentCase = {
      family: "ipv6",
      zone: 7,
      args: [],
      secondClientAtMs: 3000,
      others: [
        { label: "same address, other port", dst: V6.service, dport: 8443, sport: 40001 },
      ],
      inserted: [0, 9].map((zone) => ({
        label: `un-NATed SYN_SENT to the same address and port in zone ${zone}`,
        spec: old({ src: V6.client, dst: V6.service, sport: 40003, dport: SERVICE_PORT, zone }),
        kept: true,
      })),
      limitMs: 7000,
      reason:
        `this client's newer connection (sport N) to it was translated to [${V6.backend}]:${BACKEND_PORT}`,
    };
    checkAgentCase("zero-config IPv6, zone 7", c, await runWithAgent("u7-zone-6", c));
  },
);

/** The renewal scoping story in one namespace; see the test below. */
async function scopedRenewals(name: string, args: string[], inside: EntrySpec[]) {
  return await withNetns(name, async (ns) => {
    const syn = (dst: string, sport: number): EntrySpec => ({
      src: V4.client,
      dst,
      sport,
      dport: 443,
      state: "SYN_SENT",
      timeout: 120,
    });
    // Outside --destinations, renewed every second like the retries of an old kernel.
    const outside = [41001, 41002, 41003].map((p) => syn(V4.service, p));
    const renewedInside = [syn(V4.otherService, 42001), syn(V4.otherService, 42002)];
    await ns.insertMany([...outside, ...renewedInside, ...inside]);
    const before = await listEntries(ns);
    const renewer = await startRenewer(ns, [...outside, ...renewedInside], 1000, {
      timeoutSec: 120,
    });
    const agent = startAgent(ns, [NO_NAT_RULES, ...args]);
    const mustGo = [...renewedInside, ...inside];
    let goneMs: number | undefined;
    try {
      await agent.ready;
      const t0 = performance.now();
      while (performance.now() - t0 < 12_000) {
        const now = await listEntries(ns);
        if (mustGo.every((s) => !findEntry(now, s))) {
          goneMs = performance.now() - t0;
          break;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      // Two more polls: nothing else may go.
      await new Promise((r) => setTimeout(r, 2000));
    } finally {
      await renewer.stop();
    }
    const after = await listEntries(ns);
    const exit = await agent.stop();
    return { outside, renewedInside, before, after, exit, goneMs, logs: agent.logs, renewer };
  });
}

kernelTest(
  "main.ts --destinations scoped to another address never deletes renewed entries outside it, and deletes renewed and un-NATed SYN_SENT entries inside it",
  async () => {
    const item = `${V4.otherService}/32`;
    const insideOld = [43001, 43002].map((sport): EntrySpec =>
      old({ src: V4.client, dst: V4.otherService, sport, dport: 443 })
    );
    // Side by side: the renewal rule alone, and both rules (the default).
    const [renewalsOnly, both] = await Promise.all([
      scopedRenewals(
        "u7-scope-r",
        [`--destinations=${V4.otherService}`, "--unnated-after=off"],
        [],
      ),
      scopedRenewals("u7-scope-b", [`--destinations=${V4.otherService}`], insideOld),
    ]);
    for (
      const [label, r, unnated] of [["renewals only", renewalsOnly, []], [
        "both rules",
        both,
        insideOld,
      ]] as const
    ) {
      const ctx = `${label}: ${r.logs.map((l) => JSON.stringify(l)).join("\n")}`;
      console.log(
        `${label}: the entries inside --destinations were gone after ${
          ((r.goneMs ?? NaN) / 1000).toFixed(1)
        } s`,
      );
      assert.equal(r.exit, 0, ctx);
      assert.deepEqual(
        r.logs.filter((l) => l.level === "error" || l.stderr || l.unparsed),
        [],
        ctx,
      );
      const start = r.logs.find((l) => l.msg === "conntrack-cleaner starting");
      assert.equal(start?.destinations, item, ctx);
      // Outside: still the same entries, renewed in every round, never logged.
      for (const s of r.outside) {
        const b = findEntry(r.before, s), a = findEntry(r.after, s);
        assert.ok(b && a && a.id === b.id, `renewed outside must stay: ${ctx}`);
      }
      assert.deepEqual(r.renewer.absent.filter((s) => s.dst === V4.service), [], ctx);
      const deleted = r.logs.filter((l) => l.msg === "deleted stale entry");
      for (const d of deleted) {
        console.log(`  deleted sport ${d.sport}: rule ${d.rule} (${d.reason})`);
      }
      assert.ok(deleted.every((d) => d.dst === V4.otherService), ctx);
      // Inside: all gone, each logged once, with the item as the reason for the un-NATed rule.
      assert.ok(r.goneMs !== undefined, `inside entries left: ${ctx}`);
      const inside = [...r.renewedInside, ...unnated];
      assert.deepEqual(
        deleted.map((d) => d.sport).sort(),
        inside.map((s) => s.sport).sort(),
        ctx,
      );
      for (const d of deleted) {
        if (label === "renewals only") assert.equal(d.rule, "renewals", ctx);
        if (d.rule === "unnated") {
          assert.equal(d.reason, `destination inside --destinations item ${item}`, ctx);
        }
      }
      for (const s of unnated) {
        assert.equal(deleted.find((d) => d.sport === s.sport)?.rule, "unnated", ctx);
      }
    }
  },
);
