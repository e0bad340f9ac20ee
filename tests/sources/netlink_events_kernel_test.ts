/**
 * The events source and its kernel filter against the real kernel, in a
 * namespace of its own (the driver runs inside it).
 */
import assert from "node:assert/strict";
import { tupleKey } from "../../lib/model/tuple.ts";
import { familyOf, withNetns } from "../../testbed/netns.ts";
import { kernelTest } from "../support/machine.ts";
import { burst, FILTER_ENTRIES, runEventsDriver } from "../support/events_driver.ts";
import { parseTuple } from "../../lib/model/tuple.ts";

function keyOf(s: (typeof FILTER_ENTRIES)[number]["spec"]): string {
  const p = parseTuple({
    family: familyOf(s),
    src: s.src,
    dst: s.dst,
    sport: s.sport,
    dport: s.dport,
    zone: s.zone ?? 0,
  });
  assert.ok(p.ok);
  return tupleKey(p.tuple);
}

interface Poll {
  candidates: { key: string; timeout: number; id?: number }[];
  scanned: number;
}
interface Stats {
  received: number;
  overflows: number;
  resyncs: Record<string, number>;
}

kernelTest(
  "the event filter passes only new TCP SYN_SENT entries (v4, v6, zone 5) and new translated TCP entries; an unfiltered socket in the same group gets all 8",
  () =>
    withNetns("ev-filter", async (ns) => {
      const r = await runEventsDriver(ns, "filter") as { filtered: string[]; all: string[] };
      const expected = FILTER_ENTRIES.filter((e) => e.passes).map((e) => keyOf(e.spec)).sort();
      assert.deepEqual([...r.filtered].sort(), expected);
      assert.equal(r.all.length, FILTER_ENTRIES.length, `unfiltered: ${JSON.stringify(r.all)}`);
      assert.ok(expected.length < FILTER_ENTRIES.length);
    }),
);

kernelTest(
  "the event filter with ended passes a connection's update to SYN_RECV; no destruction, no other update",
  () =>
    withNetns("ev-ended", async (ns) => {
      const r = await runEventsDriver(ns, "ended") as { filtered: string[]; all: string[] };
      const syn = burst(1, 100)[0]!.src;
      assert.deepEqual(r.filtered, [
        `new 1 ${syn}`,
        "new 1 127.0.0.1",
        "update 2 127.0.0.1",
      ], JSON.stringify(r));
      // The unfiltered socket heard more: destructions, the connection's later states.
      assert.ok(r.all.includes(`destroy - ${syn}`), JSON.stringify(r.all));
      assert.ok(r.all.includes("update 3 127.0.0.1"), JSON.stringify(r.all));
    }),
);

kernelTest(
  "events source: the start dump, then new candidates from events, renewed timeouts and deletions from per-tuple reads, without another dump",
  () =>
    withNetns("ev-steady", async (ns) => {
      const r = await runEventsDriver(ns, "steady") as { polls: Poll[]; stats: Stats };
      const keys = (p: Poll) => p.candidates.map((c) => c.key).sort();
      const all = burst(5).map((s) => keyOf(s));
      assert.deepEqual(keys(r.polls[0]!), all.slice(0, 3).sort(), "the start dump");
      assert.deepEqual(keys(r.polls[1]!), all.sort(), "two more heard as events");
      const renewed = r.polls[2]!.candidates.find((c) => c.key === keyOf(burst(1, 3)[0]!));
      assert.ok(renewed && renewed.timeout <= 60 && renewed.timeout >= 55, JSON.stringify(renewed));
      assert.ok(!keys(r.polls[2]!).includes(keyOf(burst(1, 4)[0]!)), "the deleted one is gone");
      assert.equal(keys(r.polls[2]!).length, 4);
      assert.equal(r.stats.received, 2, "only the two new candidates crossed the filter");
      assert.deepEqual(r.stats.resyncs, {
        start: 1,
        overflow: 0,
        error: 0,
        periodic: 0,
        limit: 0,
        malformed: 0,
        stalled: 0,
        events_off: 0,
      });
      // Per-tuple reads: the poll looks at what it tracks, not at the table.
      assert.equal(r.polls[2]!.scanned, 5);
    }),
);

kernelTest(
  "events source: an overflowed event socket (4 KiB buffer, a burst of 2,000 SYN_SENT entries) is noticed and every candidate is recovered by the very next poll",
  () =>
    withNetns("ev-overflow", async (ns) => {
      const r = await runEventsDriver(ns, "overflow") as {
        first: Poll;
        second: Poll;
        third: Poll;
        afterSecond: Stats;
        stats: Stats;
      };
      const want = burst(2000).map((s) => keyOf(s)).sort();
      assert.equal(r.first.candidates.length, 0);
      assert.ok(r.afterSecond.overflows >= 1, JSON.stringify(r.afterSecond));
      assert.ok(r.afterSecond.received < 2000, "most events were lost");
      assert.equal(r.afterSecond.resyncs.overflow, 1);
      assert.deepEqual(r.second.candidates.map((c) => c.key).sort(), want);
      assert.deepEqual(r.third.candidates.map((c) => c.key).sort(), want, "and kept after");
      assert.equal(r.stats.resyncs.overflow, 1, "no dump at the poll after");
    }),
);

kernelTest(
  "events source: nf_conntrack_events switched off makes every poll read the table (candidates made meanwhile are found), and on again, one more read, then events",
  () =>
    withNetns("ev-off", async (ns) => {
      const r = await runEventsDriver(ns, "off") as {
        polls: Poll[];
        stats: Stats;
        switches: boolean[];
      };
      const keys = (p: Poll) => p.candidates.map((c) => c.key).sort();
      const all = burst(4).map((s) => keyOf(s));
      assert.deepEqual(keys(r.polls[0]!), []);
      assert.deepEqual(keys(r.polls[1]!), all.slice(0, 2).sort(), "events off: read whole");
      assert.deepEqual(keys(r.polls[2]!), all.slice(0, 3).sort(), "on again: read once more");
      assert.deepEqual(keys(r.polls[3]!), all.sort(), "then heard");
      assert.deepEqual(r.switches, [false, true]);
      assert.equal(r.stats.resyncs.events_off, 2);
      assert.equal(r.stats.received, 2, "the two made while events were on were announced");
    }),
);

kernelTest(
  "events source: a stream that hears nothing while candidates are created is noticed through the namespace's entry count and read whole; the dump counts them as missed",
  () =>
    withNetns("ev-stall", async (ns) => {
      const r = await runEventsDriver(ns, "stall") as {
        poll: Poll;
        stats: Stats & { missed: number };
        missed: number[];
      };
      assert.deepEqual(r.poll.candidates.map((c) => c.key).sort(), burst(3).map(keyOf).sort());
      assert.equal(r.stats.resyncs.stalled, 1);
      assert.equal(r.stats.missed, 3);
      assert.deepEqual(r.missed, [3]);
    }),
);
