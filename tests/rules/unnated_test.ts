import assert from "node:assert/strict";
import fc from "fast-check";
import { Agent } from "../../lib/agent/agent.ts";
import { parseDestinations } from "../../lib/model/destination_set.ts";
import type { Candidate, Snapshot } from "../../lib/model/snapshot.ts";
import { clientKey, tupleKey } from "../../lib/model/tuple.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { RenewalTracker } from "../../lib/rules/tracker.ts";
import { RenewalRule } from "../../lib/rules/renewals.ts";
import { UnnatedRule } from "../../lib/rules/unnated.ts";
import type { NatProvider } from "../../lib/rules/providers/provider.ts";
import { DestinationsProvider } from "../../lib/rules/providers/destinations.ts";
import { TableEvidenceProvider } from "../../lib/rules/providers/table_evidence.ts";
import type { NatVerdict } from "../../lib/nat/verdicts.ts";
import { type FakeEntry, FakeTable } from "../support/fake_table.ts";

const SYN_SENT_S = 120;

/** A client stuck behind an un-NATed SYN_SENT entry to 198.51.100.80:80. */
function stuckEntry(o: Partial<FakeEntry> & { createdAt: number }): FakeEntry {
  return {
    family: "ipv4",
    src: "192.0.2.7",
    sport: 40000,
    dst: "198.51.100.80",
    dport: 80,
    zone: 0,
    unreplied: true,
    translated: undefined,
    ...o,
  };
}

/** A connection of `of`'s client (or another, by `o`) to its destination, translated, replied. */
function natedEntry(
  of: FakeEntry,
  o: Partial<FakeEntry> & { createdAt: number; sport: number },
): FakeEntry {
  const { id: _, ...rest } = of;
  return { ...rest, unreplied: false, translated: { addr: "10.244.0.5", port: 8080 }, ...o };
}

const silent = createLogger({ level: "error", write: () => {} });

function agentFor(
  table: FakeTable,
  o: {
    afterMs?: number;
    destinations?: string;
    synSent?: number | undefined;
    log?: (line: Record<string, unknown>) => void;
  } = {},
) {
  const destinations = o.destinations === undefined
    ? undefined
    : parseDestinations(o.destinations) as Exclude<ReturnType<typeof parseDestinations>, string>;
  const deleter = table;
  const tracker = new RenewalTracker({ threshold: 1000 });
  const providers: NatProvider[] = destinations
    ? [new DestinationsProvider(destinations)]
    : [new TableEvidenceProvider()];
  const agent = new Agent({
    source: table,
    deleter,
    tracker,
    ...(destinations ? { destinations } : {}),
    rules: [
      new RenewalRule(tracker),
      new UnnatedRule({
        afterMs: o.afterMs ?? 2000,
        synSentTimeoutS: "synSent" in o ? o.synSent : SYN_SENT_S,
        providers,
      }),
    ],
    log: o.log ? createLogger({ level: "info", write: (l) => o.log!(JSON.parse(l)) }) : silent,
    intervalMs: 1000,
    clock: () => table.now,
  });
  return { agent, deleter };
}

/** Polls `n` times, one a second: each read starts on a whole second. */
async function polls(agent: Agent, table: FakeTable, n: number): Promise<void> {
  for (let p = 0; p < n; p++) {
    await agent.pollOnce();
    table.now = (Math.floor(table.now / 1000) + 1) * 1000;
  }
}

const SRCS = ["192.0.2.1", "192.0.2.2"];
const DSTS = ["198.51.100.80", "198.51.100.81"];
const entryArb = fc.record({
  src: fc.constantFrom(...SRCS),
  dst: fc.constantFrom(...DSTS),
  dport: fc.constantFrom(80, 443),
  zone: fc.constantFrom(0, 5),
  replyZone: fc.option(fc.constantFrom(0, 5), { nil: undefined }),
  unreplied: fc.boolean(),
  translated: fc.option(fc.constant({ addr: "10.244.0.9", port: 8080 }), { nil: undefined }),
  createdAt: fc.integer({ min: -130_000, max: 8_000 }),
  lives: fc.option(fc.integer({ min: 0, max: 6_000 }), { nil: undefined }),
  withId: fc.boolean(),
});

Deno.test("un-NATed rule never deletes without this client's newer translated entry in the same read, nor a translated, young or out-of-scope entry (property)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(entryArb, { minLength: 1, maxLength: 25 }),
      fc.constantFrom(0, 1000, 2000, 5000),
      fc.option(fc.constantFrom("198.51.100.80", "198.51.100.0/24:443"), { nil: undefined }),
      fc.constantFrom(SYN_SENT_S, undefined),
      fc.integer({ min: 1, max: 14 }),
      async (raw, afterMs, dests, synSent, n) => {
        const entries: FakeEntry[] = raw.map((r, i) => ({
          family: "ipv4",
          src: r.src,
          sport: 40000 + i,
          dst: r.dst,
          dport: r.dport,
          zone: r.zone,
          ...(r.replyZone === undefined ? {} : { replyZone: r.replyZone }),
          unreplied: r.unreplied,
          translated: r.translated,
          createdAt: r.createdAt,
          ...(r.lives === undefined ? {} : { goneAt: r.createdAt + r.lives }),
          ...(r.withId ? { id: 1000 + i } : {}),
        }));
        const all = entries.map((e) => ({ ...e }));
        const table = new FakeTable(entries);
        const { agent, deleter } = agentFor(table, {
          afterMs,
          ...(dests === undefined ? {} : { destinations: dests }),
          synSent,
        });
        const scope = dests === undefined ? undefined : parseDestinations(dests);
        await polls(agent, table, n);
        for (const { target, readAt } of deleter.deleted) {
          const e = all.find((x) => tupleKey(x) === tupleKey(target))!;
          assert.ok(e.unreplied, "never a replied entry");
          assert.equal(e.translated, undefined, "never a translated entry");
          assert.ok(readAt - e.createdAt >= afterMs, `never younger than ${afterMs} ms`);
          assert.equal(target.id, e.id, "the decision carries the kernel id where known");
          if (scope !== undefined && typeof scope !== "string") {
            assert.ok(scope.match(e.family, e.dst, e.dport), "never outside --destinations");
            continue;
          }
          const proof = all.some((x) =>
            x.translated !== undefined && clientKey(x) === clientKey(e) &&
            (x.replyZone ?? x.zone) === e.zone && x.createdAt > e.createdAt &&
            x.createdAt <= readAt && (x.goneAt === undefined || x.goneAt > readAt)
          );
          assert.ok(proof, "never without this client's newer translated entry in this read");
        }
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("un-NATed rule frees a client whose newer connection was translated, at the first read that proves it", async () => {
  const stuck = stuckEntry({ createdAt: 0, id: 7 });
  // The DNAT rule arrives; the same client connects again at 2.5 s (a short request: TIME_WAIT).
  const newer = natedEntry(stuck, { sport: 40001, createdAt: 2500 });
  const table = new FakeTable([stuck, newer]);
  const lines: Record<string, unknown>[] = [];
  const { agent, deleter } = agentFor(table, { log: (l) => lines.push(l) });
  await polls(agent, table, 5);
  // Reads at 0, 1, 2, 3 s: the key is watched from 1 s, the newer entry is new at 3 s.
  assert.deepEqual(deleter.deleted.map((d) => [d.target.sport, d.target.id, d.readAt]), [
    [40000, 7, 3000],
  ]);
  const line = lines.find((l) => l.msg === "deleted stale entry")!;
  assert.equal(line.rule, "unnated");
  assert.equal(line.provider, "table");
  assert.equal(
    line.reason,
    "this client's newer connection (sport 40001) to it was translated to 10.244.0.5:8080",
  );
  assert.equal(line.age_s, 2.997, "first seen unchanged at 3 ms (seenTo of the first read)");
  // Asked for the stuck client's key from the second read on, and only for it.
  assert.deepEqual(table.asked[0]!.map(clientKey), ["ipv4 192.0.2.7 198.51.100.80 80 0"]);
});

Deno.test("un-NATed rule keeps a client when only other clients' connections are translated (source-restricted DNAT)", async () => {
  const stuck = stuckEntry({ createdAt: 0 });
  const others = [
    natedEntry(stuck, { src: "192.0.2.8", sport: 40001, createdAt: 1500 }),
    natedEntry(stuck, { src: "192.0.2.9", sport: 40002, createdAt: 2500, unreplied: true }),
  ];
  const table = new FakeTable([stuck, ...others]);
  const { agent, deleter } = agentFor(table);
  await polls(agent, table, 8);
  assert.deepEqual(deleter.deleted, []);
});

Deno.test("un-NATed rule keeps a client whose translated connections are older than the stuck one (the DNAT rule was removed)", async () => {
  // ESTABLISHED and TIME_WAIT leftovers of the removed rule, from this very client.
  const stuck = stuckEntry({ createdAt: 5000 });
  const table = new FakeTable([
    natedEntry(stuck, { sport: 39000, createdAt: -60_000 }),
    natedEntry(stuck, { sport: 39001, createdAt: 4000 }),
    stuck,
  ]);
  table.now = 5000;
  const { agent, deleter } = agentFor(table);
  await polls(agent, table, 10);
  assert.deepEqual(deleter.deleted, []);
});

Deno.test("un-NATed rule: a translated entry made during the stuck entry's first read does not count", async () => {
  // The key is watched from the second read on: the translated entry is there from its first
  // watched read, so nothing says it is newer than the stuck entry.
  const stuck = stuckEntry({ createdAt: -5000 });
  const table = new FakeTable([stuck, natedEntry(stuck, { sport: 40001, createdAt: 500 })]);
  const { agent, deleter } = agentFor(table);
  await polls(agent, table, 6);
  assert.deepEqual(deleter.deleted, []);
});

Deno.test("un-NATed rule: a restarted agent proves nothing while entries present at its first reads stay, then frees on a newer one", async () => {
  const stuck = stuckEntry({ createdAt: -10_000 });
  const table = new FakeTable([stuck, natedEntry(stuck, { sport: 40001, createdAt: -3000 })]);
  const { agent, deleter } = agentFor(table);
  await polls(agent, table, 4);
  assert.equal(deleter.deleted.length, 0, "the translated entry may be older than the agent knows");
  table.entries.push(natedEntry(stuck, { sport: 40002, createdAt: table.now - 500 }));
  await polls(agent, table, 2);
  assert.equal(deleter.deleted.length, 0, "a translated entry that may be older keeps it");
  table.entries.splice(1, 1); // the one of unknown age ends
  await polls(agent, table, 1);
  assert.deepEqual(deleter.deleted.map((d) => d.target.sport), [40000]);
});

Deno.test("un-NATed rule: an older translated connection of the same client keeps it, whatever newer ones say (exempt path)", async () => {
  // A transparent proxy's own user: the node's other connections to VIP:80 are redirected
  // (older and newer ones), this one is exempt and reaches the real server late.
  const stuck = stuckEntry({ createdAt: 1000 });
  const table = new FakeTable([
    natedEntry(stuck, { sport: 40001, createdAt: 500 }),
    stuck,
    natedEntry(stuck, { sport: 40002, createdAt: 1500 }),
    natedEntry(stuck, { sport: 40003, createdAt: 2500 }),
  ]);
  const { agent, deleter } = agentFor(table);
  await polls(agent, table, 8);
  assert.deepEqual(deleter.deleted, []);
});

Deno.test("un-NATed rule: evidence that is gone, or a read without evidence, proves nothing in that poll", async () => {
  // Reads at 0, 1, 2, 3, 4 s. The newer connection is first seen at 2 s (absent at 1 s) and gone
  // at 2.5 s, before the stuck entry is 4 s old: nothing is carried across reads.
  const stuck = stuckEntry({ createdAt: 0 });
  const gone = natedEntry(stuck, { sport: 40001, createdAt: 1500, goneAt: 2500 });
  const table = new FakeTable([stuck, gone]);
  const { agent, deleter } = agentFor(table, { afterMs: 4000 });
  await polls(agent, table, 6);
  assert.deepEqual(deleter.deleted, [], "gone before the entry was old enough");

  // Proven at 2 s; old enough at 3 s, but the reads of 3 and 4 s bring no evidence.
  const stays = natedEntry(stuck, { sport: 40001, createdAt: 1500 });
  const t2 = new FakeTable([stuckEntry({ createdAt: 0 }), stays]);
  const a2 = agentFor(t2, { afterMs: 3000 });
  await polls(a2.agent, t2, 3);
  t2.evidence = false;
  await polls(a2.agent, t2, 2);
  assert.equal(a2.deleter.deleted.length, 0, "no evidence in this read");
  t2.evidence = true;
  await polls(a2.agent, t2, 1); // 5 s: listed again, still known absent at 1 s
  assert.deepEqual(a2.deleter.deleted.map((d) => d.readAt), [5000]);
});

Deno.test("un-NATed rule: evidence in another zone, or with a directional zone, does not count", async () => {
  const stuck = stuckEntry({ createdAt: 0, zone: 5 });
  const table = new FakeTable([
    stuck,
    natedEntry(stuck, { sport: 40001, createdAt: 1500, zone: 0 }), // another zone
    natedEntry(stuck, { sport: 40002, createdAt: 1500, replyZone: 0 }), // zone-orig=5 only
    natedEntry(stuck, { sport: 40003, createdAt: 1500, zone: 0, replyZone: 5 }), // zone-reply=5
  ]);
  const { agent, deleter } = agentFor(table);
  await polls(agent, table, 6);
  assert.equal(deleter.deleted.length, 0);
  table.entries.push(natedEntry(stuck, { sport: 40004, createdAt: table.now - 500 }));
  await polls(agent, table, 1);
  assert.deepEqual(deleter.deleted.map((d) => d.target.zone), [5], "zone 5 both ways counts");
});

Deno.test("un-NATed rule: a stuck entry replaced between reads (no ids) starts its evidence again", async () => {
  // FakeEntry A from 0 s, gone at 2.5 s; a new SYN of the same tuple makes entry B at 2.5 s (its
  // expiry 2.5 s later than A's: the tracker sees the change). The client's translated
  // connection from 2.2 s is newer than A, older than B: it frees nothing.
  const t = new FakeTable([
    stuckEntry({ createdAt: 0, goneAt: 2500 }),
    stuckEntry({ createdAt: 2500 }),
    natedEntry(stuckEntry({ createdAt: 0 }), { sport: 40001, createdAt: 2200 }),
  ]);
  const { agent, deleter } = agentFor(t, { afterMs: 2000 });
  await polls(agent, t, 8);
  assert.deepEqual(deleter.deleted, [], "the translated entry is older than B");
});

Deno.test("un-NATed rule: a stuck entry replaced between reads (no ids) starts its age again", async () => {
  // Without the kernel's timeout, age is the time since first seen unchanged: B, made at 2.5 s
  // and first seen at 3 s, is taken at the read of 6 s, not at 3 s for A's age.
  const t = new FakeTable([
    stuckEntry({ createdAt: 0, goneAt: 2500 }),
    stuckEntry({ createdAt: 2500 }),
  ]);
  const { agent, deleter } = agentFor(t, {
    afterMs: 2000,
    synSent: undefined,
    destinations: "198.51.100.80",
  });
  await polls(agent, t, 7);
  assert.deepEqual(deleter.deleted.map((d) => d.readAt), [6000]);
});

Deno.test("un-NATed rule counts the age from this read's seenFrom, not seenTo", () => {
  const rule = new UnnatedRule({ afterMs: 2000, synSentTimeoutS: undefined, providers: [] });
  const c: Candidate = {
    family: "ipv4",
    src: "192.0.2.1",
    dst: "198.51.100.80",
    sport: 40000,
    dport: 80,
    zone: 0,
    timeout: 119,
    seenFrom: 2500,
    seenTo: 4000, // a slow read: formatted somewhere in 2.5-4 s
  };
  assert.equal(rule.ageMs(c, 1000), 1500);
});

Deno.test("un-NATed rule takes a candidate exactly --unnated-after old, and none a second younger; its decision carries the id", () => {
  const yes: NatProvider = { name: "yes", vouch: () => ({ reason: "vouched" }) };
  const rule = new UnnatedRule({ afterMs: 2000, synSentTimeoutS: 120, providers: [yes] });
  const c = (sport: number, timeout: number): Candidate => ({
    family: "ipv4",
    src: "192.0.2.1",
    dst: "198.51.100.80",
    sport,
    dport: 80,
    zone: 0,
    timeout,
    seenFrom: 0,
    seenTo: 1,
    id: sport + 1,
  });
  // 117 s left of 120: at least 2 s old (the kernel rounds down); 118 s left: at least 1 s.
  const decisions = rule.decide({
    snapshot: {
      candidates: [c(40000, 117), c(40001, 118), {
        ...c(40002, 100),
        translated: { addr: "10.0.0.1", port: 1 },
      }],
      scanned: 3,
      malformed: 0,
      startedAt: 0,
      finishedAt: 1,
    },
    track: { stale: [], renewals: 0, tracked: 3, forgotten: 0 },
    sameSince: () => undefined,
  });
  assert.deepEqual(decisions, [{
    rule: "unnated",
    tuple: {
      family: "ipv4",
      src: "192.0.2.1",
      dst: "198.51.100.80",
      sport: 40000,
      dport: 80,
      zone: 0,
    },
    reason: "vouched",
    ageMs: 2000,
    provider: "yes",
    id: 40001,
  }]);
});

Deno.test("UnnatedRule.ageMs never says more than the entry's real age (property)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 119_999 }),
      fc.integer({ min: 0, max: 60_000 }),
      fc.integer({ min: 0, max: 50 }),
      (ageAtFirst, later, snapMs) => {
        const rule = new UnnatedRule({ afterMs: 0, synSentTimeoutS: 120, providers: [] });
        const firstSeenTo = 1000 + snapMs;
        const age = ageAtFirst + later;
        if (age >= 120_000) return;
        const c = {
          family: "ipv4" as const,
          src: "192.0.2.1",
          dst: "198.51.100.1",
          sport: 1,
          dport: 2,
          zone: 0,
          timeout: Math.floor((120_000 - age) / 1000),
          seenFrom: 1000 + later,
          seenTo: 1000 + later + snapMs,
        };
        assert.ok(rule.ageMs(c, firstSeenTo) <= age, `${rule.ageMs(c, firstSeenTo)} > ${age}`);
      },
    ),
  );
});

Deno.test("un-NATed rule with --destinations frees any client inside it and names the item; no evidence is asked", async () => {
  const stuck: FakeEntry = {
    family: "ipv6",
    src: "2001:db8:c::7",
    sport: 40000,
    dst: "2001:db8:cafe::10",
    dport: 80,
    zone: 0,
    unreplied: true,
    translated: undefined,
    createdAt: -2500,
  };
  const other: FakeEntry = { ...stuck, src: "2001:db8:c::8", dport: 8443 };
  const table = new FakeTable([stuck, other]);
  const lines: Record<string, unknown>[] = [];
  const { agent, deleter } = agentFor(table, {
    destinations: "[2001:db8:cafe::10/128]:80",
    log: (l) => lines.push(l),
  });
  await polls(agent, table, 2);
  assert.deepEqual(deleter.deleted.map((d) => d.target.dport), [80]);
  assert.equal(table.asked.length, 0);
  const line = lines.find((l) => l.msg === "deleted stale entry")!;
  assert.equal(line.reason, "destination inside --destinations item [2001:db8:cafe::10/128]:80");
  assert.equal(line.provider, "destinations");
});

Deno.test("un-NATed rule with its --destinations provider alone (no agent scope) keeps what is outside the list", () => {
  const set = parseDestinations("[2001:db8:cafe::10/128]:80");
  assert.ok(typeof set !== "string");
  const rule = new UnnatedRule({
    afterMs: 0,
    synSentTimeoutS: 120,
    providers: [new DestinationsProvider(set)],
  });
  const c = (dst: string, dport: number): Candidate => ({
    family: "ipv6",
    src: "2001:db8:c::7",
    dst,
    sport: 40000,
    dport,
    zone: 0,
    timeout: 100,
    seenFrom: 0,
    seenTo: 1,
  });
  const d = rule.decide({
    snapshot: {
      candidates: [
        c("2001:db8:cafe::10", 80),
        c("2001:db8:cafe::10", 81),
        c("2001:db8:cafe::11", 80),
      ],
      scanned: 3,
      malformed: 0,
      startedAt: 0,
      finishedAt: 1,
    },
    track: { stale: [], renewals: 0, tracked: 3, forgotten: 0 },
    sameSince: () => 1,
  });
  assert.deepEqual(d.map((x) => [x.tuple.dst, x.tuple.dport]), [["2001:db8:cafe::10", 80]]);
});

Deno.test("un-NATed rule asks for the keys of every un-NATed candidate of the last read, young ones too, at most maxKeys", async () => {
  const young = stuckEntry({ createdAt: 0 });
  const table = new FakeTable([
    young,
    stuckEntry({ createdAt: 0, sport: 40001 }), // same key: asked once
    stuckEntry({ createdAt: 0, src: "192.0.2.8" }),
    natedEntry(young, { sport: 40002, createdAt: 0, unreplied: true }), // translated: not a key
  ]);
  const { agent } = agentFor(table, { afterMs: 60_000 });
  await polls(agent, table, 2);
  assert.equal(table.asked.length, 1, "nothing asked in the first read");
  assert.deepEqual(table.asked[0]!.map(clientKey).sort(), [
    "ipv4 192.0.2.7 198.51.100.80 80 0",
    "ipv4 192.0.2.8 198.51.100.80 80 0",
  ]);
  const p = new TableEvidenceProvider({ maxKeys: 1 });
  p.observe(
    await new FakeTable([young, stuckEntry({ createdAt: 0, src: "192.0.2.8" })]).snapshot(),
  );
  assert.equal(p.wants()?.evidenceFor?.length, 1);
});

Deno.test("un-NATed rule asks a key in every read for its first 6 listed reads, then in every other read, and decides only in a read that lists it", async () => {
  const stuck = stuckEntry({ createdAt: -30_000 }); // a client of a dead host: old, never NATed
  const table = new FakeTable([stuck]);
  const { agent, deleter } = agentFor(table);
  await polls(agent, table, 12); // reads at 0..11 s
  assert.equal(table.asked.length, 8, "read 0 asks nothing; 1-6 s ask; then 8 and 10 s");
  // The client connects again at 11.5 s: listed at 12 s (a read that asks), deleted there.
  table.entries.push(natedEntry(stuck, { sport: 40001, createdAt: 11_500 }));
  const before = table.asked.length;
  await polls(agent, table, 1);
  assert.equal(table.asked.length, before + 1, "the read of 12 s asks");
  assert.deepEqual(deleter.deleted.map((d) => d.readAt), [12_000]);
  // A read that rests the key decides nothing for it, though the entry is there.
  const t2 = new FakeTable([stuckEntry({ createdAt: -30_000 })]);
  const a2 = agentFor(t2);
  await polls(a2.agent, t2, 10); // listed at 1-6 s and 8 s; 9 s rests
  t2.entries.push(natedEntry(stuck, { sport: 40001, createdAt: 9_500 }));
  await polls(a2.agent, t2, 1); // 10 s asks: absent at 8 s, present now
  assert.deepEqual(a2.deleter.deleted.map((d) => d.readAt), [10_000]);
  const t3 = new FakeTable([stuckEntry({ createdAt: -30_000 })]);
  const a3 = agentFor(t3);
  await polls(a3.agent, t3, 9); // listed at 1-6 s and 8 s
  t3.entries.push(natedEntry(stuck, { sport: 40001, createdAt: 8_500 }));
  await polls(a3.agent, t3, 1); // 9 s rests the key: nothing decided
  assert.equal(a3.deleter.deleted.length, 0);
  await polls(a3.agent, t3, 1); // 10 s lists it
  assert.deepEqual(a3.deleter.deleted.map((d) => d.readAt), [10_000]);
});

Deno.test("un-NATed rule proves nothing for a key over the evidence bounds", async () => {
  const stuck = stuckEntry({ createdAt: 0 });
  const table = new FakeTable([stuck]);
  // Busy client: more translated connections to the service than a source keeps per key.
  for (let i = 0; i < 4097; i++) {
    table.entries.push(natedEntry(stuck, { sport: 1024 + i, createdAt: 1500 }));
  }
  const { agent, deleter } = agentFor(table);
  await polls(agent, table, 5);
  assert.deepEqual(deleter.deleted, []);
});

Deno.test("un-NATed rule ignores a candidate the tracker does not know (no sameSince)", () => {
  const p = new TableEvidenceProvider();
  const c: Candidate = {
    family: "ipv4",
    src: "192.0.2.7",
    dst: "198.51.100.80",
    sport: 40000,
    dport: 80,
    zone: 0,
    timeout: 100,
    seenFrom: 0,
    seenTo: 1,
  };
  assert.equal(p.vouch({ candidate: c, sameSince: undefined, now: 0 }), undefined);
});

Deno.test("the agent acts once on a tuple two rules decide, for the first rule", async () => {
  const stuck = stuckEntry({ createdAt: -5000 });
  const table = new FakeTable([stuck]);
  const tracker = new RenewalTracker({ threshold: 3 });
  const deleter = table;
  const yes = (name: string): NatProvider => ({ name, vouch: () => ({ reason: name }) });
  const agent = new Agent({
    source: table,
    deleter,
    tracker,
    rules: [
      new UnnatedRule({ afterMs: 0, synSentTimeoutS: 120, providers: [yes("first")] }),
      new UnnatedRule({ afterMs: 0, synSentTimeoutS: 120, providers: [yes("second")] }),
    ],
    log: silent,
    intervalMs: 1000,
    clock: () => table.now,
  });
  const r = await agent.pollOnce();
  assert.deepEqual(r.results.map((x) => x.decision.reason), ["first"]);
  assert.equal(deleter.deleted.length, 1);
});

/** One read of one old-enough un-NATed candidate, given to the rule directly. */
function natInput(verdict: NatVerdict | undefined) {
  const c: Candidate = {
    family: "ipv4",
    src: "192.0.2.7",
    dst: "198.51.100.80",
    sport: 40000,
    dport: 80,
    zone: 0,
    timeout: 110,
    seenFrom: 1000,
    seenTo: 1001,
    id: 9,
  };
  const kept: string[] = [];
  return {
    kept,
    input: {
      snapshot: { candidates: [c], scanned: 1, malformed: 0, startedAt: 1000, finishedAt: 1002 },
      track: { stale: [], renewals: 0, tracked: 1, forgotten: 0 },
      sameSince: () => 1001,
      keep: (_c: Candidate, why: string) => kept.push(why),
      nat: () => verdict,
    },
  };
}
const everyone: NatProvider = { name: "everyone", vouch: () => ({ reason: "always" }) };
const unnated = () =>
  new UnnatedRule({ afterMs: 2000, synSentTimeoutS: SYN_SENT_S, providers: [everyone] });

Deno.test("UnnatedRule: the NAT rules' translated deletes, named nat_rules, with no provider needed", () => {
  const ep = new Uint8Array([10, 244, 1, 5]);
  const { input } = natInput({
    kind: "translated",
    hooks: ["prerouting"],
    targets: [{ addrMin: ep, addrMax: ep, portMin: 8080, portMax: 8080 }],
  });
  const rule = new UnnatedRule({ afterMs: 2000, synSentTimeoutS: SYN_SENT_S, providers: [] });
  const [d] = rule.decide(input);
  assert.equal(d?.provider, "nat_rules");
  assert.equal(d?.id, 9);
  assert.match(d!.reason, /prerouting.*10\.244\.1\.5:8080/);
});

Deno.test("UnnatedRule: the NAT rules' not_proven keeps, whatever a provider would vouch", () => {
  const { input, kept } = natInput({ kind: "not_proven", reason: "owner match both ways" });
  assert.deepEqual(unnated().decide(input), []);
  assert.match(kept[0]!, /owner match both ways/);
});

Deno.test("UnnatedRule: where the NAT rules are unreadable or not read, the providers decide", () => {
  const unreadable = natInput({ kind: "unreadable", reason: "legacy iptables nat" });
  assert.deepEqual(unnated().decide(unreadable.input).map((d) => d.provider), ["everyone"]);
  const notRead = natInput(undefined);
  assert.deepEqual(unnated().decide(notRead.input).map((d) => d.provider), ["everyone"]);
});

Deno.test("TableEvidenceProvider: a key whose evidence overflowed is not recorded, so an old entry cut from that read never looks newer later", () => {
  const p = new TableEvidenceProvider();
  const stuck: Candidate = {
    family: "ipv4",
    src: "10.1.0.7",
    dst: "10.96.0.10",
    sport: 40000,
    dport: 80,
    zone: 0,
    timeout: 119,
    seenFrom: 0,
    seenTo: 1,
  };
  const key = "ipv4 10.1.0.7 10.96.0.10 80 0";
  // An old translated connection of the same client, in the table all along.
  const old = { sport: 39000, id: 7, replyZone: 0, translated: { addr: "10.244.0.5", port: 8080 } };
  const read = (at: number, evidence?: Snapshot["evidence"]): Snapshot => ({
    candidates: [{ ...stuck, seenFrom: at, seenTo: at + 1 }],
    scanned: 2,
    malformed: 0,
    startedAt: at,
    finishedAt: at + 2,
    ...(evidence ? { evidence } : {}),
  });
  p.observe(read(0));
  // The read at 1 s overflowed for this key: the old entry did not make it into the list.
  p.observe(read(1000, { entries: new Map([[key, []]]), overflow: new Set([key]) }));
  p.observe(read(2000, { entries: new Map([[key, [old]]]), overflow: new Set<string>() }));
  assert.equal(p.vouch({ candidate: stuck, sameSince: 1, now: 2000 }), undefined);
});
