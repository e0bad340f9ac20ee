/**
 * NetlinkEventsSource with a fake kernel: scripted events, GETs answered
 * from an in-memory table, a fake dump. The real kernel is in
 * netlink_events_kernel_test.ts.
 */
import assert from "node:assert/strict";
import { IPS_DST_NAT } from "../../lib/netlink/ctnetlink.ts";
import { Errno, ErrnoError } from "../../lib/os/errno.ts";
import { tupleKey } from "../../lib/model/tuple.ts";
import { type NetlinkEventsSource, RESYNC_REASONS } from "../../lib/sources/netlink_events.ts";
import { eventMetrics } from "../../lib/run/sources.ts";
import { Registry } from "../../lib/serve/prom.ts";
import { frame } from "../support/netlink_fake.ts";
import { ESTABLISHED, keyOf, keys, newEvent, Node, spec, tupleOf } from "./events_node.ts";
import { ctMsgType, IPCTNL_MSG_CT_NEW } from "../../lib/netlink/ctnetlink.ts";

Deno.test("events source: the first poll dumps; then candidates heard as events are read by tuple each poll, with their current timeouts, until they are gone or replied", async () => {
  const node = new Node();
  const source = node.source();
  node.table.set(tupleKey(tupleOf(spec(1))), spec(1)); // there before the agent
  node.table.set(tupleKey(tupleOf(spec(9))), spec(9, { tcpState: ESTABLISHED, status: 2 }));
  assert.deepEqual(keys(await source.snapshot()), ["10.0.0.1"]);
  assert.equal(node.dumps, 1);
  assert.equal(source.stats.resyncs.start, 1);

  node.add(spec(2));
  node.add(spec(3));
  let s = await source.snapshot();
  assert.deepEqual(keys(s), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  assert.equal(node.dumps, 1, "no dump after the first");
  assert.equal(source.stats.received, 2);
  assert.equal(s.scanned, 2 + 3, "two events and three GETs");

  node.table.set(tupleKey(tupleOf(spec(2))), spec(2, { timeout: 60 })); // renewed
  node.table.delete(tupleKey(tupleOf(spec(1)))); // gone
  node.table.set(tupleKey(tupleOf(spec(3))), spec(3, { tcpState: ESTABLISHED, status: 2 })); // replied
  s = await source.snapshot();
  assert.deepEqual(keys(s), ["10.0.0.2"]);
  assert.equal(s.candidates[0]!.timeout, 60);
  assert.equal(source.tracked, 1, "the gone and the replied ones are no longer tracked");
  assert.equal(node.dumps, 1);
});

Deno.test("events source: ENOBUFS on the event socket makes that very poll dump, and candidates never heard are found", async () => {
  const node = new Node();
  const source = node.source();
  await source.snapshot();
  node.add(spec(1));
  node.add(spec(2), false); // its event was lost
  node.events.sockets[0]!.queue.push(new ErrnoError(Errno.ENOBUFS, "recv(netlink)"));
  node.add(spec(3));
  const s = await source.snapshot();
  assert.deepEqual(keys(s), ["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
  assert.equal(source.stats.overflows, 1);
  assert.equal(source.stats.resyncs.overflow, 1);
  assert.equal(node.dumps, 2);
  await source.snapshot();
  assert.equal(node.dumps, 2, "one dump per overflow");
});

Deno.test("events source: the safety-net dump runs every resyncIntervalMs, and a failed dump is tried again at the next poll", async () => {
  const node = new Node();
  const source = node.source({ resyncIntervalMs: 10_000 });
  await source.snapshot();
  node.now = 9_000;
  await source.snapshot();
  assert.equal(node.dumps, 1);
  node.now = 10_001;
  node.failDump = true;
  await assert.rejects(source.snapshot(), /dump failed/);
  node.failDump = false;
  node.add(spec(4), false);
  assert.deepEqual(keys(await source.snapshot()), ["10.0.0.4"]);
  assert.deepEqual(source.stats.resyncs, {
    start: 1,
    overflow: 0,
    error: 0,
    periodic: 2,
    limit: 0,
    malformed: 0,
    stalled: 0,
    events_off: 0,
  });
});

Deno.test("events source: a failed GET fails the poll (never half a table) and the next poll dumps", async () => {
  const node = new Node();
  const source = node.source();
  await source.snapshot();
  node.add(spec(1));
  node.getsFail = Errno.EPERM;
  await assert.rejects(source.snapshot(), /reading a tracked candidate failed/);
  node.getsFail = undefined;
  assert.deepEqual(keys(await source.snapshot()), ["10.0.0.1"]);
  assert.equal(source.stats.resyncs.error, 1);
});

Deno.test("events source: another event socket error reopens the socket and dumps", async () => {
  const node = new Node();
  const source = node.source();
  await source.snapshot();
  node.events.sockets[0]!.queue.push(new ErrnoError(Errno.EPERM, "recv(netlink)"));
  node.add(spec(1), false);
  assert.deepEqual(keys(await source.snapshot()), ["10.0.0.1"], "dumped in the same poll");
  assert.equal(node.events.opens, 2, "subscribed again before that dump");
  assert.ok(node.events.sockets[0]!.closed);
  assert.equal(source.stats.resyncs.error, 1);
  node.add(spec(2)); // heard on the new socket
  assert.deepEqual(keys(await source.snapshot()), ["10.0.0.1", "10.0.0.2"]);
  assert.equal(node.dumps, 2);
});

Deno.test("events source: candidates beyond maxCandidates are left out, and a dump fills the room once there is some", async () => {
  const node = new Node();
  const source = node.source({ maxCandidates: 2 });
  await source.snapshot();
  for (const i of [1, 2, 3]) node.add(spec(i));
  assert.deepEqual(keys(await source.snapshot()), ["10.0.0.1", "10.0.0.2"]);
  assert.equal(node.dumps, 1, "no room: no dump");
  node.table.delete(tupleKey(tupleOf(spec(1))));
  assert.deepEqual(keys(await source.snapshot()), ["10.0.0.2"]);
  assert.deepEqual(keys(await source.snapshot()), ["10.0.0.2", "10.0.0.3"]);
  assert.equal(source.stats.resyncs.limit, 1);
});

/** One read with evidence asked for `is`' keys: the evidence, as plain objects. */
async function read(source: NetlinkEventsSource, ...is: number[]) {
  const snap = await source.snapshot(undefined, { evidenceFor: is.map(keyOf) });
  return snap.evidence && {
    entries: Object.fromEntries([...snap.evidence.entries].map(([k, v]) => [k, v])),
    overflow: [...snap.evidence.overflow],
  };
}

Deno.test("events source: evidence lists, per client key, the translated entries heard as new and read again in this snapshot; never one it did not hear", async () => {
  const node = new Node();
  const nat = (i: number) => spec(i, { tcpState: ESTABLISHED, status: IPS_DST_NAT | 2 });
  // There before the agent subscribed: never heard, never listed.
  node.translated(nat(6), "10.244.0.4", false);
  const source = node.source();
  assert.deepEqual(await read(source, 6), {
    entries: { "ipv4 10.0.0.6 10.96.0.10 80 0": [] },
    overflow: [],
  });

  const e = nat(7);
  node.translated(e, "10.244.0.5");
  node.translated(nat(8), "10.244.0.6", false);
  const update = node.special.get(tupleKey(tupleOf(nat(8))))!;
  node.queue.push(frame(ctMsgType(IPCTNL_MSG_CT_NEW), 0, 0, 0, update)); // not a creation
  const gets = node.kernel.requests.length;
  assert.deepEqual(await read(source, 6, 7, 8), {
    entries: {
      "ipv4 10.0.0.6 10.96.0.10 80 0": [],
      "ipv4 10.0.0.7 10.96.0.10 80 0": [{
        sport: 40007,
        replyZone: 0,
        translated: { addr: "10.244.0.5", port: 8080 },
      }],
      "ipv4 10.0.0.8 10.96.0.10 80 0": [],
    },
    overflow: [],
  });
  assert.equal(node.kernel.requests.length, gets + 1, "one GET: the entry heard, read again");

  node.table.delete(tupleKey(tupleOf(e)));
  assert.deepEqual((await read(source, 7))?.entries, { "ipv4 10.0.0.7 10.96.0.10 80 0": [] });
  const after = node.kernel.requests.length;
  node.translated(e, "10.244.0.5", false); // the same tuple again, but no event: not listed
  assert.deepEqual((await read(source, 7))?.entries, { "ipv4 10.0.0.7 10.96.0.10 80 0": [] });
  assert.equal(node.kernel.requests.length, after, "the gone one was forgotten");

  node.queue.push(newEvent(node.special.get(tupleKey(tupleOf(e)))!));
  node.getsFail = Errno.EPERM;
  assert.equal(await read(source, 7), undefined, "a failed read of evidence: none at all");
});

Deno.test("eventMetrics: conntrack_cleaner_resyncs_total has a series for every resync reason the source has", () => {
  const r = new Registry();
  eventMetrics(r, () => undefined);
  const text = r.metrics();
  for (const reason of RESYNC_REASONS) {
    assert.match(
      text,
      new RegExp(`^conntrack_cleaner_resyncs_total\\{reason="${reason}"\\} 0$`, "m"),
    );
  }
});
