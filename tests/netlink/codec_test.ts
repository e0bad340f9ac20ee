import assert from "node:assert/strict";
import { addressBytes, formatAddress } from "../../lib/model/addr.ts";
import { MessageBuilder } from "../../lib/netlink/builder.ts";
import { decodeConntrack, entryTuple } from "../../lib/netlink/conntrack_entry.ts";
import {
  AF_INET,
  AF_INET6,
  appendDeleteRequest,
  appendDumpRequest,
  appendGetRequest,
  CTA_FILTER,
  CTA_FILTER_F_PROTO_NUM,
  CTA_FILTER_ORIG_FLAGS,
  CTA_ID,
  CTA_STATUS,
  CTA_STATUS_MASK,
  CTA_TUPLE_ORIG,
  CTA_ZONE,
  ctMsgType,
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_GET,
  IPCTNL_MSG_CT_NEW,
  IPS_ASSURED,
  IPS_SEEN_REPLY,
  TCP_CONNTRACK_ESTABLISHED,
  TCP_CONNTRACK_SYN_SENT,
  TCP_CONNTRACK_TIME_WAIT,
} from "../../lib/netlink/ctnetlink.ts";
import {
  AttrCursor,
  decodeDone,
  decodeError,
  HOST_LE,
  NetlinkDecodeError,
  NLM_F_ACK,
  NLM_F_DUMP,
  NLM_F_DUMP_FILTERED,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  parseMessages,
} from "../../lib/netlink/message.ts";
import { isSynSentUnreplied } from "../../lib/netlink/syn_sent.ts";
import { Errno } from "../../lib/os/errno.ts";
import { entryPayloads, fixture, FIXTURES } from "../support/netlink_fake.ts";
import { type ParsedTuple, parseTuple, type Tuple, tupleKey } from "../../lib/model/tuple.ts";

const T4: Tuple = { family: "ipv4", src: "1.2.3.4", dst: "5.6.7.8", sport: 1, dport: 2, zone: 0 };

function parsed(t: Tuple): ParsedTuple {
  const r = parseTuple(t);
  if (!r.ok) throw new Error(r.problem);
  return r.tuple;
}

/** What scripts/capture_netlink_fixtures.ts inserted with conntrack -I, keyed by sport. */
const INSERTED: Record<number, {
  family: "ipv4" | "ipv6";
  src: string;
  dst: string;
  dport: number;
  proto: number;
  zone: number;
  tcpState?: number;
  replied: boolean;
  timeout: number;
}> = {
  40001: {
    family: "ipv4",
    src: "10.10.0.1",
    dst: "10.10.0.2",
    dport: 80,
    proto: 6,
    zone: 0,
    tcpState: TCP_CONNTRACK_SYN_SENT,
    replied: false,
    timeout: 120,
  },
  40002: {
    family: "ipv6",
    src: "2001:db8::1",
    dst: "2001:db8::2",
    dport: 443,
    proto: 6,
    zone: 0,
    tcpState: TCP_CONNTRACK_SYN_SENT,
    replied: false,
    timeout: 110,
  },
  40003: {
    family: "ipv4",
    src: "10.10.0.1",
    dst: "10.10.0.2",
    dport: 80,
    proto: 6,
    zone: 5,
    tcpState: TCP_CONNTRACK_SYN_SENT,
    replied: false,
    timeout: 100,
  },
  40004: {
    family: "ipv4",
    src: "10.10.0.1",
    dst: "10.10.0.2",
    dport: 80,
    proto: 6,
    zone: 0,
    tcpState: TCP_CONNTRACK_ESTABLISHED,
    replied: true,
    timeout: 3600,
  },
  40005: {
    family: "ipv4",
    src: "10.10.0.1",
    dst: "10.10.0.2",
    dport: 80,
    proto: 6,
    zone: 0,
    tcpState: TCP_CONNTRACK_TIME_WAIT,
    replied: true,
    timeout: 90,
  },
  5353: {
    family: "ipv4",
    src: "10.10.0.1",
    dst: "10.10.0.3",
    dport: 53,
    proto: 17,
    zone: 0,
    replied: false,
    timeout: 30,
  },
  40006: {
    family: "ipv6",
    src: "2001:db8::1",
    dst: "2001:db8::2",
    dport: 443,
    proto: 6,
    zone: 0,
    tcpState: TCP_CONNTRACK_ESTABLISHED,
    replied: true,
    timeout: 3600,
  },
};

/** Ids as `conntrack -L -o id` printed them at capture time, keyed by sport. */
function conntrackIds(): Map<number, number> {
  const manifest = JSON.parse(Deno.readTextFileSync(new URL("manifest.json", FIXTURES)));
  const ids = new Map<number, number>();
  for (const line of manifest.conntrackListing as string[]) {
    const sport = Number(/sport=(\d+)/.exec(line)![1]);
    ids.set(sport, Number(/ id=(\d+)/.exec(line)![1]));
  }
  return ids;
}

Deno.test("parseMessages frames a captured unfiltered dump: 7 entries then NLMSG_DONE with errno 0", () => {
  const { messages, error } = parseMessages(fixture("dump_all"));
  assert.deepEqual(error, undefined);
  const types = messages.map((m) => m.type);
  assert.deepEqual(types.filter((t) => t === ctMsgType(IPCTNL_MSG_CT_NEW)).length, 7);
  const done = messages[messages.length - 1];
  assert.ok(done);
  assert.deepEqual(done.type, NLMSG_DONE);
  assert.deepEqual(decodeDone(done).errno, 0);
  // One dump: one sequence number, one port id.
  assert.deepEqual(new Set(messages.map((m) => m.seq)).size, 1);
  assert.deepEqual(new Set(messages.map((m) => m.pid)).size, 1);
});

Deno.test("decodeConntrack decodes every captured entry: tuple, zone, protocol, TCP state, status, timeout, id", () => {
  const ids = conntrackIds();
  const seen = new Set<number>();
  for (const payload of entryPayloads("dump_all")) {
    const e = decodeConntrack(payload);
    const t = entryTuple(e);
    const want = INSERTED[t.sport];
    assert(want, `unexpected entry ${tupleKey(t)}`);
    seen.add(t.sport);
    assert.deepEqual(
      { family: t.family, src: t.src, dst: t.dst, dport: t.dport, zone: t.zone, proto: e.proto },
      {
        family: want.family,
        src: want.src,
        dst: want.dst,
        dport: want.dport,
        zone: want.zone,
        proto: want.proto,
      },
    );
    assert.deepEqual(e.tcpState, want.tcpState);
    assert.deepEqual((e.status & IPS_SEEN_REPLY) !== 0, want.replied);
    if (want.replied) assert(e.status & IPS_ASSURED);
    assert(e.timeout! <= want.timeout && e.timeout! >= want.timeout - 5, `timeout ${e.timeout}`);
    assert.deepEqual(e.id, ids.get(t.sport), "CTA_ID read big-endian equals conntrack's id=");
  }
  assert.deepEqual(seen.size, 7);
});

Deno.test("isSynSentUnreplied selects exactly the IPv4, IPv6 and zone-5 SYN_SENT entries of a captured dump", () => {
  const picked = entryPayloads("dump_all").map(decodeConntrack).filter(isSynSentUnreplied)
    .map((e) => entryTuple(e).sport).sort();
  assert.deepEqual(picked, [40001, 40002, 40003]);
});

Deno.test("captured proto+status filtered dumps hold only unreplied TCP entries of their family, flagged NLM_F_DUMP_FILTERED", () => {
  for (
    const [name, family, sports] of [
      ["dump_filtered_ipv4", "ipv4", [40001, 40003]],
      ["dump_filtered_ipv6", "ipv6", [40002]],
    ] as const
  ) {
    const { messages } = parseMessages(fixture(name));
    const entries = messages.filter((m) => m.type === ctMsgType(IPCTNL_MSG_CT_NEW));
    assert(entries.every((m) => m.flags & NLM_F_DUMP_FILTERED));
    const decoded = entries.map((m) => decodeConntrack(m.payload));
    assert(decoded.every((e) => e.family === family && isSynSentUnreplied(e)));
    assert.deepEqual(decoded.map((e) => e.sport).sort(), [...sports]);
    assert.deepEqual(messages[messages.length - 1]!.type, NLMSG_DONE);
  }
});

Deno.test("a captured status-only filtered dump holds the unreplied entries of every protocol", () => {
  const decoded = entryPayloads("dump_status").map(decodeConntrack);
  assert.deepEqual(decoded.map((e) => e.sport).sort(), [40001, 40002, 40003, 5353]);
  assert(decoded.every((e) => (e.status & IPS_SEEN_REPLY) === 0));
});

Deno.test("decodeError reads the kernel's EINVAL, ENOENT and ACK replies captured from real requests", () => {
  const one = (name: string) => {
    const { messages } = parseMessages(fixture(name));
    assert.deepEqual(messages.length, 1);
    assert.deepEqual(messages[0]!.type, NLMSG_ERROR);
    const info = decodeError(messages[0]!);
    assert.deepEqual(info.requestSeq, messages[0]!.seq);
    return info.errno;
  };
  assert.deepEqual(one("dump_einval"), Errno.EINVAL);
  assert.deepEqual(one("get_enoent"), Errno.ENOENT);
  assert.deepEqual(one("delete_wrong_id"), Errno.ENOENT);
  assert.deepEqual(one("delete_ack"), 0);
});

Deno.test("decodeConntrack reads the captured reply to a non-dump GET", () => {
  const { messages } = parseMessages(fixture("get_reply_ipv4"));
  assert.deepEqual(messages.length, 1);
  const e = decodeConntrack(messages[0]!.payload);
  assert.deepEqual(entryTuple(e), {
    family: "ipv4",
    src: "10.10.0.1",
    dst: "10.10.0.2",
    sport: 40001,
    dport: 80,
    zone: 0,
  });
  assert(isSynSentUnreplied(e));
  assert.deepEqual(e.id, conntrackIds().get(40001));
});

/** Top-level attributes of a request built by the encoder: type -> [flags, bytes]. */
function attrsOf(bytes: Uint8Array): Map<number, { nested: boolean; data: Uint8Array }> {
  const { messages } = parseMessages(bytes);
  assert.deepEqual(messages.length, 1);
  const p = messages[0]!.payload;
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const c = new AttrCursor(view, 4, p.length, "test");
  const out = new Map<number, { nested: boolean; data: Uint8Array }>();
  while (c.next()) {
    const raw = view.getUint16(c.start - 2, HOST_LE);
    out.set(c.type, { nested: (raw & 0x8000) !== 0, data: p.subarray(c.start, c.start + c.size) });
  }
  return out;
}

Deno.test("appendDumpRequest asks for NLM_F_DUMP with CTA_FILTER (host-order flags) and CTA_STATUS/CTA_STATUS_MASK", () => {
  const b = new MessageBuilder();
  appendDumpRequest(b, 77, AF_INET6, { protoNum: 6, status: { value: 0, mask: IPS_SEEN_REPLY } });
  const bytes = b.bytes();
  const m = parseMessages(bytes).messages[0];
  assert.ok(m);
  assert.deepEqual(m.type, ctMsgType(IPCTNL_MSG_CT_GET));
  assert.deepEqual(m.flags, NLM_F_REQUEST | NLM_F_DUMP);
  assert.deepEqual(m.seq, 77);
  assert.deepEqual(m.payload[0], AF_INET6);
  const a = attrsOf(bytes);
  assert(a.get(CTA_TUPLE_ORIG)!.nested);
  const filter = a.get(CTA_FILTER)!;
  assert(filter.nested);
  const fv = new DataView(filter.data.buffer, filter.data.byteOffset, filter.data.byteLength);
  assert.deepEqual(fv.getUint16(2, HOST_LE), CTA_FILTER_ORIG_FLAGS);
  assert.deepEqual(fv.getUint32(4, HOST_LE), CTA_FILTER_F_PROTO_NUM);
  assert.deepEqual([...a.get(CTA_STATUS)!.data], [0, 0, 0, 0]);
  assert.deepEqual([...a.get(CTA_STATUS_MASK)!.data], [0, 0, 0, 2]);
});

Deno.test("appendDeleteRequest sends the tuple, the zone and CTA_ID big-endian with NLM_F_ACK", () => {
  const b = new MessageBuilder();
  const t = {
    family: "ipv6" as const,
    src: "2001:DB8::1",
    dst: "::1",
    sport: 1,
    dport: 2,
    zone: 5,
  };
  appendDeleteRequest(b, 9, parsed(t), 0x01020304);
  const bytes = b.bytes();
  const m = parseMessages(bytes).messages[0];
  assert.ok(m);
  assert.deepEqual(m.type, ctMsgType(IPCTNL_MSG_CT_DELETE));
  assert.deepEqual(m.flags, NLM_F_REQUEST | NLM_F_ACK);
  assert.deepEqual(m.payload[0], AF_INET6);
  const a = attrsOf(bytes);
  assert.deepEqual([...a.get(CTA_ID)!.data], [1, 2, 3, 4]);
  assert.deepEqual([...a.get(CTA_ZONE)!.data], [0, 5]);
  // The request's tuple decodes back (with a status added, as the kernel's reply would have).
  const withStatus = new MessageBuilder();
  withStatus.beginMessage(ctMsgType(IPCTNL_MSG_CT_NEW), 0, 1, AF_INET6);
  withStatus.raw(CTA_STATUS, new Uint8Array(4));
  withStatus.endMessage();
  const p = parseMessages(withStatus.bytes()).messages[0]!.payload;
  const merged = new Uint8Array(p.length + m.payload.length - 4);
  merged.set(m.payload);
  merged.set(p.subarray(4), m.payload.length);
  assert.deepEqual(entryTuple(decodeConntrack(merged)), {
    family: "ipv6",
    src: "2001:db8::1",
    dst: "::1",
    sport: 1,
    dport: 2,
    zone: 5,
  });
});

Deno.test("appendGetRequest uses the tuple's family", () => {
  for (
    const [t, family] of [[T4, AF_INET], [
      { ...T4, family: "ipv6", src: "::1", dst: "::2" },
      AF_INET6,
    ]] as const
  ) {
    const b = new MessageBuilder();
    appendGetRequest(b, 1, parsed(t));
    assert.deepEqual(parseMessages(b.bytes()).messages[0]!.payload[0], family);
  }
});

Deno.test("addressBytes and formatAddress round-trip to the canonical spelling", () => {
  assert.deepEqual(
    formatAddress(addressBytes("ipv6", "2001:0DB8:0000:0000:0000:0000:0000:0001")!),
    "2001:db8::1",
  );
  assert.deepEqual(formatAddress(addressBytes("ipv6", "::ffff:10.0.0.1")!), "::ffff:a00:1");
  assert.deepEqual(formatAddress(addressBytes("ipv4", "192.168.0.1")!), "192.168.0.1");
  assert.deepEqual(addressBytes("ipv4", "010.0.0.1"), undefined);
  assert.deepEqual(addressBytes("ipv6", "10.0.0.1"), undefined);
  assert.deepEqual(addressBytes("ipv4", "-F"), undefined);
});

Deno.test("decodeConntrack rejects a payload whose family does not match its addresses", () => {
  const payload = entryPayloads("dump_filtered_ipv4")[0]!.slice();
  payload[0] = AF_INET6;
  assert.throws(() => decodeConntrack(payload), NetlinkDecodeError);
});
