import assert from "node:assert/strict";
import fc from "fast-check";
import { Agent } from "../lib/agent.ts";
import { parseDestinations } from "../lib/destinations.ts";
import type { Candidate, Snapshot, SnapshotOptions } from "../lib/snapshot.ts";
import {
  type Destination,
  destinationKey,
  type Endpoint,
  type Tuple,
  tupleKey,
} from "../lib/tuple.ts";
import type { DeleteOutcome, Deleter } from "../lib/deleters/deleter.ts";
import { createLogger } from "../lib/log.ts";
import { RenewalTracker } from "../lib/tracker.ts";
import { type EvidenceFinder, UnnatedRule } from "../lib/unnated.ts";

const SYN_SENT_S = 120;

/** One entry of a simulated table. */
interface Entry {
  family: "ipv4" | "ipv6";
  src: string;
  sport: number;
  dst: string;
  dport: number;
  zone: number;
  /** SYN_SENT [UNREPLIED]: a candidate. Otherwise replied (only evidence, if translated). */
  unreplied: boolean;
  translated: Endpoint | undefined;
  /** Kernel time (ms) the entry was created at; never renewed. */
  createdAt: number;
}

/** A table that ages with the test's clock, read as a source and searched as evidence. */
class Table implements EvidenceFinder {
  readonly name = "sim";
  now = 0;
  lookups: Destination[][] = [];
  constructor(readonly entries: Entry[]) {}
  snapshot(): Promise<Snapshot> {
    const from = this.now;
    this.now += 3;
    const candidates: Candidate[] = [];
    for (const e of this.entries) {
      const age = from - e.createdAt;
      if (!e.unreplied || age < 0 || age >= SYN_SENT_S * 1000) continue;
      candidates.push({
        family: e.family,
        src: e.src,
        dst: e.dst,
        sport: e.sport,
        dport: e.dport,
        zone: e.zone,
        // The kernel prints the seconds left rounded down.
        timeout: Math.floor((SYN_SENT_S * 1000 - age) / 1000),
        seenFrom: from,
        seenTo: this.now,
        ...(e.translated ? { translated: e.translated } : {}),
      });
    }
    return Promise.resolve({
      candidates,
      scanned: this.entries.length,
      malformed: 0,
      startedAt: from,
      finishedAt: this.now,
    });
  }
  findEvidence(ds: readonly Destination[]): Promise<Map<string, Endpoint>> {
    this.lookups.push([...ds]);
    return Promise.resolve(this.answer(ds));
  }
  /** The translated entries to `ds` that exist now, by destination key. */
  answer(ds: readonly Destination[]): Map<string, Endpoint> {
    const want = new Set(ds.map(destinationKey));
    const found = new Map<string, Endpoint>();
    for (const e of this.entries) {
      if (e.translated === undefined || this.now < e.createdAt) continue;
      const k = destinationKey(e);
      if (want.has(k) && !found.has(k)) found.set(k, e.translated);
    }
    return found;
  }
}

class RecordingDeleter implements Deleter {
  readonly name = "rec";
  readonly maxPerPoll = Infinity;
  worstCaseMs(): number {
    return 0;
  }
  deleted: { tuple: Tuple; at: number }[] = [];
  constructor(readonly table: Table) {}
  delete(targets: readonly Tuple[]): Promise<DeleteOutcome[]> {
    return Promise.resolve(targets.map((t) => {
      this.deleted.push({ tuple: t, at: this.table.now });
      const i = this.table.entries.findIndex((e) => tupleKey({ ...e }) === tupleKey(t));
      if (i >= 0) this.table.entries.splice(i, 1);
      return { tuple: t, result: "deleted" as const };
    }));
  }
}

/** A client stuck behind an un-NATed SYN_SENT entry to 198.51.100.80:80, created at `createdAt`. */
function stuckEntry(o: Partial<Entry> & { createdAt: number }): Entry {
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

const silent = createLogger({ level: "error", write: () => {} });

function agentFor(
  table: Table,
  o: { afterMs: number; destinations?: string; synSent?: number | undefined },
) {
  const destinations = o.destinations === undefined
    ? undefined
    : parseDestinations(o.destinations) as Exclude<ReturnType<typeof parseDestinations>, string>;
  const deleter = new RecordingDeleter(table);
  const agent = new Agent({
    source: table,
    deleter,
    tracker: new RenewalTracker({ threshold: 1000 }),
    ...(destinations ? { destinations } : {}),
    unnated: new UnnatedRule({
      afterMs: o.afterMs,
      synSentTimeoutS: "synSent" in o ? o.synSent : SYN_SENT_S,
      destinations,
    }),
    evidence: table,
    log: silent,
    intervalMs: 1000,
    clock: () => table.now,
  });
  return { agent, deleter };
}

const DSTS = ["198.51.100.80", "198.51.100.81", "2001:db8::80"];
const entryArb = fc.record({
  dst: fc.constantFrom(...DSTS),
  dport: fc.constantFrom(80, 443),
  zone: fc.constantFrom(0, 5),
  unreplied: fc.boolean(),
  translated: fc.option(fc.constant({ addr: "10.244.0.9", port: 8080 }), { nil: undefined }),
  createdAt: fc.integer({ min: -130_000, max: 8_000 }),
});

Deno.test("un-NATed rule never picks a translated, young, out-of-scope or unproven entry (property)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(entryArb, { minLength: 1, maxLength: 25 }),
      fc.constantFrom(0, 1000, 2000, 5000, 30_000),
      fc.option(fc.constantFrom("198.51.100.80", "198.51.100.0/24:443", "[2001:db8::/64]:80"), {
        nil: undefined,
      }),
      fc.constantFrom(SYN_SENT_S, undefined),
      fc.integer({ min: 1, max: 6 }),
      async (raw, afterMs, dests, synSent, polls) => {
        const entries: Entry[] = raw.map((r, i) => ({
          ...r,
          family: r.dst.includes(":") ? "ipv6" : "ipv4",
          src: r.dst.includes(":") ? `2001:db8:c::${i + 1}` : `192.0.2.${i + 1}`,
          sport: 40000 + i,
          translated: r.translated,
        }));
        const all = entries.map((e) => ({ ...e }));
        const table = new Table(entries);
        const { agent, deleter } = agentFor(table, {
          afterMs,
          ...(dests === undefined ? {} : { destinations: dests }),
          synSent,
        });
        const scope = dests === undefined ? undefined : parseDestinations(dests);
        for (let p = 0; p < polls; p++) {
          await agent.pollOnce();
          table.now += 1000;
        }
        for (const { tuple, at } of deleter.deleted) {
          const e = all.find((x) => tupleKey(x) === tupleKey(tuple))!;
          assert.ok(e.unreplied, "never a replied entry");
          assert.equal(e.translated, undefined, "never a translated entry");
          assert.ok(at - e.createdAt >= afterMs, `never younger than ${afterMs} ms`);
          if (scope !== undefined && typeof scope !== "string") {
            assert.ok(scope.match(e.family, e.dst, e.dport), "never outside --destinations");
          } else {
            const proof = all.some((x) =>
              x.translated !== undefined && destinationKey(x) === destinationKey(e) &&
              x.createdAt <= at
            );
            assert.ok(proof, "never without evidence in the same zone, address and port");
          }
        }
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("un-NATed rule: a restarted agent deletes an old stuck entry on its first poll, with evidence", async () => {
  const stuck = stuckEntry({ createdAt: -10_000 });
  const evidence: Entry = {
    ...stuck,
    src: "192.0.2.8",
    unreplied: false,
    translated: { addr: "10.244.0.5", port: 8080 },
    createdAt: -3000,
  };
  const bystanders: Entry[] = [
    { ...stuck, src: "192.0.2.9", dport: 443 }, // same address, another port
    { ...stuck, src: "192.0.2.10", dst: "198.51.100.81" }, // another address
    { ...stuck, src: "192.0.2.11", zone: 5 }, // another zone
    { ...stuck, src: "192.0.2.12", createdAt: -1000 }, // too young
  ];
  const table = new Table([stuck, evidence, ...bystanders]);
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({ level: "info", write: (l) => lines.push(JSON.parse(l)) });
  const deleter = new RecordingDeleter(table);
  const agent = new Agent({
    source: table,
    deleter,
    tracker: new RenewalTracker({ threshold: 3 }),
    unnated: new UnnatedRule({ afterMs: 2000, synSentTimeoutS: 120, destinations: undefined }),
    evidence: table,
    log,
    intervalMs: 1000,
    clock: () => table.now,
  });
  const report = await agent.pollOnce();
  assert.deepEqual(report.results.map((r) => r.decision.tuple.src), ["192.0.2.7"]);
  assert.equal(report.results[0]!.decision.rule, "unnated");
  // One look-up, of exactly the destinations of old un-NATed candidates.
  assert.deepEqual(table.lookups.map((l) => l.map(destinationKey).sort()), [[
    "ipv4 198.51.100.80 443 0",
    "ipv4 198.51.100.80 80 5",
    "ipv4 198.51.100.81 80 0",
    "ipv4 198.51.100.80 80 0",
  ].sort()]);
  const line = lines.find((l) => l.msg === "deleted stale entry")!;
  assert.equal(line.rule, "unnated");
  assert.equal(line.src, "192.0.2.7");
  assert.match(String(line.reason), /translated to 10\.244\.0\.5:8080/);
  assert.ok(Number(line.age_s) >= 9 && Number(line.age_s) <= 10, `age_s ${line.age_s}`);
});

Deno.test("un-NATed rule: a young destination is asked again at every poll", async () => {
  // A client still in its fast retries (entry younger than 6 s): a "none" holds 1 s at most.
  const stuck = stuckEntry({ createdAt: -3000 });
  const table = new Table([stuck]);
  const { agent } = agentFor(table, { afterMs: 2000 });
  for (let p = 0; p < 4; p++) {
    await agent.pollOnce();
    table.now += 1000;
  }
  // The kernel's rounded-down timeout says 2, 3, 4, 5 s (a lower bound of the real 3 to 6 s).
  assert.equal(table.lookups.length, 4, "asked at each poll while younger than 6 s");
  for (let p = 0; p < 4; p++) {
    await agent.pollOnce();
    table.now += 1000;
  }
  assert.equal(table.lookups.length, 6, "from 6 s on, every other poll");
});

Deno.test("un-NATed rule: no evidence is cached for at most 2 s, then asked again; found evidence is kept", async () => {
  const stuck = stuckEntry({ createdAt: -9000 });
  const table = new Table([stuck]);
  const { agent, deleter } = agentFor(table, { afterMs: 2000 });
  await agent.pollOnce();
  assert.equal(table.lookups.length, 1);
  table.now += 1000;
  await agent.pollOnce();
  assert.equal(table.lookups.length, 1, "a negative answer holds for the next poll");
  // The DNAT rule arrives and another client connects.
  table.entries.push({
    ...stuck,
    src: "192.0.2.8",
    unreplied: false,
    translated: { addr: "10.244.0.5", port: 8080 },
    createdAt: table.now,
  });
  table.now += 1000;
  await agent.pollOnce();
  assert.equal(table.lookups.length, 2, "asked again once the negative answer expired");
  assert.deepEqual(deleter.deleted.map((d) => d.tuple.src), ["192.0.2.7"]);
  // A new stuck client to the same destination: the positive answer is reused.
  table.entries.push({ ...stuck, src: "192.0.2.9", createdAt: table.now - 3000 });
  table.now += 1000;
  await agent.pollOnce();
  assert.equal(table.lookups.length, 2);
  assert.deepEqual(deleter.deleted.map((d) => d.tuple.src), ["192.0.2.7", "192.0.2.9"]);
});

Deno.test("un-NATed rule with --destinations needs no evidence and names the item", async () => {
  const stuck: Entry = {
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
  const other: Entry = { ...stuck, src: "2001:db8:c::8", dport: 8443 };
  const table = new Table([stuck, other]);
  const lines: Record<string, unknown>[] = [];
  const destinations = parseDestinations("[2001:db8:cafe::10/128]:80");
  assert.ok(typeof destinations !== "string");
  const agent = new Agent({
    source: table,
    deleter: new RecordingDeleter(table),
    tracker: new RenewalTracker({ threshold: 3 }),
    destinations,
    unnated: new UnnatedRule({ afterMs: 2000, synSentTimeoutS: 120, destinations }),
    evidence: table,
    log: createLogger({ level: "info", write: (l) => lines.push(JSON.parse(l)) }),
    intervalMs: 1000,
    clock: () => table.now,
  });
  const r = await agent.pollOnce();
  assert.deepEqual(r.results.map((x) => x.decision.tuple.dport), [80]);
  assert.equal(table.lookups.length, 0);
  const line = lines.find((l) => l.msg === "deleted stale entry")!;
  assert.equal(line.reason, "destination inside --destinations item [2001:db8:cafe::10/128]:80");
});

Deno.test("UnnatedRule.ageMs never says more than the entry's real age (property)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 119_999 }),
      fc.integer({ min: 0, max: 60_000 }),
      fc.integer({ min: 0, max: 50 }),
      (ageAtFirst, later, snapMs) => {
        const rule = new UnnatedRule({ afterMs: 0, synSentTimeoutS: 120, destinations: undefined });
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

/** A table that, like procfs, answers evidence asked for in the same read. */
class ReadAllTable extends Table {
  asked: Destination[][] = [];
  override async snapshot(_signal?: AbortSignal, o?: SnapshotOptions): Promise<Snapshot> {
    const s = await super.snapshot();
    if (o?.evidenceFor === undefined) return s;
    this.asked.push([...o.evidenceFor]);
    return { ...s, evidence: this.answer(o.evidenceFor) };
  }
}

Deno.test("un-NATed rule: a source that reads the whole table answers evidence in the same read, no extra look-ups", async () => {
  const entries: Entry[] = [];
  for (let i = 0; i < 50; i++) {
    entries.push({
      family: "ipv4",
      src: `192.0.2.${i + 1}`,
      sport: 40000,
      dst: `198.51.100.${i + 1}`,
      dport: 80,
      zone: 0,
      unreplied: true,
      translated: undefined,
      createdAt: -9000,
    });
  }
  const table = new ReadAllTable(entries);
  const { agent, deleter } = agentFor(table, { afterMs: 2000 });
  for (let p = 0; p < 10; p++) {
    await agent.pollOnce();
    table.now += 1000;
  }
  assert.equal(table.lookups.length, 1, "one look-up when the destinations first qualify");
  assert.equal(table.asked.length, 9, "then every read answers for them on the way");
  assert.ok(table.asked.every((a) => a.length === 50));
  assert.equal(deleter.deleted.length, 0, "no evidence, nothing deleted");
  // The rule arrives for one destination: found in the next read.
  entries.push({
    ...entries[7]!,
    src: "192.0.2.200",
    unreplied: false,
    translated: { addr: "10.244.0.5", port: 8080 },
    createdAt: table.now,
  });
  await agent.pollOnce();
  assert.deepEqual(deleter.deleted.map((d) => d.tuple.dst), ["198.51.100.8"]);
  assert.equal(table.lookups.length, 1);
});

Deno.test("UnnatedRule.plan takes a candidate exactly --unnated-after old, and none a second younger", () => {
  const rule = new UnnatedRule({ afterMs: 2000, synSentTimeoutS: 120, destinations: undefined });
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
  });
  // 117 s left of 120: at least 2 s old (the kernel rounds down); 118 s left: at least 1 s.
  const plan = rule.plan({
    candidates: [c(40000, 117), c(40001, 118)],
    scanned: 2,
    malformed: 0,
    startedAt: 0,
    finishedAt: 1,
  }, () => undefined);
  assert.deepEqual(plan.eligible.map((e) => [e.candidate.sport, e.ageMs]), [[40000, 2000]]);
});
