/** The legacy-iptables and IPVS checks on /proc texts and a fake /proc tree. */
import assert from "node:assert/strict";
import { ipvsMayServe, listsNat, parseIpvs, readHostNat } from "../../lib/nat/host_checks.ts";

const HEAD = "IP Virtual Server version 1.2.1 (size=4096)\n" +
  "Prot LocalAddress:Port Scheduler Flags\n" +
  "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n";

Deno.test("listsNat: only a line that is exactly nat counts", () => {
  assert.equal(listsNat("filter\nnat\n"), true);
  assert.equal(listsNat("filter\nmangle\n"), false);
  assert.equal(listsNat("natx\n"), false);
  assert.equal(listsNat(undefined), false);
});

Deno.test("parseIpvs: TCP services by address and port, fwmark as any, UDP ignored", () => {
  const s = parseIpvs(
    HEAD + "TCP  0A60000A:0050 rr\n  -> 0AF40105:1F90      Masq    1      0          0\n" +
      "UDP  0A60000A:0035 rr\n" +
      "TCP  [fd00:0000:0000:0000:0000:0000:0000:0001]:01BB rr\n",
  );
  assert.equal(s.length, 2);
  assert.equal(ipvsMayServe(s, "ipv4", new Uint8Array([10, 96, 0, 10]), 80), true);
  assert.equal(ipvsMayServe(s, "ipv4", new Uint8Array([10, 96, 0, 10]), 53), false);
  const v6 = new Uint8Array(16);
  v6[0] = 0xfd;
  v6[15] = 1;
  assert.equal(ipvsMayServe(s, "ipv6", v6, 443), true);
  assert.equal(ipvsMayServe(s, "ipv6", v6, 80), false);
  const fwm = parseIpvs(HEAD + "FWM  00000001 rr\n");
  assert.equal(ipvsMayServe(fwm, "ipv4", new Uint8Array(4), 1), true);
  assert.deepEqual(parseIpvs(HEAD), []);
});

Deno.test("readHostNat: reads the three files; missing files mean none", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/net`);
    assert.deepEqual(await readHostNat(root), {
      legacyNat: { ipv4: false, ipv6: false },
      ipvs: [],
    });
    await Deno.writeTextFile(`${root}/net/ip6_tables_names`, "nat\nfilter\n");
    await Deno.writeTextFile(`${root}/net/ip_vs`, HEAD + "FWM  00000001 rr\n");
    assert.deepEqual(await readHostNat(root), {
      legacyNat: { ipv4: false, ipv6: true },
      ipvs: ["any"],
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
