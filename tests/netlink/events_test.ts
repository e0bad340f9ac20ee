import assert from "node:assert/strict";
import { MessageBuilder } from "../../lib/netlink/builder.ts";
import {
  ctMsgType,
  IPCTNL_MSG_CT_DELETE,
  IPCTNL_MSG_CT_GET,
  IPCTNL_MSG_CT_NEW,
  IPS_DST_NAT,
} from "../../lib/netlink/ctnetlink.ts";
import { classifyEvent } from "../../lib/netlink/events.ts";
import {
  NetlinkDecodeError,
  NLM_F_CREATE,
  NLM_F_EXCL,
  parseMessages,
} from "../../lib/netlink/message.ts";
import { frame } from "../support/netlink_fake.ts";
import { appendNewRequest, type EntrySpec } from "../support/netlink_fill.ts";

function event(o: Partial<EntrySpec>, flags = NLM_F_CREATE | NLM_F_EXCL, type = IPCTNL_MSG_CT_NEW) {
  const b = new MessageBuilder();
  appendNewRequest(b, 1, {
    family: "ipv4",
    src: "10.0.0.1",
    dst: "10.0.0.2",
    sport: 40000,
    dport: 80,
    zone: 0,
    status: 0,
    tcpState: 1,
    timeout: 120,
    ...o,
  });
  const bytes = frame(ctMsgType(type), flags, 0, 0, b.bytes().slice(16));
  return parseMessages(bytes).messages[0]!;
}

Deno.test("classifyEvent: an unreplied SYN_SENT entry is a candidate; replied or established is not", () => {
  const c = classifyEvent(event({}))!;
  assert.equal(c.candidate, true);
  assert.equal(c.translated, false);
  assert.equal(c.entry.timeout, 120);
  assert.equal(classifyEvent(event({ status: 2 }))!.candidate, false, "IPS_SEEN_REPLY");
  assert.equal(classifyEvent(event({ tcpState: 3 }))!.candidate, false);
  assert.equal(classifyEvent(event({ proto: 17 }))!.candidate, false);
});

Deno.test("classifyEvent: translated only for a new TCP entry with IPS_DST_NAT", () => {
  assert.equal(classifyEvent(event({ tcpState: 3, status: IPS_DST_NAT | 2 }))!.translated, true);
  assert.equal(
    classifyEvent(event({ tcpState: 3, status: IPS_DST_NAT | 2 }, 0))!.translated,
    false,
  );
  assert.equal(classifyEvent(event({ proto: 17, status: IPS_DST_NAT }))!.translated, false);
  assert.equal(classifyEvent(event({ tcpState: 3, status: 2 }))!.translated, false);
  // A translated SYN_SENT entry is both.
  const both = classifyEvent(event({ status: IPS_DST_NAT }))!;
  assert.deepEqual([both.candidate, both.translated], [true, true]);
});

Deno.test("classifyEvent: other message types are not entries; malformed ones throw NetlinkDecodeError", () => {
  assert.equal(classifyEvent(event({}, 0, IPCTNL_MSG_CT_GET)), undefined);
  const m = event({});
  assert.throws(
    () => classifyEvent({ ...m, payload: m.payload.subarray(0, 10) }),
    NetlinkDecodeError,
  );
});

Deno.test("classifyEvent: ended for a destruction and for an update that leaves no candidate; never for a creation or a candidate", () => {
  const gone = classifyEvent(event({}, 0, IPCTNL_MSG_CT_DELETE))!;
  assert.deepEqual([gone.ended, gone.candidate, gone.translated], [true, false, false]);
  assert.equal(classifyEvent(event({ tcpState: 2, status: 2 }, 0))!.ended, true, "answered");
  assert.equal(classifyEvent(event({ tcpState: 8 }, 0))!.ended, true, "reset");
  assert.equal(classifyEvent(event({ tcpState: 2, status: 2 }))!.ended, false, "a creation");
  assert.equal(classifyEvent(event({}, 0))!.ended, false, "an update still SYN_SENT unreplied");
});
