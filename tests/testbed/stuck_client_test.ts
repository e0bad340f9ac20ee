import assert from "node:assert/strict";
import { isTranslated, parseConntrackList } from "../../testbed/stuck_client.ts";

// Lines printed by `conntrack -L -o extended,id` in a stuck-client node namespace (Linux 6.18,
// conntrack-tools 1.4.7): the stuck client's un-NATed entry in zone 7, and a DNATed one.
const LISTED =
  `ipv6     10 tcp      6 99 SYN_SENT src=2001:db8:1::2 dst=2001:db8:cafe::10 sport=40000 dport=80 [UNREPLIED] src=2001:db8:cafe::10 dst=2001:db8:1::2 sport=80 dport=40000 mark=0 zone=7 use=1 id=68491523
ipv4     2 tcp      6 119 TIME_WAIT src=198.18.1.2 dst=198.19.0.10 sport=57900 dport=80 src=198.18.2.2 dst=198.18.1.2 sport=8080 dport=57900 [ASSURED] mark=0 use=1 id=1955341515
conntrack v1.4.7 (conntrack-tools): 2 flow entries have been shown.
`;

Deno.test("parseConntrackList reads both tuples, zone (0 when absent), state and id", () => {
  const [v6, v4, ...rest] = parseConntrackList(LISTED);
  assert.equal(rest.length, 0);
  assert.deepEqual(v6, {
    family: "ipv6",
    proto: "tcp",
    state: "SYN_SENT",
    timeout: 99,
    src: "2001:db8:1::2",
    dst: "2001:db8:cafe::10",
    sport: 40000,
    dport: 80,
    replySrc: "2001:db8:cafe::10",
    replyDst: "2001:db8:1::2",
    replySport: 80,
    replyDport: 40000,
    unreplied: true,
    zone: 7,
    id: 68491523,
  });
  assert.equal(v4!.zone, 0);
  assert.equal(v4!.unreplied, false);
  assert.equal(v4!.replySrc, "198.18.2.2");
  assert.equal(v4!.id, 1955341515);
});

Deno.test("isTranslated tells a DNATed entry from an un-NATed one", () => {
  const [v6, v4] = parseConntrackList(LISTED);
  assert.ok(v6 && v4);
  assert.equal(isTranslated(v6), false);
  assert.equal(isTranslated(v4), true);
  assert.equal(isTranslated({ ...v6, replySport: 8080 }), true);
});
