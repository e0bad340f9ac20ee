import assert from "node:assert/strict";
import { canonicalIPv4, canonicalIPv6 } from "../../lib/model/addr.ts";
import { tupleKey } from "../../lib/model/tuple.ts";
import { kernelTest } from "../support/machine.ts";
import { type EntrySpec, isCandidate, withNetns } from "../../testbed/netns.ts";

const DRIVER = new URL("../support/list_driver.ts", import.meta.url).pathname;

function table(): EntrySpec[] {
  const specs: EntrySpec[] = [];
  const hosts = [["192.0.2.1", "198.51.100.2"], ["2001:db8::1", "2001:db8:0:0:1::2"]] as const;
  for (const [src, dst] of hosts) {
    for (const zone of [0, 5, 65535]) {
      specs.push(
        { src, dst, sport: 40000, dport: 443, zone, state: "SYN_SENT", timeout: 100 + zone % 7 },
        { src, dst, sport: 40001, dport: 443, zone, state: "SYN_SENT", timeout: 60 },
        {
          src,
          dst,
          sport: 40002,
          dport: 443,
          zone,
          state: "SYN_SENT",
          status: "SEEN_REPLY",
          timeout: 60,
        },
        { src, dst, sport: 40003, dport: 443, zone, state: "ESTABLISHED", timeout: 300 },
        { src, dst, sport: 40004, dport: 443, zone, state: "TIME_WAIT", timeout: 100 },
        { src, dst, sport: 40005, dport: 443, zone, state: "SYN_RECV", timeout: 60 },
        { proto: "udp", src, dst, sport: 40006, dport: 53, zone, timeout: 30 },
        {
          src,
          dst,
          sport: 40007,
          dport: 443,
          zone,
          state: "ESTABLISHED",
          status: "",
          timeout: 300,
        },
      );
    }
  }
  return specs;
}

kernelTest(
  "procfs, netlink and conntrack sources list the same candidates of one table (IPv4, IPv6, zones)",
  async () => {
    await withNetns("sources", async (ns) => {
      const specs = table();
      await ns.insertMany(specs);
      const want = specs.filter(isCandidate).map((s) => {
        const v6 = s.src.includes(":");
        const canon = (a: string) => (v6 ? canonicalIPv6(a) : canonicalIPv4(a))!;
        return tupleKey({
          family: v6 ? "ipv6" : "ipv4",
          src: canon(s.src),
          dst: canon(s.dst),
          sport: s.sport,
          dport: s.dport,
          zone: s.zone ?? 0,
        });
      }).sort();
      assert.equal(want.length, 12, "2 families × 3 zones × 2 SYN_SENT/UNREPLIED");
      const r = await ns.exec([Deno.execPath(), "run", "-A", DRIVER], { env: { NO_COLOR: "1" } });
      assert.equal(r.code, 0, r.stderr);
      const got: Record<string, { keys: string[]; timeouts: number[] }> = JSON.parse(r.stdout);
      assert.ok(Object.values(got).every((g) => g.keys.length > 0));
      assert.deepEqual(Object.keys(got).sort(), ["conntrack", "netlink", "procfs"]);
      for (const [name, { keys, timeouts }] of Object.entries(got)) {
        assert.deepEqual(keys, want, name);
        for (const t of timeouts) assert.ok(t > 0 && t <= 106, `${name} timeout ${t}`);
      }
    });
  },
);

kernelTest(
  "procfs, netlink and conntrack sources agree on translated candidates and on evidence (IPv4, IPv6, zones)",
  async () => {
    await withNetns("evidence", async (ns) => {
      const v4 = { src: "192.0.2.1", dst: "198.51.100.80" };
      const v6 = { src: "2001:db8:c::1", dst: "2001:db8:5::80" };
      const specs: EntrySpec[] = [
        // Stuck, un-NATed: the rule's candidates.
        { ...v4, sport: 40000, dport: 80, state: "SYN_SENT", timeout: 100 },
        { ...v6, sport: 40000, dport: 80, zone: 7, state: "SYN_SENT", timeout: 100 },
        // Evidence, replied: DNATed established entries to the same address and port.
        {
          ...v4,
          sport: 40001,
          dport: 80,
          state: "ESTABLISHED",
          timeout: 300,
          dnat: "10.244.0.5:8080",
        },
        {
          ...v6,
          sport: 40001,
          dport: 80,
          zone: 7,
          state: "ESTABLISHED",
          timeout: 300,
          dnat: "[2001:db8:b::5]:8080",
        },
        // Evidence, unreplied: a DNATed SYN_SENT entry (also a candidate, translated).
        {
          ...v4,
          sport: 40002,
          dport: 443,
          state: "SYN_SENT",
          timeout: 100,
          dnat: "10.244.0.6:8443",
        },
        // Neither candidate nor evidence: UDP to the same address and port, unreplied or DNATed.
        { proto: "udp", ...v4, sport: 40009, dport: 80, timeout: 30 },
        { proto: "udp", ...v4, sport: 40010, dport: 80, timeout: 30, dnat: "10.244.0.9:53" },
        // Not evidence: the same address and port in another zone, and another port.
        { ...v4, sport: 40003, dport: 80, zone: 9, state: "ESTABLISHED", timeout: 300 },
        {
          ...v4,
          sport: 40004,
          dport: 8080,
          state: "ESTABLISHED",
          timeout: 300,
          dnat: "10.244.0.7:80",
        },
        // A short request of the same client, closed: TIME_WAIT evidence.
        {
          ...v4,
          sport: 40005,
          dport: 80,
          state: "TIME_WAIT",
          timeout: 120,
          dnat: "10.244.0.5:8080",
        },
        // Another client's translated connection: listed under its own key only.
        {
          src: "192.0.2.2",
          dst: v4.dst,
          sport: 40006,
          dport: 80,
          state: "ESTABLISHED",
          timeout: 300,
          dnat: "10.244.0.5:8080",
        },
      ];
      await ns.insertMany(specs);
      const key = (src: string, dst: string, dport: number, zone: number) => ({
        family: src.includes(":") ? "ipv6" : "ipv4",
        src,
        dst,
        dport,
        zone,
      });
      const ask = [
        key(v4.src, v4.dst, 80, 0),
        key(v4.src, v4.dst, 80, 9),
        key(v4.src, v4.dst, 443, 0),
        key(v4.src, v4.dst, 81, 0),
        key(v6.src, v6.dst, 80, 7),
        key(v6.src, v6.dst, 80, 0),
      ];
      const r = await ns.exec([Deno.execPath(), "run", "-A", DRIVER], {
        env: { NO_COLOR: "1", EVIDENCE_FOR: JSON.stringify(ask) },
      });
      assert.equal(r.code, 0, r.stderr);
      const got = JSON.parse(r.stdout);
      const e = (sport: number, replyZone: number, addr: string, port: number, id: boolean) => ({
        sport,
        replyZone,
        translated: { addr, port },
        id,
      });
      for (const name of ["procfs", "netlink", "conntrack"]) {
        const id = name === "netlink";
        assert.deepEqual(got[name].keys, [
          "ipv4 192.0.2.1 198.51.100.80 40000 80 0",
          "ipv4 192.0.2.1 198.51.100.80 40002 443 0",
          "ipv6 2001:db8:c::1 2001:db8:5::80 40000 80 7",
        ], name);
        assert.deepEqual(
          got[name].translated,
          [null, { addr: "10.244.0.6", port: 8443 }, null],
          `${name}: only the DNATed candidate is translated`,
        );
        assert.deepEqual(got[name].evidence, [
          ["ipv4 192.0.2.1 198.51.100.80 443 0", [e(40002, 0, "10.244.0.6", 8443, id)]],
          ["ipv4 192.0.2.1 198.51.100.80 80 0", [
            e(40001, 0, "10.244.0.5", 8080, id),
            e(40005, 0, "10.244.0.5", 8080, id),
          ]],
          ["ipv4 192.0.2.1 198.51.100.80 80 9", []],
          ["ipv4 192.0.2.1 198.51.100.80 81 0", []],
          ["ipv6 2001:db8:c::1 2001:db8:5::80 80 0", []],
          ["ipv6 2001:db8:c::1 2001:db8:5::80 80 7", [e(40001, 7, "2001:db8:b::5", 8080, id)]],
        ], `${name} evidence`);
        assert.deepEqual(got[name].overflow, [], name);
      }
    });
  },
);
