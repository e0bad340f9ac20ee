/**
 * NetlinkEventsSource with `heardFirst`: a candidate heard since the last
 * poll is reported from its event (`heard`), read by GET from the next poll
 * on. Fake kernel as in netlink_events_test.ts.
 */
import assert from "node:assert/strict";
import { tupleKey } from "../../lib/model/tuple.ts";
import { ESTABLISHED, keys, Node, spec, tupleOf } from "./events_node.ts";

Deno.test("events source heardFirst: a candidate heard this poll is reported from its event without a GET, marked heard, seen between the last emptying drain and its reading; the next poll reads it", async () => {
  const node = new Node();
  node.now = 1000;
  const source = node.source({ heardFirst: true });
  await source.snapshot(); // the start dump
  node.now = 2000;
  await source.snapshot(); // an empty, complete drain starts at 2000
  node.now = 3000;
  node.add(spec(1, { timeout: 119 }));
  const gets = node.kernel.requests.length;
  let s = await source.snapshot();
  assert.deepEqual(keys(s), ["10.0.0.1"]);
  const c = s.candidates[0]!;
  assert.deepEqual([c.heard, c.timeout, c.seenFrom, c.seenTo], [true, 119, 2000, 3000]);
  assert.equal(node.kernel.requests.length, gets, "no GET for it this poll");

  node.now = 4000;
  node.table.set(tupleKey(tupleOf(spec(1))), spec(1, { timeout: 118 }));
  s = await source.snapshot();
  assert.deepEqual(keys(s), ["10.0.0.1"]);
  assert.equal(s.candidates[0]!.heard, undefined, "read by GET now");
  assert.equal(s.candidates[0]!.timeout, 118);
  assert.equal(node.kernel.requests.length, gets + 1);

  // Answered before the next poll: the GET drops it.
  node.table.set(tupleKey(tupleOf(spec(1))), spec(1, { tcpState: ESTABLISHED, status: 2 }));
  assert.deepEqual(keys(await source.snapshot()), []);
  assert.equal(source.tracked, 0);
});

Deno.test("events source heardFirst: without it (the default) every tracked candidate is read by GET in the poll that heard it", async () => {
  const node = new Node();
  const source = node.source();
  await source.snapshot();
  node.add(spec(2));
  const gets = node.kernel.requests.length;
  const s = await source.snapshot();
  assert.equal(s.candidates[0]!.heard, undefined);
  assert.equal(node.kernel.requests.length, gets + 1);
});

Deno.test("events source heardFirst: candidates heard during a resync are read like the dump's, never reported as heard", async () => {
  const node = new Node();
  const source = node.source({ heardFirst: true, resyncIntervalMs: 10_000 });
  await source.snapshot();
  node.add(spec(3));
  node.now = 10_001; // the periodic dump: the event is drained first, then the dump reads it
  const s = await source.snapshot();
  assert.equal(source.stats.resyncs.periodic, 1);
  assert.deepEqual(keys(s), ["10.0.0.3"]);
  assert.equal(s.candidates[0]!.heard, undefined);
  node.now = 11_000;
  const again = await source.snapshot();
  assert.equal(again.candidates[0]!.heard, undefined, "not kept as heard for the next poll");
});
