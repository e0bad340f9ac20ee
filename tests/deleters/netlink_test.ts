import assert from "node:assert/strict";
import type { Tuple } from "../../lib/model/tuple.ts";
import { tupleKey } from "../../lib/model/tuple.ts";
import { NetlinkDeleter } from "../../lib/deleters/netlink.ts";
import { decodeConntrack, entryTuple } from "../../lib/netlink/conntrack_entry.ts";
import { ctMsgType, IPCTNL_MSG_CT_DELETE, IPCTNL_MSG_CT_GET } from "../../lib/netlink/ctnetlink.ts";
import { Errno, ErrnoError } from "../../lib/os/errno.ts";
import {
  decodeRequest,
  type Delivery,
  entryFor,
  entryPayloads,
  errorFor,
  FakeKernel,
} from "../support/netlink_fake.ts";

const ALL = entryPayloads("dump_all");
const bySport = (sport: number) => ALL.find((p) => decodeConntrack(p).sport === sport)!;
const tupleOf = (sport: number): Tuple => entryTuple(decodeConntrack(bySport(sport)));

const GET = ctMsgType(IPCTNL_MSG_CT_GET);
const DELETE = ctMsgType(IPCTNL_MSG_CT_DELETE);

/**
 * A kernel holding captured entries: answers GET with the entry or ENOENT,
 * DELETE (matching the id when one is given) with an ACK or ENOENT.
 */
function tableKernel(payloads: Uint8Array[], tweak?: (op: "get" | "delete") => number | undefined) {
  const table = new Map(payloads.map((p) => [tupleKey(entryTuple(decodeConntrack(p))), p]));
  return new FakeKernel((req, k): Delivery[] => {
    const r = decodeRequest(req);
    const key = tupleKey(r.tuple!);
    const p = table.get(key);
    const forced = tweak?.(req.type === GET ? "get" : "delete");
    if (forced !== undefined) return [errorFor(req, k.portId, forced)];
    if (req.type === GET) {
      return [p ? entryFor(req.seq, k.portId, p) : errorFor(req, k.portId, Errno.ENOENT)];
    }
    if (req.type === DELETE) {
      if (!p || (r.id !== undefined && r.id !== decodeConntrack(p).id)) {
        return [errorFor(req, k.portId, Errno.ENOENT)];
      }
      table.delete(key);
      return [errorFor(req, k.portId, 0)];
    }
    return [errorFor(req, k.portId, Errno.EOPNOTSUPP)];
  });
}

Deno.test("NetlinkDeleter.delete GETs the tuple, then DELETEs it bound to the CTA_ID it just read", async () => {
  const kernel = tableKernel(ALL);
  const deleter = new NetlinkDeleter({ openTransport: () => kernel.open() });
  const t = tupleOf(40001);
  const out = await deleter.delete([t]);
  assert.deepEqual(out, [{ tuple: t, result: "deleted" }]);
  assert.deepEqual(kernel.requests.map((m) => m.type), [GET, DELETE]);
  const del = decodeRequest(kernel.requests[1]!);
  assert.deepEqual(del.tuple, t);
  assert.equal(del.id, decodeConntrack(bySport(40001)).id);
  deleter.close();
});

Deno.test("NetlinkDeleter.delete sends the zone and leaves the same tuple in another zone alone", async () => {
  const kernel = tableKernel(ALL);
  const deleter = new NetlinkDeleter({ openTransport: () => kernel.open() });
  const zone5 = tupleOf(40003);
  assert.equal(zone5.zone, 5);
  const out = await deleter.delete([{ ...zone5, zone: 0 }, zone5]);
  assert.deepEqual(out.map((o) => o.result), ["already_gone", "deleted"]);
  assert.equal(decodeRequest(kernel.requests[0]!).tuple!.zone, 0);
});

Deno.test("NetlinkDeleter.delete returns already_gone, and sends no DELETE, for entries that are ESTABLISHED, TIME_WAIT or UDP", async () => {
  const kernel = tableKernel(ALL);
  const deleter = new NetlinkDeleter({ openTransport: () => kernel.open() });
  const out = await deleter.delete([tupleOf(40004), tupleOf(40005), tupleOf(40006)]);
  assert.deepEqual(out.map((o) => o.result), ["already_gone", "already_gone", "already_gone"]);
  assert.ok(kernel.requests.every((m) => m.type === GET));
});

Deno.test("NetlinkDeleter.delete returns already_gone for a missing tuple (ENOENT)", async () => {
  const kernel = tableKernel(ALL);
  const deleter = new NetlinkDeleter({ openTransport: () => kernel.open() });
  const t = { ...tupleOf(40001), sport: 1 };
  assert.deepEqual(await deleter.delete([t]), [{ tuple: t, result: "already_gone" }]);
});

Deno.test("NetlinkDeleter.delete returns already_gone when the entry was replaced between GET and DELETE (id mismatch: ENOENT)", async () => {
  const kernel = tableKernel(ALL, (op) => (op === "delete" ? Errno.ENOENT : undefined));
  const deleter = new NetlinkDeleter({ openTransport: () => kernel.open() });
  const out = await deleter.delete([tupleOf(40002)]);
  assert.deepEqual(out.map((o) => o.result), ["already_gone"], out[0]!.error);
});

Deno.test("NetlinkDeleter.delete leaves an entry whose id is not the one the tracker saw (the tuple was taken by a new entry)", async () => {
  const kernel = tableKernel(ALL);
  const deleter = new NetlinkDeleter({ openTransport: () => kernel.open() });
  const t = tupleOf(40001);
  const id = decodeConntrack(bySport(40001)).id!;
  const out = await deleter.delete([{ ...t, id: (id + 1) >>> 0 }]);
  assert.deepEqual(out.map((o) => o.result), ["already_gone"]);
  assert.ok(kernel.requests.every((m) => m.type === GET), "no DELETE sent");
  // with the id it saw, it deletes
  const again = await deleter.delete([{ ...t, id }]);
  assert.deepEqual(again.map((o) => o.result), ["deleted"]);
  deleter.close();
});

Deno.test("NetlinkDeleter.delete fails, and DELETEs nothing, when the GET answer is another tuple's entry", async () => {
  // A kernel that answers every GET with the stuck entry of port 40002 (SYN_SENT, unreplied).
  const other = bySport(40002);
  const kernel = new FakeKernel((req, k): Delivery[] =>
    req.type === GET ? [entryFor(req.seq, k.portId, other)] : [errorFor(req, k.portId, 0)]
  );
  const deleter = new NetlinkDeleter({ openTransport: () => kernel.open() });
  const out = await deleter.delete([tupleOf(40001)]);
  assert.deepEqual(out.map((o) => o.result), ["failed"]);
  assert.match(out[0]!.error ?? "", /kernel answered with another entry/);
  assert.ok(kernel.requests.every((m) => m.type === GET), "no DELETE sent");
  deleter.close();
});

Deno.test("NetlinkDeleter.delete returns failed with the errno name and message for EPERM", async () => {
  for (const op of ["get", "delete"] as const) {
    const kernel = tableKernel(ALL, (o) => (o === op ? Errno.EPERM : undefined));
    const deleter = new NetlinkDeleter({ openTransport: () => kernel.open() });
    const [o] = await deleter.delete([tupleOf(40001)]);
    assert.ok(o);
    assert.ok(o);
    assert.equal(o.result, "failed");
    assert.equal(o.error, `ctnetlink ${op}: EPERM (Operation not permitted)`);
  }
});

Deno.test("NetlinkDeleter.delete fails invalid tuples without sending them and keeps the order of outcomes", async () => {
  const kernel = tableKernel(ALL);
  const deleter = new NetlinkDeleter({ openTransport: () => kernel.open() });
  const bad = { ...tupleOf(40001), src: "10.0.0.300" };
  const out = await deleter.delete([bad, tupleOf(40001), { ...tupleOf(40002), dport: 70000 }]);
  assert.deepEqual(out.map((o) => o.result), ["failed", "deleted", "failed"]);
  assert.match(out[0]!.error!, /invalid tuple: bad ipv4 src/);
  assert.match(out[2]!.error!, /invalid tuple: bad dport/);
  assert.equal(out[0]!.tuple, bad);
  assert.equal(kernel.requests.filter((m) => m.type === GET).length, 1);
});

Deno.test("NetlinkDeleter.delete pipelines many tuples into few sends and matches answers by sequence number", async () => {
  // 300 SYN_SENT entries that differ by source port.
  const base = bySport(40001);
  const payloads: Uint8Array[] = [];
  const tuples: Tuple[] = [];
  for (let i = 0; i < 300; i++) {
    const p = base.slice();
    // Rewrite the big-endian source port inside CTA_TUPLE_ORIG (first occurrence of 40001).
    const at = p.findIndex((_, j) => p[j] === 0x9c && p[j + 1] === 0x41);
    p[at] = (20000 + i) >> 8;
    p[at + 1] = (20000 + i) & 0xff;
    payloads.push(p);
    tuples.push(entryTuple(decodeConntrack(p)));
  }
  const kernel = tableKernel(payloads);
  let sends = 0;
  const open = () => {
    // Answer each batch in reverse order.
    const s = kernel.open();
    const send = s.send.bind(s);
    s.send = async (d) => {
      sends++;
      const before = s.queue.length;
      await send(d);
      s.queue.splice(before, s.queue.length - before, ...s.queue.slice(before).reverse());
    };
    return s;
  };
  const deleter = new NetlinkDeleter({ batchSize: 128, openTransport: open });
  assert.deepEqual(tuples.map((t) => t.sport), tuples.map((_, i) => 20000 + i), "300 tuples");
  const missing = { ...tuples[0]!, sport: 1 };
  const out = await deleter.delete([...tuples, missing]);
  assert.equal(sends, 6, "3 batches, each one GET send and one DELETE send");
  assert.deepEqual(out.slice(0, 300).map((o) => o.result), new Array(300).fill("deleted"));
  assert.equal(out[300]!.result, "already_gone");
  // each outcome is the one for its own tuple, in the order asked
  assert.equal(out.length, 301);
  out.forEach((o, i) => assert.equal(o.tuple, i < 300 ? tuples[i] : missing, `outcome ${i}`));
});

Deno.test("NetlinkDeleter.delete never rejects: a socket that cannot open gives failed outcomes", async () => {
  const deleter = new NetlinkDeleter({
    openTransport: () => {
      throw new ErrnoError(Errno.EPROTONOSUPPORT, "socket(AF_NETLINK, NETLINK_NETFILTER)");
    },
  });
  const out = await deleter.delete([tupleOf(40001), tupleOf(40002)]);
  assert.deepEqual(out.map((o) => o.result), ["failed", "failed"]);
  assert.match(out[0]!.error!, /EPROTONOSUPPORT/);
});

Deno.test("NetlinkDeleter.delete fails, as outcome unknown, requests whose answers were lost (ENOBUFS)", async () => {
  const kernel = tableKernel(ALL);
  const open = () => {
    const s = kernel.open();
    const send = s.send.bind(s);
    s.send = async (d) => {
      await send(d);
      if (kernel.requests[kernel.requests.length - 1]!.type === DELETE) {
        s.queue.length = 0; // the acks were dropped
        s.queue.push(new ErrnoError(Errno.ENOBUFS, "recv(netlink)"));
      }
    };
    return s;
  };
  const deleter = new NetlinkDeleter({ openTransport: open });
  const [o] = await deleter.delete([tupleOf(40001)]);
  assert.ok(o);
  assert.equal(o.result, "failed");
  assert.match(o.error!, /answer lost.*ENOBUFS.*outcome unknown/);
});

Deno.test("NetlinkDeleter.delete fails requests the kernel never answers, after replyTimeoutMs", async () => {
  const kernel = new FakeKernel(() => []);
  const deleter = new NetlinkDeleter({ replyTimeoutMs: 20, openTransport: () => kernel.open() });
  const [o] = await deleter.delete([tupleOf(40001)]);
  assert.ok(o);
  assert.equal(o.result, "failed");
  assert.match(o.error!, /no answer from the kernel within 20 ms/);
});

Deno.test("NetlinkDeleter measures its reply deadline with the injected clock, not the wall", async () => {
  const kernel = new FakeKernel(() => []);
  // An hour-long timeout that the fake clock (one minute per read) runs through at once.
  let reads = 0;
  const clock = () => (++reads) * 60_000;
  const deleter = new NetlinkDeleter({
    replyTimeoutMs: 3_600_000,
    clock,
    openTransport: () => kernel.open(),
  });
  const t0 = performance.now();
  const [o] = await deleter.delete([tupleOf(40001)]);
  assert.ok(o);
  assert.equal(o.result, "failed");
  assert.match(o.error!, /no answer from the kernel within 3600000 ms/);
  assert.ok(reads >= 60 && reads < 70, `${reads} clock reads`);
  assert.ok(performance.now() - t0 < 10_000);
  deleter.close();
});

Deno.test("NetlinkDeleter.worstCaseMs allows two reply timeouts per batch; maxPerPoll defaults to 10,000", () => {
  const d = new NetlinkDeleter({ batchSize: 128, replyTimeoutMs: 5000 });
  assert.equal(d.maxPerPoll, 10_000);
  assert.equal(d.worstCaseMs(128), 10_000);
  assert.equal(d.worstCaseMs(129), 20_000);
  assert.equal(new NetlinkDeleter({ maxPerPoll: 5 }).maxPerPoll, 5);
});

Deno.test("NetlinkDeleter.delete returns failed 'aborted' outcomes when the signal is already aborted", async () => {
  const kernel = tableKernel(ALL);
  const deleter = new NetlinkDeleter({ openTransport: () => kernel.open() });
  const ac = new AbortController();
  ac.abort(new Error("shutting down"));
  const out = await deleter.delete([tupleOf(40001)], ac.signal);
  assert.deepEqual(out.map((o) => [o.result, o.error]), [["failed", "aborted: shutting down"]]);
  assert.equal(kernel.requests.length, 0);
});

Deno.test("NetlinkDeleter.delete with no tuples returns no outcomes and opens no socket", async () => {
  let opened = 0;
  const deleter = new NetlinkDeleter({ openTransport: () => (opened++, tableKernel(ALL).open()) });
  assert.deepEqual(await deleter.delete([]), []);
  assert.equal(opened, 0);
});
