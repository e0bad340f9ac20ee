/**
 * NetlinkEventsSource's guards against trusting an event stream that may be
 * incomplete (issue 21): evidence kept per watched key, no evidence from a
 * drain that left events queued, a resync on a garbled or cut event, on a
 * quiet stream while the table changes, and while events are switched off.
 * The fake node is in events_node.ts.
 */
import assert from "node:assert/strict";
import { IPS_DST_NAT } from "../../lib/netlink/ctnetlink.ts";
import type { EntrySpec } from "../support/netlink_fill.ts";
import type { NetlinkEventsSource } from "../../lib/sources/netlink_events.ts";
import { ESTABLISHED, keyOf, keys, newEvent, Node, spec } from "./events_node.ts";

const K1 = "ipv4 10.0.0.1 10.96.0.10 80 0";

/** A translated (ESTABLISHED) entry of client `i`, source port `sport`. */
const nat = (i: number, sport = 40000 + i): EntrySpec =>
  spec(i, { sport, tcpState: ESTABLISHED, status: IPS_DST_NAT | 2 });

/** A translated entry of the `n`th other client (10.1.x.y), never asked about. */
const other = (n: number): EntrySpec => ({
  ...nat(0),
  src: `10.1.${(n >> 8) & 255}.${n & 255}`,
  sport: 30000 + (n % 30000),
});

/** One read with evidence asked for `is`' keys: the evidence, as plain objects. */
async function read(source: NetlinkEventsSource, ...is: number[]) {
  const snap = await source.snapshot(undefined, { evidenceFor: is.map(keyOf) });
  return snap.evidence && {
    entries: Object.fromEntries([...snap.evidence.entries].map(([k, v]) => [k, v])),
    overflow: [...snap.evidence.overflow],
  };
}

Deno.test("events source evidence: a watched key's entry is listed however many other clients' translated entries are heard meanwhile (no recency eviction)", async () => {
  const node = new Node();
  const source = node.source();
  assert.deepEqual(await read(source, 1), { entries: { [K1]: [] }, overflow: [] }); // watched
  node.translated(nat(1), "10.244.0.5");
  for (let n = 0; n < 5000; n++) node.translated(other(n), "10.244.0.9"); // a busy ingress node
  const r = await read(source, 1);
  assert.deepEqual(r?.overflow, []);
  assert.deepEqual(r?.entries[K1]?.map((e) => e.sport), [40001]);
});

Deno.test("events source evidence: a key with more translated entries than kept is in overflow (nothing known), never listed in part", async () => {
  const node = new Node();
  const source = node.source();
  await read(source, 1); // key 1 watched: up to MAX_EVIDENCE_PER_KEY (4096) entries
  for (let p = 1; p <= 4097; p++) node.translated(nat(1, 1000 + p), "10.244.0.5");
  // Key 2, not watched yet, keeps 64: a 65th makes it unknown when it is asked.
  for (let p = 1; p <= 65; p++) node.translated(nat(2, 1000 + p), "10.244.0.5");
  let r = await read(source, 1, 2);
  assert.deepEqual(r?.overflow.sort(), [K1, "ipv4 10.0.0.2 10.96.0.10 80 0"]);
  assert.deepEqual(r?.entries[K1], []);
  // The entries it dropped may still be in the table: it stays unknown.
  node.table.clear();
  node.translated(nat(1, 999), "10.244.0.5");
  r = await read(source, 1);
  assert.deepEqual(r?.overflow, [K1]);
  // Below the bounds, both kinds of key are listed in full.
  await read(source, 3);
  for (let p = 1; p <= 64; p++) node.translated(nat(3, 1000 + p), "10.244.0.5");
  for (let p = 1; p <= 64; p++) node.translated(nat(4, 1000 + p), "10.244.0.5");
  r = await read(source, 3, 4);
  assert.deepEqual(r?.overflow, []);
  assert.equal(r?.entries["ipv4 10.0.0.3 10.96.0.10 80 0"]?.length, 64);
  assert.equal(r?.entries["ipv4 10.0.0.4 10.96.0.10 80 0"]?.length, 64);
});

Deno.test("events source evidence: the listed reply zone is the reply direction's, not the original's", async () => {
  const node = new Node();
  const source = node.source();
  await read(source, 1);
  node.translated(nat(1), "10.244.0.5", true, { orig: 0, reply: 7 });
  const r = await read(source, 1);
  assert.deepEqual(r?.entries[K1]?.map((e) => [e.sport, e.replyZone]), [[40001, 7]]);
});

Deno.test("events source evidence: none from a poll whose drain stopped at maxEventsPerPoll (an older entry's event may still be queued); the next poll that empties the queue gives it", async () => {
  const node = new Node();
  const source = node.source({ maxEventsPerPoll: 2 });
  await read(source, 1);
  for (const i of [11, 12, 13, 14]) node.add(spec(i));
  node.translated(nat(1), "10.244.0.5"); // its event is fifth in the queue
  assert.equal(await read(source, 1), undefined, "two drains of two: one event left");
  const r = await read(source, 1);
  assert.deepEqual(r?.entries[K1]?.map((e) => e.sport), [40001]);
  assert.equal(node.dumps, 1, "events still queued are no loss: no dump");
});

Deno.test("events source: a message that does not decode, or a datagram cut short, makes that poll dump (the event is lost)", async () => {
  const node = new Node();
  const source = node.source();
  await source.snapshot();
  node.add(spec(1), false); // its event is the garbled one
  // An attribute that claims more bytes than the message has.
  node.queue.push(newEvent(new Uint8Array([2, 0, 0, 0, 0xff, 0x00, 0x01, 0x80])));
  let s = await source.snapshot();
  assert.deepEqual(keys(s), ["10.0.0.1"]);
  assert.equal(source.stats.resyncs.malformed, 1);
  assert.equal(s.malformed, 1);
  assert.equal(node.dumps, 2);

  node.add(spec(2), false);
  node.queue.push(newEvent(new Uint8Array(70_000))); // more than the 64 KiB buffer
  s = await source.snapshot();
  assert.deepEqual(keys(s), ["10.0.0.1", "10.0.0.2"]);
  assert.equal(source.stats.resyncs.malformed, 2);
  assert.equal(node.dumps, 3);
  await source.snapshot();
  assert.equal(node.dumps, 3, "one dump per loss");
});

Deno.test("events source: no event while the table's entry count changes for quietMs makes a check dump; candidates it finds unannounced count as missed and the socket is subscribed again", async () => {
  const node = new Node();
  const missed: number[] = [];
  const source = node.source({
    quietMs: 1000,
    resyncIntervalMs: 600_000,
    onMissed: (n) => missed.push(n),
  });
  node.sysctls.nf_conntrack_count = "10";
  await source.snapshot(); // start
  node.now = 500;
  await source.snapshot();
  node.now = 1500;
  await source.snapshot();
  assert.equal(node.dumps, 1, "quiet, but the count did not change");
  node.add(spec(1), false); // created, never announced
  node.sysctls.nf_conntrack_count = "11";
  node.now = 1600;
  const s = await source.snapshot();
  assert.deepEqual(keys(s), ["10.0.0.1"]);
  assert.equal(source.stats.resyncs.stalled, 1);
  assert.equal(source.stats.missed, 1);
  assert.deepEqual(missed, [1]);
  assert.equal(node.events.opens, 2, "subscribed again");
  assert.ok(node.events.sockets[0]!.closed);
  await source.snapshot(); // what the new socket did not hear: dumped again, nothing missed
  assert.equal(source.stats.resyncs.stalled, 2);
  assert.equal(source.stats.missed, 1);
});

Deno.test("events source: a stall check that finds nothing missed doubles the quiet time; a heard event starts the quiet time again", async () => {
  const node = new Node();
  const source = node.source({ quietMs: 1000, resyncIntervalMs: 600_000 });
  let count = 10;
  const poll = async (at: number) => {
    node.now = at;
    node.sysctls.nf_conntrack_count = `${count++}`; // the table keeps changing (UDP, say)
    await source.snapshot();
    return node.dumps;
  };
  assert.equal(await poll(0), 1);
  assert.equal(await poll(500), 1);
  assert.equal(await poll(1000), 2, "quiet 1 s: checked");
  assert.equal(await poll(2500), 2);
  assert.equal(await poll(3000), 3, "then quiet 2 s");
  assert.equal(await poll(6500), 3);
  assert.equal(await poll(7000), 4, "then 4 s");
  node.add(spec(1)); // heard: the stream works
  assert.equal(await poll(7500), 4);
  assert.equal(await poll(8400), 4);
  assert.equal(await poll(8600), 5, "quiet 1 s again after the event");
  assert.equal(source.stats.missed, 0);
});

Deno.test("events source: nf_conntrack_events switched off makes every poll read the whole table (no evidence) until it is on again, then once more", async () => {
  const node = new Node();
  const told: boolean[] = [];
  const source = node.source({ onEventsSwitch: (on) => told.push(on) });
  await read(source, 1);
  node.translated(nat(1), "10.244.0.5");
  assert.deepEqual((await read(source, 1))?.entries[K1]?.length, 1);
  node.sysctls.nf_conntrack_events = "0";
  node.add(spec(2), false);
  let s = await source.snapshot(undefined, { evidenceFor: [keyOf(1)] });
  assert.deepEqual(keys(s), ["10.0.0.2"]);
  assert.equal(s.evidence, undefined, "events off: nothing heard is complete");
  node.add(spec(3), false);
  s = await source.snapshot();
  assert.deepEqual(keys(s), ["10.0.0.2", "10.0.0.3"]);
  assert.equal(source.stats.resyncs.events_off, 2);
  assert.deepEqual(told, [false]);
  node.sysctls.nf_conntrack_events = "1";
  node.add(spec(4), false); // made before the switch was seen
  s = await source.snapshot();
  assert.deepEqual(keys(s), ["10.0.0.2", "10.0.0.3", "10.0.0.4"]);
  assert.equal(source.stats.resyncs.events_off, 3);
  assert.deepEqual(told, [false, true]);
  await source.snapshot();
  assert.equal(source.stats.resyncs.events_off, 3, "on again: events from here");
  assert.equal(node.dumps, 4);
});
