import assert from "node:assert/strict";
import { MessageBuilder } from "../../lib/netlink/builder.ts";
import { ctMsgType, IPCTNL_MSG_CT_NEW } from "../../lib/netlink/ctnetlink.ts";
import { Errno, ErrnoError } from "../../lib/os/errno.ts";
import { getEntries } from "../../lib/netlink/get_batch.ts";
import { type ParsedTuple, parseTuple, tupleKey } from "../../lib/model/tuple.ts";
import { decodeRequest, errorFor, FakeKernel, frame } from "../support/netlink_fake.ts";
import { appendNewRequest } from "../support/netlink_fill.ts";

function tuple(i: number): ParsedTuple {
  const r = parseTuple({
    family: "ipv4",
    src: `10.0.0.${i}`,
    dst: "10.0.1.1",
    sport: 40000 + i,
    dport: 80,
    zone: 0,
  });
  assert.ok(r.ok);
  return r.tuple;
}

function entry(t: ParsedTuple, timeout: number): Uint8Array {
  const b = new MessageBuilder();
  appendNewRequest(b, 1, { ...t, status: 0, tcpState: 1, timeout });
  return b.bytes().slice(16);
}

const options = (seq = { n: 1 }) => ({
  clock: () => performance.now(),
  timeoutMs: 20,
  buffer: new Uint8Array(65536),
  nextSeq: () => seq.n++,
});

Deno.test("getEntries: one answer per tuple in order, pipelined by batch: entry, gone, kernel error", async () => {
  const present = new Map([[tupleKey(tuple(1)), 100], [tupleKey(tuple(3)), 50]]);
  const k = new FakeKernel((req, s) => {
    const t = decodeRequest(req).tuple!;
    if (t.src === "10.0.0.4") return [errorFor(req, s.portId, Errno.EPERM)];
    const timeout = present.get(tupleKey(t));
    return timeout === undefined ? [errorFor(req, s.portId, Errno.ENOENT)] : [
      frame(
        ctMsgType(IPCTNL_MSG_CT_NEW),
        0,
        req.seq,
        s.portId,
        entry(tuple(Number(t.src.slice(7))), timeout),
      ),
    ];
  });
  const t = k.open();
  const answers = await getEntries(t, [1, 2, 3, 4].map(tuple), { ...options(), batchSize: 3 });
  assert.deepEqual(answers.map((a) => a.kind), ["entry", "gone", "entry", "error"]);
  assert.equal(answers[0]!.kind === "entry" && answers[0]!.entry.timeout, 100);
  assert.equal(answers[2]!.kind === "entry" && answers[2]!.entry.timeout, 50);
  assert.match(answers[3]!.kind === "error" ? answers[3]!.error : "", /EPERM/);
  // Two sends: a batch of 3, then 1.
  assert.equal(k.requests.length, 4);
});

Deno.test("getEntries: an answer for another tuple, and a lost answer, are errors for that tuple only", async () => {
  const k = new FakeKernel((req, s) => {
    const t = decodeRequest(req).tuple!;
    if (t.src === "10.0.0.1") {
      return [frame(ctMsgType(IPCTNL_MSG_CT_NEW), 0, req.seq, s.portId, entry(tuple(9), 10))];
    }
    if (t.src === "10.0.0.2") return [new ErrnoError(Errno.ENOBUFS, "recv(netlink)")];
    return [frame(ctMsgType(IPCTNL_MSG_CT_NEW), 0, req.seq, s.portId, entry(tuple(3), 10))];
  });
  const answers = await getEntries(k.open(), [1, 2, 3].map(tuple), options());
  assert.match(
    answers[0]!.kind === "error" ? answers[0]!.error : "",
    /another entry: ipv4 10\.0\.0\.9/,
  );
  assert.match(answers[1]!.kind === "error" ? answers[1]!.error : "", /answer lost/);
  assert.equal(answers[2]!.kind, "entry");
});
