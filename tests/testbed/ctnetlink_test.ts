import assert from "node:assert/strict";
import { buildUpdate } from "../../testbed/ctnetlink.ts";

Deno.test("buildUpdate encodes a ctnetlink update (no NLM_F_CREATE) with tuple, timeout and zone", () => {
  const m = buildUpdate(
    { src: "10.0.0.1", dst: "10.0.0.2", sport: 1234, dport: 80, zone: 5 },
    120,
    7,
  );
  const v = new DataView(m.buffer);
  assert.equal(v.getUint32(0, true), m.length);
  assert.equal(v.getUint16(4, true), 0x100); // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW
  assert.equal(v.getUint16(6, true), 0x5); // NLM_F_REQUEST | NLM_F_ACK
  assert.equal(v.getUint32(8, true), 7);
  assert.equal(m[16], 2); // AF_INET
  const hex = [...m].map((b) => b.toString(16).padStart(2, "0")).join("");
  assert.ok(hex.includes("08000100" + "0a000001"), "CTA_IP_V4_SRC 10.0.0.1");
  assert.ok(hex.includes("06000200" + "04d2"), "CTA_PROTO_SRC_PORT 1234");
  assert.ok(hex.includes("08000700" + "00000078"), "CTA_TIMEOUT 120");
  assert.ok(hex.endsWith("06001200" + "0005" + "0000"), "CTA_ZONE 5, padded");
  const v6 = buildUpdate({ src: "2001:db8::1", dst: "::1", sport: 1, dport: 2 }, 1, 1);
  assert.equal(v6[16], 10); // AF_INET6
  assert.ok(
    [...v6].map((b) => b.toString(16).padStart(2, "0")).join("").includes(
      "14000300" + "20010db8000000000000000000000001",
    ),
  );
  assert.throws(() => buildUpdate({ src: "10.0.0.1", dst: "::1", sport: 1, dport: 2 }, 1, 1));
  assert.throws(() => buildUpdate({ src: "1:2:3", dst: "::1", sport: 1, dport: 2 }, 1, 1));
});
