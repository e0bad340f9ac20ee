/**
 * The shared fake table deletes as the real deleters do: the exact tuple and
 * zone, only a SYN_SENT [UNREPLIED] entry, only the entry of the id given.
 */
import assert from "node:assert/strict";
import { FakeTable } from "./fake_table.ts";
import { sampleTuple } from "./sample_tuple.ts";

const T = sampleTuple();

Deno.test("FakeTable.delete takes only the exact tuple, zone and id, and only SYN_SENT [UNREPLIED]", async () => {
  const table = new FakeTable([
    { ...T, unreplied: true, createdAt: 0, id: 1 },
    { ...T, sport: 40001, unreplied: false, createdAt: 0 },
    { ...T, sport: 40002, zone: 5, unreplied: true, createdAt: 0 },
  ]);
  const results = (await table.delete([
    { ...T, id: 2 }, // another entry of the same tuple
    { ...T, sport: 40001 }, // replied
    { ...T, sport: 40002 }, // zone 0, the entry is in zone 5
    { ...T, sport: 40002, zone: 5 },
    { ...T, id: 1 },
    { ...T, src: "10.0.0.256" },
  ])).map((o) => o.result);
  assert.deepEqual(results, [
    "already_gone",
    "already_gone",
    "already_gone",
    "deleted",
    "deleted",
    "failed",
  ]);
  table.now = 1;
  const snap = await table.snapshot();
  assert.deepEqual(snap.candidates, [], "both deleted entries are gone at the next read");
});

Deno.test("FakeTable.snapshot ages entries with its clock; a deleted retransmitting entry comes back new", async () => {
  const table = new FakeTable([
    { ...T, unreplied: true, createdAt: 0 },
    { ...T, sport: 40001, unreplied: true, createdAt: 0, retransmits: true, id: 7 },
  ]);
  table.now = 2500;
  const first = await table.snapshot();
  assert.deepEqual(first.candidates.map((c) => [c.sport, c.timeout, c.seenFrom, c.seenTo]), [
    [40000, 117, 2500, 2503],
    [40001, 119, 2500, 2503],
  ]);
  await table.delete([{ ...T, sport: 40001, id: 7 }]);
  table.now = 120_000;
  const later = await table.snapshot();
  assert.deepEqual(later.candidates.map((c) => c.sport), [40001], "40000 expired");
  assert.notEqual(later.candidates[0]!.id, 7, "a new entry");
});

Deno.test("FakeTable.snapshot lists the translated entries of the keys asked, and none when evidence is off", async () => {
  const table = new FakeTable([
    { ...T, unreplied: true, createdAt: 0 },
    {
      ...T,
      sport: 40001,
      unreplied: false,
      createdAt: 0,
      translated: { addr: "10.244.0.5", port: 8080 },
    },
  ]);
  const key = { family: "ipv4" as const, src: T.src, dst: T.dst, dport: T.dport, zone: 0 };
  const read = await table.snapshot(undefined, { evidenceFor: [key] });
  assert.deepEqual([...read.evidence!.entries.values()].flat().map((e) => e.sport), [40001]);
  table.evidence = false;
  assert.equal((await table.snapshot(undefined, { evidenceFor: [key] })).evidence, undefined);
  assert.equal(table.asked.length, 2);
});
