/**
 * The ctnetlink codec on dumps of a table filled by real traffic
 * (`deno task fixtures:netlink`, its `traffic` part): DNAT, SNAT, CONNMARK,
 * directional CT zones, counters and timestamps on. Expected values come from
 * manifest.json's `traffic.connections` (the capture script's own list) and
 * its `conntrack -L -o extended,id` listing, never from decoding the dumps.
 */
import assert from "node:assert/strict";
import { decodeConntrack, entryTuple } from "../../lib/netlink/conntrack_entry.ts";
import {
  CTA_MARK,
  ctMsgType,
  IPCTNL_MSG_CT_NEW,
  IPS_SEEN_REPLY,
  TCP_CONNTRACK_ESTABLISHED,
  TCP_CONNTRACK_SYN_SENT,
  TCP_CONNTRACK_TIME_WAIT,
} from "../../lib/netlink/ctnetlink.ts";
import { AttrCursor, decodeDone, NLMSG_DONE, parseMessages } from "../../lib/netlink/message.ts";
import { isSynSentUnreplied } from "../../lib/netlink/syn_sent.ts";
import { tupleKey } from "../../lib/model/tuple.ts";
import { entryPayloads, fixture, FIXTURES } from "../support/netlink_fake.ts";

interface Connection {
  description: string;
  family: "ipv4" | "ipv6";
  kind: "syn" | "open" | "closed";
  state: string;
  original: { src: string; dst: string; sport: number; dport: number };
  zone: number;
  mark: number;
  unreplied: boolean;
  candidate: boolean;
}

const manifest = JSON.parse(await Deno.readTextFile(new URL("manifest.json", FIXTURES)));
const CONNS: Connection[] = manifest.traffic.connections;
const LISTING: string[] = manifest.traffic.conntrackListing;
const STATES: Record<string, number> = {
  SYN_SENT: TCP_CONNTRACK_SYN_SENT,
  ESTABLISHED: TCP_CONNTRACK_ESTABLISHED,
  TIME_WAIT: TCP_CONNTRACK_TIME_WAIT,
};
const bySport = new Map(CONNS.map((c) => [c.original.sport, c]));

/** conntrack's id= for the entry with this original source port. */
function listedId(sport: number): number {
  const lines = LISTING.filter((l) => l.includes(` sport=${sport} `));
  assert.equal(lines.length, 1, `one listing line for sport ${sport}`);
  return Number(/ id=(\d+)$/.exec(lines[0]!)![1]);
}

/** The top-level CTA_MARK of a payload, read here apart from the codec (undefined: none). */
function markOf(payload: Uint8Array): number | undefined {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const c = new AttrCursor(view, 4, payload.length, "test");
  while (c.next()) if (c.type === CTA_MARK) return view.getUint32(c.start, false);
  return undefined;
}

Deno.test("a captured real-traffic dump frames all 16 connections, then NLMSG_DONE", () => {
  const { messages, error } = parseMessages(fixture("dump_traffic"));
  assert.equal(error, undefined);
  assert.equal(messages.filter((m) => m.type === ctMsgType(IPCTNL_MSG_CT_NEW)).length, 16);
  const done = messages.at(-1)!;
  assert.equal(done.type, NLMSG_DONE);
  assert.equal(decodeDone(done).errno, 0);
});

Deno.test("decodeConntrack reads each real connection's tuple, original-direction zone, state, reply bit, mark and id as set up", () => {
  const seen = new Set<number>();
  for (const payload of entryPayloads("dump_traffic")) {
    const e = decodeConntrack(payload);
    const t = entryTuple(e);
    const c = bySport.get(t.sport)!;
    assert.ok(c, `unexpected entry ${tupleKey(t)}`);
    seen.add(t.sport);
    assert.deepEqual(t, { family: c.family, ...c.original, zone: c.zone }, c.description);
    assert.equal(e.proto, 6);
    assert.equal(e.tcpState, STATES[c.state], c.description);
    assert.equal((e.status & IPS_SEEN_REPLY) === 0, c.unreplied, c.description);
    assert.equal(e.id, listedId(t.sport), `CTA_ID of ${c.description}`);
    assert.equal(markOf(payload) ?? 0, c.mark, `mark of ${c.description}`);
  }
  assert.equal(seen.size, CONNS.length);
});

Deno.test("isSynSentUnreplied picks exactly the unanswered SYNs of the real-traffic dump, DNATed or not", () => {
  const picked = entryPayloads("dump_traffic").map(decodeConntrack).filter(isSynSentUnreplied)
    .map((e) => entryTuple(e).sport).sort();
  const want = CONNS.filter((c) => c.candidate).map((c) => c.original.sport).sort();
  assert.equal(want.length, 11);
  assert.deepEqual(picked, want);
});

Deno.test("the kernel's TCP + unreplied filter on the real-traffic table sent exactly each family's unanswered SYNs", () => {
  for (const family of ["ipv4", "ipv6"] as const) {
    const got = entryPayloads(`dump_traffic_filtered_${family}`).map((p) =>
      entryTuple(decodeConntrack(p)).sport
    ).sort();
    const want = CONNS.filter((c) => c.candidate && c.family === family)
      .map((c) => c.original.sport).sort();
    assert.deepEqual(got, want, family);
  }
});
