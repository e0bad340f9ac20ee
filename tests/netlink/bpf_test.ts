import assert from "node:assert/strict";
import { BpfAssembler, conntrackEventFilter, encodeProgram } from "../../lib/netlink/bpf.ts";
import { decodeConntrack } from "../../lib/netlink/conntrack_entry.ts";
import {
  ctMsgType,
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_NEW,
  IPPROTO_TCP,
  IPS_DST_NAT,
  IPS_SEEN_REPLY,
  TCP_CONNTRACK_CLOSE,
  TCP_CONNTRACK_SYN_RECV,
  TCP_CONNTRACK_SYN_SENT,
} from "../../lib/netlink/ctnetlink.ts";
import { MessageBuilder } from "../../lib/netlink/builder.ts";
import { NLM_F_CREATE, NLM_F_EXCL } from "../../lib/netlink/message.ts";
import { runFilter } from "../support/cbpf.ts";
import { entryPayloads, frame } from "../support/netlink_fake.ts";
import { appendNewRequest, type EntrySpec } from "../support/netlink_fill.ts";

const EVENT = NLM_F_CREATE | NLM_F_EXCL;
const CT_NEW = ctMsgType(IPCTNL_MSG_CT_NEW);

/** Every entry message of the captured dumps, as a NEW event. */
const payloads = ["dump_all", "dump_traffic"].flatMap((f) => entryPayloads(f));

Deno.test("the event filter passes exactly the TCP SYN_SENT entries and the new translated TCP entries of the captured dumps", () => {
  const program = conntrackEventFilter();
  let passed = 0, dropped = 0;
  for (const p of payloads) {
    const e = decodeConntrack(p);
    const tcp = e.proto === IPPROTO_TCP;
    const want = tcp && (e.tcpState === TCP_CONNTRACK_SYN_SENT || (e.status & IPS_DST_NAT) !== 0);
    const got = runFilter(program, frame(CT_NEW, EVENT, 0, 0, p)) !== 0;
    assert.equal(got, want, JSON.stringify({ ...e, srcAddr: [...e.srcAddr] }));
    if (got) passed++;
    else dropped++;
  }
  assert.ok(passed > 0 && dropped > 0, `the fixtures hold both kinds (${passed}/${dropped})`);
  assert.ok(
    payloads.some((p) => (decodeConntrack(p).status & IPS_DST_NAT) !== 0),
    "the fixtures hold a translated entry",
  );
});

function spec(o: Partial<EntrySpec>): EntrySpec {
  return {
    family: "ipv4",
    src: "10.0.0.1",
    dst: "10.0.0.2",
    sport: 40000,
    dport: 80,
    zone: 0,
    status: 0,
    timeout: 100,
    ...o,
  };
}

function message(s: EntrySpec, flags = EVENT, type = CT_NEW): Uint8Array {
  const b = new MessageBuilder();
  appendNewRequest(b, 1, s);
  const m = b.bytes();
  return frame(type, flags, 0, 0, m.subarray(16));
}

Deno.test("the event filter: SYN_SENT in a zone and in IPv6 pass; other states, UDP, other types and subsystems do not", () => {
  const f = conntrackEventFilter();
  const pass = (m: Uint8Array) => runFilter(f, m) !== 0;
  assert.ok(pass(message(spec({ tcpState: 1, zone: 5 }))));
  assert.ok(
    pass(message(spec({ tcpState: 1, family: "ipv6", src: "2001:db8::1", dst: "2001:db8::2" }))),
  );
  assert.ok(!pass(message(spec({ tcpState: 3 }))), "ESTABLISHED");
  assert.ok(!pass(message(spec({ tcpState: 7 }))), "TIME_WAIT");
  assert.ok(!pass(message(spec({ proto: 17 }))), "UDP");
  assert.ok(!pass(message(spec({ proto: 17, status: IPS_DST_NAT }))), "translated UDP");
  assert.ok(!pass(message(spec({ tcpState: 1 }), EVENT, ctMsgType(IPCTNL_MSG_CT_DELETE))));
  assert.ok(
    !pass(message(spec({ tcpState: 1 }), EVENT, (2 << 8) | IPCTNL_MSG_CT_NEW)),
    "expect subsystem",
  );
  assert.ok(!pass(message(spec({}))), "TCP without protoinfo, untranslated");
});

Deno.test("the event filter: a translated TCP entry passes only when new (NLM_F_CREATE) and only with evidence on", () => {
  const translated = spec({ tcpState: 3, status: IPS_DST_NAT | 2 });
  assert.notEqual(runFilter(conntrackEventFilter(), message(translated)), 0);
  assert.equal(runFilter(conntrackEventFilter(), message(translated, 0)), 0, "an update");
  assert.equal(runFilter(conntrackEventFilter({ evidence: false }), message(translated)), 0);
  // A SYN_SENT entry passes either way.
  const syn = spec({ tcpState: 1 });
  assert.notEqual(runFilter(conntrackEventFilter({ evidence: false }), message(syn)), 0);
});

Deno.test("the event filter drops truncated and garbage messages without reading out of bounds", () => {
  const f = conntrackEventFilter();
  const good = message(spec({ tcpState: 1 }));
  // CTA_PROTOINFO is the message's last attribute: every cut loses it.
  for (let n = 0; n < good.length; n++) {
    const cut = good.slice(0, n);
    if (n >= 4) new DataView(cut.buffer).setUint32(0, n, true);
    assert.equal(runFilter(f, cut), 0, `cut at ${n} of ${good.length}`);
  }
  for (let seed = 1; seed < 200; seed++) {
    const junk = good.slice();
    for (let i = 20; i < junk.length; i += 7) junk[i] = (junk[i]! * 31 + seed) & 255;
    runFilter(f, junk); // must not throw
  }
});

Deno.test("BpfAssembler resolves labels into forward offsets and refuses unknown, duplicate or backward labels", () => {
  const p = new BpfAssembler().ldImm(1).jeq(1, "yes", "no").label("no").ret(0).label("yes")
    .ret(7).build();
  assert.deepEqual(p[1], { code: 0x15, jt: 1, jf: 0, k: 1 });
  assert.equal(runFilter(p, new Uint8Array(4)), 7);
  assert.throws(() => new BpfAssembler().ja("nowhere").build(), /unknown label nowhere/);
  assert.throws(() => new BpfAssembler().label("a").label("a"), /defined twice/);
  assert.throws(
    () => new BpfAssembler().label("a").ldImm(0).jeq(0, "a", "a").build(),
    /out of range/,
  );
  const bytes = encodeProgram(p);
  assert.equal(bytes.length, p.length * 8);
  assert.equal(new DataView(bytes.buffer).getUint16(8, true), 0x15);
  assert.equal(bytes[10], 1);
});

Deno.test("the event filter with ended: updates to SYN_RECV or CLOSE of the captured dumps' TCP entries pass, no destruction and nothing else of theirs", () => {
  const f = conntrackEventFilter({ evidence: false, ended: true });
  const CT_DELETE = ctMsgType(IPCTNL_MSG_CT_DELETE);
  for (const p of payloads) {
    const e = decodeConntrack(p);
    const tcp = e.proto === IPPROTO_TCP;
    assert.equal(runFilter(f, frame(CT_DELETE, 0, 0, 0, p)), 0, "a destruction");
    const ends = e.tcpState === TCP_CONNTRACK_SYN_RECV || e.tcpState === TCP_CONNTRACK_CLOSE;
    const update = runFilter(f, frame(CT_NEW, 0, 0, 0, p)) !== 0;
    assert.equal(update, tcp && (ends || e.tcpState === TCP_CONNTRACK_SYN_SENT));
  }
});

Deno.test("the event filter with ended: an update to SYN_RECV or CLOSE passes; creations, other states, UDP, destructions do not; without ended none of it", () => {
  const on = conntrackEventFilter({ ended: true }), off = conntrackEventFilter();
  const CT_DELETE = ctMsgType(IPCTNL_MSG_CT_DELETE);
  const pass = (f: typeof on, m: Uint8Array) => runFilter(f, m) !== 0;
  const v6 = { family: "ipv6" as const, src: "2001:db8::1", dst: "2001:db8::2" };
  const ending = [
    message(spec({ tcpState: TCP_CONNTRACK_SYN_RECV, status: IPS_SEEN_REPLY }), 0),
    message(spec({ tcpState: TCP_CONNTRACK_CLOSE, status: IPS_SEEN_REPLY, zone: 5 }), 0),
    message(spec({ tcpState: TCP_CONNTRACK_CLOSE, ...v6 }), 0), // reset by the client
  ];
  for (const [i, m] of ending.entries()) {
    assert.ok(pass(on, m), `ending ${i} passes`);
    assert.ok(!pass(off, m), `ending ${i} without ended`);
  }
  assert.ok(!pass(on, message(spec({ tcpState: TCP_CONNTRACK_SYN_RECV }))), "a creation");
  assert.ok(!pass(on, message(spec({ tcpState: 3, status: IPS_SEEN_REPLY }), 0)), "ESTABLISHED");
  assert.ok(!pass(on, message(spec({ tcpState: 2, proto: 17 }), 0)), "UDP");
  assert.ok(!pass(on, message(spec({ tcpState: 1 }), 0, CT_DELETE)), "a destruction");
  assert.ok(!pass(on, message(spec({ tcpState: 2 }), 0, (2 << 8) | IPCTNL_MSG_CT_NEW)));
  // What passed before still does.
  assert.ok(pass(on, message(spec({ tcpState: 1 }))));
  assert.ok(pass(on, message(spec({ tcpState: 3, status: IPS_DST_NAT | 2 }))));
});
