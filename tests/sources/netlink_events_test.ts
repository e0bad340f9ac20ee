/**
 * NetlinkEventsSource with a fake kernel: scripted events, GETs answered
 * from an in-memory table, a fake dump. The real kernel is in
 * netlink_events_kernel_test.ts.
 */
import assert from "node:assert/strict";
import { MessageBuilder } from "../../lib/netlink/builder.ts";
import {
  AF_INET,
  appendTuple,
  CTA_STATUS,
  CTA_TIMEOUT,
  CTA_TUPLE_ORIG,
  CTA_TUPLE_REPLY,
  ctMsgType,
  IPCTNL_MSG_CT_NEW,
  IPS_DST_NAT,
} from "../../lib/netlink/ctnetlink.ts";
import { Errno, ErrnoError } from "../../lib/os/errno.ts";
import { NLM_F_CREATE, NLM_F_EXCL } from "../../lib/netlink/message.ts";
import type { Candidate, Snapshot } from "../../lib/model/snapshot.ts";
import type { Source } from "../../lib/sources/source.ts";
import { NetlinkEventsSource } from "../../lib/sources/netlink_events.ts";
import { type Tuple, tupleKey } from "../../lib/model/tuple.ts";
import { decodeRequest, errorFor, FakeKernel, frame } from "../support/netlink_fake.ts";
import { appendNewRequest, type EntrySpec } from "../support/netlink_fill.ts";

const SYN_SENT = 1, ESTABLISHED = 3;

function spec(i: number, o: Partial<EntrySpec> = {}): EntrySpec {
  return {
    family: "ipv4",
    src: `10.0.0.${i}`,
    dst: "10.96.0.10",
    sport: 40000 + i,
    dport: 80,
    zone: 0,
    status: 0,
    tcpState: SYN_SENT,
    timeout: 120,
    ...o,
  };
}

/** The CT_NEW payload of an entry (nfgenmsg and attributes). */
function payload(s: EntrySpec): Uint8Array {
  const b = new MessageBuilder();
  appendNewRequest(b, 1, s);
  return b.bytes().slice(16);
}

/** A fake node: its table, event queue, GETs and dumps. */
class Node {
  table = new Map<string, EntrySpec>();
  dumps = 0;
  failDump = false;
  getsFail: number | undefined;
  kernel = new FakeKernel((req, s) => {
    const t = decodeRequest(req).tuple!;
    if (this.getsFail !== undefined) return [errorFor(req, s.portId, this.getsFail)];
    const e = this.table.get(tupleKey(t));
    return e === undefined
      ? [errorFor(req, s.portId, Errno.ENOENT)]
      : [frame(ctMsgType(IPCTNL_MSG_CT_NEW), 0, req.seq, s.portId, this.payloadOf(e))];
  });
  events = new FakeKernel(() => []);
  payloadOf: (s: EntrySpec) => Uint8Array = payload;
  now = 0;
  readonly dump: Source = {
    name: "fake dump",
    snapshot: (): Promise<Snapshot> => {
      this.dumps++;
      if (this.failDump) return Promise.reject(new Error("dump failed"));
      const candidates: Candidate[] = [...this.table.values()]
        .filter((e) => e.tcpState === SYN_SENT && e.proto === undefined)
        .map((e) => ({ ...tupleOf(e), timeout: e.timeout, seenFrom: 0, seenTo: 0 }));
      return Promise.resolve({
        candidates,
        scanned: this.table.size,
        malformed: 0,
        startedAt: 0,
        finishedAt: 0,
      });
    },
  };

  add(s: EntrySpec, heard = true): void {
    this.table.set(tupleKey(tupleOf(s)), s);
    if (heard) this.event(s);
  }
  event(s: EntrySpec): void {
    const q = this.events.sockets.at(-1)!.queue;
    q.push(frame(ctMsgType(IPCTNL_MSG_CT_NEW), NLM_F_CREATE | NLM_F_EXCL, 0, 0, payload(s)));
  }
  source(o: { maxCandidates?: number; resyncIntervalMs?: number } = {}): NetlinkEventsSource {
    return new NetlinkEventsSource({
      dump: this.dump,
      clock: () => this.now,
      openEvents: () => this.events.open(),
      openTransport: () => this.kernel.open(),
      timeoutMs: 50,
      ...o,
    });
  }
}

function tupleOf(e: EntrySpec): Tuple {
  return { family: e.family, src: e.src, dst: e.dst, sport: e.sport, dport: e.dport, zone: e.zone };
}

const keys = (s: Snapshot) => s.candidates.map((c) => c.src).sort();

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

/** A translated entry's payload: the reply comes from `backend`. */
function natPayload(s: EntrySpec, backend: string, port: number): Uint8Array {
  const b = new MessageBuilder();
  b.beginMessage(ctMsgType(IPCTNL_MSG_CT_NEW), 0, 1, AF_INET);
  appendTuple(b, CTA_TUPLE_ORIG, s);
  appendTuple(b, CTA_TUPLE_REPLY, {
    family: "ipv4",
    src: backend,
    dst: s.src,
    sport: port,
    dport: s.sport,
  });
  b.be32(CTA_STATUS, s.status);
  b.be32(CTA_TIMEOUT, s.timeout);
  b.endMessage();
  return b.bytes().slice(16);
}

Deno.test("events source: evidence lists, per client key, the translated entries heard as new and read again in this snapshot; never one it did not hear", async () => {
  const node = new Node();
  const nat = new Map<string, Uint8Array>();
  node.payloadOf = (s) => nat.get(tupleKey(tupleOf(s))) ?? payload(s);
  const translated = (s: EntrySpec, backend: string) => {
    nat.set(tupleKey(tupleOf(s)), natPayload(s, backend, 8080));
    node.table.set(tupleKey(tupleOf(s)), s);
  };
  const heard = (s: EntrySpec, flags = NLM_F_CREATE | NLM_F_EXCL) =>
    node.events.sockets.at(-1)!.queue.push(
      frame(ctMsgType(IPCTNL_MSG_CT_NEW), flags, 0, 0, nat.get(tupleKey(tupleOf(s)))!),
    );
  const key = (i: number) => ({
    family: "ipv4" as const,
    src: `10.0.0.${i}`,
    dst: "10.96.0.10",
    dport: 80,
    zone: 0,
  });
  const read = async (...is: number[]) => {
    const snap = await source.snapshot(undefined, { evidenceFor: is.map(key) });
    return snap.evidence && {
      entries: Object.fromEntries([...snap.evidence.entries].map(([k, v]) => [k, v])),
      overflow: [...snap.evidence.overflow],
    };
  };
  // There before the agent subscribed: never heard, never listed.
  const before = spec(6, { tcpState: ESTABLISHED, status: IPS_DST_NAT | 2 });
  translated(before, "10.244.0.4");
  const source = node.source();
  assert.deepEqual(await read(6), {
    entries: { "ipv4 10.0.0.6 10.96.0.10 80 0": [] },
    overflow: [],
  });

  const e = spec(7, { tcpState: ESTABLISHED, status: IPS_DST_NAT | 2 });
  translated(e, "10.244.0.5");
  heard(e);
  const f = spec(8, { tcpState: ESTABLISHED, status: IPS_DST_NAT | 2 });
  translated(f, "10.244.0.6");
  heard(f, 0); // an update, not a creation
  const gets = node.kernel.requests.length;
  assert.deepEqual(await read(6, 7, 8), {
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
  assert.deepEqual((await read(7))?.entries, { "ipv4 10.0.0.7 10.96.0.10 80 0": [] }, "gone");
  const after = node.kernel.requests.length;
  translated(e, "10.244.0.5"); // the same tuple again, but no event: not listed
  assert.deepEqual((await read(7))?.entries, { "ipv4 10.0.0.7 10.96.0.10 80 0": [] });
  assert.equal(node.kernel.requests.length, after, "the gone one was forgotten");

  heard(e);
  node.getsFail = Errno.EPERM;
  assert.equal(await read(7), undefined, "a failed read of evidence: none at all");
});
