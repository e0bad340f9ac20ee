/**
 * NetlinkEventsSource with `heardFirst`: a candidate heard since the last
 * poll is reported from its event (`heard`), read by GET from the next poll
 * on. Fake kernel as in netlink_events_test.ts.
 */
import assert from "node:assert/strict";
import { tupleKey } from "../../lib/model/tuple.ts";
import { ESTABLISHED, keys, newEvent, Node, spec, tupleOf } from "./events_node.ts";
import { ctMsgType, IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_NEW } from "../../lib/netlink/ctnetlink.ts";
import { eventSocketOptions } from "../../lib/sources/events_options.ts";
import { frame } from "../support/netlink_fake.ts";
import { dumpedPayload, type DumpedSpec } from "../support/netlink_fill.ts";

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

Deno.test("events source: an event that ends a candidate with the id it was heard with stops tracking it without a GET; another id (a later entry of the tuple) does not", async () => {
  const node = new Node();
  const source = node.source({ heardFirst: true });
  await source.snapshot();
  const entry = (i: number, id: number, o: Partial<DumpedSpec> = {}) => {
    const s = spec(i, o);
    const p = dumpedPayload({ ...s, id });
    node.special.set(tupleKey(tupleOf(s)), p);
    node.table.set(tupleKey(tupleOf(s)), s);
    return p;
  };
  node.queue.push(newEvent(entry(1, 11)), newEvent(entry(2, 12)), newEvent(entry(3, 13)));
  assert.deepEqual(keys(await source.snapshot()), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  // 1 answered (an update to SYN_RECV), 2 destroyed, 3: a destruction of another entry.
  const answered = entry(1, 11, { tcpState: 2, status: 2 });
  node.queue.push(frame(ctMsgType(IPCTNL_MSG_CT_NEW), 0, 0, 0, answered));
  node.queue.push(frame(ctMsgType(IPCTNL_MSG_CT_DELETE), 0, 0, 0, entry(2, 12)));
  node.table.delete(tupleKey(tupleOf(spec(2))));
  node.queue.push(
    frame(ctMsgType(IPCTNL_MSG_CT_DELETE), 0, 0, 0, dumpedPayload({ ...spec(3), id: 99 })),
  );
  const gets = node.kernel.requests.length;
  const s = await source.snapshot();
  assert.deepEqual(keys(s), ["10.0.0.3"]);
  assert.equal(source.tracked, 1);
  assert.equal(node.kernel.requests.length, gets + 1, "one GET: the third only");
});

Deno.test("eventSocketOptions passes ended and evidence on to the event socket, nothing unset", () => {
  const node = new Node();
  assert.deepEqual(eventSocketOptions({ dump: node.dump, ended: true, evidence: false }), {
    ended: true,
    evidence: false,
  });
  assert.deepEqual(eventSocketOptions({ dump: node.dump }), {});
});
